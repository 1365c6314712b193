//! Judging a scenario response: the step's status and checks (body, headers, time, JSON values)
//! in order, with the failure's message filled in when a check fails; and the step's captures
//! into the user's variables. JSON is read by walking the body to the pointer without building
//! the document.

use std::time::Duration;

use rand::rngs::SmallRng;
use serde_json::Value;

use super::session::{value_text, Session, Shared};
use crate::config::{Call, Check, CheckKind, Expr, JsonOp, Message, Part, Source};
use crate::failure::Failure;
use crate::http::cookie;
use crate::http::Kept;

/// The first of `call`'s status and checks that `kept` (a complete response) fails, with its
/// message filled in; `None` when it passes them all.
pub(crate) fn judge(
    session: &mut Session,
    call: &Call,
    status: u16,
    elapsed: Duration,
    kept: &Kept,
    shared: &Shared,
    rng: &mut SmallRng,
) -> Option<Failure> {
    match &call.accept {
        Some(accept) if !accept.statuses.contains(&status) => {
            return Some(match &accept.message {
                Some(message) => Failure::Check(say(message, session, status, kept, shared, rng)),
                None => Failure::Expected { status, wanted: accept.wanted },
            })
        }
        Some(_) => {}
        None if status >= 400 => return Some(Failure::Status(status)),
        None => {}
    }
    let failed = call.checks.iter().find(|check| !passes(session, check, elapsed, kept, shared, rng))?;
    Some(Failure::Check(say(&failed.message, session, status, kept, shared, rng)))
}

/// A failure message: fixed, or filled in now from the variables and the response (interned,
/// so the failure stays `Copy`).
fn say(
    message: &Message,
    session: &mut Session,
    status: u16,
    kept: &Kept,
    shared: &Shared,
    rng: &mut SmallRng,
) -> &'static str {
    let template = match message {
        Message::Text(text) => return text,
        Message::Template(template) => template,
    };
    let mut out = String::new();
    for part in &template.parts {
        match part {
            Part::Lit(text) => out.push_str(text),
            Part::Expr(Expr::Status, _) => out.push_str(&status.to_string()),
            Part::Expr(Expr::Json(pointer), _) => match json_lookup(&kept.body, pointer) {
                Some(value) => {
                    value_text(&value, &mut out);
                }
                None => out.push_str("(none)"),
            },
            Part::Expr(expr, _) => {
                let mut text = String::new();
                match session.eval(expr, shared, rng, &mut text) {
                    Ok(_) => out.push_str(&text),
                    Err(_) => out.push_str("(none)"),
                }
            }
        }
    }
    crate::failure::intern_rendered(out)
}

/// Takes `call`'s captures from `kept` into the user's variables; `Err(message)` names the
/// first that found nothing (the task then ends: later steps would use the value).
pub(crate) fn capture(session: &mut Session, call: &Call, status: u16, kept: &Kept) -> Result<(), &'static str> {
    for capture in &call.captures {
        let value = match &capture.source {
            Source::Json(pointer) => json_lookup(&kept.body, pointer),
            Source::Header(name) => kept.header(name).map(|v| Value::String(v.to_string())),
            Source::Cookie(name) => cookie::set_by(kept, name).map(Value::String),
            Source::Regex(regex) => {
                let body = String::from_utf8_lossy(&kept.body);
                regex.captures(&body).map(|caps| {
                    // The first group that took part in the match (alternatives may each have
                    // their own), else the whole match.
                    let m = caps.iter().skip(1).flatten().next().or_else(|| caps.get(0)).expect("a match has group 0");
                    Value::String(m.as_str().to_string())
                })
            }
            Source::Status => Some(Value::from(status)),
            Source::Body => Some(Value::String(String::from_utf8_lossy(&kept.body).into_owned())),
        };
        match value {
            Some(value) => session.vars[capture.var] = value,
            None => return Err(capture.message),
        }
    }
    Ok(())
}

/// Whether the response passes one check.
fn passes(
    session: &mut Session,
    check: &Check,
    elapsed: Duration,
    kept: &Kept,
    shared: &Shared,
    rng: &mut SmallRng,
) -> bool {
    match &check.kind {
        CheckKind::BodyContains(needle) => memmem(&kept.body, needle.as_bytes()),
        CheckKind::BodyMatches(regex) => regex.is_match(&String::from_utf8_lossy(&kept.body)),
        CheckKind::Header(name, regex) => kept.header(name).is_some_and(|value| regex.is_match(value)),
        CheckKind::MaxTime(bound) => elapsed <= *bound,
        CheckKind::Json(pointer, JsonOp::EqText(template) | JsonOp::NeText(template)) => {
            let Ok(want) = session.render_string(template, shared, rng) else { return false };
            let found = json_lookup(&kept.body, pointer).map(|v| {
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
        CheckKind::Json(pointer, op) => json_check(json_lookup(&kept.body, pointer).as_ref(), op),
    }
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

/// Visitor methods for scalars, each finding nothing.
macro_rules! leads_nowhere {
    ($($name:ident($t:ty)),*) => {
        $(fn $name<E>(self, _: $t) -> Result<Self::Value, E> {
            Ok(None)
        })*
    };
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
    leads_nowhere!(visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_str(&str));

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
