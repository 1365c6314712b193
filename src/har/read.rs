//! Reading a HAR 1.2 file (as Chrome, Edge, Firefox and Safari export it, and as REST clients
//! write it) into the exchanges a scenario is made of: which entries are kept (hosts, the
//! `--exclude` pattern, static resources), their requests without browser-only and hop-by-hop
//! headers, bodies by kind, and what each response said.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::{HarError, Options};

#[derive(Deserialize)]
struct Har {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    #[serde(default)]
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    request: Request,
    response: Option<Response>,
    #[serde(rename = "startedDateTime", default)]
    started: Option<String>,
    #[serde(default)]
    time: Option<f64>,
    #[serde(rename = "_resourceType", default)]
    resource_type: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(rename = "postData", default)]
    post_data: Option<PostData>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct PostData {
    #[serde(rename = "mimeType", default)]
    mime_type: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    params: Option<Vec<Param>>,
}

#[derive(Deserialize)]
struct Param {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(rename = "mimeType", default)]
    mime_type: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

/// A request's body, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    None,
    /// `application/json` that parses.
    Json(Value),
    /// `application/x-www-form-urlencoded` pairs, in order.
    Form(Vec<(String, String)>),
    /// Anything else, with its content type.
    Text {
        content_type: String,
        text: String,
    },
}

/// One recorded request and what answered it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Its place in the HAR's entries (1-based), for comments and errors.
    pub entry: usize,
    pub method: String,
    /// `scheme://host[:port]`.
    pub origin: String,
    /// Path and query, as recorded.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// None when the entry has no response (blocked, cancelled) or status 0.
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    /// The response body as text (base64 decoded), when it is text.
    pub response_text: Option<String>,
    pub response_json: bool,
    /// Milliseconds since the Unix epoch when it started, and how long it took.
    pub started_ms: Option<f64>,
    pub time_ms: f64,
}

/// What reading left out, for the file's opening comment.
#[derive(Debug, Default)]
pub struct Dropped {
    pub static_resources: usize,
    pub other_hosts: usize,
    pub excluded: usize,
    pub not_http: usize,
    /// Methods a scenario step cannot send (CONNECT, TRACE, WebDAV's …).
    pub other_methods: usize,
}

/// Headers a browser adds or the client handles itself: never copied into a scenario.
const LEFT_OUT: [&str; 14] = [
    "host",
    "connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "cookie",
    "accept-encoding",
    "priority",
    "upgrade-insecure-requests",
    "pragma",
    "cache-control",
];

fn left_out(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with(':')
        || lower.starts_with("sec-ch-")
        || lower.starts_with("sec-fetch-")
        || lower.starts_with("proxy-")
        || LEFT_OUT.contains(&lower.as_str())
}

const STATIC_TYPES: [&str; 7] = ["image", "font", "stylesheet", "script", "media", "manifest", "texttrack"];
const STATIC_EXTENSIONS: [&str; 20] = [
    "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "bmp", "woff", "woff2", "ttf", "otf", "eot", "css",
    "js", "mjs", "map", "mp4", "webm",
];

