//! The `Plan`: the single validated, resolved description of a run, built before any thread
//! starts. The engine never sees raw flags. Requests are encoded to bytes here, endpoints are
//! numbered here, addresses are resolved here.
//!
//! Shape: user types → weighted tasks → steps (requests), with a wait time after each task. Quick
//! mode (a URL on the command line) is a one-type, one-task, one-request plan with no wait;
//! scenario files compile into the same structure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{parse_cpu_list, RunArgs};
use crate::http::{encode_request, Url};
use crate::runtime::Io;

mod call;
mod shape;
mod threshold;
pub use call::{percent_encode, Call, Capture, Check, CheckKind, Escape, Expr, JsonOp, Part, Source, Template};
pub use shape::{Shape, Stage};
pub use threshold::{EndpointFilter, Metric, Op, Threshold};

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

/// Where results go.
#[derive(Clone, Debug)]
pub struct Output {
    pub only_summary: bool,
    pub csv_prefix: Option<PathBuf>,
    pub csv_full_history: bool,
    pub exit_code_on_error: i32,
    /// Console table period (Locust: 2 s).
    pub print_every: Duration,
    /// Stop the run as soon as a threshold that can only get worse is lost.
    pub abort_on_threshold: bool,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub user_types: Vec<UserType>,
    pub endpoints: Vec<Endpoint>,
    pub vars: Vars,
    pub data: Vec<DataFile>,
    /// Names of the shared pools (`push` / `pool("name")`).
    pub pools: Vec<String>,
    /// Values the pools start with (what `setup` pushed), by pool.
    pub pool_seeds: Vec<Vec<serde_json::Value>>,
    /// Pass/fail criteria, evaluated at the end (exit code `EXIT_THRESHOLDS` when one is lost).
    pub thresholds: Vec<Threshold>,
    /// Steps run once before the users start and once after they stop (not in the stats;
    /// values captured in `setup` become every user's starting values).
    pub setup: Vec<Step>,
    pub teardown: Vec<Step>,
    pub users: u64,
    pub spawn_rate: f64,
    pub run_time: Option<Duration>,
    /// A load shape the users follow instead of the linear spawn ramp.
    pub shape: Option<Shape>,
    /// Open model: task starts per second (`--rate`); `users` is then the pool's cap.
    pub rate: Option<f64>,
    /// Live control from the keyboard (`Plan::enable_live_control`): users that keys may add
    /// beyond `users` (closed model); the worker tables are sized for `users + headroom`.
    pub live_control: bool,
    pub headroom: u64,
    /// Open model: how long a start waits for a free user before it is dropped.
    pub max_start_delay: Duration,
    /// Tasks each user runs before it stops (`--iterations`); the run ends when all are done.
    pub iterations: Option<u64>,
    /// Reset the statistics once every user has started (`--reset-stats`).
    pub reset_stats: bool,
    pub stop_timeout: Duration,
    /// Longest time a request may take; the histograms' upper bound.
    pub max_timeout: Duration,
    /// Requests per write in quick mode.
    pub pipeline: usize,
    /// One worker per entry; `Some(core)` pins it.
    pub workers: Vec<Option<usize>>,
    pub io: Io,
    pub defer_taskrun: bool,
    /// Snapshot period; the reporter's unit of time (CSV history rows).
    pub tick: Duration,
    pub output: Output,
}

/// What a scenario file may say about the run, for the command line to override.
#[derive(Clone, Debug, Default)]
pub struct FileSettings {
    pub users: Option<u64>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<Duration>,
    pub shape: Option<Shape>,
}

/// Open model: users at most, unless `--max-users` says.
pub const DEFAULT_MAX_USERS: u64 = 1000;

/// Per-request timeout when neither the command line nor the scenario file gives one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Headroom of file descriptors kept for the process itself (stdio, CSV files, rings, pipes).
pub const RESERVED_FDS: u64 = 64;

