//! A scenario user's session: its variables, default headers and cookie jar, and the request
//! bytes filled in from them (templates rendered into a reused buffer) before each send.
//!
//! Buffers live in the session and are reused; what allocates here (captured values, cookies)
//! is what the scenario asked to keep.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::Value;

use crate::config::{percent_encode, Call, Escape, Expr, Part, Plan, Template};
use crate::http::cookie::Jar;
use crate::http::request::put_header;

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
    /// The value of a `Cookie` header the request sets itself, merged with the jar's.
    cookie: Vec<u8>,
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
            cookie: Vec::new(),
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
    pub(crate) fn eval(
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
            // The plan builder allows these in failure messages only, which `check` fills in.
            Expr::Json(_) | Expr::Status => {
                return Err(RenderError("the response is read in failure messages only".into()))
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

    /// The default headers (unless the call sets the same name), the call's own, and one
    /// `Cookie` field: a value the request sets itself joined with the jar's cookies.
    fn write_headers(
        &mut self,
        call: &Call,
        shared: &Shared,
        rng: &mut SmallRng,
        wbuf: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let mut given = std::mem::take(&mut self.cookie);
        given.clear();
        for (name, value) in &self.headers {
            if call.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                continue;
            }
            match name.eq_ignore_ascii_case("cookie") {
                true => given.extend_from_slice(value.as_bytes()),
                false => put_header(wbuf, name.as_bytes(), value.as_bytes()),
            }
        }
        let mut result = Ok(());
        for (name, value) in &call.headers {
            if name.eq_ignore_ascii_case("cookie") {
                result = self.render(value, shared, rng, &mut given);
            } else {
                wbuf.extend_from_slice(name.as_bytes());
                wbuf.extend_from_slice(b": ");
                result = self.render(value, shared, rng, wbuf);
                wbuf.extend_from_slice(b"\r\n");
            }
            if result.is_err() {
                break;
            }
        }
        self.cookies.header_for(&call.authority, path_of(&call.target), &given, wbuf);
        self.cookie = given;
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
        self.write_headers(call, shared, rng, wbuf)?;
        if let Some((content_type, template)) = &call.body {
            self.render(template, shared, rng, body)?;
            let overridden = |name: &str| {
                call.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
                    || self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            };
            if let Some(content_type) = content_type {
                if !overridden("content-type") {
                    put_header(wbuf, b"Content-Type", content_type.as_bytes());
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
}

/// Writes a variable's value as text; true for non-string values (see `eval`).
pub(crate) fn value_text(value: &Value, text: &mut String) -> bool {
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

/// The literal path prefix of a target template (cookies match on it).
fn path_of(target: &Template) -> &str {
    match target.parts.first() {
        Some(Part::Lit(text)) => text.split(['?', '#']).next().unwrap_or("/"),
        _ => "/",
    }
}
