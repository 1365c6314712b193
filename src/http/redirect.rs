//! Following redirects (RFC 9110 §15.4): where a 3xx response's `Location` leads, and the
//! request rewritten for it, on bytes. 301/302/303 turn into a GET without a body; 307/308
//! repeat the method and the body. Only the same scheme is followed, and only to hosts that need
//! no name lookup on the hot path (IP literals and `localhost`).

use std::net::{SocketAddr, ToSocketAddrs};

use super::conn::Kept;
use super::cookie::Jar;
use super::request::put_request_line;
use super::url::Url;
use crate::failure::Failure;

/// Where a redirect leads: the address to connect to, the Host header, the request-target and,
/// for HTTPS, the name the server must prove.
#[derive(Clone, Debug)]
pub struct Hop {
    pub addr: SocketAddr,
    pub authority: String,
    pub target: String,
    pub tls: Option<crate::tls::Target>,
}

/// The `Location` of a redirect response, if `status` is one that is followed.
pub fn location(status: u16, kept: &Kept) -> Option<&str> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    kept.header("location")
}

/// Where `location` leads from a request sent to `authority` at `addr` (over `tls` when given).
/// A path stays on the same server; an absolute URL must keep the scheme and name an IP literal
/// or `localhost`. An HTTPS hop keeps the run's TLS configuration and checks the new host name.
pub fn resolve(
    location: &str,
    authority: &str,
    addr: SocketAddr,
    tls: Option<&crate::tls::Target>,
) -> Result<Hop, Failure> {
    if location.starts_with('/') {
        let addr = authority.to_socket_addrs().ok().and_then(|mut a| a.next()).unwrap_or(addr);
        return Ok(Hop { addr, authority: authority.to_string(), target: location.to_string(), tls: tls.cloned() });
    }
    let url = Url::parse(location).map_err(|_| Failure::Check("redirect: Location is not an http(s):// URL"))?;
    if url.tls != tls.is_some() {
        return Err(Failure::Check("redirect: to another scheme is not followed"));
    }
    let ip: Option<std::net::IpAddr> =
        if url.host == "localhost" { Some([127, 0, 0, 1].into()) } else { url.host.parse().ok() };
    let ip = ip.ok_or(Failure::Check("redirect: only IP-literal or localhost hosts are followed"))?;
    let tls = match tls {
        Some(current) => Some(
            crate::tls::Target::new(current.config.clone(), &url.host)
                .map_err(|_| Failure::Check("redirect: host is not a valid TLS name"))?,
        ),
        None => None,
    };
    Ok(Hop { addr: (ip, url.port).into(), authority: url.authority(), target: url.target.clone(), tls })
}

/// Rewrites `request` (the bytes that got redirect `status`) for `hop` into `out`: the new
/// request line and Host, the same header fields but `Cookie` (the jar's cookies for the new host
/// and path are sent instead) and, when the method becomes GET, the body and its framing.
pub fn rewrite(request: &[u8], status: u16, hop: &Hop, jar: &Jar, out: &mut Vec<u8>) {
    let (head, body) = split_head(request);
    let mut lines = head.split(|&b| b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let method = lines.next().and_then(|line| line.split(|&b| b == b' ').next()).unwrap_or(b"GET");
    let keep_method = matches!(status, 307 | 308) || method == b"HEAD";
    out.clear();
    let method = if keep_method { method } else { b"GET" };
    put_request_line(out, method, hop.target.as_bytes(), hop.authority.as_bytes());
    for line in lines.filter(|line| !line.is_empty()) {
        let name = line.split(|&b| b == b':').next().unwrap_or(b"").trim_ascii();
        let framing = name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"content-type");
        if !(name.eq_ignore_ascii_case(b"host") || name.eq_ignore_ascii_case(b"cookie") || (!keep_method && framing)) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    let path = hop.target.split(['?', '#']).next().unwrap_or("/");
    jar.header_for(&hop.authority, path, b"", out);
    out.extend_from_slice(b"\r\n");
    if keep_method {
        out.extend_from_slice(body);
    }
}

/// A request's head (without the empty line) and body.
fn split_head(request: &[u8]) -> (&[u8], &[u8]) {
    match request.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => (&request[..end], &request[end + 4..]),
        None => (request, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(target: &str) -> Hop {
        Hop { addr: ([127, 0, 0, 1], 9).into(), authority: "127.0.0.1:9".into(), target: target.into(), tls: None }
    }

    #[test]
    fn see_other_becomes_a_get_without_body() {
        let request = b"POST /form HTTP/1.1\r\nHost: a\r\nX-Keep: 1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nCookie: old=1\r\n\r\nhi";
        let mut out = Vec::new();
        rewrite(request, 303, &hop("/done?x=1"), &Jar::default(), &mut out);
        assert_eq!(out, b"GET /done?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nX-Keep: 1\r\n\r\n");
    }

    #[test]
    fn temporary_redirect_repeats_method_and_body() {
        let request = b"PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
        let mut out = Vec::new();
        rewrite(request, 307, &hop("/b"), &Jar::default(), &mut out);
        assert_eq!(out, b"PUT /b HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 2\r\n\r\nhi");
    }

    #[test]
    fn locations_resolve_or_are_refused() {
        let addr: SocketAddr = ([127, 0, 0, 1], 80).into();
        let same = resolve("/next", "127.0.0.1:8080", addr, None).unwrap();
        assert_eq!((same.addr.port(), same.target.as_str()), (8080, "/next"));
        let other = resolve("http://localhost:9000/x", "127.0.0.1:8080", addr, None).unwrap();
        assert_eq!(
            (other.addr.port(), other.authority.as_str(), other.target.as_str()),
            (9000, "localhost:9000", "/x")
        );
        assert!(resolve("https://127.0.0.1/", "h", addr, None).is_err());
        assert!(resolve("http://example.com/", "h", addr, None).is_err());
        assert!(resolve("ftp://x/", "h", addr, None).is_err());
    }
}