impl Plan {
    /// Resolves command-line flags into a plan (quick mode: the URL, or `--host`).
    pub fn from_cli(args: &RunArgs) -> Result<Plan> {
        let url_text = match (&args.url, &args.host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => host.clone(),
            (None, None) => bail!(
                "nothing to test: give a URL (e.g. swarmer http://127.0.0.1:8080/), --host, or a scenario file (-f FILE)"
            ),
        };
        let url = Url::parse(&url_text).map_err(anyhow::Error::msg)?;
        let workers = resolve_workers(args.threads, args.cpus.as_deref())?;
        let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let tls = args.tls_options().map_err(anyhow::Error::msg)?;
        let tls = match url.tls {
            true => Some(
                crate::tls::Target::new(crate::tls::client_config(&tls).map_err(anyhow::Error::msg)?, &url.host)
                    .map_err(anyhow::Error::msg)?,
            ),
            false => None,
        };
        let mut plan = Plan::quick(&url, url.resolve()?, tls, timeout, args.pipeline, workers);
        plan.apply_run_args(args, FileSettings::default())?;
        Ok(plan)
    }

    /// Applies the flags every kind of run shares. `file` holds what a scenario file says about
    /// users, spawn rate, run time and load shape; the command line wins where both say
    /// something.
    pub fn apply_run_args(&mut self, args: &RunArgs, file: FileSettings) -> Result<()> {
        let FileSettings { users: file_users, spawn_rate: file_rate, run_time: file_time, shape: file_shape } = file;
        self.users = args.users.or(file_users).unwrap_or(1);
        if self.users == 0 {
            bail!("--users 0: at least one user is needed");
        }
        self.spawn_rate = args.spawn_rate.or(file_rate).unwrap_or(1.0);
        if !(self.spawn_rate > 0.0 && self.spawn_rate.is_finite()) {
            bail!("spawn rate {}: expected users per second above 0", self.spawn_rate);
        }
        self.run_time = args.run_time.or(file_time);
        self.shape = match (&args.stages, &args.shape) {
            (Some(_), Some(_)) => bail!("give --stages or --shape, not both"),
            (Some(text), None) => Some(Shape::parse_stages(text).map_err(|e| anyhow::anyhow!("--stages {text}: {e}"))?),
            (None, Some(text)) => Some(Shape::parse_named(text).map_err(|e| anyhow::anyhow!("--shape {text}: {e}"))?),
            (None, None) => file_shape,
        };
        if let Some(shape) = &self.shape {
            match (shape.duration(), self.run_time) {
                // Stages decide how long the run lasts unless -t says otherwise.
                (Some(total), None) => self.run_time = Some(total),
                (None, None) => bail!("--shape needs -t/--run-time: the shape is laid over the run time"),
                _ => {}
            }
        }
        self.rate = args.rate;
        self.max_start_delay = args.max_start_delay;
        // The open model: a constant --rate, rate stages (N/s), or a named shape with --rate as
        // its peak.
        match (&self.shape, args.rate) {
            (Some(shape), Some(_)) if shape.is_rate() => {
                bail!("--rate and rate stages (N/s) both give the rate: drop --rate, the stages' highest rate is the peak")
            }
            (Some(Shape::Stages(_)), Some(rate)) => {
                bail!("--stages with --rate {rate}: give the stages as rates, e.g. 30s:500/s,1m:500/s")
            }
            (Some(shape), None) if shape.is_rate() => self.rate = Some(shape.peak(0.0)),
            _ => {}
        }
        if let Some(rate) = self.rate {
            if rate <= 0.0 {
                bail!("the rate stages never rise above 0/s");
            }
            if args.iterations.is_some() {
                bail!("--rate (open model) does not combine with --iterations");
            }
            if args.users.is_some() {
                bail!("--rate: the open model has no --users; --max-users caps the pool of users");
            }
            self.users = args.max_users.unwrap_or(DEFAULT_MAX_USERS);
            if self.users < self.workers.len() as u64 {
                bail!("--max-users {}: at least one per worker thread ({})", self.users, self.workers.len());
            }
        } else {
            if args.max_users.is_some() {
                bail!("--max-users caps the open model's pool: it needs --rate");
            }
            if let Some(shape) = &self.shape {
                // The peak is the most users at once: sockets and the user table are sized for it.
                self.users = (shape.peak(self.users as f64) as u64).max(1);
            }
        }
        self.iterations = args.iterations;
        if self.iterations == Some(0) {
            bail!("--iterations 0: each user needs at least one task");
        }
        self.reset_stats = args.reset_stats;
        self.stop_timeout = args.stop_timeout;
        self.io = args.io;
        self.defer_taskrun = !args.no_defer_taskrun;
        self.output.only_summary = args.only_summary;
        self.output.csv_prefix = args.csv.clone();
        self.output.csv_full_history = args.csv_full_history;
        self.output.exit_code_on_error = args.exit_code_on_error;
        self.output.abort_on_threshold = args.abort_on_threshold;
        for text in &args.threshold {
            self.thresholds.push(Threshold::parse(text).map_err(|e| anyhow::anyhow!("--threshold {e}"))?);
        }
        self.check_thresholds()?;
        Ok(())
    }

