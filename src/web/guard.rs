//! Who may use the UI, and from where. The UI is a button that sends load anywhere, so:
//!
//! - with `--web-auth user:password`, every request needs those HTTP Basic credentials
//!   (compared in constant time);
//! - a request that changes something (start, edit, stop, reset) from a browser must come from
//!   the UI's own page: browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`,
//!   `Referer`), and the page sends its token (`X-Swarmer-Token`). A page on another site cannot
//!   start a test in the user's browser. Scripts (curl, Locust's API users) send none of those
//!   headers and need only the credentials.

use base64::Engine;
use hyper::header::{HeaderMap, AUTHORIZATION, HOST, ORIGIN, REFERER};

/// Whether the request carries the `user:password` asked for (any request when none is).
pub fn authorized(headers: &HeaderMap, credentials: Option<&str>) -> bool {
    let Some(expected) = credentials else { return true };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .unwrap_or_default();
    constant_time_eq(&given, expected.as_bytes())
}

/// Equal bytes, in a time that depends on the lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Whether a state-changing request may go ahead: `Err` says why not.
pub fn same_origin(headers: &HeaderMap, token: &str, https: bool) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(HOST.as_str()).unwrap_or("");
    let ours = format!("{}://{host}", if https { "https" } else { "http" });
    if let Some(origin) = header(ORIGIN.as_str()) {
        if origin != ours {
            return Err("refused: the request comes from another site (Origin)");
        }
    }
    if let Some(referer) = header(REFERER.as_str()) {
        if !(referer == ours || referer.starts_with(&format!("{ours}/"))) {
            return Err("refused: the request comes from another site (Referer)");
        }
    }
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err("refused: the request comes from another site (Sec-Fetch-Site)");
        }
        // A browser: it must be the UI's own page, which knows the token.
        if !header("x-swarmer-token").is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) {
            return Err("refused: a browser request without the page's token");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn credentials() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:secret"));
        assert!(authorized(&headers(&[("authorization", &basic)]), Some("ann:secret")));
        assert!(!authorized(&headers(&[("authorization", &basic)]), Some("ann:other")));
        assert!(!authorized(&headers(&[]), Some("ann:secret")));
        assert!(authorized(&headers(&[]), None));
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
    }

    #[test]
    fn other_sites_are_refused() {
        let host = ("host", "127.0.0.1:8089");
        assert!(same_origin(&headers(&[host]), "t", false).is_ok(), "a script");
        let page =
            [host, ("origin", "http://127.0.0.1:8089"), ("sec-fetch-site", "same-origin"), ("x-swarmer-token", "t")];
        assert!(same_origin(&headers(&page), "t", false).is_ok(), "the page");
        let evil = [host, ("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")];
        assert!(same_origin(&headers(&evil), "t", false).is_err());
        let image = [host, ("sec-fetch-site", "cross-site")];
        assert!(same_origin(&headers(&image), "t", false).is_err());
        let no_token = [host, ("origin", "http://127.0.0.1:8089"), ("sec-fetch-site", "same-origin")];
        assert!(same_origin(&headers(&no_token), "t", false).is_err());
        let referer = [host, ("referer", "http://evil.example/page")];
        assert!(same_origin(&headers(&referer), "t", false).is_err());
    }
}
