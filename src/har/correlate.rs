//! Correlation: a value a later request sends (in its path, query, a header, a JSON or form
//! body) that an earlier response produced (a JSON field, a header, a Set-Cookie, a hidden form
//! input) becomes a capture on the earlier step and a template in the later one, so tokens and
//! created ids come from the live server. The earliest response wins; a value the client sent
//! before any response produced it (a username it typed) is its own, not correlated; short and
//! common values are never correlated.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::read::{Body, Exchange};

/// Where a response produced a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A JSON field, as a dotted path (`data.0.id`).
    Json(String),
    Header(String),
    Cookie(String),
    /// A hidden form input's value, by its name.
    Hidden(String),
}

/// A value captured from one response and used by later requests.
#[derive(Clone, Debug)]
pub struct Capture {
    pub var: String,
    pub value: String,
    /// Index (into the kept exchanges) of the step that captures it.
    pub step: usize,
    pub source: Source,
    /// (step index, where) of each use, e.g. (3, "path").
    pub uses: Vec<(usize, String)>,
}

/// Values shorter than this are never correlated (`1`, `42`, `true`).
const MIN_LEN: usize = 4;
/// Numbers need this many digits.
const MIN_DIGITS: usize = 3;
/// At most this many candidate values are taken from one response.
const MAX_PER_RESPONSE: usize = 2000;

fn worth(value: &str) -> bool {
    let common = ["true", "false", "null", "none", "undefined", "yes", "no", "ok"];
    if value.chars().all(|c| c.is_ascii_digit()) {
        return value.len() >= MIN_DIGITS;
    }
    value.len() >= MIN_LEN && !common.contains(&value.to_ascii_lowercase().as_str()) && !value.contains('\n')
}

/// Response headers that carry nothing a client sends back.
fn plain_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "date",
        "server",
        "content-type",
        "content-length",
        "connection",
        "keep-alive",
        "cache-control",
        "expires",
        "last-modified",
        "vary",
        "via",
        "age",
        "pragma",
        "transfer-encoding",
        "content-encoding",
        "set-cookie",
        "report-to",
        "nel",
        "reporting-endpoints",
        "strict-transport-security",
        "alt-svc",
        "accept-ranges",
    ]
    .contains(&lower.as_str())
        || lower.starts_with("access-control-")
        || lower.starts_with("x-content-type")
        || lower.starts_with("cf-")
}

/// The values a response produced, in the order it gives them.
fn produced(exchange: &Exchange) -> Vec<(String, Source)> {
    let mut out = Vec::new();
    for (name, value) in &exchange.response_headers {
        if name.eq_ignore_ascii_case("set-cookie") {
            if let Some((cookie, rest)) = value.split_once('=') {
                let cookie_value = rest.split(';').next().unwrap_or("").trim();
                out.push((cookie_value.to_string(), Source::Cookie(cookie.trim().to_string())));
            }
        } else if !plain_header(name) {
            out.push((value.clone(), Source::Header(name.clone())));
        }
    }
    if let Some(text) = &exchange.response_text {
        if exchange.response_json {
            if let Ok(json) = serde_json::from_str::<Value>(text) {
                walk(&json, &mut String::new(), &mut out);
            }
        } else if text.contains("<input") {
            hidden_inputs(text, &mut out);
        }
    }
    out.retain(|(value, _)| worth(value));
    out.truncate(MAX_PER_RESPONSE);
    out
}

fn walk(value: &Value, path: &mut String, out: &mut Vec<(String, Source)>) {
    if out.len() >= MAX_PER_RESPONSE {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key.contains('.') || key.is_empty() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(child, path, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate().take(100) {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                walk(child, path, out);
                path.truncate(len);
            }
        }
        Value::String(s) => out.push((s.clone(), Source::Json(path.clone()))),
        Value::Number(n) if n.is_u64() || n.is_i64() => out.push((n.to_string(), Source::Json(path.clone()))),
        _ => {}
    }
}

