//! Scenario files (TOML): read with serde (every key known, every value typed), then compiled
//! into the `Plan` before any traffic. Every error names `file:line:col`, what was found and what
//! was expected. The format is documented in `scenarios/README.md`; a test checks that every key
//! accepted here is documented there.

mod body;
mod check;
mod file;
mod step;
pub mod template;
mod users;

use users::task_steps;

use file::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;

use crate::config::{
    Accept, Call, Capture, Check, CheckKind, DataFile, Endpoint, Escape, FileSettings, JsonOp, Message, Need, Needed,
    Part, Plan, Shape, Source, Step, Task, TaskKind, Template, Threshold, UserType, Vars, Wait,
};
use crate::http::Url;

/// A scenario file error with its position (line 0: the whole file).
#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            // About the whole file (it cannot be read, or is not a scenario file at all).
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            line => write!(f, "{}:{line}:{}: {}", self.file.display(), self.col, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// What the command line says beside the file (it wins where both say something).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub host: Option<String>,
    /// TLS flags (`--insecure`, `--ca-cert`, `--client-cert/--client-key`) for https hosts.
    pub tls: crate::tls::ClientOptions,
    /// Compile without touching the outside world (the fuzzer): hosts must be IP literals or
    /// localhost (no DNS), and data and body files are not read.
    pub sandbox: bool,
    /// A distributed worker's files: data and body files are read from here (by the path the
    /// scenario gives) instead of the disk.
    pub files: Option<std::sync::Arc<std::collections::HashMap<String, Vec<u8>>>>,
    pub timeout: Option<Duration>,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
}

/// Reads and compiles `path` into the scenario part of a plan (user types, endpoints, vars,
/// data, pools, setup/teardown) plus the file's run settings.
pub fn load(path: &Path, overrides: &Overrides, base: Plan) -> Result<(Plan, FileSettings), ScenarioError> {
    let fail = |message: String| ScenarioError { file: path.to_path_buf(), line: 0, col: 0, message };
    if path.extension().is_some_and(|e| e == "py") {
        return Err(fail(
            "swarmer reads TOML scenario files, not Python locustfiles; see scenarios/README.md for the format \
             (each Locust idea has its TOML form there)"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the scenario file: {e}")))?;
    compile_str(&text, path, overrides, base)
}

/// Compiles scenario `text` (read from `path`; relative data and body files resolve against
/// its directory).
pub fn compile_str(
    text: &str,
    path: &Path,
    overrides: &Overrides,
    base: Plan,
) -> Result<(Plan, FileSettings), ScenarioError> {
    let file: FileDef = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |span| span.start);
        let (line, col) = line_col(text, at);
        let mut message = toml_message(e.message());
        if message.is_empty() {
            // The parser gives no message for some bad characters (control characters).
            message = match text.get(at..).and_then(|rest| rest.chars().next()) {
                Some(c) => format!("invalid character {c:?} here (TOML allows no control characters but tab)"),
                None => "invalid TOML here".into(),
            };
        }
        ScenarioError { file: path.to_path_buf(), line, col, message }
    })?;
    let mut compiler = Compiler {
        text,
        path,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        plan: base,
        overrides,
        vars: Vars::default(),
        pools: Vec::new(),
        max_timeout: overrides.timeout.unwrap_or(crate::config::DEFAULT_TIMEOUT),
        tls_config: std::cell::OnceCell::new(),
        insecure_config: std::cell::OnceCell::new(),
        insecure_hosts: Vec::new(),
        https_hosts: Default::default(),
        constants: Vec::new(),
    };
    let settings = compiler.compile(file)?;
    compiler.plan.origin = path.display().to_string();
    Ok((compiler.plan, settings))
}

/// toml's message on one line, with serde's wording for one-key tables (a wait time, a capture
/// source) said plainly.
fn toml_message(message: &str) -> String {
    let message = message.trim();
    if message.starts_with("wanted exactly 1 element") {
        let found = if message.ends_with("more than 1 element") { "more than one" } else { "none" };
        return format!("expected exactly one key here (one wait kind, one capture source), found {found}");
    }
    message.split('\n').map(str::trim).collect::<Vec<_>>().join("; ")
}

