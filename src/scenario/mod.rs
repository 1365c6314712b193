//! Scenario files (TOML): read with serde (every key known, every value typed), then compiled
//! into the `Plan` before any traffic. Every error names `file:line:col`, what was found and what
//! was expected. The format is documented in `scenarios/README.md`; a test checks that every key
//! accepted here is documented there.

pub mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::config::{
    Call, Capture, Check, CheckKind, DataFile, Endpoint, Escape, JsonOp, Part, Plan, Shape, Source, Step, Task,
    TaskKind, Template, Threshold, UserType, Vars, Wait,
};
use crate::http::Url;
use crate::units::parse_duration;

/// A scenario file error with its position.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
    }
}

impl std::error::Error for ScenarioError {}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    pub host: Option<Spanned<String>>,
    pub users: Option<u64>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<Spanned<String>>,
    /// Load shape: `stages = "30s:100,1m:100,30s:0"` or `shape = "gaussian"`.
    pub stages: Option<Spanned<String>>,
    pub shape: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    /// HTTPS hosts whose certificates are not verified (as `--insecure`, for these hosts only).
    #[serde(default)]
    pub insecure_hosts: Vec<String>,
    #[serde(default)]
    pub thresholds: Vec<Spanned<String>>,
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub data: Vec<Spanned<DataDef>>,
    #[serde(default)]
    pub setup: Vec<Spanned<StepDef>>,
    #[serde(default)]
    pub teardown: Vec<Spanned<StepDef>>,
    #[serde(default, rename = "user")]
    pub user_types: Vec<Spanned<UserDef>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DataDef {
    pub name: Spanned<String>,
    pub file: Spanned<String>,
    /// `per_user` (default) or `round_robin`.
    pub mode: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct UserDef {
    pub name: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub fixed_count: Option<Spanned<u64>>,
    pub host: Option<Spanned<String>>,
    pub wait_time: Option<Spanned<WaitDef>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub on_start: Vec<Spanned<StepDef>>,
    #[serde(default)]
    pub on_stop: Vec<Spanned<StepDef>>,
    #[serde(default, rename = "task")]
    pub tasks: Vec<Spanned<TaskDef>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitDef {
    Constant(String),
    Between([String; 2]),
    ConstantPacing(String),
    /// Tasks per second per user.
    ConstantThroughput(f64),
    /// Mean task starts per second per user, Poisson arrivals.
    Poisson(f64),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct TaskDef {
    pub name: Option<String>,
    pub weight: Option<Spanned<i64>>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub repeat: Option<Spanned<i64>>,
    /// Shape 1: one request.
    pub request: Option<Spanned<StepDef>>,
    /// Shape 2: a sequence of steps.
    pub steps: Option<Vec<Spanned<StepDef>>>,
    /// Shape 3: a nested task set.
    pub tasks: Option<Vec<Spanned<TaskDef>>>,
    pub sequential: Option<bool>,
    pub interrupt_weight: Option<Spanned<i64>>,
    pub interrupt_probability: Option<Spanned<f64>>,
    pub loops: Option<Spanned<i64>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub get: Option<Spanned<String>>,
    pub post: Option<Spanned<String>>,
    pub put: Option<Spanned<String>>,
    pub patch: Option<Spanned<String>>,
    pub delete: Option<Spanned<String>>,
    pub head: Option<Spanned<String>>,
    pub options: Option<Spanned<String>>,
    pub name: Option<String>,
    #[serde(default)]
    pub query: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub json: Option<Spanned<toml::Value>>,
    pub form: Option<BTreeMap<String, Spanned<toml::Value>>>,
    pub body: Option<Spanned<String>>,
    pub body_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<Spanned<i64>>,
    #[serde(default)]
    pub capture: BTreeMap<String, Spanned<CaptureDef>>,
    pub check: Option<Spanned<CheckDef>>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub set_header: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub push: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CaptureDef {
    Json(String),
    Header(String),
    Cookie(String),
    Regex(String),
    Status(bool),
    Body(bool),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    pub status: Option<StatusDef>,
    pub body_contains: Option<String>,
    pub body_matches: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub max_time: Option<Spanned<String>>,
    #[serde(default)]
    pub json: Vec<Spanned<JsonCheckDef>>,
    /// Replaces the generated failure text of every check of this step.
    pub message: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum StatusDef {
    One(u16),
    Any(Vec<u16>),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct JsonCheckDef {
    pub path: String,
    pub eq: Option<toml::Value>,
    pub ne: Option<toml::Value>,
    pub lt: Option<f64>,
    pub le: Option<f64>,
    pub gt: Option<f64>,
    pub ge: Option<f64>,
    pub exists: Option<bool>,
    pub one_of: Option<Vec<toml::Value>>,
    pub multiple_of: Option<f64>,
    pub not_multiple_of: Option<f64>,
}

// ---------------------------------------------------------------------------------------------
// Loading and compiling.

/// What the command line says beside the file (it wins where both say something).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub host: Option<String>,
    /// TLS flags (`--insecure`, `--ca-cert`, `--client-cert/--client-key`) for https hosts.
    pub tls: crate::tls::ClientOptions,
    /// Compile without touching the outside world (the fuzzer): hosts must be IP literals or
    /// localhost (no DNS), and data and body files are not read.
    pub sandbox: bool,
    pub timeout: Option<Duration>,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
}

/// Run settings the file may give (users, spawn rate, run time, load shape) for the command
/// line to override.
pub type FileSettings = crate::config::RunDefaults;

/// Reads and compiles `path` into the scenario part of a plan (user types, endpoints, vars,
/// data, pools, setup/teardown) plus the file's run settings.
pub fn load(path: &Path, overrides: &Overrides, base: Plan) -> Result<(Plan, FileSettings), ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        line: 0,
        col: 0,
        message: format!("cannot read the scenario file: {e}"),
    })?;
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
        max_timeout: overrides.timeout.unwrap_or(Duration::from_secs(60)),
        tls_config: std::cell::OnceCell::new(),
        insecure_config: std::cell::OnceCell::new(),
        insecure_hosts: Vec::new(),
    };
    let settings = compiler.compile(file)?;
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
    insecure_hosts: Vec<String>,
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

type Result2<T> = Result<T, ScenarioError>;

/// Accepted statuses and the failure text otherwise.
type Accept = (Vec<u16>, &'static str);

impl Compiler<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let (line, col) = line_col(self.text, offset);
        ScenarioError { file: self.path.to_path_buf(), line, col, message: message.into() }
    }

    fn compile(&mut self, file: FileDef) -> Result2<FileSettings> {
        self.insecure_hosts = file.insecure_hosts.clone();
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
            run_time: file.run_time.as_ref().map(|d| self.duration(d)).transpose()?,
            shape,
        };
        if self.overrides.timeout.is_none() {
            if let Some(timeout) = &file.timeout {
                self.max_timeout = self.duration(timeout)?;
            }
        }
        // Names first: constants, data columns, every capture, every pool, so any step may use
        // what another defines (a capture in on_start, read by a task).
        for (name, value) in &file.vars {
            self.define(name, toml_to_json(value.get_ref()));
        }
        let mut data_files = Vec::new();
        for data in &file.data {
            data_files.push(self.data_file(data)?);
        }
        let all_steps = file
            .setup
            .iter()
            .chain(&file.teardown)
            .chain(file.user_types.iter().flat_map(|u| {
                let u = u.get_ref();
                u.on_start.iter().chain(&u.on_stop).chain(u.tasks.iter().flat_map(|t| task_steps(t.get_ref())))
            }))
            .collect::<Vec<_>>();
        for step in &all_steps {
            for name in step.get_ref().capture.keys() {
                self.define(name, Value::Null);
            }
            for pool in step.get_ref().push.keys() {
                if !self.pools.contains(pool) {
                    self.pools.push(pool.clone());
                }
            }
        }
        self.plan.data = data_files;

        let file_host = match (&self.overrides.host, &file.host) {
            (Some(host), _) => Some(self.host(host, None)?),
            (None, Some(host)) => Some(self.host(host.get_ref(), Some(host.span().start))?),
            (None, None) => None,
        };
        if file.user_types.is_empty() {
            return Err(self.error(0, "no [[user]] in the file; expected at least one user type"));
        }
        let mut user_types = Vec::new();
        for user in &file.user_types {
            if let Some(user_type) = self.user_type(user, file_host.as_ref())? {
                user_types.push(user_type);
            }
        }
        if user_types.is_empty() {
            return Err(self.error(0, "no user type has a task left after --tags/--exclude-tags"));
        }
        if user_types.iter().all(|u| u.fixed_count.is_some()) {
            // Every user must belong to a type: the last type takes users beyond the counts.
            let last = user_types.last_mut().expect("not empty");
            last.fixed_count = None;
        }
        let setup_host = file_host.clone();
        self.plan.setup = self.steps(&file.setup, setup_host.as_ref(), "setup")?;
        self.plan.teardown = self.steps(&file.teardown, setup_host.as_ref(), "teardown")?;
        self.plan.user_types = user_types;
        self.plan.vars = std::mem::take(&mut self.vars);
        self.plan.pools = std::mem::take(&mut self.pools);
        self.plan.max_timeout = self.max_timeout;
        for text in &file.thresholds {
            let threshold = Threshold::parse(text.get_ref()).map_err(|e| self.error(text.span().start, e))?;
            self.plan.thresholds.push(threshold);
            self.plan.check_thresholds().map_err(|e| self.error(text.span().start, e.to_string()))?;
        }
        Ok(settings)
    }

    fn define(&mut self, name: &str, value: Value) {
        if self.vars.slot(name).is_none() {
            self.vars.names.push(name.to_string());
            self.vars.initial.push(value);
        }
    }

    fn duration(&self, text: &Spanned<String>) -> Result2<Duration> {
        parse_duration(text.get_ref()).map_err(|e| self.error(text.span().start, e.to_string()))
    }

    fn host(&self, text: &str, offset: Option<usize>) -> Result2<Host> {
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
                let insecure = self.insecure_hosts.iter().any(|h| h.eq_ignore_ascii_case(&url.host));
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

    fn data_file(&mut self, data: &Spanned<DataDef>) -> Result2<DataFile> {
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
        let mut reader = csv::Reader::from_path(&file)
            .map_err(|e| self.error(def.file.span().start, format!("cannot read {}: {e}", file.display())))?;
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

    fn user_type(&mut self, user: &Spanned<UserDef>, file_host: Option<&Host>) -> Result2<Option<UserType>> {
        let def = user.get_ref();
        let name = def.name.get_ref().clone();
        let host = match &def.host {
            Some(host) => Some(self.host(host.get_ref(), Some(host.span().start))?),
            None => file_host.cloned(),
        };
        let weight = match &def.weight {
            Some(w) => self.weight(w)?,
            None => 1,
        };
        let wait = match &def.wait_time {
            Some(wait) => self.wait(wait)?,
            None => Wait::None,
        };
        let mut tasks = Vec::new();
        for task in &def.tasks {
            if let Some(task) = self.task(task, host.as_ref(), &name, false)? {
                tasks.push(task);
            }
        }
        if def.tasks.is_empty() {
            return Err(self.error(user.span().start, format!("user type \"{name}\" has no [[user.task]]")));
        }
        if tasks.is_empty() {
            return Ok(None);
        }
        let mut headers = Vec::new();
        for (header, value) in &def.headers {
            let template = self.template(value, Escape::Raw)?;
            if template.parts.iter().any(|p| matches!(p, Part::Expr(crate::config::Expr::Pool(_), _))) {
                return Err(self.error(value.span().start, "default headers cannot read a pool"));
            }
            headers.push((header.clone(), template));
        }
        Ok(Some(UserType {
            name: name.clone(),
            weight,
            fixed_count: def.fixed_count.as_ref().map(|c| *c.get_ref()),
            tasks,
            wait,
            headers,
            on_start: self.steps(&def.on_start, host.as_ref(), &format!("{name} / on_start"))?,
            on_stop: self.steps(&def.on_stop, host.as_ref(), &format!("{name} / on_stop"))?,
        }))
    }

    fn weight(&self, weight: &Spanned<i64>) -> Result2<u32> {
        match *weight.get_ref() {
            w if w >= 1 && w <= i64::from(u32::MAX / 1024) => Ok(w as u32),
            w => Err(self.error(weight.span().start, format!("weight {w}: expected a whole number of at least 1"))),
        }
    }

    fn count(&self, value: &Spanned<i64>, what: &str) -> Result2<u32> {
        match *value.get_ref() {
            n if n >= 1 && n <= i64::from(u32::MAX) => Ok(n as u32),
            n => Err(self.error(value.span().start, format!("{what} {n}: expected a whole number of at least 1"))),
        }
    }

    fn wait(&self, wait: &Spanned<WaitDef>) -> Result2<Wait> {
        let at = wait.span().start;
        let duration = |text: &str| parse_duration(text).map_err(|e| self.error(at, format!("wait_time: {e}")));
        Ok(match wait.get_ref() {
            WaitDef::Constant(d) => Wait::Constant(duration(d)?),
            WaitDef::Between([low, high]) => {
                let (low, high) = (duration(low)?, duration(high)?);
                if low > high {
                    return Err(self.error(at, "wait_time between: the first bound is above the second"));
                }
                Wait::Between(low, high)
            }
            WaitDef::ConstantPacing(d) => Wait::Pacing(duration(d)?),
            WaitDef::ConstantThroughput(rate) | WaitDef::Poisson(rate) if !(*rate > 0.0 && rate.is_finite()) => {
                return Err(self.error(at, format!("wait_time rate {rate}: expected tasks per second above 0")))
            }
            WaitDef::ConstantThroughput(rate) => Wait::Pacing(Duration::from_secs_f64(1.0 / rate)),
            WaitDef::Poisson(rate) => Wait::Poisson(*rate),
        })
    }

    /// A task, or `None` when tag filtering leaves it out. A set selected by its tags brings
    /// all its tasks (as Locust's tags on a TaskSet do); `selected` says the parent was.
    fn task(
        &mut self,
        task: &Spanned<TaskDef>,
        host: Option<&Host>,
        parent: &str,
        selected: bool,
    ) -> Result2<Option<Task>> {
        let def = task.get_ref();
        let at = task.span().start;
        let tags = &self.overrides.tags;
        let selected = selected || tags.is_empty() || def.tags.iter().any(|t| tags.contains(t));
        let excluded = def.tags.iter().any(|t| self.overrides.exclude_tags.contains(t));
        let name = def.name.clone().unwrap_or_else(|| default_task_name(def));
        let path = format!("{parent} / {name}");
        let shapes = [def.request.is_some(), def.steps.is_some(), def.tasks.is_some()];
        if shapes.iter().filter(|s| **s).count() != 1 {
            return Err(self.error(
                at,
                format!("task \"{name}\": expected exactly one of `request`, `steps` or `tasks` (a nested task set)"),
            ));
        }
        let weight = match &def.weight {
            Some(w) => self.weight(w)?,
            None => 1,
        };
        let repeat = match &def.repeat {
            Some(r) => self.count(r, "repeat")?,
            None => 1,
        };
        let kind = if let Some(request) = &def.request {
            TaskKind::Steps(self.steps(std::slice::from_ref(request), host, &path)?)
        } else if let Some(steps) = &def.steps {
            if steps.is_empty() {
                return Err(self.error(at, format!("task \"{name}\": `steps` is empty")));
            }
            TaskKind::Steps(self.steps(steps, host, &path)?)
        } else {
            let subtasks = def.tasks.as_ref().expect("one shape");
            let mut tasks = Vec::new();
            for sub in subtasks {
                // Tags filter nested tasks too; an untagged set keeps the tagged ones it has.
                if let Some(sub) = self.task(sub, host, &path, selected)? {
                    tasks.push(sub);
                }
            }
            if subtasks.is_empty() {
                return Err(self.error(at, format!("task set \"{name}\" has no tasks")));
            }
            if tasks.is_empty() {
                return Ok(None);
            }
            let sequential = def.sequential.unwrap_or(false);
            let total: u32 = tasks.iter().map(|t| t.weight).sum();
            let interrupt_weight = match (&def.interrupt_weight, &def.interrupt_probability) {
                (Some(_), Some(p)) => {
                    return Err(self.error(p.span().start, "give interrupt_weight or interrupt_probability, not both"))
                }
                (Some(w), None) => self.weight(w)?,
                (None, Some(p)) => {
                    let p = *p.get_ref();
                    if !(p > 0.0 && p < 1.0) {
                        let at = def.interrupt_probability.as_ref().expect("some").span().start;
                        return Err(self.error(at, format!("interrupt_probability {p}: expected between 0 and 1")));
                    }
                    // weight / (total + weight) = p
                    ((p * f64::from(total)) / (1.0 - p)).round().max(1.0) as u32
                }
                (None, None) if sequential => 0,
                (None, None) => {
                    return Err(self.error(
                        at,
                        format!(
                            "task set \"{name}\" never returns to its parent: give interrupt_weight or \
                             interrupt_probability (or sequential = true)"
                        ),
                    ))
                }
            };
            let loops = match &def.loops {
                Some(l) => self.count(l, "loops")?,
                None => 1,
            };
            TaskKind::Set { tasks, sequential, interrupt_weight, loops }
        };
        // A set not selected itself stays when some of its tasks were.
        let keep = !excluded && (selected || matches!(kind, TaskKind::Set { .. }));
        Ok(keep.then(|| Task { name, weight, repeat, tags: def.tags.clone(), kind }))
    }

    fn steps(&mut self, steps: &[Spanned<StepDef>], host: Option<&Host>, path: &str) -> Result2<Vec<Step>> {
        let mut out = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let label = if steps.len() == 1 { path.to_string() } else { format!("{path} / step {}", index + 1) };
            out.push(Step::Call(Box::new(self.call(step, host, &label)?)));
        }
        Ok(out)
    }

    fn template(&self, text: &Spanned<String>, escape: Escape) -> Result2<Template> {
        self.template_at(text.get_ref(), text.span().start, escape, &|s| s.to_string())
    }

    fn template_at(
        &self,
        text: &str,
        span_start: usize,
        escape: Escape,
        lit: &dyn Fn(&str) -> String,
    ) -> Result2<Template> {
        template::parse(text, escape, self, lit).map_err(|e| {
            // The span starts at the opening quote; holes are placed exactly in strings without
            // escapes (the common case).
            let quote = self.text[span_start..].starts_with(['"', '\'']) as usize;
            self.error(span_start + quote + e.offset, e.message)
        })
    }

    fn call(&mut self, step: &Spanned<StepDef>, host: Option<&Host>, path: &str) -> Result2<Call> {
        let def = step.get_ref();
        let at = step.span().start;
        let methods = [
            ("GET", &def.get),
            ("POST", &def.post),
            ("PUT", &def.put),
            ("PATCH", &def.patch),
            ("DELETE", &def.delete),
            ("HEAD", &def.head),
            ("OPTIONS", &def.options),
        ];
        let mut given = methods.iter().filter(|(_, url)| url.is_some());
        let Some((method, Some(url))) = given.next() else {
            return Err(
                self.error(at, "a step needs a method and a path: one of get, post, put, patch, delete, head, options")
            );
        };
        if let Some((second, Some(url2))) = given.next() {
            return Err(
                self.error(url2.span().start, format!("a step has one method; {method} and {second} both given"))
            );
        }
        let method = method.to_string();
        // Absolute URL or a path on the user's host.
        let raw = url.get_ref();
        let (addr, tls, authority, target_text, target_at) =
            if raw.starts_with("http://") || raw.starts_with("https://") {
                let after_scheme = raw.find("://").expect("checked") + 3;
                let path_start = raw[after_scheme..].find('/').map_or(raw.len(), |i| after_scheme + i);
                if raw[..path_start].contains("{{") {
                    return Err(self.error(url.span().start, "the scheme and host of a URL cannot be templated"));
                }
                let host = self.host(&raw[..path_start], Some(url.span().start))?;
                let path = if path_start == raw.len() { "/" } else { &raw[path_start..] };
                (host.addr, host.tls, host.url.authority(), path.to_string(), url.span().start + path_start)
            } else if raw.starts_with('/') {
                let Some(host) = host else {
                    return Err(self.error(
                    url.span().start,
                    "a relative path needs a host: set `host` at the top of the file or in [[user]], or pass -H/--host",
                ));
                };
                (host.addr, host.tls.clone(), host.url.authority(), raw.clone(), url.span().start)
            } else {
                return Err(self
                    .error(url.span().start, format!("\"{raw}\": expected a path starting with / or an http:// URL")));
            };
        let mut target = self.template_at(&target_text, target_at, Escape::Raw, &|s| s.to_string())?;
        if !def.query.is_empty() {
            let mut separator = if target_text.contains('?') { "&" } else { "?" };
            for (key, value) in &def.query {
                let mut key_text = Vec::new();
                crate::config::percent_encode(key, &mut key_text);
                target.parts.push(Part::Lit(format!("{separator}{}=", String::from_utf8_lossy(&key_text))));
                let value_template = self.value_template(value, Escape::Url, &url_lit)?;
                target.parts.extend(value_template.parts);
                separator = "&";
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &def.headers {
            headers.push((name.clone(), self.template(value, Escape::Raw)?));
        }
        let bodies = [def.json.is_some(), def.form.is_some(), def.body.is_some(), def.body_file.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err(self.error(at, "a step has one body: json, form, body or body_file"));
        }
        let body = if let Some(json) = &def.json {
            Some((Some("application/json".to_string()), self.json_template(json)?))
        } else if let Some(form) = &def.form {
            let mut template = Template::default();
            for (index, (key, value)) in form.iter().enumerate() {
                let mut key_text = Vec::new();
                crate::config::percent_encode(key, &mut key_text);
                let amp = if index == 0 { "" } else { "&" };
                template.parts.push(Part::Lit(format!("{amp}{}=", String::from_utf8_lossy(&key_text))));
                template.parts.extend(self.value_template(value, Escape::Url, &url_lit)?.parts);
            }
            Some((Some("application/x-www-form-urlencoded".to_string()), template))
        } else if let Some(body) = &def.body {
            Some((None, self.template(body, Escape::Raw)?))
        } else if let Some(file) = &def.body_file {
            if self.overrides.sandbox {
                return Err(self.error(file.span().start, "files are not read in a sandboxed compile"));
            }
            let full = self.dir.join(file.get_ref());
            let bytes = std::fs::read(&full)
                .map_err(|e| self.error(file.span().start, format!("cannot read {}: {e}", full.display())))?;
            Some((Some("application/octet-stream".to_string()), Template::literal(&String::from_utf8_lossy(&bytes))))
        } else {
            None
        };
        let timeout = match &def.timeout {
            Some(t) => self.duration(t)?,
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
        let mut set_headers = Vec::new();
        for (name, value) in &def.set_header {
            set_headers.push((name.clone(), self.template(value, Escape::Raw)?));
        }
        let mut push = Vec::new();
        for (pool, value) in &def.push {
            let index = self.pools.iter().position(|p| p == pool).expect("pools are defined up front");
            push.push((index, self.template(value, Escape::Raw)?));
        }
        let name = def.name.clone().unwrap_or_else(|| match target.as_literal() {
            Some(literal) => literal,
            None => target_text.clone(),
        });
        let endpoint = self.endpoint(&method, &name);
        Ok(Call {
            endpoint,
            is_head: method == "HEAD",
            idempotent: matches!(method.as_str(), "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS"),
            method,
            addr,
            tls,
            authority,
            target,
            headers,
            body,
            timeout,
            max_redirects,
            accept,
            checks,
            captures,
            required: def.required,
            set_headers,
            push,
            path: leak(path.to_string()),
        })
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
    ) -> Result2<Template> {
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

    /// A JSON body: the TOML value written as JSON, with holes in its strings. A string that is
    /// exactly one hole becomes the value itself (numbers stay numbers).
    fn json_template(&self, json: &Spanned<toml::Value>) -> Result2<Template> {
        let mut template = Template::default();
        self.json_value(json.get_ref(), json.span(), &mut template)?;
        // Merge neighbouring literals.
        let mut merged: Vec<Part> = Vec::new();
        for part in template.parts {
            match (merged.last_mut(), part) {
                (Some(Part::Lit(prev)), Part::Lit(next)) => prev.push_str(&next),
                (_, part) => merged.push(part),
            }
        }
        Ok(Template { parts: merged })
    }

    /// `span` is the JSON value's table in the file: a string's own place is found in it (JSON
    /// values carry no spans of their own), for errors that point at the string.
    fn json_value(&self, value: &toml::Value, span: std::ops::Range<usize>, out: &mut Template) -> Result2<()> {
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
                    Some(literal) => out.parts.push(Part::Lit(serde_json::to_string(&literal).expect("string"))),
                    None => out.parts.extend(hole.parts),
                }
            }
            toml::Value::String(text) => {
                out.parts.push(Part::Lit("\"".into()));
                let inner = self.template_at(text, at, Escape::JsonStr, &|s| {
                    let quoted = serde_json::to_string(s).expect("string");
                    quoted[1..quoted.len() - 1].to_string()
                })?;
                out.parts.extend(inner.parts);
                out.parts.push(Part::Lit("\"".into()));
            }
            toml::Value::Array(items) => {
                out.parts.push(Part::Lit("[".into()));
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.parts.push(Part::Lit(",".into()));
                    }
                    self.json_value(item, span.clone(), out)?;
                }
                out.parts.push(Part::Lit("]".into()));
            }
            toml::Value::Table(table) => {
                out.parts.push(Part::Lit("{".into()));
                for (index, (key, item)) in table.iter().enumerate() {
                    let comma = if index > 0 { "," } else { "" };
                    out.parts.push(Part::Lit(format!("{comma}{}:", serde_json::to_string(key).expect("string"))));
                    self.json_value(item, span.clone(), out)?;
                }
                out.parts.push(Part::Lit("}".into()));
            }
            other => out.parts.push(Part::Lit(toml_to_json(other).to_string())),
        }
        Ok(())
    }

    fn checks(&self, check: &Spanned<CheckDef>) -> Result2<(Option<Accept>, Vec<Check>)> {
        let def = check.get_ref();
        let custom = def.message.as_deref();
        let message = |generated: String| leak(custom.map_or(generated, str::to_string));
        let mut checks = Vec::new();
        let accept = def.status.as_ref().map(|status| {
            let codes = match status {
                StatusDef::One(code) => vec![*code],
                StatusDef::Any(codes) => codes.clone(),
            };
            let text = match codes.as_slice() {
                [one] => format!("status is {one}"),
                many => format!("status is one of {many:?}"),
            };
            (codes, message(text))
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
            let j = json.get_ref();
            let pointer = to_pointer(&j.path);
            let ops: Vec<(JsonOp, String)> = [
                j.eq.as_ref().map(|v| self.json_equality(v, json.span().start, true, &j.path)).transpose()?,
                j.ne.as_ref().map(|v| self.json_equality(v, json.span().start, false, &j.path)).transpose()?,
                j.lt.map(|v| (JsonOp::Lt(v), format!("{} < {v}", j.path))),
                j.le.map(|v| (JsonOp::Le(v), format!("{} <= {v}", j.path))),
                j.gt.map(|v| (JsonOp::Gt(v), format!("{} > {v}", j.path))),
                j.ge.map(|v| (JsonOp::Ge(v), format!("{} >= {v}", j.path))),
                j.exists.map(|v| {
                    (JsonOp::Exists(v), format!("{} {}", j.path, if v { "exists" } else { "does not exist" }))
                }),
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
        }
        Ok((accept, checks))
    }
}

impl Compiler<'_> {
    /// `eq` / `ne`: a plain value, or a string with holes compared as text.
    fn json_equality(&self, value: &toml::Value, at: usize, eq: bool, path: &str) -> Result2<(JsonOp, String)> {
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

/// The steps directly in a task (and in nested sets), for collecting names up front.
fn task_steps(task: &TaskDef) -> Vec<&Spanned<StepDef>> {
    let mut steps: Vec<&Spanned<StepDef>> = Vec::new();
    steps.extend(task.request.iter());
    steps.extend(task.steps.iter().flatten());
    for sub in task.tasks.iter().flatten() {
        steps.extend(task_steps(sub.get_ref()));
    }
    steps
}

fn default_task_name(task: &TaskDef) -> String {
    let step = task.request.as_ref().or_else(|| task.steps.as_ref().and_then(|s| s.first()));
    match step.map(|s| s.get_ref()) {
        Some(step) => {
            let methods = [
                ("GET", &step.get),
                ("POST", &step.post),
                ("PUT", &step.put),
                ("PATCH", &step.patch),
                ("DELETE", &step.delete),
                ("HEAD", &step.head),
                ("OPTIONS", &step.options),
            ];
            methods
                .iter()
                .find_map(|(m, u)| u.as_ref().map(|u| format!("{m} {}", step.name.as_deref().unwrap_or(u.get_ref()))))
                .unwrap_or_else(|| "task".into())
        }
        None if task.tasks.is_some() => "task set".into(),
        None => "task".into(),
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

fn url_lit(text: &str) -> String {
    let mut out = Vec::new();
    crate::config::percent_encode(text, &mut out);
    String::from_utf8(out).expect("ASCII")
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
    // Interned: compiling the same file again (tests, setup/teardown plans) leaks nothing more;
    // what stays is one copy of each distinct message.
    static INTERNED: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> = std::sync::Mutex::new(None);
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let set = interned.get_or_insert_with(Default::default);
    if let Some(existing) = set.get(text.as_str()) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    set.insert(leaked);
    leaked
}
