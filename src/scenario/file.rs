//! A scenario file as written: the TOML keys and their types, read by serde with spans for
//! file:line:col errors and every unknown key refused. `scenarios/README.md` documents each key
//! (tests/docs.rs checks that every field and variant here appears there).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    pub host: Option<Spanned<String>>,
    pub users: Option<u64>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<Spanned<DurationDef>>,
    /// Load shape: `stages = "30s:100,1m:100,30s:0"` or `shape = "gaussian"`.
    pub stages: Option<Spanned<String>>,
    pub shape: Option<Spanned<String>>,
    pub timeout: Option<Spanned<DurationDef>>,
    /// HTTPS hosts whose certificates are not verified (as `--insecure`, for these hosts only).
    #[serde(default)]
    pub insecure_hosts: Vec<Spanned<String>>,
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

/// A duration as written: text with a unit (`250ms`, `1m30s`) or a bare number of seconds.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum DurationDef {
    Seconds(f64),
    Text(String),
}

impl DurationDef {
    /// The duration, or what is wrong with it.
    pub fn parse(&self) -> Result<std::time::Duration, String> {
        match self {
            DurationDef::Seconds(secs) => crate::units::parse_duration(&secs.to_string()),
            DurationDef::Text(text) => crate::units::parse_duration(text),
        }
    }
}

impl std::fmt::Display for DurationDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationDef::Seconds(secs) => write!(f, "{secs}s"),
            DurationDef::Text(text) => f.write_str(text),
        }
    }
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
    pub name: Option<Spanned<String>>,
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
    /// Times `on_start` is tried again when it ends early, before the user stops.
    pub on_start_retries: Option<Spanned<i64>>,
    #[serde(default, rename = "task")]
    pub tasks: Vec<Spanned<TaskDef>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaitDef {
    Constant(DurationDef),
    Between([DurationDef; 2]),
    ConstantPacing(DurationDef),
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
    /// A pause instead of a request (no other key with it).
    pub sleep: Option<Spanned<DurationDef>>,
    pub name: Option<String>,
    #[serde(default)]
    pub query: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub json: Option<Spanned<toml::Value>>,
    pub form: Option<BTreeMap<String, Spanned<toml::Value>>>,
    pub body: Option<Spanned<String>>,
    pub body_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<DurationDef>>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<Spanned<i64>>,
    #[serde(default)]
    pub capture: BTreeMap<String, Spanned<CaptureDef>>,
    pub check: Option<Spanned<CheckDef>>,
    #[serde(default)]
    pub required: bool,
    /// Pools that must hold a value and variables that must be set, or the step (and the rest
    /// of its task) is skipped.
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
    #[serde(default)]
    pub set_header: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub push: BTreeMap<String, Spanned<String>>,
}

impl StepDef {
    /// The methods the step gives, with their URLs (a valid step gives one).
    pub fn methods(&self) -> impl Iterator<Item = (&'static str, &Spanned<String>)> {
        [
            ("GET", &self.get),
            ("POST", &self.post),
            ("PUT", &self.put),
            ("PATCH", &self.patch),
            ("DELETE", &self.delete),
            ("HEAD", &self.head),
            ("OPTIONS", &self.options),
        ]
        .into_iter()
        .filter_map(|(method, url)| url.as_ref().map(|url| (method, url)))
    }
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
    pub max_time: Option<Spanned<DurationDef>>,
    #[serde(default)]
    pub json: Vec<Spanned<JsonCheckDef>>,
    /// Replaces the generated failure text of every check of this step; it may use the
    /// user's variables and the response (`{{ json.path }}`, `{{ status }}`).
    pub message: Option<Spanned<String>>,
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
