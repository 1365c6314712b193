//! The `Plan`: the single validated, resolved description of a run, built before any thread
//! starts. The engine never sees raw flags. Requests are encoded to bytes here, endpoints are
//! numbered here, addresses are resolved here.
//!
//! Shape: user types → weighted tasks → steps (requests), with a wait time after each task. Quick
//! mode (a URL on the command line) is a one-type, one-task, one-request plan with no wait;
//! scenario files compile into the same structure.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::parse_cpu_list;
use crate::runtime::Io;

mod call;
mod flags;
mod shape;
mod task;
mod threshold;
pub use call::{
    percent_encode, Accept, Call, Capture, Check, CheckKind, Escape, Expr, JsonOp, Message, Need, Needed, Part, Source,
    Template,
};
pub use flags::{auto_sources_all, step_addrs, FileSettings};
pub use shape::{Shape, Stage};
pub use task::{DataFile, Endpoint, Request, Step, Task, TaskKind, UserType, Vars, Wait};
pub use threshold::{EndpointFilter, Metric, Op, Threshold};

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
    /// Write a self-contained HTML report here at the end (`--html`).
    pub html: Option<PathBuf>,
    /// Print Locust's JSON of the final statistics on stdout, the tables on stderr (`--json`).
    pub json_stdout: bool,
    /// Write the whole-run summary (swarmer's JSON schema) here at the end (`--json-file`).
    pub json_file: Option<PathBuf>,
    /// Write an HdrHistogram interval log here (`--hdr-log`).
    pub hdr_log: Option<PathBuf>,
}

impl Default for Output {
    /// Tables every 2 s, exit code 1 on a failure, no files.
    fn default() -> Output {
        Output {
            only_summary: false,
            csv_prefix: None,
            csv_full_history: false,
            exit_code_on_error: 1,
            print_every: Duration::from_secs(2),
            abort_on_threshold: false,
            html: None,
            json_stdout: false,
            json_file: None,
            hdr_log: None,
        }
    }
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
    /// Distributed runs: the users are split into this many partitions across every worker
    /// process (global user `i` is in partition `i % partitions`; a thread runs one partition).
    /// `None`: one partition per thread of this process, thread `i` running partition `i`.
    pub partitions: Option<usize>,
    /// Source addresses user connections bind to (user i to the (i mod n)-th); empty: the
    /// kernel picks.
    pub source_addrs: Vec<std::net::IpAddr>,
    /// The data and body files the scenario read, by the path it gives and their bytes (a
    /// distributed master sends them to its workers).
    pub sources: Vec<(String, Vec<u8>)>,
    pub io: Io,
    pub defer_taskrun: bool,
    /// Quick mode may run on the ring engine (`--no-ring` says not; see `engine::ring`).
    pub ring: bool,
    /// Snapshot period; the reporter's unit of time (CSV history rows).
    pub tick: Duration,
    pub output: Output,
    /// The run's random seed: every user's generator (think times, task picks, `uuid()`,
    /// `random_int()`…) is seeded from it and the user's number, so `--seed` replays a run.
    pub seed: u64,
    /// What is tested, for the start banner: `GET http://host/path` (quick mode) or the
    /// scenario file.
    pub origin: String,
}

/// Open model: users at most, unless `--max-users` says.
pub const DEFAULT_MAX_USERS: u64 = 1000;

/// Per-request timeout when neither the command line nor the scenario file gives one: long
/// enough for a slow endpoint a load test still means to measure, short enough that a server
/// that hangs shows up as timeouts within a typical run instead of as silence (wrk: 2 s, k6:
/// 60 s, Locust: none).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Headroom of file descriptors kept for the process itself (stdio, CSV files, rings, pipes).
pub const RESERVED_FDS: u64 = 64;

impl Plan {
    /// Every step of every user type, in order: `on_start`, the tasks (nested task sets
    /// included), `on_stop`.
    pub fn for_each_step(&self, mut visit: impl FnMut(&Step)) {
        fn tasks(list: &[Task], visit: &mut dyn FnMut(&Step)) {
            for task in list {
                match &task.kind {
                    TaskKind::Steps(steps) => steps.iter().for_each(&mut *visit),
                    TaskKind::Set { tasks: inner, .. } => tasks(inner, visit),
                }
            }
        }
        for user_type in &self.user_types {
            user_type.on_start.iter().for_each(&mut visit);
            tasks(&user_type.tasks, &mut visit);
            user_type.on_stop.iter().for_each(&mut visit);
        }
    }

    /// The histogram upper bound in µs: the longest timeout plus slack for scheduling.
    pub fn histogram_max_us(&self) -> u64 {
        (self.max_timeout.as_micros() as u64).saturating_mul(2).max(1_000_000)
    }

    /// The source address global user `user` connects from (`--source-addrs`: the (i mod n)-th),
    /// if any.
    pub fn source_of(&self, user: u64) -> Option<std::net::IpAddr> {
        match self.source_addrs.len() {
            0 => None,
            n => Some(self.source_addrs[(user % n as u64) as usize]),
        }
    }

    /// How many partitions the users are split into (see `partitions`).
    pub fn partition_count(&self) -> usize {
        self.partitions.unwrap_or(self.workers.len()).max(1)
    }

    /// Users of partition `index`: global user `i` is in partition `i % partitions`.
    pub fn users_of_worker(&self, index: usize) -> impl Iterator<Item = u64> + '_ {
        (index as u64..self.users + self.headroom).step_by(self.partition_count())
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

    /// The seed of global user `i`'s random generator (SplitMix64 of the run's seed and `i`, so
    /// neighbouring users' streams are unrelated).
    pub fn user_seed(&self, user: u64) -> u64 {
        let mut z = self.seed ^ user.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// When global user `i` starts, counted from the start of the run.
    pub fn start_offset(&self, user: u64) -> Duration {
        crate::units::capped_duration(user as f64 / self.spawn_rate)
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
        self.check_sockets(self.users)
    }

    /// Checks that `users` users of this process can each have a socket (a distributed
    /// worker runs only its partitions' users).
    pub fn check_sockets(&self, users: u64) -> Result<()> {
        let limit = raise_nofile_limit().context("cannot read or raise RLIMIT_NOFILE")?;
        let needed = users + RESERVED_FDS;
        if needed > limit {
            bail!(
                "--users {}: each user needs its own socket, but the open-file limit is {limit} \
                 (hard limit; {} kept for the process). Use at most {} users, or raise the hard \
                 limit (ulimit -Hn) as root",
                users,
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
    use crate::http::Url;

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