/// Whether an entry is a static resource: by the browser's resource type when it gives one,
/// else by the response's MIME type, else by the path's extension.
fn is_static(resource_type: Option<&str>, mime: &str, path: &str) -> bool {
    match resource_type.map(str::to_ascii_lowercase).as_deref() {
        Some(kind) if STATIC_TYPES.contains(&kind) => return true,
        Some("document" | "xhr" | "fetch" | "websocket" | "eventsource") => return false,
        // "other", "ping", …: judged by what came back and the path, as without a type.
        _ => {}
    }
    let mime = mime.to_ascii_lowercase();
    if ["image/", "font/", "audio/", "video/", "text/css", "javascript"].iter().any(|m| mime.contains(m)) {
        return true;
    }
    let file = path.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
    file.rsplit_once('.').is_some_and(|(_, ext)| STATIC_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Splits an absolute URL into (scheme, authority, path-and-query); `None` when it is not
/// http(s).
pub fn split_url(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest[..end].to_string();
    let mut target = rest[end..].split('#').next().unwrap_or("").to_string();
    if authority.is_empty() {
        return None;
    }
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    Some((scheme, authority, target))
}

/// Reads the HAR's bytes; errors name the line and column.
pub fn read(bytes: &[u8], options: &Options) -> Result<(Vec<Exchange>, Dropped), HarError> {
    let har: Har = serde_json::from_slice(bytes).map_err(|e| HarError {
        line: e.line(),
        col: e.column(),
        message: match e.classify() {
            serde_json::error::Category::Eof => format!("the file ends early: {e}"),
            _ => e.to_string(),
        },
    })?;
    let entries = har.log.entries;
    if entries.is_empty() {
        return Err(HarError {
            line: 1,
            col: 1,
            message: "the recording has no entries (log.entries is empty)".into(),
        });
    }
    let hosts = keep_hosts(&entries, options);
    let mut dropped = Dropped::default();
    let mut out = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let Some((scheme, authority, target)) = split_url(&entry.request.url) else {
            dropped.not_http += 1;
            continue;
        };
        let mime = entry
            .response
            .as_ref()
            .and_then(|r| r.content.as_ref())
            .and_then(|c| c.mime_type.clone())
            .unwrap_or_default();
        let method = entry.request.method.to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method.as_str()) {
            dropped.other_methods += 1;
            continue;
        }
        if !options.keep_static && is_static(entry.resource_type.as_deref(), &mime, &target) {
            dropped.static_resources += 1;
            continue;
        }
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&authority)) {
            dropped.other_hosts += 1;
            continue;
        }
        if options.exclude.as_ref().is_some_and(|re| re.is_match(&entry.request.url)) {
            dropped.excluded += 1;
            continue;
        }
        out.push(exchange(index + 1, entry, format!("{scheme}://{authority}"), target, mime));
    }
    Ok((out, dropped))
}

/// `--include-host`, or the hosts of the page's own requests (documents and XHR/fetch calls;
/// every host when the recording says no resource types, as REST clients write it).
fn keep_hosts(entries: &[Entry], options: &Options) -> Vec<String> {
    if !options.include_hosts.is_empty() {
        return options.include_hosts.clone();
    }
    let typed = entries.iter().any(|e| e.resource_type.is_some());
    let mut hosts: Vec<String> = Vec::new();
    for entry in entries {
        let page = match entry.resource_type.as_deref().map(str::to_ascii_lowercase) {
            Some(kind) => ["document", "xhr", "fetch"].contains(&kind.as_str()),
            None => !typed,
        };
        if let (true, Some((_, authority, _))) = (page, split_url(&entry.request.url)) {
            if !hosts.contains(&authority) {
                hosts.push(authority);
            }
        }
    }
    hosts
}