/// `<input type="hidden" name="…" value="…">` in HTML. The patterns are compiled once per
/// process, not per response or per tag.
fn hidden_inputs(html: &str, out: &mut Vec<(String, Source)>) {
    static PATTERNS: std::sync::OnceLock<[regex::Regex; 4]> = std::sync::OnceLock::new();
    let [tag, kind, name, value] = PATTERNS.get_or_init(|| {
        let attr = |name: &str| regex::Regex::new(&format!(r#"(?i)\b{name}\s*=\s*["']([^"']*)["']"#)).expect("valid");
        [regex::Regex::new(r#"(?is)<input\b[^>]*>"#).expect("valid"), attr("type"), attr("name"), attr("value")]
    });
    let attr = |re: &regex::Regex, tag: &str| re.captures(tag).map(|c| c[1].to_string());
    for m in tag.find_iter(html).take(MAX_PER_RESPONSE) {
        let t = m.as_str();
        if attr(kind, t).is_some_and(|v| v.eq_ignore_ascii_case("hidden")) {
            if let (Some(name), Some(value)) = (attr(name, t), attr(value, t)) {
                out.push((value, Source::Hidden(name)));
            }
        }
    }
}

/// The words a request sends: path segments, query values, header values (whole and split at
/// spaces, commas, semicolons and `=`), JSON leaves, form values, and a text body's words. A
/// value is used by the request when it is one of them.
fn words(exchange: &Exchange) -> HashSet<String> {
    let mut out = HashSet::new();
    let (path, query) = exchange.target.split_once('?').unwrap_or((&exchange.target, ""));
    out.extend(path.split('/').map(str::to_string));
    out.extend(query.split('&').filter_map(|pair| pair.split_once('=')).map(|(_, v)| v.to_string()));
    let mut split = |text: &str| {
        out.insert(text.to_string());
        for piece in text.split([' ', ',', ';', '\t']) {
            out.insert(piece.to_string());
            out.extend(piece.split(['=', '&']).map(str::to_string));
        }
    };
    for (_, value) in &exchange.headers {
        split(value);
    }
    match &exchange.body {
        Body::Json(json) => leaves(json, &mut out),
        Body::Form(pairs) => out.extend(pairs.iter().map(|(_, v)| v.clone())),
        Body::Text { text, .. } => {
            out.extend(text.split(|c: char| c.is_whitespace() || "\"'<>&=,;()[]{}".contains(c)).map(str::to_string))
        }
        Body::None => {}
    }
    out.remove("");
    out
}

fn leaves(json: &Value, out: &mut HashSet<String>) {
    match json {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Number(n) => {
            out.insert(n.to_string());
        }
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        _ => {}
    }
}

/// Where in `exchange` a value it sends sits (for comments): path, query, a header, the body.
fn places(exchange: &Exchange, value: &str) -> Vec<String> {
    let mut places = Vec::new();
    let (path, query) = exchange.target.split_once('?').unwrap_or((&exchange.target, ""));
    if path.split('/').any(|segment| segment == value) {
        places.push("path".to_string());
    }
    if query.split('&').any(|pair| pair.split_once('=').is_some_and(|(_, v)| v == value)) {
        places.push("query".to_string());
    }
    for (name, v) in &exchange.headers {
        if v.contains(value) {
            places.push(format!("header {name}"));
        }
    }
    let in_body = match &exchange.body {
        Body::Json(json) => {
            let mut set = HashSet::new();
            leaves(json, &mut set);
            set.contains(value).then_some("JSON body")
        }
        Body::Form(pairs) => pairs.iter().any(|(_, v)| v == value).then_some("form"),
        Body::Text { text, .. } => text.contains(value).then_some("body"),
        Body::None => None,
    };
    places.extend(in_body.map(str::to_string));
    places
}

/// The correlations of a recording: each value a later request sends that an earlier response
/// produced first.
pub fn correlate(exchanges: &[Exchange]) -> Vec<Capture> {
    let sent: Vec<HashSet<String>> = exchanges.iter().map(words).collect();
    let all_sent: HashSet<&str> = sent.iter().flatten().map(String::as_str).collect();
    // Value → (first producing step, source); values the client sent first are its own.
    let mut first: HashMap<String, (usize, Source)> = HashMap::new();
    let mut client: HashSet<&str> = HashSet::new();
    let mut order = Vec::new();
    for (i, exchange) in exchanges.iter().enumerate() {
        client.extend(sent[i].iter().map(String::as_str));
        for (value, source) in produced(exchange) {
            if !all_sent.contains(value.as_str()) || client.contains(value.as_str()) || first.contains_key(&value) {
                continue;
            }
            order.push(value.clone());
            first.insert(value, (i, source));
        }
    }
    let mut captures: Vec<Capture> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for value in order {
        let (step, source) = first[&value].clone();
        let uses: Vec<(usize, String)> = (step + 1..exchanges.len())
            .filter(|&j| sent[j].contains(&value))
            .flat_map(|j| places(&exchanges[j], &value).into_iter().map(move |place| (j, place)))
            .collect();
        if uses.is_empty() {
            continue;
        }
        let var = unique(variable_name(&exchanges[step], &source), &mut names);
        captures.push(Capture { var, value, step, source, uses });
    }
    // Longer values first, so a token is templated before a shorter value inside it.
    captures.sort_by(|a, b| b.value.len().cmp(&a.value.len()).then(a.step.cmp(&b.step)));
    captures
}

/// A readable variable name: `post_id` for the `id` of `POST /api/posts`, else the field,
/// header, cookie or input name.
fn variable_name(producer: &Exchange, source: &Source) -> String {
    let raw = match source {
        Source::Json(path) => {
            let key = path.rsplit('.').find(|k| !k.chars().all(|c| c.is_ascii_digit())).unwrap_or("value");
            if key == "id" {
                let path = producer.target.split('?').next().unwrap_or("");
                let resource = path.split('/').rev().find(|s| !s.is_empty() && !super::dynamic(s)).unwrap_or("item");
                let singular = resource.strip_suffix('s').filter(|s| s.len() > 1).unwrap_or(resource);
                format!("{singular}_id")
            } else {
                key.to_string()
            }
        }
        Source::Header(name) | Source::Cookie(name) | Source::Hidden(name) => name.clone(),
    };
    let mut name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    name = name.trim_matches('_').to_string();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "v_");
    }
    // Names the templates own.
    if ["user_index", "counter", "now", "now_ms", "env", "json", "status"].contains(&name.as_str()) {
        name.push_str("_value");
    }
    name
}

fn unique(name: String, taken: &mut HashMap<String, usize>) -> String {
    let n = taken.entry(name.clone()).or_insert(0);
    *n += 1;
    if *n == 1 {
        name
    } else {
        format!("{name}_{n}")
    }
}
