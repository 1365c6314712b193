//! The scenario file written from a recording: the host, one user type whose default headers
//! are those every request shared, one task whose steps are the requests in order (with the
//! recorded gaps as `sleep` steps), each with its name, headers, body, captures, checks and
//! comments saying where each value came from.

use std::fmt::Write as _;

use serde_json::Value;

use super::correlate::{Capture, Source};
use super::read::{Body, Dropped, Exchange};
use super::{dynamic_kind, HarError, Options, ThinkTime};

/// Recorded gaps shorter than this are left out.
const MIN_GAP_MS: f64 = 10.0;
/// Recorded gaps are capped at this (a recording left open for lunch).
const MAX_GAP_MS: f64 = 60_000.0;

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Replaces the captured values in `text` (where `place` allows) with their templates.
struct Templater<'a> {
    captures: &'a [Capture],
    step: usize,
}

impl Templater<'_> {
    /// The captures this step uses.
    fn mine(&self) -> impl Iterator<Item = &Capture> {
        self.captures.iter().filter(move |c| c.uses.iter().any(|(s, _)| *s == self.step))
    }

    fn exact(&self, text: &str) -> Option<String> {
        self.mine().find(|c| c.value == text).map(|c| format!("{{{{ {} }}}}", c.var))
    }

    fn within(&self, text: &str) -> String {
        let mut out = text.to_string();
        for c in self.mine() {
            out = out.replace(&c.value, &format!("{{{{ {} }}}}", c.var));
        }
        if let Some(whole) = self.exact(text) {
            return whole;
        }
        out
    }

    /// The path with captured segments and query values templated, and the name it is
    /// counted under (dynamic segments as `[id]`-style, captured ones as `[var]`).
    fn target(&self, target: &str) -> (String, String) {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let mut segments = Vec::new();
        let mut names = Vec::new();
        for segment in path.split('/') {
            match self.exact(segment) {
                Some(hole) => {
                    let var = hole.trim_start_matches("{{ ").trim_end_matches(" }}").to_string();
                    segments.push(hole);
                    names.push(format!("[{var}]"));
                }
                None => {
                    segments.push(segment.to_string());
                    names.push(dynamic_kind(segment).map_or(segment.to_string(), str::to_string));
                }
            }
        }
        let mut templated = segments.join("/");
        if let Some(query) = query {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => format!("{k}={}", self.exact(v).unwrap_or_else(|| v.to_string())),
                    None => pair.to_string(),
                })
                .collect();
            templated = format!("{templated}?{}", pairs.join("&"));
        }
        (templated, names.join("/"))
    }

    /// A JSON value as a TOML inline value, captured values templated (`None` when TOML cannot
    /// say it: a null).
    fn json(&self, value: &Value) -> Option<String> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match self.exact(&n.to_string()) {
                Some(hole) => quote(&hole),
                None => n.to_string(),
            },
            Value::String(s) => quote(&self.exact(s).unwrap_or_else(|| s.clone())),
            Value::Array(items) => {
                let parts: Option<Vec<String>> = items.iter().map(|v| self.json(v)).collect();
                format!("[{}]", parts?.join(", "))
            }
            Value::Object(map) => {
                let parts: Option<Vec<String>> =
                    map.iter().map(|(k, v)| self.json(v).map(|v| format!("{} = {v}", quote(k)))).collect();
                let parts = parts?;
                if parts.is_empty() {
                    "{}".to_string()
                } else {
                    format!("{{ {} }}", parts.join(", "))
                }
            }
        })
    }
}

/// Headers (name and value) that every step sends alike: the user type's defaults.
fn shared_headers(exchanges: &[Exchange]) -> Vec<(String, String)> {
    let first = &exchanges[0].headers;
    first
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
        .filter(|(name, value)| {
            exchanges.iter().all(|e| e.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value))
        })
        .cloned()
        .collect()
}

fn inline_table(pairs: &[(String, String)]) -> String {
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{} = {}", quote(k), quote(v))).collect();
    format!("{{ {} }}", parts.join(", "))
}

