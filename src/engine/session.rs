//! A scenario user's session: its variables, default headers and cookie jar, and the work done
//! per scenario request around the exchange itself — filling templates into the request bytes,
//! then checking the response, capturing from it and applying its cookies.
//!
//! Buffers live in the session and are reused; what allocates here (captured values, cookies)
//! is what the scenario asked to keep.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;

use crate::config::{percent_encode, Call, CheckKind, Escape, Expr, JsonOp, Part, Plan, Source, Template};
use crate::http::Kept;

/// Values a shared pool keeps; beyond it, a new value replaces a random old one.
pub const POOL_CAPACITY: usize = 10_000;

pub struct Session {
    pub vars: Vec<Value>,
    /// Default headers (name as written, value); steps can set them.
    pub headers: Vec<(String, String)>,
    pub cookies: Jar,
    pub user: u64,
    counter: u64,
    /// The request being built, and the body rendered before it (for Content-Length).
    pub wbuf: Vec<u8>,
    body: Vec<u8>,
    text: String,
}

/// Why a template could not be filled.
#[derive(Debug)]
pub struct RenderError(pub String);

/// The shared state templates read beside the session.
pub struct Shared<'a> {
    /// The run's pools, shared by every user on every worker (one lock each).
    pub pools: &'a [std::sync::Mutex<Vec<Value>>],
    pub plan: &'a Plan,
}

impl Session {
    pub fn new(vars: Vec<Value>, user: u64) -> Session {
        Session {
            vars,
            headers: Vec::new(),
            cookies: Jar::default(),
            user,
            counter: 0,
            wbuf: Vec::with_capacity(512),
            body: Vec::new(),
            text: String::new(),
        }
    }

    /// Fills `template` into a new string (headers set by steps, pool values).
    pub fn render_string(
        &mut self,
        template: &Template,
        shared: &Shared,
        rng: &mut SmallRng,
    ) -> Result<String, RenderError> {
        let mut out = Vec::new();
        self.render(template, shared, rng, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Appends `template` filled in to `out`.
    pub fn render(
        &mut self,
        template: &Template,
        shared: &Shared,
        rng: &mut SmallRng,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        for part in &template.parts {
            match part {
                Part::Lit(text) => out.extend_from_slice(text.as_bytes()),
                Part::Expr(expr, escape) => {
                    let mut text = std::mem::take(&mut self.text);
                    text.clear();
                    let result = self.eval(expr, shared, rng, &mut text);
                    if let Ok(non_string) = result {
                        write_escaped(&text, non_string, *escape, out);
                    }
                    self.text = text;
                    result?;
                }
            }
        }
        Ok(())
    }

    /// Writes the value of `expr` as text into `text`; returns whether it is a JSON value that
    /// is not a string (so whole-value JSON holes keep numbers as numbers).
    fn eval(
        &mut self,
        expr: &Expr,
        shared: &Shared,
        rng: &mut SmallRng,
        text: &mut String,
    ) -> Result<bool, RenderError> {
        use std::fmt::Write;
        match expr {
            Expr::Var(slot) => return Ok(value_text(&self.vars[*slot], text)),
            Expr::RandomInt(low, high) => {
                let _ = write!(text, "{}", rng.gen_range(*low..=*high));
                return Ok(true);
            }
            Expr::Choice(options) => text.push_str(&options[rng.gen_range(0..options.len())]),
            Expr::Uuid => {
                let bits: u128 = rng.gen();
                let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
                let hex = format!("{bits:032x}");
                let _ = write!(text, "{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
            }
            Expr::UserIndex => {
                let _ = write!(text, "{}", self.user);
                return Ok(true);
            }
            Expr::Counter => {
                self.counter += 1;
                let _ = write!(text, "{}", self.counter);
                return Ok(true);
            }
            Expr::Now | Expr::NowMs => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                let value = if matches!(expr, Expr::Now) { now.as_secs() } else { now.as_millis() as u64 };
                let _ = write!(text, "{value}");
                return Ok(true);
            }
            Expr::Pool(pool) => {
                let values = shared.pools[*pool].lock().unwrap_or_else(|e| e.into_inner());
                if values.is_empty() {
                    return Err(RenderError(format!("pool \"{}\" is empty", shared.plan.pools[*pool])));
                }
                let value = &values[rng.gen_range(0..values.len())];
                // The pool may change before the caller writes the text: copy it out now.
                return Ok(value_text(value, text));
            }
        }
        Ok(false)
    }

    /// Encodes `call` into `self.wbuf`: request line, Host, default headers (unless the call
    /// sets the same name), the call's headers, cookies, body framing, body.
    pub fn build(&mut self, call: &Call, shared: &Shared, rng: &mut SmallRng) -> Result<(), RenderError> {
        let mut wbuf = std::mem::take(&mut self.wbuf);
        let mut body = std::mem::take(&mut self.body);
        wbuf.clear();
        body.clear();
        let result = self.build_into(call, shared, rng, &mut wbuf, &mut body);
        self.wbuf = wbuf;
        self.body = body;
        result
    }

    fn build_into(
        &mut self,
        call: &Call,
        shared: &Shared,
        rng: &mut SmallRng,
        wbuf: &mut Vec<u8>,
        body: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        wbuf.extend_from_slice(call.method.as_bytes());
        wbuf.push(b' ');
        self.render(&call.target, shared, rng, wbuf)?;
        wbuf.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        wbuf.extend_from_slice(call.authority.as_bytes());
        wbuf.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            if !call.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                put_header(wbuf, name, value.as_bytes());
            }
        }
        for (name, value) in &call.headers {
            wbuf.extend_from_slice(name.as_bytes());
            wbuf.extend_from_slice(b": ");
            self.render(value, shared, rng, wbuf)?;
            wbuf.extend_from_slice(b"\r\n");
        }
        self.cookies.header_for(&call.authority, path_of(&call.target), wbuf);
        if let Some((content_type, template)) = &call.body {
            self.render(template, shared, rng, body)?;
            let overridden = |name: &str| {
                call.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
                    || self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            };
            if let Some(content_type) = content_type {
                if !overridden("content-type") {
                    put_header(wbuf, "Content-Type", content_type.as_bytes());
                }
            }
        }
        if call.body.is_some() || matches!(call.method.as_str(), "POST" | "PUT" | "PATCH") {
            let _ = std::io::Write::write_fmt(wbuf, format_args!("Content-Length: {}\r\n", body.len()));
        }
        wbuf.extend_from_slice(b"\r\n");
        wbuf.extend_from_slice(body);
        Ok(())
    }

