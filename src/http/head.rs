//! Response head parsing (RFC 9112 §4–6) in place with a fixed header array: status, framing
//! and persistence are read; no header is copied.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use crate::failure::ParseError;

/// Header fields beyond this many make the response a `ParseError::TooManyHeaders`.
pub const MAX_HEADERS: usize = 64;

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD responses, 1xx, 204, 304 (§6.3 rule 1–2).
    None,
    /// Exactly this many bytes (§6.3 rule 6).
    Length(u64),
    /// Transfer-Encoding ending in chunked (§6.3 rule 4, §7.1).
    Chunked,
    /// Read until the server closes (§6.3 rule 8).
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head including the final CRLF CRLF.
    pub len: usize,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response (§9.3).
    pub keep_alive: bool,
}

impl Head {
    /// 1xx other than 101: an interim response to skip before the final one (§15.2).
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Where one header field lies in a parsed head: the byte ranges of its name and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// Parses a response head at the start of `buf`. `Ok(None)` means more bytes are needed.
/// `head_request` says the request was HEAD, whose response never has a body.
#[inline]
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, ParseError> {
    parse_head_into(buf, head_request, None)
}

/// As `parse_head`, and when `fields` is given, records where every header field lies in `buf`
/// (responses kept for checks and captures: their headers are read from these ranges, never
/// parsed again).
#[inline]
pub fn parse_head_into(
    buf: &[u8],
    head_request: bool,
    mut fields: Option<&mut Vec<Field>>,
) -> Result<Option<Head>, ParseError> {
    // Uninitialised: zeroing 64 headers (2 KiB) per response cost more than parsing them.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
            Err(_) => return Err(ParseError::Head),
        };
    let status = response.code.ok_or(ParseError::Head)?;
    let mut seen = Framers::new(response.version == Some(1));
    if let Some(fields) = fields.as_deref_mut() {
        fields.clear();
    }
    for header in response.headers.iter() {
        if let Some(fields) = fields.as_deref_mut() {
            fields.push(Field { name: place(buf, header.name.as_bytes()), value: place(buf, trim(header.value)) });
        }
        seen.read(header.name.as_bytes(), header.value)?;
    }
    Ok(Some(seen.head(status, len, head_request)))
}

/// Heads up to this long are remembered by `parse_head_cached`.
pub const CACHED_HEAD_BYTES: usize = 512;

/// The last head `parse_head_cached` parsed on a thread, and what it parsed to (for a HEAD
/// request or not).
type LastHead = (Vec<u8>, Option<(bool, Head)>);

thread_local! {
    static LAST_HEAD: RefCell<LastHead> = const { RefCell::new((Vec::new(), None)) };
}

/// As `parse_head`, remembering the last head parsed on this thread (one per worker): when
/// `buf` starts with exactly those bytes, their parse is returned without parsing again. Exact,
/// since a head's parse depends on its bytes alone and ends at its blank line; and a server
/// under load mostly sends the same head to every connection (nginx's changes with its `Date`,
/// once a second). A miss costs the comparison (it stops at the first difference) and a copy
/// of the new head.
#[inline]
pub fn parse_head_cached(buf: &[u8], head_request: bool) -> Result<Option<Head>, ParseError> {
    LAST_HEAD.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((for_head, head)) = last.1 {
            if for_head == head_request && buf.starts_with(&last.0) {
                return Ok(Some(head));
            }
        }
        let parsed = parse_head_into(buf, head_request, None);
        if let Ok(Some(head)) = parsed {
            if head.len <= CACHED_HEAD_BYTES && !head.is_interim() {
                last.0.clear();
                last.0.extend_from_slice(&buf[..head.len]);
                last.1 = Some((head_request, head));
            }
        }
        parsed
    })
}

