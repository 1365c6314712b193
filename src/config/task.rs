//! What a plan's users do: user types with weighted tasks, tasks of steps or nested task sets,
//! steps that are requests encoded once or scenario calls, think time, per-user variables and
//! data files, and the endpoints requests are counted under.

use std::net::SocketAddr;
use std::time::Duration;

use super::call::{Call, Template};

/// A (method, name) pair under which requests are counted. Its index in `Plan::endpoints` is
/// the endpoint id used by stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: String,
    pub name: String,
}

/// One prepared request.
#[derive(Clone, Debug)]
pub struct Request {
    pub endpoint: usize,
    pub addr: SocketAddr,
    /// HTTPS: the TLS configuration and server name.
    pub tls: Option<crate::tls::Target>,
    /// The complete request, encoded once.
    pub bytes: Vec<u8>,
    /// HEAD: the response has no body whatever its headers say.
    pub is_head: bool,
    /// Safe to send again after an idle keep-alive close (GET, HEAD, PUT, DELETE, OPTIONS).
    pub idempotent: bool,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// A request encoded once (quick mode): the zero-allocation path.
    Request(Request),
    /// A scenario request, built per send (templates, session headers and cookies), checked
    /// and captured from.
    Call(Box<Call>),
    /// A pause inside a task (`sleep = "1.5s"`; a recording's gaps between requests).
    Sleep(std::time::Duration),
}

#[derive(Clone, Debug)]
pub struct Task {
    pub name: String,
    pub weight: u32,
    /// Times in a row the task runs when picked (sequential task sets: `repeat`).
    pub repeat: u32,
    pub tags: Vec<String>,
    pub kind: TaskKind,
}

#[derive(Clone, Debug)]
pub enum TaskKind {
    /// Steps run in order; data captured by one is available to the next.
    Steps(Vec<Step>),
    /// A nested task set (Locust's `TaskSet`): picks its own tasks until it interrupts back to
    /// the parent. Weighted: each pick chooses "interrupt" with `interrupt_weight` against the
    /// tasks' weights. Sequential: runs its tasks in order `loops` times, then returns.
    Set { tasks: Vec<Task>, sequential: bool, interrupt_weight: u32, loops: u32 },
}

impl Task {
    /// A task of steps, weight 1.
    pub fn steps(name: impl Into<String>, steps: Vec<Step>) -> Task {
        Task { name: name.into(), weight: 1, repeat: 1, tags: Vec::new(), kind: TaskKind::Steps(steps) }
    }
}

/// Think time after each task (Locust's `wait_time`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wait {
    None,
    Constant(Duration),
    Between(Duration, Duration),
    /// A task starts every period, whatever it took (`constant_pacing`, and
    /// `constant_throughput` as 1/rate).
    Pacing(Duration),
    /// Task starts form a Poisson process of this rate per second: exponential gaps between
    /// starts, less the time the task took.
    Poisson(f64),
}

#[derive(Clone, Debug)]
pub struct UserType {
    pub name: String,
    pub weight: u32,
    /// This many users of the type, started first (Locust's `fixed_count`); the rest of the
    /// users are split by weight among the types without one.
    pub fixed_count: Option<u64>,
    pub tasks: Vec<Task>,
    pub wait: Wait,
    /// Default headers each user starts with (steps may set more).
    pub headers: Vec<(String, Template)>,
    /// Steps each user runs once before its first task, and once when it stops.
    pub on_start: Vec<Step>,
    pub on_stop: Vec<Step>,
    /// Times `on_start` is tried again when it ends early, before the user stops.
    pub on_start_retries: u32,
}

impl UserType {
    pub fn new(name: impl Into<String>, tasks: Vec<Task>) -> UserType {
        UserType {
            name: name.into(),
            weight: 1,
            fixed_count: None,
            tasks,
            wait: Wait::None,
            headers: Vec::new(),
            on_start: Vec::new(),
            on_stop: Vec::new(),
            on_start_retries: 0,
        }
    }
}

/// Per-user variables: names and starting values (constants; captures start as null). Data-file
/// columns and captures write into slots; templates read them.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    pub names: Vec<String>,
    pub initial: Vec<serde_json::Value>,
}

impl Vars {
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// A CSV data file: each row fills the column variables.
#[derive(Clone, Debug)]
pub struct DataFile {
    pub name: String,
    /// Slot of each column's variable.
    pub slots: Vec<usize>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// `per_user`: user i keeps row i mod n; else round-robin: each task takes the next row.
    pub per_user: bool,
}