    /// Every threshold that names an endpoint must name one of the plan's.
    pub fn check_thresholds(&self) -> Result<()> {
        for threshold in &self.thresholds {
            let Some(filter) = &threshold.endpoint else { continue };
            let known = self
                .endpoints
                .iter()
                .any(|e| e.name == filter.name && filter.method.as_ref().is_none_or(|m| *m == e.method));
            if !known {
                let names: Vec<String> = self.endpoints.iter().map(|e| format!("{} {}", e.method, e.name)).collect();
                bail!(
                    "threshold {:?}: no endpoint {:?}; the endpoints are: {}",
                    threshold.text,
                    filter.name,
                    names.join(", ")
                );
            }
        }
        Ok(())
    }

    /// A plan with no user types yet (scenario files fill them in), defaults elsewhere.
    pub fn empty(workers: Vec<Option<usize>>, timeout: Duration) -> Plan {
        let mut plan = Plan::quick(
            &Url { tls: false, host: "127.0.0.1".into(), port: 80, target: "/".into() },
            ([127, 0, 0, 1], 80).into(),
            None,
            timeout,
            1,
            workers,
        );
        plan.user_types.clear();
        plan.endpoints.clear();
        plan
    }

    /// A one-request plan: GET `url` in a loop with no think time, defaults elsewhere.
    pub fn quick(
        url: &Url,
        addr: SocketAddr,
        tls: Option<crate::tls::Target>,
        timeout: Duration,
        pipeline: usize,
        workers: Vec<Option<usize>>,
    ) -> Plan {
        let request = Request {
            endpoint: 0,
            addr,
            tls,
            bytes: encode_request("GET", &url.target, &url.authority(), &[], b""),
            is_head: false,
            idempotent: true,
            timeout,
        };
        let task = Task::steps(format!("GET {}", url.target), vec![Step::Request(request)]);
        Plan {
            user_types: vec![UserType::new("QuickUser", vec![task])],
            endpoints: vec![Endpoint { method: "GET".into(), name: url.target.clone() }],
            vars: Vars::default(),
            data: Vec::new(),
            pools: Vec::new(),
            pool_seeds: Vec::new(),
            thresholds: Vec::new(),
            setup: Vec::new(),
            teardown: Vec::new(),
            users: 1,
            spawn_rate: 1.0,
            run_time: None,
            shape: None,
            rate: None,
            live_control: false,
            headroom: 0,
            max_start_delay: Duration::from_secs(1),
            iterations: None,
            reset_stats: false,
            stop_timeout: Duration::ZERO,
            max_timeout: timeout,
            pipeline,
            workers,
            io: Io::Auto,
            defer_taskrun: true,
            tick: Duration::from_secs(1),
            output: Output {
                only_summary: false,
                csv_prefix: None,
                csv_full_history: false,
                exit_code_on_error: 1,
                print_every: Duration::from_secs(2),
                abort_on_threshold: false,
            },
        }
    }

    /// The histogram upper bound in µs: the longest timeout plus slack for scheduling.
    pub fn histogram_max_us(&self) -> u64 {
        (self.max_timeout.as_micros() as u64).saturating_mul(2).max(1_000_000)
    }