/// The range `part` (a slice of `buf`) occupies in `buf`.
fn place(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// What the header fields say about framing and persistence, gathered field by field.
struct Framers {
    http11: bool,
    keep_alive: bool,
    content_length: Option<u64>,
    chunked: bool,
    transfer_encoding: bool,
}

impl Framers {
    fn new(http11: bool) -> Framers {
        Framers { http11, keep_alive: http11, content_length: None, chunked: false, transfer_encoding: false }
    }

    #[inline]
    fn read(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
        // Dispatch on length first: most headers are none of these three.
        if !matches!(name.len(), 10 | 14 | 17) {
            return Ok(());
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(value)?;
            if self.content_length.is_some_and(|seen| seen != length) {
                return Err(ParseError::ContentLength);
            }
            self.content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            // Only the final coding decides the framing (§6.3 rule 4).
            self.chunked = last_token(value).eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !self.http11 {
                    self.keep_alive = true;
                }
            }
        }
        Ok(())
    }

    /// The head these fields describe (RFC 9112 §6.3's rules in order).
    fn head(mut self, status: u16, len: usize, head_request: bool) -> Head {
        let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
        let framing = if no_body {
            Framing::None
        } else if self.transfer_encoding && self.chunked {
            Framing::Chunked
        } else if let (false, Some(length)) = (self.transfer_encoding, self.content_length) {
            Framing::Length(length)
        } else {
            // A final coding other than chunked, or no framing at all: read until the close.
            self.keep_alive = false;
            Framing::UntilClose
        };
        // §6.3 rule 3: TE overrides CL, and the connection must not be reused; nor after 101.
        if (self.transfer_encoding && self.content_length.is_some()) || status == 101 {
            self.keep_alive = false;
        }
        Head { status, len, framing, keep_alive: self.keep_alive }
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let value = trim(value);
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::ContentLength);
    }
    Ok(value.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

fn last_token(value: &[u8]) -> &[u8] {
    trim(value.rsplit(|&b| b == b',').next().unwrap_or(value))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Head {
        parse_head(text.as_bytes(), false).unwrap().unwrap()
    }

    #[test]
    fn content_length_and_keep_alive() {
        let head = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(head.len, 38);
    }

    #[test]
    fn fields_are_placed_in_the_buffer() {
        let text = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Long:   spaced  \r\nset-cookie: b=2\r\n\r\n";
        let mut fields = Vec::new();
        parse_head_into(text, false, Some(&mut fields)).unwrap().unwrap();
        let show: Vec<(&[u8], &[u8])> =
            fields.iter().map(|f| (&text[f.name.clone()], &text[f.value.clone()])).collect();
        assert_eq!(
            show,
            [(&b"Set-Cookie"[..], &b"a=1"[..]), (&b"X-Long"[..], &b"spaced"[..]), (&b"set-cookie"[..], &b"b=2"[..])]
        );
    }

    /// The remembered parse is the parse: the same head again (followed by anything) gives the
    /// same result, a head that differs anywhere or a HEAD request is parsed afresh, partial and
    /// bad heads are never remembered.
    #[test]
    fn a_remembered_head_parses_as_the_head_itself() {
        let heads: [&[u8]; 6] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello!",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        ];
        for round in 0..3 {
            for buf in heads {
                for head_request in [false, true] {
                    let fresh = parse_head(buf, head_request);
                    assert_eq!(parse_head_cached(buf, head_request), fresh, "round {round}: {buf:?}");
                    assert_eq!(parse_head_cached(buf, head_request), fresh, "again, round {round}: {buf:?}");
                }
            }
        }
    }

    #[test]
    fn partial_at_every_split() {
        let text = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n";
        for cut in 0..text.len() {
            assert_eq!(parse_head(&text[..cut], false), Ok(None), "cut at {cut}");
        }
        assert!(parse_head(text, false).unwrap().is_some());
    }

    #[test]
    fn framing_rules() {
        assert_eq!(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing, Framing::Chunked);
        let te_cl = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(te_cl.framing, Framing::Chunked);
        assert!(!te_cl.keep_alive);
        let gzip = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(gzip.framing, Framing::UntilClose);
        assert!(!gzip.keep_alive);
        let bare = parse("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(bare.framing, Framing::UntilClose);
        assert!(!bare.keep_alive);
        for status in ["204 No Content", "304 Not Modified", "100 Continue"] {
            let head = parse(&format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\n"));
            assert_eq!(head.framing, Framing::None, "{status}");
        }
        assert!(parse("HTTP/1.1 100 Continue\r\n\r\n").is_interim());
        assert!(!parse("HTTP/1.1 101 Switching Protocols\r\n\r\n").is_interim());
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true).unwrap().unwrap();
        assert_eq!(head.framing, Framing::None);
    }

    #[test]
    fn persistence() {
        assert!(!parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(!parse("HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(!parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive);
    }

    #[test]
    fn errors() {
        let bad = |text: &str| parse_head(text.as_bytes(), false);
        assert_eq!(bad("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), Err(ParseError::ContentLength));
        assert_eq!(bad("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), Err(ParseError::ContentLength));
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(ParseError::ContentLength)
        );
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Err(ParseError::ContentLength)
        );
        assert_eq!(bad("HTTX/1.1 200 OK\r\n\r\n"), Err(ParseError::Head));
        assert_eq!(bad("HTTP/1.1 2000 OK\r\n\r\n"), Err(ParseError::Head));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(bad(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")), Err(ParseError::TooManyHeaders));
        // Equal duplicates are allowed (§8.6).
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n").framing,
            Framing::Length(2)
        );
    }
}
