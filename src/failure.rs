//! The error taxonomy of one request, shared by the client that detects failures (`http`), the
//! recorder that counts them (`stats`) and the reports that print them (`report`). A leaf: it
//! imports nothing from the crate. Hot-path errors are `Copy` values counted in stats, never
//! formatted or boxed there; `Display` runs only when a report is written.

use std::fmt;
use std::io;

/// Why one request failed. The variants map onto wrk's counters (connect, read, write, timeout,
/// status) plus parse errors; `kind()` gives that grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// `connect(2)` failed; the raw OS error number.
    Connect(i32),
    /// Connecting took longer than the timeout (milliseconds).
    ConnectTimeout(u32),
    /// Writing the request failed; the raw OS error number.
    Write(i32),
    /// Reading the response failed; the raw OS error number.
    Read(i32),
    /// The server closed the connection before the response was complete.
    Closed,
    /// No complete response within the timeout (milliseconds).
    Timeout(u32),
    /// The response was not valid HTTP/1.1.
    Parse(ParseError),
    /// A final status of 400 or above (not accepted by a check).
    Status(u16),
    /// A check on the response failed; the text says which (made once when the plan is built,
    /// or filled in when it failed and interned: see `intern_rendered`).
    Check(&'static str),
    /// A status other than the step's accepted ones (`check.status`); `wanted` says those.
    Expected { status: u16, wanted: &'static str },
    /// The TLS handshake or a TLS record failed (`tls::describe`).
    Tls(&'static str),
}

/// The counters a failure is grouped under in summaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Connect,
    Write,
    Read,
    Timeout,
    Parse,
    Status,
    Check,
}

impl FailureKind {
    /// Every kind, in the order the reports list them.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Connect,
        FailureKind::Read,
        FailureKind::Write,
        FailureKind::Timeout,
        FailureKind::Status,
        FailureKind::Parse,
        FailureKind::Check,
    ];

    /// The kind's name in machine-readable outputs (JSON, metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Read => "read",
            FailureKind::Write => "write",
            FailureKind::Timeout => "timeout",
            FailureKind::Status => "status",
            FailureKind::Parse => "parse",
            FailureKind::Check => "check",
        }
    }
}

impl Failure {
    /// No complete response within `limit`.
    pub fn timeout(limit: std::time::Duration) -> Failure {
        Failure::Timeout(millis(limit))
    }

    /// Connecting took longer than `limit`.
    pub fn connect_timeout(limit: std::time::Duration) -> Failure {
        Failure::ConnectTimeout(millis(limit))
    }

    pub fn kind(self) -> FailureKind {
        match self {
            Failure::Connect(_) | Failure::Tls(_) => FailureKind::Connect,
            Failure::ConnectTimeout(_) | Failure::Timeout(_) => FailureKind::Timeout,
            Failure::Write(_) => FailureKind::Write,
            Failure::Read(_) | Failure::Closed => FailureKind::Read,
            Failure::Parse(_) => FailureKind::Parse,
            Failure::Status(_) | Failure::Expected { .. } => FailureKind::Status,
            Failure::Check(_) => FailureKind::Check,
        }
    }

    /// The status column for this failure: 0 for connection-level errors, as in Locust.
    pub fn status(self) -> u16 {
        match self {
            Failure::Status(code) | Failure::Expected { status: code, .. } => code,
            _ => 0,
        }
    }

