//! The response parser and body framer, fed as the connection feeds them: bytes arrive in
//! pieces, heads are parsed from the unconsumed part, interim 1xx heads are skipped, and bodies
//! are decoded (Content-Length, chunked, until close) into a bounded sink. The first byte sets
//! the piece size. Checked: no panic, progress never claims more than it was given, the kept
//! body respects its limit, and the responses completed do not depend on how the bytes were
//! split (one piece vs many), and the head parser that remembers the last head
//! (`parse_head_cached`) agrees with the plain one on every head. Each line is also parsed as a
//! `Set-Cookie` value (server-given dates and ages) and stored in a jar.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmer::http::conn::MAX_HEAD_BYTES;
use swarmer::http::cookie::{parse_set_cookie, Jar};
use swarmer::http::{parse_head, parse_head_cached, Body, Framing, Sink};

const KEEP_LIMIT: usize = 4096;

/// (status, payload) of each complete response, in order.
fn responses(input: &[u8], piece: usize) -> Vec<(u16, u64)> {
    let mut done = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut pos = 0;
    let mut kept = Vec::new();
    // The response in progress: its status, framing, body state and payload so far.
    let mut current: Option<(u16, Framing, Body, u64)> = None;
    loop {
        let progressed = match current.as_mut() {
            None => match parse_head(&buf[pos..], false) {
                // The remembered parse (the last head of this thread, often from another input)
                // must be the parse.
                parsed if parse_head_cached(&buf[pos..], false) != parsed => panic!("cached parse differs"),
                // As the connection does: over the limit however the bytes arrived.
                Ok(Some(head)) if head.len > MAX_HEAD_BYTES => return done,
                Ok(Some(head)) => {
                    assert!(head.len <= buf.len() - pos, "head longer than its input");
                    pos += head.len;
                    if !head.is_interim() {
                        kept.clear();
                        current = Some((head.status, head.framing, Body::new(head.framing), 0));
                    }
                    true
                }
                Ok(None) if buf.len() - pos >= MAX_HEAD_BYTES => return done,
                Ok(None) => false,
                Err(_) => return done,
            },
            Some((status, _, body, payload)) => {
                let mut sink = Sink::Keep { into: &mut kept, limit: KEEP_LIMIT };
                let available = buf.len() - pos;
                match body.decode_into(&buf[pos..], &mut sink) {
                    Ok(progress) => {
                        assert!(progress.consumed <= available, "consumed more than given");
                        assert!(progress.payload <= progress.consumed as u64, "more payload than bytes");
                        assert!(kept.len() <= KEEP_LIMIT, "kept past the limit");
                        pos += progress.consumed;
                        *payload += progress.payload;
                        if progress.done {
                            done.push((*status, *payload));
                            current = None;
                            true
                        } else {
                            progress.consumed > 0
                        }
                    }
                    Err(_) => return done,
                }
            }
        };
        if progressed {
            continue;
        }
        if fed == input.len() {
            // End of stream: a body framed by the close is complete now.
            if let Some((status, Framing::UntilClose, _, payload)) = current {
                done.push((status, payload));
            }
            return done;
        }
        let next = (fed + piece).min(input.len());
        buf.extend_from_slice(&input[fed..next]);
        fed = next;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let piece = usize::from(first % 64) + 1;
    let whole = responses(input, input.len().max(1));
    let split = responses(input, piece);
    assert_eq!(whole, split, "responses depend on how the bytes were split ({piece}-byte pieces)");
    // Each line as a Set-Cookie value, stored and sent back: no panic on any date or age.
    let mut jar = Jar::default();
    for line in String::from_utf8_lossy(input).lines() {
        if let Some(cookie) = parse_set_cookie(line, "127.0.0.1") {
            jar.set(cookie);
        }
    }
    let mut header = Vec::new();
    jar.header_for("127.0.0.1:80", "/", b"", &mut header);
});