/// A regex error on one line: `bad regex "(x": unclosed group`.
fn regex_message(pattern: &str, err: &regex::Error) -> String {
    let text = err.to_string();
    let reason = text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or(text.trim());
    format!("bad regex {pattern:?}: {reason}")
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Compiler<'a> {
    text: &'a str,
    path: &'a Path,
    dir: PathBuf,
    plan: Plan,
    overrides: &'a Overrides,
    vars: Vars,
    pools: Vec<String>,
    max_timeout: Duration,
    /// The client TLS configurations (verifying, and `insecure_hosts`'), built at first use.
    tls_config: std::cell::OnceCell<std::sync::Arc<rustls::ClientConfig>>,
    insecure_config: std::cell::OnceCell<std::sync::Arc<rustls::ClientConfig>>,
    /// `insecure_hosts` as host names, with their places in the file.
    insecure_hosts: Vec<(String, usize)>,
    /// The https hosts the file's requests go to (insecure hosts must name one of them).
    https_hosts: std::cell::RefCell<Vec<String>>,
    /// Slots of the `[vars]` constants: values known before the run (a URL's host may use them).
    constants: Vec<usize>,
}

/// Where relative paths of a user type go.
#[derive(Clone)]
struct Host {
    url: Url,
    addr: SocketAddr,
    tls: Option<crate::tls::Target>,
}

impl template::Scope for Compiler<'_> {
    fn var(&self, name: &str) -> Option<usize> {
        self.vars.slot(name)
    }
    fn pool(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p == name)
    }
}

/// What compiling a part of the file gives: the part, or the error with its place.
type Compiled<T> = Result<T, ScenarioError>;

