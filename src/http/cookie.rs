//! Cookies (RFC 6265, the parts a load test meets): parsing `Set-Cookie` from kept responses,
//! each user's jar, and the `Cookie` header it sends. Works on bytes and plain values; the
//! engine holds one `Jar` per user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::conn::Kept;

/// The longest a cookie is kept: a server's later expiry (up to year 9999, or a Max-Age past
/// what the clock holds) is cut to this from now, as RFC 6265bis §5.5 has browsers do.
const AGE_LIMIT: Duration = Duration::from_secs(400 * 86_400);

/// One stored cookie (RFC 6265 §5.3, the parts a load test meets).
#[derive(Clone, Debug, PartialEq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// Lower-case domain; `host_only` when the server gave no Domain attribute.
    pub domain: String,
    pub host_only: bool,
    pub path: String,
    pub expires: Option<SystemTime>,
}

/// A user's cookies.
#[derive(Debug, Default)]
pub struct Jar {
    cookies: Vec<Cookie>,
}

impl Jar {
    /// Stores `cookie`, replacing one with the same (name, domain, path); an expired one deletes.
    pub fn set(&mut self, cookie: Cookie) {
        self.cookies.retain(|c| !(c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path));
        if cookie.expires.is_none_or(|at| at > SystemTime::now()) {
            self.cookies.push(cookie);
        }
    }

    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|c| c.name == name).map(|c| c.value.as_str())
    }

    /// Appends one `Cookie:` header: `given` (a value the request sets itself, if any) and the
    /// cookies that match the host and path, joined by `; ` (RFC 6265 §5.4 allows one field);
    /// nothing when both are empty.
    pub fn header_for(&self, authority: &str, path: &str, given: &[u8], out: &mut Vec<u8>) {
        let host = host_of(authority);
        let now = SystemTime::now();
        let mut first = given.is_empty();
        if !first {
            out.extend_from_slice(b"Cookie: ");
            out.extend_from_slice(given);
        }
        for cookie in self.cookies.iter().filter(|c| c.matches(host, path, now)) {
            out.extend_from_slice(if first { b"Cookie: " } else { b"; " });
            first = false;
            out.extend_from_slice(cookie.name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(cookie.value.as_bytes());
        }
        if !first {
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl Cookie {
    /// Whether the cookie goes with a request to `host` (any case) for `path` at `now`.
    fn matches(&self, host: &str, path: &str, now: SystemTime) -> bool {
        let domain = self.domain.as_bytes();
        let host = host.as_bytes();
        let domain_ok = host.eq_ignore_ascii_case(domain)
            || (!self.host_only
                && host.len() > domain.len()
                && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                && host[host.len() - domain.len() - 1] == b'.');
        let path_ok = path == self.path
            || (path.starts_with(&self.path)
                && (self.path.ends_with('/') || path.as_bytes().get(self.path.len()) == Some(&b'/')));
        domain_ok && path_ok && self.expires.is_none_or(|at| at > now)
    }
}

/// Parses a Set-Cookie value sent by `host`; `None` when it has no name=value pair.
pub fn parse_set_cookie(line: &str, host: &str) -> Option<Cookie> {
    let mut parts = line.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut cookie = Cookie {
        name: name.to_string(),
        value: value.trim().trim_matches('"').to_string(),
        domain: host.to_ascii_lowercase(),
        host_only: true,
        path: "/".to_string(),
        expires: None,
    };
    let mut max_age = None;
    for attribute in parts {
        let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "domain" if !value.is_empty() => {
                cookie.domain = value.trim_start_matches('.').to_ascii_lowercase();
                cookie.host_only = false;
            }
            "path" if value.starts_with('/') => cookie.path = value.to_string(),
            "max-age" => max_age = value.parse::<i64>().ok(),
            "expires" => cookie.expires = cookie.expires.or_else(|| parse_http_date(value)),
            _ => {}
        }
    }
    // Max-Age wins over Expires (§5.3 step 3); either is held at the age limit.
    let now = SystemTime::now();
    if let Some(seconds) = max_age {
        cookie.expires =
            Some(if seconds <= 0 { UNIX_EPOCH } else { now + AGE_LIMIT.min(Duration::from_secs(seconds as u64)) });
    }
    cookie.expires = cookie.expires.map(|at| at.min(now + AGE_LIMIT));
    Some(cookie)
}

/// IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), the form servers send.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = fields[..] else { return None };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month))? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|f| f.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // §5.1.1's ranges (which also keep the arithmetic below from overflowing).
    if !((1..=31).contains(&day) && (1601..=9999).contains(&year) && h < 24 && m < 60 && s < 61) || h.min(m).min(s) < 0
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    if secs < 0 {
        return Some(UNIX_EPOCH);
    }
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64))
}