fn exchange(entry_no: usize, entry: Entry, origin: String, target: String, mime: String) -> Exchange {
    let request = entry.request;
    // A header given twice is one header with both values (RFC 9110 5.3).
    let mut headers: Vec<(String, String)> = Vec::new();
    for h in request.headers.into_iter().filter(|h| !left_out(&h.name)) {
        let value = h.value.unwrap_or_default().replace(['\r', '\n'], " ");
        match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&h.name)) {
            Some((_, seen)) => {
                seen.push_str(", ");
                seen.push_str(&value);
            }
            None => headers.push((h.name, value)),
        }
    }
    let body = body(request.post_data, &headers);
    let response = entry.response;
    let status = response.as_ref().and_then(|r| r.status).filter(|s| (100..1000).contains(s)).map(|s| s as u16);
    let response_headers = response
        .as_ref()
        .map(|r| r.headers.iter().map(|h| (h.name.clone(), h.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let content = response.and_then(|r| r.content);
    let response_text = content.and_then(|c| match c.encoding.as_deref() {
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(c.text.unwrap_or_default().trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        _ => c.text,
    });
    Exchange {
        entry: entry_no,
        method: request.method.to_ascii_uppercase(),
        origin,
        target,
        headers,
        body,
        status,
        response_headers,
        response_json: mime.to_ascii_lowercase().contains("json"),
        response_text,
        started_ms: entry.started.as_deref().and_then(iso_ms),
        time_ms: entry.time.unwrap_or(0.0).max(0.0),
    }
}

/// The request body by kind: JSON that parses, form pairs, or text with its content type (a
/// multipart body without one gets it from its first boundary line).
fn body(post: Option<PostData>, headers: &[(String, String)]) -> Body {
    let Some(post) = post else { return Body::None };
    let header_type = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
    let content_type = post.mime_type.filter(|m| !m.is_empty()).or(header_type).unwrap_or_default();
    let lower = content_type.to_ascii_lowercase();
    let text = post.text.unwrap_or_default();
    if lower.contains("x-www-form-urlencoded") {
        if let Some(params) = post.params.filter(|p| !p.is_empty()) {
            return Body::Form(params.into_iter().map(|p| (p.name, p.value.unwrap_or_default())).collect());
        }
        if !text.is_empty() {
            return Body::Form(crate::http::url::form_pairs(&text));
        }
    }
    if lower.contains("json") {
        if let Ok(json) = serde_json::from_str::<Value>(&text) {
            return Body::Json(json);
        }
    }
    if text.is_empty() {
        return Body::None;
    }
    let content_type = match (content_type.is_empty(), text.strip_prefix("--")) {
        (true, Some(rest)) => {
            let boundary = rest.split("\r\n").next().unwrap_or("").trim();
            format!("multipart/form-data; boundary={boundary}")
        }
        (true, None) => "text/plain".to_string(),
        (false, _) => content_type,
    };
    Body::Text { content_type, text }
}

/// An ISO 8601 date-time (`2024-05-01T01:13:51.123Z`, `…+02:00`) as milliseconds since the Unix
/// epoch.
pub fn iso_ms(text: &str) -> Option<f64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset_min) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => {
            let zone = &time[at..];
            let offset = match zone.as_bytes()[0] {
                b'+' | b'-' => {
                    let sign = if zone.starts_with('-') { -1 } else { 1 };
                    let digits: String = zone[1..].chars().filter(|c| c.is_ascii_digit()).collect();
                    let (h, mm) =
                        (digits.get(..2)?.parse::<i64>().ok()?, digits.get(2..4).unwrap_or("0").parse::<i64>().ok()?);
                    sign * (h * 60 + mm)
                }
                _ => 0,
            };
            (&time[..at], offset)
        }
        None => (time, 0),
    };
    let mut c = clock.split(':');
    let (h, min) = (c.next()?.parse::<i64>().ok()?, c.next()?.parse::<i64>().ok()?);
    let sec: f64 = c.next().unwrap_or("0").parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 - offset_min * 60;
    Some(secs as f64 * 1000.0 + sec * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_urls_and_static_resources() {
        assert_eq!(iso_ms("1970-01-01T00:00:01.500Z"), Some(1500.0));
        assert_eq!(iso_ms("1970-01-01T01:00:00.000+01:00"), Some(0.0));
        assert_eq!(iso_ms("2024-05-01T01:13:51Z"), Some(1_714_526_031_000.0));
        assert_eq!(split_url("https://a.b:8443/x?y=1#f"), Some(("https".into(), "a.b:8443".into(), "/x?y=1".into())));
        assert_eq!(split_url("http://h"), Some(("http".into(), "h".into(), "/".into())));
        assert_eq!(split_url("data:text/plain,hi"), None);
        assert!(is_static(Some("image"), "", "/"));
        assert!(!is_static(Some("xhr"), "image/png", "/a.png"));
        assert!(is_static(Some("other"), "text/plain", "/favicon.ico"));
        assert!(is_static(None, "text/css", "/"));
        assert!(is_static(None, "", "/app.js?v=3"));
        assert!(!is_static(None, "application/json", "/api/posts"));
    }
}
