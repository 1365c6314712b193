//! A step's `check` table compiled into the statuses it accepts and its checks, each with the
//! failure text it reports.

use super::*;

/// Names as a failure message sees them: the user's variables and the response.
struct ResponseScope<'a, 'c>(&'a Compiler<'c>);

impl template::Scope for ResponseScope<'_, '_> {
    fn var(&self, name: &str) -> Option<usize> {
        self.0.vars.slot(name)
    }
    fn pool(&self, name: &str) -> Option<usize> {
        self.0.pools.iter().position(|p| p == name)
    }
    fn response(&self) -> bool {
        true
    }
}

impl Compiler<'_> {
    /// A step's `check` table: the statuses it accepts (with the failure text) and its checks.
    pub(super) fn checks(&self, check: &Spanned<CheckDef>) -> Compiled<(Option<Accept>, Vec<Check>)> {
        let def = check.get_ref();
        let custom = def.message.as_ref().map(|m| self.message(m)).transpose()?;
        let message = |generated: String| custom.clone().unwrap_or_else(|| Message::Text(leak(generated)));
        let mut checks = Vec::new();
        let accept = def.status.as_ref().map(|status| {
            let statuses = match status {
                StatusDef::One(code) => vec![*code],
                StatusDef::Any(codes) => codes.clone(),
            };
            let wanted = match statuses.as_slice() {
                [one] => one.to_string(),
                [many @ .., last] => {
                    let many: Vec<String> = many.iter().map(u16::to_string).collect();
                    format!("{} or {last}", many.join(", "))
                }
                [] => "none".to_string(),
            };
            Accept { statuses, wanted: leak(wanted), message: custom.clone() }
        });
        if let Some(needle) = &def.body_contains {
            checks.push(Check {
                kind: CheckKind::BodyContains(needle.clone()),
                message: message(format!("body contains {needle:?}")),
            });
        }
        if let Some(pattern) = &def.body_matches {
            let regex = regex::Regex::new(pattern.get_ref())
                .map_err(|e| self.error(pattern.span().start, regex_message(pattern.get_ref(), &e)))?;
            checks.push(Check {
                kind: CheckKind::BodyMatches(regex),
                message: message(format!("body matches /{}/", pattern.get_ref())),
            });
        }
        for (name, pattern) in &def.headers {
            let regex = regex::Regex::new(pattern.get_ref())
                .map_err(|e| self.error(pattern.span().start, regex_message(pattern.get_ref(), &e)))?;
            checks.push(Check {
                kind: CheckKind::Header(name.to_ascii_lowercase(), regex),
                message: message(format!("header {name} matches /{}/", pattern.get_ref())),
            });
        }
        if let Some(bound) = &def.max_time {
            let limit = self.duration(bound)?;
            checks.push(Check {
                kind: CheckKind::MaxTime(limit),
                message: message(format!("response time ≤ {}", bound.get_ref())),
            });
        }
        for json in &def.json {
            checks.extend(self.json_checks(json, &message)?);
        }
        Ok((accept, checks))
    }

    /// The checks of one `json` entry: one per comparison it gives.
    fn json_checks(&self, json: &Spanned<JsonCheckDef>, message: &dyn Fn(String) -> Message) -> Compiled<Vec<Check>> {
        let mut checks = Vec::new();
        let j = json.get_ref();
        let pointer = to_pointer(&j.path);
        let ops: Vec<(JsonOp, String)> = [
            j.eq.as_ref().map(|v| self.json_equality(v, json.span().start, true, &j.path)).transpose()?,
            j.ne.as_ref().map(|v| self.json_equality(v, json.span().start, false, &j.path)).transpose()?,
            j.lt.map(|v| (JsonOp::Lt(v), format!("{} < {v}", j.path))),
            j.le.map(|v| (JsonOp::Le(v), format!("{} <= {v}", j.path))),
            j.gt.map(|v| (JsonOp::Gt(v), format!("{} > {v}", j.path))),
            j.ge.map(|v| (JsonOp::Ge(v), format!("{} >= {v}", j.path))),
            j.exists
                .map(|v| (JsonOp::Exists(v), format!("{} {}", j.path, if v { "exists" } else { "does not exist" }))),
            j.one_of.as_ref().map(|v| {
                let values: Vec<Value> = v.iter().map(toml_to_json).collect();
                let text = format!("{} is one of {}", j.path, Value::Array(values.clone()));
                (JsonOp::OneOf(values), text)
            }),
            j.multiple_of.map(|v| (JsonOp::MultipleOf(v), format!("{} is a multiple of {v}", j.path))),
            j.not_multiple_of.map(|v| (JsonOp::NotMultipleOf(v), format!("{} is not a multiple of {v}", j.path))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if ops.is_empty() {
            return Err(self.error(
                json.span().start,
                "a JSON check needs a comparison: eq, ne, lt, le, gt, ge, exists, one_of, multiple_of or not_multiple_of",
            ));
        }
        for (op, text) in ops {
            if matches!(op, JsonOp::MultipleOf(m) | JsonOp::NotMultipleOf(m) if m == 0.0) {
                return Err(self.error(json.span().start, "multiple_of 0: expected a non-zero number"));
            }
            checks.push(Check { kind: CheckKind::Json(pointer.clone(), op), message: message(text) });
        }
        Ok(checks)
    }

    /// A step's own failure text: fixed, or a template over the user's variables and the
    /// response (`{{ json.albumId }}`, `{{ status }}`), filled in when a check fails.
    fn message(&self, text: &Spanned<String>) -> Compiled<Message> {
        if !text.get_ref().contains("{{") {
            return Ok(Message::Text(leak(text.get_ref().clone())));
        }
        let scope = ResponseScope(self);
        let template = template::parse(text.get_ref(), Escape::Raw, &scope, &|s| s.to_string()).map_err(|e| {
            let quote = self.text[text.span().start..].starts_with(['"', '\'']) as usize;
            self.error(text.span().start + quote + e.offset, e.message)
        })?;
        Ok(Message::Template(template))
    }

    /// `eq` / `ne`: a plain value, or a string with holes compared as text.
    fn json_equality(&self, value: &toml::Value, at: usize, eq: bool, path: &str) -> Compiled<(JsonOp, String)> {
        let sign = if eq { "==" } else { "!=" };
        if let toml::Value::String(text) = value {
            if text.contains("{{") {
                let template = self.template_at(text, at, Escape::Raw, &|s| s.to_string())?;
                let op = if eq { JsonOp::EqText(template) } else { JsonOp::NeText(template) };
                return Ok((op, format!("{path} {sign} {text}")));
            }
        }
        let json = toml_to_json(value);
        let text = format!("{path} {sign} {json}");
        Ok((if eq { JsonOp::Eq(json) } else { JsonOp::Ne(json) }, text))
    }
}