    /// Users assigned to worker `index`: global user `i` goes to worker `i % workers`.
    pub fn users_of_worker(&self, index: usize) -> impl Iterator<Item = u64> + '_ {
        (index as u64..self.users + self.headroom).step_by(self.workers.len())
    }

    /// Turns on live control (keys w/W/s/S) when the run can take it: a closed model without a
    /// shape or `--iterations` (users), or an open model without a shape (rate). Closed runs get
    /// room for as many users again as `--users` (at least 100, within the open-file limit).
    /// Returns whether it is on.
    pub fn enable_live_control(&mut self) -> bool {
        if self.shape.is_some() || self.iterations.is_some() {
            return false;
        }
        if self.rate.is_none() {
            let budget = raise_nofile_limit().unwrap_or(0).saturating_sub(RESERVED_FDS + self.users);
            self.headroom = self.users.max(100).min(budget);
        }
        self.live_control = true;
        true
    }

    /// When global user `i` starts, counted from the start of the run.
    pub fn start_offset(&self, user: u64) -> Duration {
        Duration::from_secs_f64(user as f64 / self.spawn_rate)
    }

    /// The user type of global user `i`. Types with a `fixed_count` take the first users (in
    /// file order); the others are interleaved in proportion to their weights (weights 5:1 give
    /// AAAAAB AAAAAB …), so every prefix of users is as close to the ratio as whole users allow.
    pub fn user_type_of(&self, user: u64) -> usize {
        let mut fixed = 0;
        for (index, user_type) in self.user_types.iter().enumerate() {
            if let Some(count) = user_type.fixed_count {
                fixed += count;
                if user < fixed {
                    return index;
                }
            }
        }
        let weighted = || self.user_types.iter().enumerate().filter(|(_, t)| t.fixed_count.is_none());
        let total: u64 = weighted().map(|(_, t)| u64::from(t.weight)).sum();
        let slot = (user - fixed) % total.max(1);
        let mut acc = 0;
        for (index, user_type) in weighted() {
            acc += u64::from(user_type.weight);
            if slot < acc {
                return index;
            }
        }
        // Only fixed-count types and more users than their counts: the extra users go to the
        // last type (the plan builder refuses this case).
        self.user_types.len() - 1
    }

    /// Checks what can be checked before any thread starts; raises RLIMIT_NOFILE to its hard
    /// limit and fails clearly when there cannot be a socket per user.
    pub fn check_resources(&self) -> Result<()> {
        let limit = raise_nofile_limit().context("cannot read or raise RLIMIT_NOFILE")?;
        let needed = self.users + RESERVED_FDS;
        if needed > limit {
            bail!(
                "--users {}: each user needs its own socket, but the open-file limit is {limit} \
                 (hard limit; {} kept for the process). Use at most {} users, or raise the hard \
                 limit (ulimit -Hn) as root",
                self.users,
                RESERVED_FDS,
                limit.saturating_sub(RESERVED_FDS)
            );
        }
        Ok(())
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read a plain struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Worker list from `--threads` and `--cpus`: pinned to the listed cores, or to cores 0..N.
pub fn resolve_workers(threads: Option<usize>, cpus: Option<&str>) -> Result<Vec<Option<usize>>> {
    let available: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let cpus = match cpus {
        Some(list) => {
            let cpus = parse_cpu_list(list).map_err(|e| anyhow::anyhow!("--cpus {list}: {e}"))?;
            if let Some(missing) = cpus.iter().find(|c| !available.contains(c)) {
                bail!("--cpus {list}: core {missing} is not available to this process (available: {available:?})");
            }
            cpus
        }
        None => available,
    };
    let count = threads.unwrap_or(cpus.len().max(1));
    Ok((0..count).map(|i| if cpus.is_empty() { None } else { Some(cpus[i % cpus.len()]) }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_types_interleave_by_weight() {
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        let mut plan = Plan::quick(&url, url.resolve().unwrap(), None, Duration::from_secs(1), 1, vec![None]);
        let mut b = plan.user_types[0].clone();
        plan.user_types[0].weight = 5;
        b.weight = 1;
        plan.user_types.push(b);
        let kinds: Vec<usize> = (0..12).map(|u| plan.user_type_of(u)).collect();
        assert_eq!(kinds, [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn users_split_round_robin() {
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        let mut plan = Plan::quick(&url, url.resolve().unwrap(), None, Duration::from_secs(1), 1, vec![None, None]);
        plan.users = 5;
        assert_eq!(plan.users_of_worker(0).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(plan.users_of_worker(1).collect::<Vec<_>>(), [1, 3]);
    }
}
