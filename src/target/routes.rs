//! Request parsing and the canned responses of the built-in target.

use std::time::Duration;

/// Bodies of `/bytes/N` and `/chunked/N` above this are refused with 400.
const MAX_BODY_BYTES: usize = 64 << 20;
/// `/delay/D` above this is refused with 400.
const MAX_DELAY: Duration = Duration::from_secs(120);
const HELLO: &[u8] = b"Hello, World!";
const FILL: u8 = b'x';

pub enum Parsed {
    Partial,
    /// Bytes the request used (head and body), and what to do.
    Complete(usize, Action),
}

pub enum Action {
    Reply(Response),
    Delay(Duration, Response),
}

pub struct Response {
    status: u16,
    body: Body,
    pub close: bool,
    head_only: bool,
}

/// The page `scripts/record-har.py` records in a browser: log in, post, comment, read back.
const FLOW_PAGE: &[u8] = include_bytes!("flow.html");

enum Body {
    Static(&'static [u8]),
    /// An HTML page (`/app/flow`).
    Html(&'static [u8]),
    Text(String),
    /// The JSON API's answers: a body and extra header lines.
    Json(String, Vec<(&'static str, String)>),
    Bytes(usize),
    Chunked(usize),
}

pub fn status_response(status: u16, close: bool, head_only: bool) -> Response {
    Response { status, body: Body::Text(format!("status {status}\n")), close, head_only }
}

/// Parses one request at the start of `buf` and routes it.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Complete(buf.len(), Action::Reply(status_response(400, true, false))),
    };
    let mut body_len = 0usize;
    let mut close = request.version == Some(0);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value).ok().and_then(|v| v.trim().parse().ok()) {
                Some(n) => body_len = n,
                None => return Parsed::Complete(buf.len(), Action::Reply(status_response(400, true, false))),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are not needed by any client here: refuse, close.
            return Parsed::Complete(buf.len(), Action::Reply(status_response(411, true, false)));
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = String::from_utf8_lossy(header.value).to_ascii_lowercase();
            if value.contains("close") {
                close = true;
            } else if value.contains("keep-alive") {
                close = false;
            }
        }
    }
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    let head_only = request.method == Some("HEAD");
    let target = request.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path.starts_with("/api/") {
        let api = super::api::ApiRequest {
            method: request.method.unwrap_or("GET"),
            path,
            query,
            headers: request.headers.iter().map(|h| (h.name, std::str::from_utf8(h.value).unwrap_or(""))).collect(),
            body: &buf[head_len..head_len + body_len],
        };
        let answer = super::api::handle(&api);
        let response =
            Response { status: answer.status, body: Body::Json(answer.body, answer.headers), close, head_only };
        return Parsed::Complete(head_len + body_len, Action::Reply(response));
    }
    Parsed::Complete(head_len + body_len, route(path, close, head_only))
}

fn route(path: &str, close: bool, head_only: bool) -> Action {
    let reply = |status, body| Action::Reply(Response { status, body, close, head_only });
    let bad =
        |why: &str| Action::Reply(Response { status: 400, body: Body::Text(format!("{why}\n")), close, head_only });
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next().unwrap_or(""), parts.next()) {
        ("", None) => reply(200, Body::Static(HELLO)),
        ("bytes", Some(n)) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_BODY_BYTES => reply(200, Body::Bytes(n)),
            _ => bad("expected /bytes/N with N at most 67108864"),
        },
        ("chunked", n) => match n.map_or(Ok(1000), str::parse::<usize>) {
            Ok(n) if n <= MAX_BODY_BYTES => reply(200, Body::Chunked(n)),
            _ => bad("expected /chunked/N with N at most 67108864"),
        },
        ("delay", Some(d)) => match crate::units::parse_duration(d) {
            Ok(pause) if pause <= MAX_DELAY => {
                Action::Delay(pause, Response { status: 200, body: Body::Static(b"delayed\n"), close, head_only })
            }
            _ => bad("expected /delay/D with D like 50ms, at most 120s"),
        },
        ("status", Some(code)) => match code.parse::<u16>() {
            Ok(code) if (200..=599).contains(&code) => Action::Reply(status_response(code, close, head_only)),
            _ => bad("expected /status/C with C from 200 to 599"),
        },
        ("app", Some("flow")) => reply(200, Body::Html(FLOW_PAGE)),
        ("close", None) => {
            Action::Reply(Response { status: 200, body: Body::Static(b"bye\n"), close: true, head_only })
        }
        _ => reply(404, Body::Static(b"not found\n")),
    }
}