    /// Checks a complete response against `call`; `Err(message)` names the first check that
    /// failed. Captures are taken only when every check passed.
    pub fn evaluate(
        &mut self,
        call: &Call,
        status: u16,
        elapsed: Duration,
        kept: &Kept,
        shared: &Shared,
        rng: &mut SmallRng,
    ) -> Result<(), &'static str> {
        // Parsed only if a check or capture reads a header or cookie.
        let head = std::cell::OnceCell::new();
        let head = || head.get_or_init(|| ResponseHead::parse(&kept.head));
        let lookup = |pointer: &str| json_lookup(&kept.body, pointer);
        for check in &call.checks {
            let ok = match &check.kind {
                CheckKind::BodyContains(needle) => memmem(&kept.body, needle.as_bytes()),
                CheckKind::BodyMatches(regex) => regex.is_match(&String::from_utf8_lossy(&kept.body)),
                CheckKind::Header(name, regex) => head().get(name).is_some_and(|value| regex.is_match(value)),
                CheckKind::MaxTime(bound) => elapsed <= *bound,
                CheckKind::Json(pointer, JsonOp::EqText(template) | JsonOp::NeText(template)) => {
                    let want = self.render_string(template, shared, rng).map_err(|_| check.message)?;
                    let found = lookup(pointer).map(|v| {
                        let mut text = String::new();
                        value_text(&v, &mut text);
                        text
                    });
                    let equal = found.as_deref() == Some(want.as_str());
                    match check.kind {
                        CheckKind::Json(_, JsonOp::EqText(_)) => equal,
                        _ => found.is_some() && !equal,
                    }
                }
                CheckKind::Json(pointer, op) => json_check(lookup(pointer).as_ref(), op),
            };
            if !ok {
                return Err(check.message);
            }
        }
        for capture in &call.captures {
            let value = match &capture.source {
                Source::Json(pointer) => lookup(pointer),
                Source::Header(name) => head().get(name).map(|v| Value::String(v.to_string())),
                Source::Cookie(name) => head()
                    .set_cookies()
                    .filter_map(|c| parse_set_cookie(c, ""))
                    .find(|c| &c.name == name)
                    .map(|c| Value::String(c.value)),
                Source::Regex(regex) => {
                    let body = String::from_utf8_lossy(&kept.body);
                    regex.captures(&body).map(|caps| {
                        let m = caps.get(1).or_else(|| caps.get(0)).expect("a match has group 0");
                        Value::String(m.as_str().to_string())
                    })
                }
                Source::Status => Some(Value::from(status)),
                Source::Body => Some(Value::String(String::from_utf8_lossy(&kept.body).into_owned())),
            };
            match value {
                Some(value) => self.vars[capture.var] = value,
                None => return Err(capture.message),
            }
        }
        Ok(())
    }

    /// Stores the response's cookies (every response, checked or not).
    pub fn take_cookies(&mut self, authority: &str, kept: &Kept) {
        // Most responses set none: a byte scan decides before any parsing.
        if !kept.head.windows(11).any(|w| w.eq_ignore_ascii_case(b"set-cookie:")) {
            return;
        }
        let head = ResponseHead::parse(&kept.head);
        let host = host_of(authority);
        for line in head.set_cookies() {
            if let Some(cookie) = parse_set_cookie(line, host) {
                self.cookies.set(cookie);
            }
        }
    }
}

