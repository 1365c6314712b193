//! Reading responses from a byte stream, without the IO: a connection's read buffer (grown for
//! large reads, shrunk back after them), the response in progress, and what completed. Both
//! drivers use it: `conn::Conn` (monoio, one future per read) and the ring engine
//! (`engine::ring`, one state machine per connection), so both parse, frame, keep and count
//! alike.

use super::body::{Body, Sink};
use super::head::{parse_head_cached, parse_head_into, Field, Framing};
use crate::failure::{Failure, ParseError};

/// Read buffer a connection starts with. It doubles whenever a read fills all its free space
/// (the server has more to send than fits), up to `MAX_READ_BUFFER_BYTES`: small responses keep
/// connections small, large bodies get large reads. Growth happens in the first exchanges, so
/// steady state still allocates nothing.
pub const INIT_BUFFER_BYTES: usize = 512;
/// The read buffer stops growing for bodies here; only a head may need it larger.
pub const MAX_READ_BUFFER_BYTES: usize = 64 * 1024;
/// A read buffer larger than it has needed for this many responses in a row shrinks back to
/// what they needed (twice the largest read, at least `INIT_BUFFER_BYTES`): a connection that
/// once read a large body does not keep a large buffer for small responses. The window keeps
/// traffic that mixes sizes from reallocating back and forth.
pub const SHRINK_AFTER_RESPONSES: u16 = 64;
/// A response head that does not fit in this many bytes is `ParseError::HeadTooLarge`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A kept response body (for checks and captures) stops growing here; the rest is still read
/// and counted, and `Kept::truncated` says so.
pub const MAX_KEPT_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The outcome of one complete response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub status: u16,
    /// Payload bytes (after de-chunking).
    pub payload: u64,
}

/// A copy of a response's head and body, for checks and captures. Off by default: the static
/// hot path skips bodies through a cursor.
#[derive(Debug, Default)]
pub struct Kept {
    /// The final response head, status line to the empty line.
    pub head: Vec<u8>,
    /// Where its header fields lie in `head`, recorded when it was parsed.
    pub fields: Vec<Field>,
    /// The payload (de-chunked), at most `MAX_KEPT_BODY_BYTES`.
    pub body: Vec<u8>,
    /// The payload was longer than what was kept.
    pub truncated: bool,
    /// Keep the body too (else only the head).
    pub want_body: bool,
    /// The longest body kept since the last shrink check (see `SHRINK_AFTER_RESPONSES`).
    largest: usize,
}

impl Kept {
    /// Keeps heads, and bodies when `want_body`.
    pub fn new(want_body: bool) -> Kept {
        Kept { want_body, ..Kept::default() }
    }

    /// The values of the header fields called `name` (any case), in order; values that are not
    /// UTF-8 are left out.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.head[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .filter_map(|f| std::str::from_utf8(&self.head[f.value.clone()]).ok())
    }

    /// The first header field called `name` (any case).
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers(name).next()
    }
}

/// The response being read: nothing yet, or its final head's status, framing and keep-alive
/// with the body decoded so far.
#[derive(Default)]
pub struct Reading(Option<Final>);

struct Final {
    status: u16,
    framing: Framing,
    keep_alive: bool,
    body: Body,
    payload: u64,
}

/// A connection's received bytes and what they have completed.
pub struct ReadBuf {
    /// Received bytes; `bytes[pos..]` is not yet consumed.
    pub bytes: Vec<u8>,
    pos: usize,
    /// Responses completed on the current TCP connection.
    pub served: u64,
    /// Bytes received since `sent` was last called.
    pub received_since_send: usize,
    /// `served` when the last request went out: > 0 means it went on a reused connection.
    served_at_send: u64,
    /// The spare bytes the read in flight was given (see `spare`).
    space: usize,
    /// The last read filled the buffer: grow it before the next one.
    grow: bool,
    /// The largest read, and the responses completed, since the buffer last had to fit them
    /// (see `SHRINK_AFTER_RESPONSES`).
    largest_read: u32,
    responses_seen: u16,
    /// Copies of the last final head and body, when asked for (`Conn::keep`).
    pub kept: Option<Kept>,
}

