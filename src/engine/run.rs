//! What every worker of one run shares: the plan, the common start, the stop flag, the
//! scenario's shared pools and the levels live control sets. Built once by the caller; workers
//! only read it (and lock a pool when a scenario pushes or picks).

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Plan;

/// How often workers look at the stop flag and the clock.
pub const POLL: Duration = Duration::from_millis(10);

/// What every worker needs to take part in one run.
pub struct Run {
    pub plan: Arc<Plan>,
    /// The common origin of the run: spawn times, ticks and the deadline count from here.
    pub start: Instant,
    /// Set by a signal handler or the caller to stop the run gracefully.
    pub stop: Arc<AtomicBool>,
    /// Set to stop at once (a second Ctrl-C): the stop timeout's grace ends, requests in flight
    /// are cancelled.
    pub abort: AtomicBool,
    /// Users running on all workers (changed when a user starts or ends, never per request).
    pub users_running: AtomicU64,
    /// Called on each worker thread before its runtime starts (instrumentation, tests).
    pub on_worker_start: Option<fn(usize)>,
    /// The scenario's shared pools (`push` / `pool("name")`), one lock each: a value pushed by
    /// a user on one core can be picked by a user on any other.
    pub pools: Vec<Mutex<Vec<serde_json::Value>>>,
    /// What live control (the keys) changes while the run goes.
    pub live: Live,
    /// Per partition: its thread stops as at the end of the run (a distributed master moved
    /// the partition to another worker).
    pub released: Vec<AtomicBool>,
}

impl Run {
    /// A run of `plan` starting now, its pools holding what `setup` pushed.
    pub fn new(plan: Arc<Plan>, stop: Arc<AtomicBool>, on_worker_start: Option<fn(usize)>) -> Run {
        Run::starting_at(Instant::now(), plan, stop, on_worker_start)
    }

    /// A run whose origin is `start` (a distributed worker's: the master's start, on this
    /// machine's clock).
    pub fn starting_at(
        start: Instant,
        plan: Arc<Plan>,
        stop: Arc<AtomicBool>,
        on_worker_start: Option<fn(usize)>,
    ) -> Run {
        let pools =
            (0..plan.pools.len()).map(|i| Mutex::new(plan.pool_seeds.get(i).cloned().unwrap_or_default())).collect();
        Run {
            live: Live::new(&plan),
            released: (0..plan.partition_count()).map(|_| AtomicBool::new(false)).collect(),
            plan,
            start,
            stop,
            abort: AtomicBool::new(false),
            users_running: AtomicU64::new(0),
            on_worker_start,
            pools,
        }
    }
}

/// The levels live control sets and the workers follow: users wanted (closed model) and the
/// rate as thousandths of `--rate` (open model).
pub struct Live {
    pub users: AtomicU64,
    /// Users started per second, in thousandths (the web UI may change it mid-run).
    pub spawn_rate_milli: AtomicU64,
    pub rate_permille: AtomicU64,
}

impl Live {
    pub fn new(plan: &Plan) -> Live {
        Live {
            users: AtomicU64::new(plan.users),
            spawn_rate_milli: AtomicU64::new((plan.spawn_rate * 1000.0).round().max(1.0) as u64),
            rate_permille: AtomicU64::new(1000),
        }
    }

    /// Users started per second now.
    pub fn spawn_rate(&self) -> f64 {
        self.spawn_rate_milli.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
    }
}