    pub(crate) fn from_io(err: &io::Error, make: fn(i32) -> Failure) -> Failure {
        // Errors without an errno (monoio's own) are reported as EIO rather than dropped.
        make(err.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Texts that failures carry live as long as the process, so `Failure` stays `Copy`: each
/// distinct text is leaked once and found again after (compiling a plan twice leaks nothing
/// more).
pub fn intern(text: String) -> &'static str {
    intern_within(text, usize::MAX)
}

/// Distinct texts `intern_rendered` keeps: messages filled in from responses could otherwise
/// grow without bound (a value that differs every time).
pub const MAX_RENDERED_MESSAGES: usize = 1000;

/// Interns a failure message filled in from a response (cold path: only when a check fails);
/// past `MAX_RENDERED_MESSAGES` distinct texts, new ones share one text saying so.
pub fn intern_rendered(text: String) -> &'static str {
    intern_within(text, MAX_RENDERED_MESSAGES)
}

fn intern_within(text: String, most: usize) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static INTERNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    static RENDERED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let set = interned.get_or_insert_with(Default::default);
    if let Some(existing) = set.get(text.as_str()) {
        return existing;
    }
    if most != usize::MAX && RENDERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= most {
        return "(a failure message filled in from the response; more distinct ones than are kept)";
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    set.insert(leaked);
    leaked
}

fn describe_errno(errno: i32) -> String {
    match errno {
        libc::ECONNREFUSED => "connection refused".into(),
        libc::ECONNRESET => "connection reset by peer".into(),
        libc::EPIPE => "broken pipe".into(),
        libc::ETIMEDOUT => "connection timed out".into(),
        libc::EHOSTUNREACH => "host unreachable".into(),
        libc::ENETUNREACH => "network unreachable".into(),
        libc::EADDRNOTAVAIL => "no free local address (ephemeral ports exhausted?)".into(),
        libc::EMFILE | libc::ENFILE => "too many open files".into(),
        _ => {
            let text = io::Error::from_raw_os_error(errno).to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

fn describe_ms(ms: u32) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Failure::Connect(errno) => write!(f, "connect: {}", describe_errno(errno)),
            Failure::ConnectTimeout(ms) => write!(f, "connect: timeout after {}", describe_ms(ms)),
            Failure::Write(errno) => write!(f, "write: {}", describe_errno(errno)),
            Failure::Read(errno) => write!(f, "read: {}", describe_errno(errno)),
            Failure::Closed => f.write_str("read: connection closed before the response was complete"),
            Failure::Timeout(ms) => write!(f, "timeout after {}", describe_ms(ms)),
            Failure::Parse(err) => write!(f, "bad response: {err}"),
            Failure::Check(text) => write!(f, "check failed: {text}"),
            Failure::Expected { status, wanted } => write!(f, "status {status}, expected {wanted}"),
            Failure::Tls(text) => write!(f, "tls: {text}"),
            Failure::Status(code) => {
                let reason = http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
                if reason.is_empty() {
                    write!(f, "HTTP {code}")
                } else {
                    write!(f, "HTTP {code} {reason}")
                }
            }
        }
    }
}

/// What was wrong with a response's bytes. Each limit crossing is its own variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The status line or a header line is malformed.
    Head,
    /// The response head is longer than `conn::MAX_HEAD_BYTES`.
    HeadTooLarge,
    /// More than `head::MAX_HEADERS` header fields.
    TooManyHeaders,
    /// Content-Length is not a number, or two differ.
    ContentLength,
    /// A Transfer-Encoding other than chunked as the final coding of a response we must frame.
    TransferEncoding,
    /// A chunk-size line is not hex followed by CRLF.
    ChunkSize,
    /// A chunk size does not fit in 64 bits.
    ChunkSizeOverflow,
    /// A chunk extension is longer than `body::MAX_CHUNK_EXT_BYTES`.
    ChunkExtTooLong,
    /// The CRLF after chunk data is missing.
    ChunkData,
    /// Trailer fields are longer than `body::MAX_TRAILER_BYTES` in all.
    TrailersTooLarge,
    /// A trailer line is malformed.
    Trailer,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Head => "malformed status line or header",
            ParseError::HeadTooLarge => "response head too large",
            ParseError::TooManyHeaders => "too many header fields",
            ParseError::ContentLength => "invalid Content-Length",
            ParseError::TransferEncoding => "unsupported Transfer-Encoding",
            ParseError::ChunkSize => "invalid chunk size line",
            ParseError::ChunkSizeOverflow => "chunk size overflows 64 bits",
            ParseError::ChunkExtTooLong => "chunk extension too long",
            ParseError::ChunkData => "missing CRLF after chunk data",
            ParseError::TrailersTooLarge => "trailer section too large",
            ParseError::Trailer => "malformed trailer field",
        })
    }
}

/// Whole milliseconds of a limit, as failures carry them.
fn millis(d: std::time::Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        assert_eq!(Failure::Connect(libc::ECONNREFUSED).to_string(), "connect: connection refused");
        assert_eq!(Failure::Timeout(5000).to_string(), "timeout after 5s");
        assert_eq!(Failure::Timeout(250).to_string(), "timeout after 250ms");
        assert_eq!(Failure::Status(503).to_string(), "HTTP 503 Service Unavailable");
        assert_eq!(Failure::Status(599).to_string(), "HTTP 599");
        assert_eq!(Failure::Read(libc::ECONNRESET).to_string(), "read: connection reset by peer");
        assert_eq!(Failure::Status(404).status(), 404);
        assert_eq!(Failure::Closed.status(), 0);
    }
}
