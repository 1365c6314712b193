//! One worker thread from start to end: it pins itself, builds its runtime, starts the pacer
//! that spawns its users, sends a snapshot every tick, and stops on the deadline, the stop flag or
//! the last iteration, giving users `stop_timeout` to finish their task before the rest are
//! cancelled. Also the run-level fixtures (`setup`, `teardown`), run once on the calling thread.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::call::execute_call;
use super::pacer;
use super::ring;
use super::run::{Run, POLL};
use super::user::{User, ON_STOP_BOUND};
use super::worker::{Thread, Worker};
use crate::config::{Plan, Step};
use crate::stats::Snapshot;

/// How long cancelled users get to drop their state before the runtime is torn down (those with
/// `on_stop` steps get `ON_STOP_BOUND` more).
const CANCEL_GRACE: Duration = Duration::from_millis(100);

/// The body of a worker thread.
pub(crate) fn main(
    thread: Thread,
    run: Arc<Run>,
    snapshots: Sender<Snapshot>,
    spares: Receiver<Snapshot>,
) -> Result<()> {
    let plan = &run.plan;
    let index = thread.index;
    if let Some(core) = thread.core {
        // Pinning can fail in restricted containers; the run is still valid, only less stable.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
    }
    if let Some(hook) = run.on_worker_start {
        hook(index);
    }
    let users = plan.users_of_worker(thread.partition).count() as u32;
    // Room for every user's in-flight op plus timers; the CQ is twice this.
    let entries = (users + 64).next_power_of_two().clamp(256, 32768);
    let worker = Rc::new(Worker::new(run.clone(), thread, snapshots, spares));
    if let Some(request) = ring::request_of(plan) {
        if let Some(result) = ring::main(worker.clone(), request) {
            return result;
        }
    }
    crate::runtime::block_on(plan.io, plan.defer_taskrun, entries, |driver| {
        worker.stats.borrow_mut().set_driver(driver);
        control(worker)
    })
    .with_context(|| format!("worker {index}: cannot build the IO runtime"))?
}

/// The worker's control loop: start the pacer, tick, stop.
async fn control(worker: Rc<Worker>) -> Result<()> {
    let run = worker.run.clone();
    let plan = &run.plan;
    if plan.rate.is_some() {
        monoio::spawn(pacer::arrivals(worker.clone()));
    } else if plan.shape.is_some() || plan.live_control {
        monoio::spawn(pacer::follow_shape(worker.clone()));
    } else {
        monoio::spawn(pacer::spawn_users(worker.clone()));
    }
    // The tick the thread starts in (0, unless it joined a distributed run late).
    let mut seq = (run.start.elapsed().as_nanos() / plan.tick.as_nanos().max(1)) as u64;
    let mut grace_end: Option<Instant> = None;
    loop {
        monoio::time::sleep(POLL).await;
        let now = Instant::now();
        worker.send_due_ticks(&mut seq)?;
        if worker.stop_if_over(now, &mut grace_end) {
            // Open model: starts still waiting for a user will never begin; count them now,
            // before the final snapshot.
            for _ in worker.waiting.borrow_mut().drain(..) {
                worker.stats.borrow_mut().dropped();
            }
        }
        if worker.is_done(now, grace_end) {
            break;
        }
    }
    // Users still mid-task drop it (their requests in flight will be reported as cancelled)
    // and run their on_stop steps, which are counted: the last snapshot waits for them.
    worker.cancel.fire();
    let on_stop = plan.user_types.iter().any(|t| !t.on_stop.is_empty()) && !run.abort.load(Ordering::Relaxed);
    let until = Instant::now() + CANCEL_GRACE + if on_stop { ON_STOP_BOUND } else { Duration::ZERO };
    while worker.running.get() > 0 && Instant::now() < until {
        monoio::time::sleep(Duration::from_millis(1)).await;
        worker.send_due_ticks(&mut seq)?;
    }
    worker.send_last(seq)
}

/// What `setup` leaves for the run: variables and pool contents.
pub struct FixtureState {
    pub vars: Vec<serde_json::Value>,
    pub pools: Vec<Vec<serde_json::Value>>,
}

/// Runs run-level `setup` or `teardown` steps once on the calling thread, outside the measured
/// run: returns the variables and pools as the steps left them (setup captures become every
/// user's starting values, setup pushes the pools' first values), or the first failure.
pub fn run_fixture(plan: Arc<Plan>, steps: &[Step], vars: Vec<serde_json::Value>) -> Result<FixtureState> {
    let (snapshots, _) = crossbeam_channel::unbounded();
    let (_, spares) = crossbeam_channel::unbounded();
    let run = Arc::new(Run::new(plan.clone(), Default::default(), None));
    let worker = Worker::new(run.clone(), Thread { index: 0, partition: 0, core: None }, snapshots, spares);
    let result = crate::runtime::block_on(plan.io, plan.defer_taskrun, 256, |_| async {
        // Setup and teardown run as user 0 ({{ user_index }} is 0, data rows start at the first).
        let mut user = User::new(&worker, &plan, 0);
        if let Some(session) = user.session.as_mut() {
            session.vars = vars;
        }
        for step in steps {
            let Step::Call(call) = step else { continue };
            let before = worker.stats.borrow().failures();
            let result = execute_call(user.caller(), call).await;
            if let Err(reason) = result {
                anyhow::bail!("{}: {reason}", call.path);
            }
            if worker.stats.borrow().failures() > before {
                let reason = worker.stats.borrow().last_failure().map(|f| f.to_string()).unwrap_or_default();
                anyhow::bail!("{}: {reason}", call.path);
            }
        }
        let vars = user.session.map(|s| s.vars).unwrap_or_default();
        let pools = run.pools.iter().map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect();
        Ok(FixtureState { vars, pools })
    })
    .context("cannot build the IO runtime for setup/teardown")?;
    result
}