impl Compiler<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let (line, col) = line_col(self.text, offset);
        ScenarioError { file: self.path.to_path_buf(), line, col, message: message.into() }
    }

    fn compile(&mut self, file: FileDef) -> Compiled<FileSettings> {
        self.insecure_hosts = file.insecure_hosts.iter().map(|h| self.insecure_host(h)).collect::<Compiled<_>>()?;
        let settings = self.settings(&file)?;
        self.declare(&file)?;
        let file_host = match (&self.overrides.host, &file.host) {
            (Some(host), _) => Some(self.host(host, None)?),
            (None, Some(host)) => Some(self.host(host.get_ref(), Some(host.span().start))?),
            (None, None) => None,
        };
        let user_types = self.user_types(&file.user_types, file_host.as_ref())?;
        self.plan.setup = self.steps(&file.setup, file_host.as_ref(), "setup")?;
        self.plan.teardown = self.steps(&file.teardown, file_host.as_ref(), "teardown")?;
        self.plan.user_types = user_types;
        self.plan.vars = std::mem::take(&mut self.vars);
        self.plan.pools = std::mem::take(&mut self.pools);
        self.plan.max_timeout = self.max_timeout;
        self.check_insecure_hosts()?;
        for text in &file.thresholds {
            let threshold = Threshold::parse(text.get_ref()).map_err(|e| self.error(text.span().start, e))?;
            self.plan.thresholds.push(threshold);
            self.plan.check_thresholds().map_err(|e| self.error(text.span().start, e.to_string()))?;
        }
        Ok(settings)
    }

    /// What the file says about the run (users, spawn rate, run time, shape), and its timeout.
    fn settings(&mut self, file: &FileDef) -> Compiled<FileSettings> {
        let shape = match (&file.stages, &file.shape) {
            (Some(_), Some(shape)) => return Err(self.error(shape.span().start, "give stages or shape, not both")),
            (Some(stages), None) => {
                Some(Shape::parse_stages(stages.get_ref()).map_err(|e| self.error(stages.span().start, e))?)
            }
            (None, Some(shape)) => {
                Some(Shape::parse_named(shape.get_ref()).map_err(|e| self.error(shape.span().start, e))?)
            }
            (None, None) => None,
        };
        let settings = FileSettings {
            users: file.users,
            spawn_rate: file.spawn_rate,
            run_time: file.run_time.as_ref().map(|d| self.positive_duration(d, "run_time")).transpose()?,
            shape,
        };
        if self.overrides.timeout.is_none() {
            if let Some(timeout) = &file.timeout {
                self.max_timeout = self.positive_duration(timeout, "timeout")?;
            }
        }
        Ok(settings)
    }

    /// Names first: constants, data columns, every capture, every pool, so any step may use what
    /// another defines (a capture in on_start, read by a task).
    fn declare(&mut self, file: &FileDef) -> Compiled<()> {
        for (name, value) in &file.vars {
            self.define(name, toml_to_json(value.get_ref()));
            self.constants.push(self.vars.slot(name).expect("just defined"));
        }
        let mut data_files = Vec::new();
        for data in &file.data {
            data_files.push(self.data_file(data)?);
        }
        self.plan.data = data_files;
        let user_steps = file.user_types.iter().flat_map(|u| {
            let u = u.get_ref();
            u.on_start.iter().chain(&u.on_stop).chain(u.tasks.iter().flat_map(|t| task_steps(t.get_ref())))
        });
        for step in file.setup.iter().chain(&file.teardown).chain(user_steps) {
            for name in step.get_ref().capture.keys() {
                self.define(name, Value::Null);
                // A captured name is no longer a constant.
                let slot = self.vars.slot(name).expect("just defined");
                self.constants.retain(|&c| c != slot);
            }
            for pool in step.get_ref().push.keys() {
                if !self.pools.contains(pool) {
                    self.pools.push(pool.clone());
                }
            }
        }
        Ok(())
    }

    fn define(&mut self, name: &str, value: Value) {
        if self.vars.slot(name).is_none() {
            self.vars.names.push(name.to_string());
            self.vars.initial.push(value);
        }
    }

    fn duration(&self, text: &Spanned<DurationDef>) -> Compiled<Duration> {
        text.get_ref().parse().map_err(|e| self.error(text.span().start, e))
    }

    /// A duration that must be above zero (`run_time`, timeouts): `what` names it in the error.
    fn positive_duration(&self, text: &Spanned<DurationDef>, what: &str) -> Compiled<Duration> {
        match self.duration(text)? {
            d if d.is_zero() => Err(self.error(text.span().start, format!("{what} 0: expected a duration above 0"))),
            d => Ok(d),
        }
    }

    fn host(&self, text: &str, offset: Option<usize>) -> Compiled<Host> {
        let fail = |message: String| match offset {
            Some(offset) => self.error(offset, message),
            None => self.error(0, format!("--host: {message}")),
        };
        let url = Url::parse(text).map_err(fail)?;
        let addr = if self.overrides.sandbox {
            let ip: std::net::IpAddr = match url.host.as_str() {
                "localhost" => [127, 0, 0, 1].into(),
                host => host.parse().map_err(|_| fail("host names are not resolved in a sandboxed compile".into()))?,
            };
            (ip, url.port).into()
        } else {
            url.resolve().map_err(|e| fail(format!("{e:#}")))?
        };
        let tls = match url.tls {
            true => {
                self.https_hosts.borrow_mut().push(url.host.to_ascii_lowercase());
                let insecure = self.insecure_hosts.iter().any(|(h, _)| h.eq_ignore_ascii_case(&url.host));
                let (cell, options) = match insecure {
                    true => (
                        &self.insecure_config,
                        crate::tls::ClientOptions { insecure: true, ..self.overrides.tls.clone() },
                    ),
                    false => (&self.tls_config, self.overrides.tls.clone()),
                };
                let config = match cell.get() {
                    Some(config) => config.clone(),
                    None => {
                        let config = crate::tls::client_config(&options).map_err(fail)?;
                        cell.get_or_init(|| config).clone()
                    }
                };
                Some(crate::tls::Target::new(config, &url.host).map_err(fail)?)
            }
            false => None,
        };
        Ok(Host { url, addr, tls })
    }

    /// An `insecure_hosts` entry as a host name: `host`, `host:port` or `https://host[:port]`
    /// name the host; anything else (a path, `http://`) is refused.
    fn insecure_host(&self, entry: &Spanned<String>) -> Compiled<(String, usize)> {
        let text = entry.get_ref().trim();
        let at = entry.span().start;
        let (rest, https) = match text.split_once("://") {
            Some((scheme, rest)) => (rest.trim_end_matches('/'), scheme.eq_ignore_ascii_case("https")),
            None => (text, true),
        };
        let host = match rest.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => rest.split(':').next().unwrap_or(""),
        };
        if !https || host.is_empty() || rest.contains('/') {
            let message = format!(
                "insecure_hosts {text:?}: expected a host name such as \"localhost\" or \"127.0.0.1:8443\" \
                 (an https:// URL's host also works)"
            );
            return Err(self.error(at, message));
        }
        Ok((host.to_ascii_lowercase(), at))
    }

    /// Every `insecure_hosts` entry must name a host an https request of the file goes to.
    fn check_insecure_hosts(&self) -> Compiled<()> {
        let used = self.https_hosts.borrow();
        for (host, at) in &self.insecure_hosts {
            if !used.contains(host) {
                let mut known: Vec<&str> = used.iter().map(String::as_str).collect();
                known.dedup();
                let message = match known.is_empty() {
                    true => format!("insecure_hosts \"{host}\": no request of the file goes to an https host"),
                    false => format!(
                        "insecure_hosts \"{host}\": no https request goes there; the https hosts are {}",
                        known.join(", ")
                    ),
                };
                return Err(self.error(*at, message));
            }
        }
        Ok(())
    }

    /// Text with holes filled in now, from values known before the run: `[vars]` constants and
    /// `env.NAME` (a URL's scheme and host).
    fn constant_text(&self, text: &str, at: usize) -> Compiled<String> {
        let template = self.template_at(text, at, Escape::Raw, &|s| s.to_string())?;
        let mut out = String::new();
        for part in &template.parts {
            match part {
                Part::Lit(lit) => out.push_str(lit),
                Part::Expr(crate::config::Expr::Var(slot), _) if self.constants.contains(slot) => {
                    match &self.vars.initial[*slot] {
                        Value::String(value) => out.push_str(value),
                        other => out.push_str(&other.to_string()),
                    }
                }
                Part::Expr(..) => {
                    return Err(self.error(
                        at,
                        "the scheme and host of a URL can use only values known before the run: [vars] \
                         constants and env.NAME (captures, data columns and functions change during it)",
                    ))
                }
            }
        }
        Ok(out)
    }

    /// A data or body file's bytes, by the path the scenario gives (relative to its
    /// directory): from the disk, remembered in the plan's `sources` (a master sends them to its
    /// workers), or from a worker's `files`.
    fn read_file(&mut self, written: &str) -> std::io::Result<Vec<u8>> {
        if let Some(files) = &self.overrides.files {
            return files.get(written).cloned().ok_or_else(|| std::io::ErrorKind::NotFound.into());
        }
        let bytes = std::fs::read(self.dir.join(written))?;
        if !self.plan.sources.iter().any(|(path, _)| path == written) {
            self.plan.sources.push((written.to_string(), bytes.clone()));
        }
        Ok(bytes)
    }

    fn data_file(&mut self, data: &Spanned<DataDef>) -> Compiled<DataFile> {
        let def = data.get_ref();
        let per_user = match def.mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("per_user") => true,
            Some("round_robin") => false,
            Some(other) => {
                let at = def.mode.as_ref().expect("some").span().start;
                return Err(
                    self.error(at, format!("unknown data mode \"{other}\"; expected \"per_user\" or \"round_robin\""))
                );
            }
        };
        if self.overrides.sandbox {
            return Err(self.error(def.file.span().start, "files are not read in a sandboxed compile"));
        }
        let file = self.dir.join(def.file.get_ref());
        let bytes = self
            .read_file(def.file.get_ref())
            .map_err(|e| self.error(def.file.span().start, format!("cannot read {}: {e}", file.display())))?;
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| self.error(def.file.span().start, format!("{}: {e}", file.display())))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| self.error(def.file.span().start, format!("{}: {e}", file.display())))?;
            rows.push(record.iter().map(|v| Value::String(v.to_string())).collect());
        }
        if rows.is_empty() {
            return Err(self.error(def.file.span().start, format!("{} has a header but no rows", file.display())));
        }
        let name = def.name.get_ref();
        let mut slots = Vec::new();
        for column in &headers {
            let var = format!("{name}.{column}");
            self.define(&var, Value::Null);
            slots.push(self.vars.slot(&var).expect("just defined"));
        }
        Ok(DataFile { name: name.clone(), slots, rows, per_user })
    }

    fn template(&self, text: &Spanned<String>, escape: Escape) -> Compiled<Template> {
        self.template_at(text.get_ref(), text.span().start, escape, &|s| s.to_string())
    }

    fn template_at(
        &self,
        text: &str,
        span_start: usize,
        escape: Escape,
        lit: &dyn Fn(&str) -> String,
    ) -> Compiled<Template> {
        template::parse(text, escape, self, lit).map_err(|e| {
            // The span starts at the opening quote; holes are placed exactly in strings without
            // escapes (the common case).
            let quote = self.text[span_start..].starts_with(['"', '\'']) as usize;
            self.error(span_start + quote + e.offset, e.message)
        })
    }
}

/// `data.items.0.id` → `/data/items/0/id`; a pointer is kept as it is.
fn to_pointer(path: &str) -> String {
    if path.starts_with('/') || path.is_empty() {
        path.to_string()
    } else {
        path.split('.').map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect()
    }
}

fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// Texts for reports (check messages, step paths) live as long as the process: made once per
/// plan, so `Failure` stays `Copy` on the hot path.
fn leak(text: String) -> &'static str {
    crate::failure::intern(text)
}
