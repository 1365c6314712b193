//! `http[s]://host[:port]/path?query` URLs as the command line, scenario files and redirects give
//! them: the scheme decides TLS, the authority becomes the Host header, the rest the
//! request-target.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{Context, Result};

/// A parsed `http[s]://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https://`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Request-target in origin form.
    pub target: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let uri: http::Uri = text.parse().map_err(|e| format!("invalid URL {text:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("{text:?}: unsupported scheme {other:?}; use http:// or https://")),
            None => return Err(format!("{text:?}: missing scheme; expected e.g. http://127.0.0.1:8080/")),
        };
        let authority = uri.authority().ok_or_else(|| format!("{text:?}: missing host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let target = uri.path_and_query().map_or("/".to_string(), |pq| pq.as_str().to_string());
        let target = if target.is_empty() { "/".to_string() } else { target };
        // The port as written: `http` reads one that does not fit 16 bits as no port at all.
        let written = authority.as_str().rsplit_once(':').map(|(_, port)| port).filter(|p| !p.contains(']'));
        let port = match written {
            None | Some("") => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(port) => match port.parse::<u16>() {
                Ok(number) if number > 0 => number,
                _ => return Err(format!("{text:?}: port {port} is out of range; expected 1 to 65535")),
            },
        };
        Ok(Url { tls, host, port, target })
    }

    /// The Host header value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn resolve(&self) -> Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve host {:?}", self.host))?
            .next()
            .with_context(|| format!("host {:?} has no address", self.host))
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]);
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits stays as it is.
pub fn form_decode(text: &str) -> String {
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16)).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded pairs of a form body (`a=1&b=x+y`), in order.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = Url::parse("http://127.0.0.1:8080/a?b=1").unwrap();
        assert_eq!(url, Url { tls: false, host: "127.0.0.1".into(), port: 8080, target: "/a?b=1".into() });
        assert_eq!(url.authority(), "127.0.0.1:8080");
        let url = Url::parse("http://localhost").unwrap();
        assert_eq!((url.port, url.target.as_str(), url.authority().as_str()), (80, "/", "localhost"));
        let v6 = Url::parse("http://[::1]:9000/x").unwrap();
        assert_eq!((v6.host.as_str(), v6.authority().as_str()), ("::1", "[::1]:9000"));
        let https = Url::parse("https://localhost/x").unwrap();
        assert!(https.tls && https.port == 443 && https.authority() == "localhost");
        assert_eq!(Url::parse("https://127.0.0.1:8443/").unwrap().authority(), "127.0.0.1:8443");
        assert!(Url::parse("ftp://x/").unwrap_err().contains("unsupported scheme"));
        assert!(Url::parse("127.0.0.1:80").is_err());
        for port in ["99999", "65536", "0"] {
            let err = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap_err();
            assert!(err.contains(&format!("port {port} is out of range")), "{err}");
        }
        assert_eq!(Url::parse("http://127.0.0.1:65535/").unwrap().port, 65535);
    }

    #[test]
    fn forms_decode_and_encode() {
        // `%+1` is no escape (a hex parser that takes a sign would read it as byte 1).
        assert_eq!(form_decode("a%20b+c%zz%4%+1"), "a b c%zz%4% 1");
        assert_eq!(
            form_pairs("x=1&y=a+b&&z"),
            [("x".into(), "1".into()), ("y".into(), "a b".into()), ("z".into(), String::new())]
        );
        let mut out = Vec::new();
        percent_encode("a b/é~", &mut out);
        assert_eq!(out, b"a%20b%2F%C3%A9~");
    }
}
