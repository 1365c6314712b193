//! One request step: method and URL (a path on the user's host or an absolute URL), query,
//! headers, body, timeout, redirects, captures and effects, compiled into a `config::Call`.

use super::*;

/// Where a step's request goes, and its request-target as written (with its place in the file).
struct Destination {
    addr: SocketAddr,
    tls: Option<crate::tls::Target>,
    authority: String,
    target: String,
    target_at: usize,
}

impl Destination {
    fn on(host: Host, target: String, target_at: usize) -> Destination {
        Destination { authority: host.url.authority(), addr: host.addr, tls: host.tls, target, target_at }
    }
}

impl Compiler<'_> {
    /// A list of steps; each labelled with its place (`User / task / step N`) for reports.
    pub(super) fn steps(&mut self, steps: &[Spanned<StepDef>], host: Option<&Host>, path: &str) -> Compiled<Vec<Step>> {
        let mut out = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let label = if steps.len() == 1 { path.to_string() } else { format!("{path} / step {}", index + 1) };
            if let Some(pause) = &step.get_ref().sleep {
                out.push(Step::Sleep(self.sleep(step.get_ref(), pause, step.span().start)?));
                continue;
            }
            out.push(Step::Call(Box::new(self.call(step, host, &label)?)));
        }
        Ok(out)
    }

    /// A `sleep` step: a duration (0 or more) and nothing else.
    fn sleep(&self, def: &StepDef, pause: &Spanned<DurationDef>, at: usize) -> Compiled<std::time::Duration> {
        if def.methods().next().is_some() {
            return Err(self.error(at, "a step is a request or a `sleep`, not both"));
        }
        self.duration(pause)
    }

    fn call(&mut self, step: &Spanned<StepDef>, host: Option<&Host>, path: &str) -> Compiled<Call> {
        let def = step.get_ref();
        let (method, url) = self.method(def, step.span().start)?;
        let to = self.destination(url, host)?;
        let mut target = self.template_at(&to.target, to.target_at, Escape::Raw, &|s| s.to_string())?;
        if !def.query.is_empty() {
            let separator = if to.target.contains('?') { "&" } else { "?" };
            self.pairs(&def.query, separator, &mut target)?;
        }
        let mut headers = Vec::new();
        for (name, value) in &def.headers {
            headers.push((name.clone(), self.template(value, Escape::Raw)?));
        }
        let body = self.body(def, step.span().start)?;
        let timeout = match &def.timeout {
            Some(t) => self.positive_duration(t, "timeout")?,
            None => self.overrides.timeout.unwrap_or(self.max_timeout),
        };
        self.max_timeout = self.max_timeout.max(timeout);
        let max_redirects = match (def.follow_redirects, &def.max_redirects) {
            (Some(false), _) => 0,
            (_, Some(n)) => u8::try_from(*n.get_ref())
                .map_err(|_| self.error(n.span().start, "max_redirects: expected 0 to 255"))?,
            _ => 10,
        };
        let (accept, checks) = match &def.check {
            Some(check) => self.checks(check)?,
            None => (None, Vec::new()),
        };
        let (set_headers, push) = self.effects(def)?;
        let name = def.name.clone().unwrap_or_else(|| target.as_literal().unwrap_or_else(|| to.target.clone()));
        Ok(Call {
            endpoint: self.endpoint(method, &name),
            is_head: method == "HEAD",
            idempotent: matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"),
            method: method.to_string(),
            addr: to.addr,
            tls: to.tls,
            authority: to.authority,
            target,
            headers,
            body,
            timeout,
            max_redirects,
            accept,
            checks,
            captures: self.captures(def)?,
            required: def.required,
            needs: self.needs(def)?,
            set_headers,
            push,
            path: leak(path.to_string()),
        })
    }

    /// The step's one method and its URL.
    fn method<'d>(&self, def: &'d StepDef, at: usize) -> Compiled<(&'static str, &'d Spanned<String>)> {
        let mut given = def.methods();
        let Some((method, url)) = given.next() else {
            return Err(
                self.error(at, "a step needs a method and a path: one of get, post, put, patch, delete, head, options")
            );
        };
        if let Some((second, url2)) = given.next() {
            return Err(
                self.error(url2.span().start, format!("a step has one method; {method} and {second} both given"))
            );
        }
        Ok((method, url))
    }

    /// Where a step's URL goes: an absolute URL, or a path on the user's host. An absolute URL's
    /// scheme and host may come from constants (`"{{ auth_host }}/login"`): they are filled in
    /// here; a constant that holds a path as well starts the request-target with it.
    fn destination(&self, url: &Spanned<String>, host: Option<&Host>) -> Compiled<Destination> {
        let raw = url.get_ref();
        let at = url.span().start;
        let end = origin_end(raw);
        let origin = match raw[..end].contains("{{") {
            true => self.constant_text(&raw[..end], at)?,
            false => raw[..end].to_string(),
        };
        if origin.starts_with("http://") || origin.starts_with("https://") {
            // The origin may carry a path of its own (from a constant): it leads the target.
            let after_scheme = origin.find("://").expect("checked") + 3;
            let path_start = origin[after_scheme..].find('/').map_or(origin.len(), |i| after_scheme + i);
            let host = self.host(&origin[..path_start], Some(at))?;
            let target = format!("{}{}", &origin[path_start..], &raw[end..]);
            let target = if target.is_empty() { "/".to_string() } else { target };
            return Ok(Destination::on(host, target, at + end));
        }
        if raw.starts_with('/') {
            let Some(host) = host else {
                return Err(self.error(
                    at,
                    "a relative path needs a host: set `host` at the top of the file or in [[user]], or pass -H/--host",
                ));
            };
            return Ok(Destination::on(host.clone(), raw.clone(), at));
        }
        Err(self.error(at, format!("\"{raw}\": expected a path starting with / or an http:// URL")))
    }

    /// `key=value` pairs (a query string or a form body) appended to `out`, percent-encoded;
    /// the first after `separator`, the others after `&`.
    pub(super) fn pairs(
        &self,
        pairs: &BTreeMap<String, Spanned<toml::Value>>,
        separator: &str,
        out: &mut Template,
    ) -> Compiled<()> {
        let mut separator = separator;
        for (key, value) in pairs {
            out.push(Part::Lit(format!("{separator}{}=", url_lit(key))));
            out.extend(self.value_template(value, Escape::Url, &url_lit)?);
            separator = "&";
        }
        Ok(())
    }

    /// The step's captures, each with the text it fails with when it finds nothing.
    fn captures(&self, def: &StepDef) -> Compiled<Vec<Capture>> {
        let mut captures = Vec::new();
        for (var, capture) in &def.capture {
            let slot = self.vars.slot(var).expect("captures are defined up front");
            let (source, what) = match capture.get_ref() {
                CaptureDef::Json(pointer) => (Source::Json(to_pointer(pointer)), format!("JSON {pointer}")),
                CaptureDef::Header(name) => (Source::Header(name.to_ascii_lowercase()), format!("header {name}")),
                CaptureDef::Cookie(name) => (Source::Cookie(name.clone()), format!("cookie {name}")),
                CaptureDef::Regex(pattern) => {
                    let regex = regex::Regex::new(pattern)
                        .map_err(|e| self.error(capture.span().start, regex_message(pattern, &e)))?;
                    (Source::Regex(regex), format!("regex /{pattern}/"))
                }
                CaptureDef::Status(true) => (Source::Status, "status".to_string()),
                CaptureDef::Body(true) => (Source::Body, "body".to_string()),
                CaptureDef::Status(false) | CaptureDef::Body(false) => {
                    return Err(
                        self.error(capture.span().start, "write `status = true` / `body = true`, or leave it out")
                    )
                }
            };
            captures.push(Capture { var: slot, source, message: leak(format!("capture `{var}`: {what} not found")) });
        }
        Ok(captures)
    }

    /// What the step needs before it is sent: each name a pool (a value in it) or a variable
    /// (set, not null).
    fn needs(&self, def: &StepDef) -> Compiled<Vec<Need>> {
        let mut needs = Vec::new();
        for name in &def.needs {
            let text = name.get_ref();
            let need = match (self.pools.iter().position(|p| p == text), self.vars.slot(text)) {
                (Some(pool), _) => Need { what: Needed::Pool(pool), unmet: leak(format!("pool \"{text}\" is empty")) },
                (None, Some(slot)) => Need { what: Needed::Var(slot), unmet: leak(format!("`{text}` is not set")) },
                (None, None) => {
                    let message = format!(
                        "needs {:?}: no pool (filled by `push`) or variable ([vars], a capture, a data column) of that name",
                        name.get_ref()
                    );
                    return Err(self.error(name.span().start, message));
                }
            };
            needs.push(need);
        }
        Ok(needs)
    }

    /// What a successful step does to the session: headers set, values pushed into pools.
    #[allow(clippy::type_complexity)]
    fn effects(&self, def: &StepDef) -> Compiled<(Vec<(String, Template)>, Vec<(usize, Template)>)> {
        let mut set_headers = Vec::new();
        for (name, value) in &def.set_header {
            set_headers.push((name.clone(), self.template(value, Escape::Raw)?));
        }
        let mut push = Vec::new();
        for (pool, value) in &def.push {
            let index = self.pools.iter().position(|p| p == pool).expect("pools are defined up front");
            push.push((index, self.template(value, Escape::Raw)?));
        }
        Ok((set_headers, push))
    }

    fn endpoint(&mut self, method: &str, name: &str) -> usize {
        let endpoints = &mut self.plan.endpoints;
        match endpoints.iter().position(|e| e.method == method && e.name == name) {
            Some(index) => index,
            None => {
                endpoints.push(Endpoint { method: method.to_string(), name: name.to_string() });
                endpoints.len() - 1
            }
        }
    }

    /// A query or form value: strings are templates; numbers and booleans are their text.
    fn value_template(
        &self,
        value: &Spanned<toml::Value>,
        escape: Escape,
        lit: &dyn Fn(&str) -> String,
    ) -> Compiled<Template> {
        match value.get_ref() {
            toml::Value::String(text) => self.template_at(text, value.span().start, escape, lit),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                Ok(Template::literal(&lit(&value.get_ref().to_string())))
            }
            other => Err(self.error(
                value.span().start,
                format!("expected a string, number or boolean, found {}", other.type_str()),
            )),
        }
    }
}

/// Where a URL's scheme and host end: the first `/` that is neither in `://` nor in a `{{ }}`.
fn origin_end(raw: &str) -> usize {
    let mut in_hole = false;
    let mut i = 0;
    while i < raw.len() {
        let rest = &raw[i..];
        if rest.starts_with("{{") || rest.starts_with("}}") {
            in_hole = rest.starts_with("{{");
            i += 2;
        } else if !in_hole && rest.starts_with("://") {
            i += 3;
        } else if !in_hole && rest.starts_with('/') {
            return i;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    raw.len()
}

fn url_lit(text: &str) -> String {
    let mut out = Vec::new();
    crate::config::percent_encode(text, &mut out);
    String::from_utf8(out).expect("ASCII")
}