impl Jar {
    /// Stores every cookie `kept` sets (its `Set-Cookie` fields), as sent by `authority`.
    pub fn store(&mut self, kept: &Kept, authority: &str) {
        let host = host_of(authority);
        for line in kept.headers("set-cookie") {
            if let Some(cookie) = parse_set_cookie(line, host) {
                self.set(cookie);
            }
        }
    }
}

/// The value `kept` sets for cookie `name`, if it sets one.
pub fn set_by(kept: &Kept, name: &str) -> Option<String> {
    kept.headers("set-cookie").filter_map(|line| parse_set_cookie(line, "")).find(|c| c.name == name).map(|c| c.value)
}

/// The host part of an authority (`host:port`, `[v6]:port`).
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(at.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_445_412_480);
        assert!(parse_http_date("yesterday").is_none());
        // Fields out of range (a year before 1601, hour 24, huge numbers that would overflow
        // the arithmetic) make no date (RFC 6265 §5.1.1), not a panic.
        for bad in [
            "Wed, 21 Oct 1600 07:28:00 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 9223372036854775807 07:28:00 GMT",
            "Wed, 21 Oct 2015 9223372036854775807:00:00 GMT",
            "Wed, -9223372036854775807 Oct 2015 07:28:00 GMT",
        ] {
            assert!(parse_http_date(bad).is_none(), "{bad}");
        }
    }

    /// A server's far-future expiry is held at 400 days from now (RFC 6265bis's cookie age
    /// limit, as browsers do) instead of overflowing the clock.
    #[test]
    fn far_expiry_is_capped_not_a_panic() {
        let limit = SystemTime::now() + AGE_LIMIT;
        for line in [
            "a=1; Max-Age=9223372036854775807",
            "a=1; Max-Age=99999999999",
            "a=1; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            let expires = parse_set_cookie(line, "127.0.0.1").unwrap().expires.unwrap();
            assert!(expires <= limit + Duration::from_secs(5) && expires + Duration::from_secs(5) >= limit, "{line}");
        }
        let soon = parse_set_cookie("a=1; Max-Age=60", "127.0.0.1").unwrap().expires.unwrap();
        assert!(soon < SystemTime::now() + Duration::from_secs(61));
    }

    #[test]
    fn cookies_match_domain_path_and_expiry() {
        let mut jar = Jar::default();
        jar.set(parse_set_cookie("sid=abc; Path=/api; HttpOnly", "127.0.0.1").unwrap());
        jar.set(parse_set_cookie("theme=dark", "127.0.0.1").unwrap());
        jar.set(parse_set_cookie("other=1; Domain=example.com", "127.0.0.1").unwrap());
        let header = |jar: &Jar, path: &str| {
            let mut out = Vec::new();
            jar.header_for("127.0.0.1:8080", path, b"", &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(header(&jar, "/api/x"), "Cookie: sid=abc; theme=dark\r\n");
        assert_eq!(header(&jar, "/apix"), "Cookie: theme=dark\r\n");
        // Max-Age=0 deletes.
        jar.set(parse_set_cookie("theme=; Max-Age=0", "127.0.0.1").unwrap());
        assert_eq!(header(&jar, "/"), "");
        jar.set(parse_set_cookie("old=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "127.0.0.1").unwrap());
        assert_eq!(jar.get("old"), None);
        let sub = parse_set_cookie("d=1; Domain=.example.com", "www.example.com").unwrap();
        jar.set(sub);
        let mut out = Vec::new();
        jar.header_for("api.example.com", "/", b"", &mut out);
        assert_eq!(out, b"Cookie: other=1; d=1\r\n");
        out.clear();
        jar.header_for("API.Example.com", "/", b"given=1", &mut out);
        assert_eq!(out, b"Cookie: given=1; other=1; d=1\r\n");
        out.clear();
        jar.header_for("notexample.com", "/", b"", &mut out);
        assert_eq!(out, b"");
        jar.header_for("api.example.com", "/", b"", &mut out);
        assert_eq!(out, b"Cookie: other=1; d=1\r\n");
    }
}