/// The whole file.
pub fn scenario(
    exchanges: &[Exchange],
    captures: &[Capture],
    dropped: &Dropped,
    options: &Options,
) -> Result<String, HarError> {
    let host = exchanges[0].origin.clone();
    let mut out = String::new();
    let _ = writeln!(out, "# Converted by swarmer from {} ({} requests kept).", options.source, exchanges.len());
    let _ = writeln!(
        out,
        "# Left out: {} static resources, {} requests to other hosts, {} excluded, {} not http(s), {} other methods.",
        dropped.static_resources, dropped.other_hosts, dropped.excluded, dropped.not_http, dropped.other_methods
    );
    let _ = writeln!(out, "# Values later requests send that earlier responses produced are captured (comments say");
    let _ = writeln!(out, "# where from); cookies go through each user's cookie jar.");
    let _ = writeln!(out, "#\n#   swarmer -f THIS_FILE -u 10 -r 10 -t 1m [-H http://another-host]\n");
    let _ = writeln!(out, "host = {}\n", quote(&host));
    let _ = writeln!(out, "[[user]]\nname = \"Recorded\"");
    let shared = shared_headers(exchanges);
    if !shared.is_empty() {
        let _ = writeln!(out, "# Headers every recorded request sent.");
        let _ = writeln!(out, "headers = {}", inline_table(&shared));
    }
    let _ = writeln!(out, "\n[[user.task]]\nname = \"recording\"\n");
    let mut previous_end: Option<f64> = None;
    for (i, exchange) in exchanges.iter().enumerate() {
        if i > 0 {
            write_pause(&mut out, exchange, previous_end, options.think_time);
        }
        previous_end = exchange.started_ms.map(|s| s + exchange.time_ms);
        write_step(&mut out, i, exchange, &host, &shared, captures)?;
    }
    Ok(out)
}

fn write_pause(out: &mut String, exchange: &Exchange, previous_end: Option<f64>, think: ThinkTime) {
    let ms = match think {
        ThinkTime::None => return,
        ThinkTime::Fixed(d) => d.as_secs_f64() * 1000.0,
        ThinkTime::Recorded => match (exchange.started_ms, previous_end) {
            (Some(start), Some(end)) => (start - end).min(MAX_GAP_MS),
            _ => return,
        },
    };
    if ms >= MIN_GAP_MS || matches!(think, ThinkTime::Fixed(_)) {
        let _ = writeln!(out, "[[user.task.steps]]\nsleep = \"{}ms\"\n", ms.round() as u64);
    }
}

fn write_step(
    out: &mut String,
    index: usize,
    e: &Exchange,
    host: &str,
    shared: &[(String, String)],
    captures: &[Capture],
) -> Result<(), HarError> {
    let t = Templater { captures, step: index };
    let literal_braces = |text: &str| -> Result<(), HarError> {
        match text.contains("{{") {
            true => Err(HarError {
                line: 1,
                col: 1,
                message: format!(
                    "entry {}: the request contains `{{{{`, which a scenario cannot send literally",
                    e.entry
                ),
            }),
            false => Ok(()),
        }
    };
    literal_braces(&e.target)?;
    let status = e.status.map_or("no response".to_string(), |s| s.to_string());
    let _ = writeln!(out, "# Step {} (entry {}): {} {}{} → {status}", index + 1, e.entry, e.method, e.origin, e.target);
    for c in t.mine() {
        let places: Vec<&str> = c.uses.iter().filter(|(s, _)| *s == index).map(|(_, p)| p.as_str()).collect();
        let _ = writeln!(out, "# {{{{ {} }}}} in the {}: captured at step {}", c.var, places.join(", "), c.step + 1);
    }
    let (target, name) = t.target(&e.target);
    let url = if e.origin == host { target.clone() } else { format!("{}{target}", e.origin) };
    let _ = writeln!(out, "[[user.task.steps]]\n{} = {}", e.method.to_ascii_lowercase(), quote(&url));
    let written_name = name.split('?').next().unwrap_or(&name).to_string();
    if written_name != url {
        let _ = writeln!(out, "name = {}", quote(&written_name));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for (n, v) in &e.headers {
        if shared.iter().any(|(sn, sv)| sn.eq_ignore_ascii_case(n) && sv == v) {
            continue;
        }
        literal_braces(v)?;
        headers.push((n.clone(), t.within(v)));
    }
    write_body(out, e, &t, &mut headers, literal_braces)?;
    if !headers.is_empty() {
        let _ = writeln!(out, "headers = {}", inline_table(&headers));
    }
    if e.status.is_some_and(|s| (300..400).contains(&s)) {
        let _ = writeln!(out, "follow_redirects = false");
    }
    write_captures_and_check(out, index, e, captures);
    out.push('\n');
    Ok(())
}

fn write_body(
    out: &mut String,
    e: &Exchange,
    t: &Templater,
    headers: &mut Vec<(String, String)>,
    literal_braces: impl Fn(&str) -> Result<(), HarError>,
) -> Result<(), HarError> {
    let is_type = |n: &String| n.eq_ignore_ascii_case("content-type");
    match &e.body {
        Body::None => {}
        Body::Json(json) => {
            literal_braces(&json.to_string())?;
            match t.json(json) {
                Some(toml) if json.is_object() || json.is_array() => {
                    headers.retain(|(n, _)| !is_type(n));
                    let _ = writeln!(out, "json = {toml}");
                }
                _ => {
                    let _ = writeln!(out, "body = {}", quote(&t.within(&json.to_string())));
                    if !headers.iter().any(|(n, _)| is_type(n)) {
                        headers.push(("Content-Type".into(), "application/json".into()));
                    }
                }
            }
        }
        Body::Form(pairs) => {
            pairs.iter().try_for_each(|(k, v)| literal_braces(k).and(literal_braces(v)))?;
            let unique = pairs.iter().enumerate().all(|(i, (k, _))| pairs[..i].iter().all(|(o, _)| o != k));
            let sorted = pairs.windows(2).all(|w| w[0].0 <= w[1].0);
            if unique && sorted {
                headers.retain(|(n, _)| !is_type(n));
                let templated: Vec<(String, String)> =
                    pairs.iter().map(|(k, v)| (k.clone(), t.exact(v).unwrap_or_else(|| v.clone()))).collect();
                let _ = writeln!(out, "form = {}", inline_table(&templated));
            } else {
                // Order or repeated names matter to some servers: the body as recorded.
                let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
                let _ = writeln!(out, "body = {}", quote(&text.join("&")));
                headers.retain(|(n, _)| !is_type(n));
                headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
            }
        }
        Body::Text { content_type, text } => {
            literal_braces(text)?;
            let _ = writeln!(out, "body = {}", quote(&t.within(text)));
            headers.retain(|(n, _)| !is_type(n));
            headers.push(("Content-Type".into(), content_type.clone()));
        }
    }
    Ok(())
}

fn encode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    crate::http::url::percent_encode(text, &mut out);
    String::from_utf8(out).expect("percent-encoding is ASCII")
}