/// Writes a variable's value as text; true for non-string values (see `eval`).
fn value_text(value: &Value, text: &mut String) -> bool {
    match value {
        Value::String(s) => {
            text.push_str(s);
            false
        }
        other => {
            use std::fmt::Write;
            let _ = write!(text, "{other}");
            true
        }
    }
}

fn write_escaped(text: &str, non_string: bool, escape: Escape, out: &mut Vec<u8>) {
    match escape {
        Escape::Raw => out.extend_from_slice(text.as_bytes()),
        Escape::Url => percent_encode(text, out),
        Escape::JsonStr => json_escape(text, out),
        Escape::JsonValue if non_string => out.extend_from_slice(text.as_bytes()),
        Escape::JsonValue => {
            out.push(b'"');
            json_escape(text, out);
            out.push(b'"');
        }
    }
}

fn json_escape(text: &str, out: &mut Vec<u8>) {
    let quoted = serde_json::to_string(text).expect("strings serialize");
    out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The literal path prefix of a target template (cookies match on it).
fn path_of(target: &Template) -> &str {
    match target.parts.first() {
        Some(Part::Lit(text)) => text.split(['?', '#']).next().unwrap_or("/"),
        _ => "/",
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn json_check(value: Option<&Value>, op: &JsonOp) -> bool {
    let number = || value.and_then(Value::as_f64);
    match op {
        JsonOp::Exists(want) => value.is_some() == *want,
        JsonOp::Eq(want) => value.is_some_and(|v| json_eq(v, want)),
        JsonOp::Ne(want) => value.is_some_and(|v| !json_eq(v, want)),
        JsonOp::OneOf(options) => value.is_some_and(|v| options.iter().any(|o| json_eq(v, o))),
        JsonOp::Lt(bound) => number().is_some_and(|n| n < *bound),
        JsonOp::Le(bound) => number().is_some_and(|n| n <= *bound),
        JsonOp::Gt(bound) => number().is_some_and(|n| n > *bound),
        JsonOp::Ge(bound) => number().is_some_and(|n| n >= *bound),
        JsonOp::MultipleOf(m) => number().is_some_and(|n| (n % m) == 0.0),
        JsonOp::NotMultipleOf(m) => number().is_some_and(|n| (n % m) != 0.0),
        JsonOp::EqText(_) | JsonOp::NeText(_) => unreachable!("compared by the caller"),
    }
}

/// Equality where 1 and 1.0 are equal (TOML integers against JSON floats).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// The value at a JSON `pointer` in `body`, found by walking the document without building it:
/// objects and arrays on the way are scanned, values off the way skipped (serde's
/// `IgnoredAny`), and only the value found is materialised. `None` when the body is not JSON or
/// the pointer leads nowhere.
pub fn json_lookup(body: &[u8], pointer: &str) -> Option<Value> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(body);
    let segments: Vec<String> = if pointer.is_empty() {
        Vec::new()
    } else {
        pointer.strip_prefix('/')?.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
    };
    Walk(&segments).deserialize(&mut de).ok().flatten()
}

/// Follows the remaining pointer segments through one JSON value.
struct Walk<'p>(&'p [String]);

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            return <Value as serde::Deserialize>::deserialize(deserializer).map(Some);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = self.0.split_first().expect("not empty");
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == first.as_str() {
                found = map.next_value_seed(Walk(rest))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = self.0.split_first().expect("not empty");
        let index: Option<usize> = first.parse().ok();
        let mut found = None;
        let mut position = 0;
        loop {
            if Some(position) == index {
                match seq.next_element_seed(Walk(rest))? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                break;
            }
            position += 1;
        }
        Ok(found)
    }

    // Scalars where a container was expected: the pointer leads nowhere.
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A response head's fields, parsed again from the kept copy (cold: scenario requests only).
struct ResponseHead<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> ResponseHead<'a> {
    fn parse(head: &'a [u8]) -> ResponseHead<'a> {
        let text = std::str::from_utf8(head).unwrap_or("");
        let fields = text
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim(), value.trim()))
            .collect();
        ResponseHead { fields }
    }

    /// The first field called `name` (case-insensitive).
    fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    fn set_cookies(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| *v)
    }
}

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

    /// Appends a `Cookie:` header with the cookies that match the host and path, if any.
    pub fn header_for(&self, authority: &str, path: &str, out: &mut Vec<u8>) {
        let host = host_of(authority).to_ascii_lowercase();
        let now = SystemTime::now();
        let mut first = true;
        for cookie in &self.cookies {
            let domain_ok = if cookie.host_only {
                host == cookie.domain
            } else {
                host == cookie.domain || host.ends_with(&format!(".{}", cookie.domain))
            };
            let path_ok = path == cookie.path
                || (path.starts_with(&cookie.path)
                    && (cookie.path.ends_with('/') || path.as_bytes().get(cookie.path.len()) == Some(&b'/')));
            if !domain_ok || !path_ok || cookie.expires.is_some_and(|at| at <= now) {
                continue;
            }
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
    // Max-Age wins over Expires (§5.3 step 3).
    if let Some(seconds) = max_age {
        cookie.expires =
            Some(if seconds <= 0 { UNIX_EPOCH } else { SystemTime::now() + Duration::from_secs(seconds as u64) });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(at.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_445_412_480);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn cookies_match_domain_path_and_expiry() {
        let mut jar = Jar::default();
        jar.set(parse_set_cookie("sid=abc; Path=/api; HttpOnly", "127.0.0.1").unwrap());
        jar.set(parse_set_cookie("theme=dark", "127.0.0.1").unwrap());
        jar.set(parse_set_cookie("other=1; Domain=example.com", "127.0.0.1").unwrap());
        let header = |jar: &Jar, path: &str| {
            let mut out = Vec::new();
            jar.header_for("127.0.0.1:8080", path, &mut out);
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
        jar.header_for("api.example.com", "/", &mut out);
        assert_eq!(out, b"Cookie: other=1; d=1\r\n");
    }

    #[test]
    fn json_pointers_without_a_tree() {
        let body = br#"{"a": {"b": [10, {"c": "x/y"}, 30]}, "k~/": 1, "skip": {"deep": [1, [2, {"z": 3}]]}}"#;
        assert_eq!(json_lookup(body, "/a/b/0"), Some(Value::from(10)));
        assert_eq!(json_lookup(body, "/a/b/1/c"), Some(Value::from("x/y")));
        assert_eq!(json_lookup(body, "/a/b/2"), Some(Value::from(30)));
        assert_eq!(json_lookup(body, "/a/b/3"), None);
        assert_eq!(json_lookup(body, "/a/b/x"), None);
        assert_eq!(json_lookup(body, "/k~0~1"), Some(Value::from(1)));
        assert_eq!(json_lookup(body, "/a/b/0/deeper"), None);
        assert_eq!(json_lookup(body, "/missing"), None);
        assert_eq!(json_lookup(body, "").map(|v| v["a"]["b"][2].clone()), Some(Value::from(30)));
        assert_eq!(json_lookup(b"not json", "/a"), None);
        assert_eq!(json_lookup(br#"{"a": "\u0041"}"#, "/a"), Some(Value::from("A")));
    }

    #[test]
    fn json_comparisons() {
        let v = serde_json::json!({"albumId": 7, "title": "x", "n": 2.0});
        let at = |p: &str| v.pointer(p);
        assert!(json_check(at("/albumId"), &JsonOp::NotMultipleOf(10.0)));
        assert!(!json_check(at("/albumId"), &JsonOp::MultipleOf(10.0)));
        assert!(json_check(at("/n"), &JsonOp::Eq(Value::from(2))));
        assert!(json_check(at("/title"), &JsonOp::OneOf(vec![Value::from("y"), Value::from("x")])));
        assert!(json_check(at("/missing"), &JsonOp::Exists(false)));
        assert!(!json_check(at("/missing"), &JsonOp::Ne(Value::from(1))));
        assert!(json_check(at("/albumId"), &JsonOp::Lt(7.5)) && !json_check(at("/albumId"), &JsonOp::Gt(7.0)));
    }
}
