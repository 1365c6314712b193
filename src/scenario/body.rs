//! A step's body: JSON (the TOML value written as JSON, with holes in its strings), a form
//! (percent-encoded pairs), raw text, or a file's bytes, with the Content-Type each implies.

use super::*;

impl Compiler<'_> {
    /// The step's one body and its Content-Type (none for raw text), or no body.
    pub(super) fn body(&mut self, def: &StepDef, at: usize) -> Compiled<Option<(Option<String>, Template)>> {
        let bodies = [def.json.is_some(), def.form.is_some(), def.body.is_some(), def.body_file.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err(self.error(at, "a step has one body: json, form, body or body_file"));
        }
        if let Some(json) = &def.json {
            return Ok(Some((Some("application/json".to_string()), self.json_template(json)?)));
        }
        if let Some(form) = &def.form {
            let mut template = Template::default();
            self.pairs(form, "", &mut template)?;
            return Ok(Some((Some("application/x-www-form-urlencoded".to_string()), template)));
        }
        if let Some(body) = &def.body {
            return Ok(Some((None, self.template(body, Escape::Raw)?)));
        }
        let Some(file) = &def.body_file else { return Ok(None) };
        if self.overrides.sandbox {
            return Err(self.error(file.span().start, "files are not read in a sandboxed compile"));
        }
        let full = self.dir.join(file.get_ref());
        let bytes = self
            .read_file(file.get_ref())
            .map_err(|e| self.error(file.span().start, format!("cannot read {}: {e}", full.display())))?;
        Ok(Some((Some("application/octet-stream".to_string()), Template::literal(&String::from_utf8_lossy(&bytes)))))
    }

    /// A JSON body: the TOML value written as JSON, with holes in its strings. A string that is
    /// exactly one hole becomes the value itself (numbers stay numbers).
    fn json_template(&self, json: &Spanned<toml::Value>) -> Compiled<Template> {
        let mut template = Template::default();
        self.json_value(json.get_ref(), json.span(), &mut template)?;
        Ok(template)
    }

    /// `span` is the JSON value's table in the file: a string's own place is found in it (JSON
    /// values carry no spans of their own), for errors that point at the string.
    fn json_value(&self, value: &toml::Value, span: std::ops::Range<usize>, out: &mut Template) -> Compiled<()> {
        let at = match value {
            toml::Value::String(text) => {
                self.text[span.clone()].find(&format!("\"{text}")).map_or(span.start, |i| span.start + i)
            }
            _ => span.start,
        };
        match value {
            toml::Value::String(text) if template::is_single_hole(text) => {
                let hole = self.template_at(text.trim(), at, Escape::JsonValue, &|s| s.to_string())?;
                // A constant (env.X) comes back as a literal: write it as a JSON string.
                match hole.as_literal() {
                    Some(literal) => out.push(Part::Lit(serde_json::to_string(&literal).expect("string"))),
                    None => out.extend(hole),
                }
            }
            toml::Value::String(text) => {
                out.push(Part::Lit("\"".into()));
                let inner = self.template_at(text, at, Escape::JsonStr, &|s| {
                    let quoted = serde_json::to_string(s).expect("string");
                    quoted[1..quoted.len() - 1].to_string()
                })?;
                out.extend(inner);
                out.push(Part::Lit("\"".into()));
            }
            toml::Value::Array(items) => {
                out.push(Part::Lit("[".into()));
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(Part::Lit(",".into()));
                    }
                    self.json_value(item, span.clone(), out)?;
                }
                out.push(Part::Lit("]".into()));
            }
            toml::Value::Table(table) => {
                out.push(Part::Lit("{".into()));
                for (index, (key, item)) in table.iter().enumerate() {
                    let comma = if index > 0 { "," } else { "" };
                    out.push(Part::Lit(format!("{comma}{}:", serde_json::to_string(key).expect("string"))));
                    self.json_value(item, span.clone(), out)?;
                }
                out.push(Part::Lit("}".into()));
            }
            other => out.push(Part::Lit(toml_to_json(other).to_string())),
        }
        Ok(())
    }
}
