//! The parts of a plan that scenario files add: requests built per send from templates, with
//! captures, checks and session effects, and the per-user variables they read and write.
//! Everything here is resolved when the plan is built (variables to slots, regexes compiled,
//! JSON bodies laid out around their holes); the engine only fills holes and compares values.

use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

/// Text with holes: literal parts and expressions evaluated per send.
#[derive(Clone, Debug, Default)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug)]
pub enum Part {
    Lit(String),
    Expr(Expr, Escape),
}

/// How an expression's value is written into its surroundings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// As text (paths are written as given; header values as given).
    Raw,
    /// Percent-encoded (query strings and form bodies).
    Url,
    /// Inside a JSON string: escaped, no quotes.
    JsonStr,
    /// A whole JSON value: numbers stay numbers, text becomes a JSON string.
    JsonValue,
}

/// What a `{{ … }}` hole can hold.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A user variable (constant, capture or data column), by slot.
    Var(usize),
    /// `random_int(a, b)`: uniform in a..=b.
    RandomInt(i64, i64),
    /// `random_choice("a", "b", …)`.
    Choice(Vec<String>),
    /// `uuid()`: a random version-4 UUID.
    Uuid,
    /// `user_index`: the user's global number, from 0.
    UserIndex,
    /// `counter`: 1, 2, 3 … per user, one step per use.
    Counter,
    /// `now` (Unix seconds) and `now_ms` (Unix milliseconds).
    Now,
    NowMs,
    /// `pool("name")`: a random value from a shared pool (per worker thread).
    Pool(usize),
    /// Failure messages only: a value of the response's JSON (`json.albumId`), by pointer.
    Json(String),
    /// Failure messages only: the response's status (`status`).
    Status,
}

impl Template {
    pub fn literal(text: &str) -> Template {
        Template { parts: vec![Part::Lit(text.to_string())] }
    }

    /// Appends `part`, merging it into the last part when both are literal (so a template of
    /// literals is one literal).
    pub fn push(&mut self, part: Part) {
        match (self.parts.last_mut(), part) {
            (Some(Part::Lit(prev)), Part::Lit(next)) => prev.push_str(&next),
            (_, part) => self.parts.push(part),
        }
    }

    /// Appends every part of `other`, as `push` does.
    pub fn extend(&mut self, other: Template) {
        for part in other.parts {
            self.push(part);
        }
    }

    /// The text when the template has no holes.
    pub fn as_literal(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(lit) => text.push_str(lit),
                Part::Expr(..) => return None,
            }
        }
        Some(text)
    }
}

/// A request step of a scenario: built per send, then checked, captured from, and applied to the
/// user's session.
#[derive(Clone, Debug)]
pub struct Call {
    pub endpoint: usize,
    pub method: String,
    pub addr: SocketAddr,
    /// HTTPS: the TLS configuration and server name.
    pub tls: Option<crate::tls::Target>,
    /// Host header value.
    pub authority: String,
    /// The request-target (path and query), templated.
    pub target: Template,
    /// Headers of this request; they replace the user's default headers of the same name.
    pub headers: Vec<(String, Template)>,
    /// The body and its Content-Type (JSON, form, raw, or a file's bytes).
    pub body: Option<(Option<String>, Template)>,
    pub is_head: bool,
    pub idempotent: bool,
    pub timeout: Duration,
    /// Redirects followed (3xx with Location, same scheme) before the response counts; 0 = none.
    pub max_redirects: u8,
    /// Statuses that count as success, and what a failure says otherwise; `None`: below 400.
    pub accept: Option<Accept>,
    pub checks: Vec<Check>,
    pub captures: Vec<Capture>,
    /// A failure ends the rest of the task (counted as an abort).
    pub required: bool,
    /// The step (and the rest of its task) is skipped, neither sent nor failed, while one of
    /// these pools is empty or variables unset (`needs`).
    pub needs: Vec<Need>,
    /// After a success: set the user's default headers.
    pub set_headers: Vec<(String, Template)>,
    /// After a success: push values into shared pools.
    pub push: Vec<(usize, Template)>,
    /// Where in the file this step is ("Reader / read a post / step 2"), for abort reports.
    pub path: &'static str,
}

/// One check on a response; `message` is what its failure says.
#[derive(Clone, Debug)]
pub struct Check {
    pub kind: CheckKind,
    pub message: Message,
}

/// What a failed check says: a text made when the plan is built, or (`message` with holes) a
/// template filled in from the user's variables and the response (`json.…`, `status`) when it
/// fails, and only then.
#[derive(Clone, Debug)]
pub enum Message {
    Text(&'static str),
    Template(Template),
}

/// The statuses a step accepts (`check.status`): `wanted` says them for the default failure
/// text ("status 403, expected 201"); `message` replaces that text.
#[derive(Clone, Debug)]
pub struct Accept {
    pub statuses: Vec<u16>,
    pub wanted: &'static str,
    pub message: Option<Message>,
}

/// What a step needs before it is sent (`needs`): a pool with a value in it, or a variable that
/// is set (not null); `unmet` says so when it is not (made once, when the plan is built).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub what: Needed,
    pub unmet: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needed {
    Pool(usize),
    Var(usize),
}

#[derive(Clone, Debug)]
pub enum CheckKind {
    BodyContains(String),
    BodyMatches(Regex),
    /// Header (lower-case name) present and matching.
    Header(String, Regex),
    MaxTime(Duration),
    /// A JSON value at a pointer compared.
    Json(String, JsonOp),
}

#[derive(Clone, Debug)]
pub enum JsonOp {
    Eq(Value),
    Ne(Value),
    /// Equal / not equal to a template's text (`eq = "{{ post_id }}"`): a string compares as
    /// itself, any other value as its JSON text.
    EqText(Template),
    NeText(Template),
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
    Exists(bool),
    OneOf(Vec<Value>),
    MultipleOf(f64),
    NotMultipleOf(f64),
}

/// A value taken from a response into a user variable. A capture that finds nothing fails the
/// request (its `message` says what was missing) and ends the task: later steps would use it.
#[derive(Clone, Debug)]
pub struct Capture {
    pub var: usize,
    pub source: Source,
    pub message: &'static str,
}

#[derive(Clone, Debug)]
pub enum Source {
    /// JSON pointer (`/data/0/id`).
    Json(String),
    /// Header, lower-case name.
    Header(String),
    Cookie(String),
    /// First capture group (or the whole match) of a regex over the body.
    Regex(Regex),
    Status,
    Body,
}

pub use crate::http::url::percent_encode;
