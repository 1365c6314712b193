//! Request encoding (RFC 9112 §3): done once per request step at plan time, so the hot path only
//! copies finished bytes into the connection's write buffer.

/// Encodes a complete HTTP/1.1 request. `target` is the request-target in origin form
/// (`/path?query`); `host` the Host header value. A `Content-Length` is added when a body is
/// given or the method usually carries one.
pub fn encode_request(method: &str, target: &str, host: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + target.len() + host.len() + body.len());
    put_request_line(&mut out, method.as_bytes(), target.as_bytes(), host.as_bytes());
    let mut has_user_agent = false;
    for (name, value) in headers {
        has_user_agent |= name.eq_ignore_ascii_case("user-agent");
        put_header(&mut out, name.as_bytes(), value.as_bytes());
    }
    if !has_user_agent {
        out.extend_from_slice(concat!("User-Agent: swarmer/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes());
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Writes a request line and its Host field: `METHOD target HTTP/1.1\r\nHost: host\r\n`.
pub fn put_request_line(out: &mut Vec<u8>, method: &[u8], target: &[u8], host: &[u8]) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
}

/// Writes one header field: `name: value\r\n`.
pub fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        let req = encode_request("GET", "/a?b=1", "127.0.0.1:8080", &[], b"");
        assert_eq!(
            String::from_utf8(req).unwrap(),
            format!(
                "GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: swarmer/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        let headers = [("User-Agent".to_string(), "x".to_string())];
        let req = encode_request("POST", "/p", "h", &headers, b"{}");
        assert_eq!(req, b"POST /p HTTP/1.1\r\nHost: h\r\nUser-Agent: x\r\nContent-Length: 2\r\n\r\n{}");
    }
}
