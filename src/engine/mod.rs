//! The engine: one pinned OS thread per selected core, each with its own monoio runtime and its
//! own slice of the virtual users. Nothing is shared between workers per request: each owns its
//! users, connections, buffers, RNGs and `CoreStats`. The only cross-thread traffic is the stop
//! flag (a Relaxed load every `POLL`) and one `Snapshot` per tick to the reporter.

mod session;
mod user;
mod worker;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use crate::config::Plan;
use crate::stats::Snapshot;

/// What `setup` leaves for the run: variables and pool contents.
pub struct FixtureState {
    pub vars: Vec<serde_json::Value>,
    pub pools: Vec<Vec<serde_json::Value>>,
}

/// Runs run-level steps (`setup`, `teardown`) once, outside the measured run, on the calling
/// thread; returns the variables and pools as they left them, or the first failure.
pub fn run_fixture(
    plan: Arc<Plan>,
    steps: &[crate::config::Step],
    vars: Vec<serde_json::Value>,
) -> Result<FixtureState> {
    worker::run_fixture(plan, steps, vars)
}

/// How often workers look at the stop flag and the clock.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// What every worker needs to take part in one run.
pub struct Run {
    pub plan: Arc<Plan>,
    /// The common origin of the run: spawn times, ticks and the deadline count from here.
    pub start: Instant,
    /// Set by a signal handler or the caller to stop the run gracefully.
    pub stop: Arc<AtomicBool>,
    /// Called on each worker thread before its runtime starts (instrumentation, tests).
    pub on_worker_start: Option<fn(usize)>,
    /// The scenario's shared pools (`push` / `pool("name")`), one lock each: a value pushed by
    /// a user on one core can be picked by a user on any other.
    pub pools: Vec<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// What live control (the keys) changes while the run goes.
    pub live: Live,
}

/// The levels live control sets and the workers follow: users wanted (closed model) and the
/// rate as thousandths of `--rate` (open model).
pub struct Live {
    pub users: std::sync::atomic::AtomicU64,
    pub rate_permille: std::sync::atomic::AtomicU64,
}

impl Live {
    pub fn new(plan: &Plan) -> Live {
        Live {
            users: std::sync::atomic::AtomicU64::new(plan.users),
            rate_permille: std::sync::atomic::AtomicU64::new(1000),
        }
    }
}

/// The pools of `plan`, holding what `setup` pushed.
pub fn new_pools(plan: &Plan) -> Vec<std::sync::Mutex<Vec<serde_json::Value>>> {
    (0..plan.pools.len()).map(|i| std::sync::Mutex::new(plan.pool_seeds.get(i).cloned().unwrap_or_default())).collect()
}

/// Starts one thread per worker. Each sends its snapshots on `snapshots` and takes spare ones
/// back from its entry of `spares`; it exits when the run is over, after a final snapshot.
pub fn start(
    run: Arc<Run>,
    snapshots: Sender<Snapshot>,
    spares: Vec<Receiver<Snapshot>>,
) -> Result<Vec<JoinHandle<Result<()>>>> {
    let mut handles = Vec::new();
    for (index, spares) in spares.into_iter().enumerate() {
        let run = run.clone();
        let snapshots = snapshots.clone();
        let handle = std::thread::Builder::new()
            .name(format!("swarmer-worker-{index}"))
            .spawn(move || worker::main(index, run, snapshots, spares))
            .context("cannot start a worker thread")?;
        handles.push(handle);
    }
    Ok(handles)
}