impl Response {
    /// Appends the encoded response.
    pub fn write_into(&self, out: &mut Vec<u8>) {
        let reason =
            http::StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Unknown");
        let no_body = self.status == 204 || self.status == 304;
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\nServer: swarmer\r\n", self.status, reason).as_bytes());
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        let length = match &self.body {
            Body::Static(bytes) | Body::Html(bytes) => Some(bytes.len()),
            Body::Text(text) | Body::Json(text, _) => Some(text.len()),
            Body::Bytes(n) => Some(*n),
            Body::Chunked(_) => None,
        };
        match length {
            _ if no_body => {}
            Some(n) => out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
            None => out.extend_from_slice(b"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n"),
        }
        match &self.body {
            Body::Json(_, headers) => {
                for (name, value) in headers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"Content-Type: application/json\r\n\r\n");
            }
            Body::Html(_) => out.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\n\r\n"),
            _ => out.extend_from_slice(b"Content-Type: text/plain\r\n\r\n"),
        }
        if self.head_only || no_body {
            return;
        }
        match &self.body {
            Body::Static(bytes) | Body::Html(bytes) => out.extend_from_slice(bytes),
            Body::Text(text) | Body::Json(text, _) => out.extend_from_slice(text.as_bytes()),
            Body::Bytes(n) => out.resize(out.len() + n, FILL),
            Body::Chunked(n) => write_chunked(out, *n),
        }
    }
}

/// `n` bytes in chunks of up to 1000, with a chunk extension on the first and a trailer.
fn write_chunked(out: &mut Vec<u8>, n: usize) {
    let mut left = n;
    let mut first = true;
    while left > 0 {
        let size = left.min(1000);
        let ext = if first { ";ext=1" } else { "" };
        out.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
        out.resize(out.len() + size, FILL);
        out.extend_from_slice(b"\r\n");
        left -= size;
        first = false;
    }
    out.extend_from_slice(format!("0\r\nX-Checksum: {n}\r\n\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(request: &str) -> (usize, String) {
        match parse(request.as_bytes()) {
            Parsed::Partial => panic!("partial"),
            Parsed::Complete(used, Action::Reply(r)) | Parsed::Complete(used, Action::Delay(_, r)) => {
                let mut out = Vec::new();
                r.write_into(&mut out);
                (used, String::from_utf8(out).unwrap())
            }
        }
    }

    #[test]
    fn routes() {
        let (used, text) = respond("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET");
        assert_eq!(used, 27);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nHello, World!"));
        assert!(respond("GET /status/503 HTTP/1.1\r\n\r\n").1.starts_with("HTTP/1.1 503 Service Unavailable"));
        assert!(respond("GET /bytes/10 HTTP/1.1\r\n\r\n").1.ends_with("\r\n\r\nxxxxxxxxxx"));
        assert!(respond("GET /nope HTTP/1.1\r\n\r\n").1.starts_with("HTTP/1.1 404"));
        assert!(respond("GET /close HTTP/1.1\r\n\r\n").1.contains("Connection: close"));
        assert!(respond("HEAD /bytes/10 HTTP/1.1\r\n\r\n")
            .1
            .ends_with("Content-Length: 10\r\nContent-Type: text/plain\r\n\r\n"));
        let chunked = respond("GET /chunked/2500 HTTP/1.1\r\n\r\n").1;
        assert!(chunked.contains("3e8;ext=1\r\n") && chunked.ends_with("0\r\nX-Checksum: 2500\r\n\r\n"));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), Parsed::Partial));
        assert!(
            matches!(parse(b"GET /delay/50ms HTTP/1.1\r\n\r\n"), Parsed::Complete(_, Action::Delay(d, _)) if d == Duration::from_millis(50))
        );
    }
}