/// A regex whose first taking part group is the value of the input called `name`, with its
/// attributes in either order and either quotes (as the recording's HTML was read).
fn hidden_input_regex(name: &str) -> String {
    let name = format!(r#"\bname\s*=\s*["']{}["']"#, regex::escape(name));
    let value = r#"\bvalue\s*=\s*["']([^"']*)["']"#;
    format!(r#"(?i)<input\b[^>]*?(?:{name}[^>]*?{value}|{value}[^>]*?{name})"#)
}

fn write_captures_and_check(out: &mut String, index: usize, e: &Exchange, captures: &[Capture]) {
    let mine: Vec<&Capture> = captures.iter().filter(|c| c.step == index).collect();
    let mut json_paths = Vec::new();
    let mut entries = Vec::new();
    for c in &mine {
        let used: Vec<String> = c.uses.iter().map(|(s, p)| format!("step {} ({p})", s + 1)).collect();
        let (what, from) = match &c.source {
            Source::Json(path) => {
                json_paths.push(path.clone());
                (format!("{{ json = {} }}", quote(path)), format!("this response's JSON field {path}"))
            }
            Source::Header(name) => (format!("{{ header = {} }}", quote(name)), format!("its {name} header")),
            Source::Cookie(name) => (format!("{{ cookie = {} }}", quote(name)), format!("the cookie {name} it sets")),
            Source::Hidden(name) => {
                (format!("{{ regex = {} }}", quote(&hidden_input_regex(name))), format!("its hidden form input {name}"))
            }
        };
        let _ = writeln!(
            out,
            "# {}: from {from} (recorded {}); sent by {}",
            c.var,
            quote(&short(&c.value)),
            used.join(", ")
        );
        entries.push(format!("{} = {what}", c.var));
    }
    if !entries.is_empty() {
        let _ = writeln!(out, "capture = {{ {} }}", entries.join(", "));
    }
    let Some(status) = e.status else { return };
    let mut check = format!("status = {status}");
    if e.response_json && !json_paths.is_empty() {
        let exists: Vec<String> =
            json_paths.iter().map(|p| format!("{{ path = {}, exists = true }}", quote(p))).collect();
        let _ = write!(check, ", json = [{}]", exists.join(", "));
    }
    let _ = writeln!(out, "check = {{ {check} }}");
}

/// A recorded value for a comment: at most 40 characters.
fn short(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written capture finds a hidden input's value whichever order its attributes come in
    /// and whichever quotes they use (read as the engine reads a regex capture: the first group
    /// that took part), and not another input's.
    #[test]
    fn the_hidden_input_capture_reads_any_attribute_order_and_quotes() {
        let re = regex::Regex::new(&hidden_input_regex("csrf.token")).unwrap();
        let first_group = |html: &str| {
            re.captures(html).and_then(|c| c.iter().skip(1).flatten().next()).map(|m| m.as_str().to_string())
        };
        for html in [
            r#"<input type="hidden" name="csrf.token" value="abc">"#,
            r#"<input value="abc" type="hidden" name="csrf.token">"#,
            r#"<INPUT type='hidden' value='abc' name='csrf.token' />"#,
            "<form><input name=\"other\" value=\"no\">\n<input type=\"hidden\"\n name = \"csrf.token\" value = \"abc\"></form>",
        ] {
            assert_eq!(first_group(html).as_deref(), Some("abc"), "{html}");
        }
        assert_eq!(first_group(r#"<input name="csrfXtoken" value="no">"#), None, "the name is literal");
    }
}