impl Default for ReadBuf {
    fn default() -> ReadBuf {
        ReadBuf {
            bytes: Vec::with_capacity(INIT_BUFFER_BYTES),
            pos: 0,
            served: 0,
            received_since_send: 0,
            served_at_send: 0,
            space: 0,
            grow: false,
            largest_read: 0,
            responses_seen: 0,
            kept: None,
        }
    }
}

impl ReadBuf {
    /// A new TCP connection: drops buffered bytes; restores a buffer lost to a cancelled read.
    pub fn reset(&mut self) {
        self.served = 0;
        self.pos = 0;
        self.bytes.clear();
        if self.bytes.capacity() == 0 {
            self.bytes = Vec::with_capacity(INIT_BUFFER_BYTES);
        }
    }

    /// A request went out: what arrives from here answers it.
    pub fn sent(&mut self) {
        self.served_at_send = self.served;
        self.received_since_send = 0;
    }

    /// Whether `failure` may be retried once on a new connection: the request went out on a
    /// reused keep-alive connection and the server closed it without sending a byte, so it
    /// cannot have been processed (the idle-close race, RFC 9112 §9.3.1).
    pub fn may_retry(&self, failure: Failure) -> bool {
        let closed = match failure {
            Failure::Closed => true,
            Failure::Read(errno) | Failure::Write(errno) => errno == libc::ECONNRESET || errno == libc::EPIPE,
            _ => false,
        };
        closed && self.served_at_send > 0 && self.received_since_send == 0
    }

    /// Advances `reading` over the unconsumed bytes: skips interim 1xx heads, parses the final
    /// head, consumes the body. The exchange and whether the connection may be reused once the
    /// response is complete; `None` while it needs more bytes.
    pub fn advance(&mut self, reading: &mut Reading, head_request: bool) -> Result<Option<(Exchange, bool)>, Failure> {
        let current = match reading.0.as_mut() {
            Some(current) => current,
            None => loop {
                let parsed = match self.kept.as_mut() {
                    Some(kept) => parse_head_into(&self.bytes[self.pos..], head_request, Some(&mut kept.fields)),
                    None => parse_head_cached(&self.bytes[self.pos..], head_request),
                };
                match parsed {
                    // However the bytes arrived (one read or many), a head over the limit is refused.
                    Ok(Some(head)) if head.len > MAX_HEAD_BYTES => {
                        return Err(Failure::Parse(ParseError::HeadTooLarge))
                    }
                    Ok(Some(head)) if head.is_interim() => self.pos += head.len,
                    Ok(Some(head)) => {
                        if let Some(kept) = self.kept.as_mut() {
                            kept.head.clear();
                            kept.head.extend_from_slice(&self.bytes[self.pos..self.pos + head.len]);
                            kept.body.clear();
                        }
                        self.pos += head.len;
                        let body = Body::new(head.framing);
                        let (status, framing, keep_alive) = (head.status, head.framing, head.keep_alive);
                        break reading.0.insert(Final { status, framing, keep_alive, body, payload: 0 });
                    }
                    Ok(None) if self.bytes.len() - self.pos >= MAX_HEAD_BYTES => {
                        return Err(Failure::Parse(ParseError::HeadTooLarge))
                    }
                    Ok(None) => return Ok(None),
                    Err(err) => return Err(Failure::Parse(err)),
                }
            },
        };
        let mut sink = match self.kept.as_mut() {
            Some(kept) if kept.want_body => Sink::Keep { into: &mut kept.body, limit: MAX_KEPT_BODY_BYTES },
            _ => Sink::Skip,
        };
        let progress = current.body.decode_into(&self.bytes[self.pos..], &mut sink).map_err(Failure::Parse)?;
        self.pos += progress.consumed;
        current.payload += progress.payload;
        if !progress.done {
            return Ok(None);
        }
        Ok(Some(self.complete(reading)))
    }

    /// The stream ended: the response completes if its body runs until the close, else the
    /// server closed the connection before it was complete.
    pub fn at_end(&mut self, reading: &mut Reading) -> Result<(Exchange, bool), Failure> {
        match &reading.0 {
            Some(current) if current.framing == Framing::UntilClose => Ok(self.complete(reading)),
            _ => Err(Failure::Closed),
        }
    }

    fn complete(&mut self, reading: &mut Reading) -> (Exchange, bool) {
        let done = reading.0.take().expect("a response in progress");
        self.served += 1;
        if let Some(kept) = self.kept.as_mut() {
            kept.truncated = done.payload > kept.body.len() as u64;
            kept.largest = kept.largest.max(kept.body.len());
        }
        self.maybe_shrink();
        (Exchange { status: done.status, payload: done.payload }, done.keep_alive)
    }

    /// Bytes received and not yet consumed (a server that sent more than was asked for).
    pub fn unconsumed(&self) -> bool {
        self.pos < self.bytes.len()
    }

    /// Makes room for the next read (see `make_room`) and says how much: the read goes into
    /// `bytes`'s spare capacity, from its length.
    pub fn spare(&mut self) -> usize {
        self.make_room();
        self.space = self.bytes.capacity() - self.bytes.len();
        self.space
    }

    /// A read of `n` bytes into the spare capacity (or, TLS, appended) completed.
    pub fn filled(&mut self, n: usize) {
        self.grow = n == self.space;
        self.largest_read = self.largest_read.max(n.min(u32::MAX as usize) as u32);
        self.received_since_send += n;
    }

    /// Every `SHRINK_AFTER_RESPONSES` responses: when no read since the last check needed more
    /// than a quarter of the buffer and nothing is left unconsumed, shrinks it to twice the
    /// largest read (at least `INIT_BUFFER_BYTES`); the kept body's buffer likewise.
    fn maybe_shrink(&mut self) {
        self.responses_seen += 1;
        if self.responses_seen < SHRINK_AFTER_RESPONSES {
            return;
        }
        if let Some(needed) = shrunk_size(self.largest_read as usize, self.bytes.capacity()) {
            if self.pos == self.bytes.len() {
                self.bytes.clear();
                self.pos = 0;
                self.bytes.shrink_to(needed);
            }
        }
        if let Some(kept) = self.kept.as_mut() {
            if let Some(needed) = shrunk_size(kept.largest, kept.body.capacity()) {
                kept.body.shrink_to(needed.max(kept.body.len()));
            }
            kept.largest = 0;
        }
        self.responses_seen = 0;
        self.largest_read = 0;
    }

    /// Moves unconsumed bytes to the front; doubles the buffer when a head fills all of it or
    /// the last read filled it (bounded by `MAX_READ_BUFFER_BYTES` unless a head needs more).
    fn make_room(&mut self) {
        let capacity = self.bytes.capacity();
        if self.pos == self.bytes.len() {
            self.bytes.clear();
            self.pos = 0;
        } else if self.pos > 0 && capacity - self.bytes.len() < capacity / 4 {
            self.bytes.copy_within(self.pos.., 0);
            self.bytes.truncate(self.bytes.len() - self.pos);
            self.pos = 0;
        }
        let full = self.bytes.len() == capacity;
        if full || (self.grow && capacity < MAX_READ_BUFFER_BYTES) {
            // `reserve` counts from the length: ask for twice the capacity in all.
            self.bytes.reserve(2 * capacity.max(INIT_BUFFER_BYTES) - self.bytes.len());
        }
        self.grow = false;
    }
}

/// What a buffer of `capacity` shrinks to when the most it held over a window was `largest`:
/// twice that (at least `INIT_BUFFER_BYTES`), if that is at most a quarter of it.
pub(crate) fn shrunk_size(largest: usize, capacity: usize) -> Option<usize> {
    let needed = (2 * largest).next_power_of_two().max(INIT_BUFFER_BYTES);
    (needed <= capacity / 4).then_some(needed)
}
