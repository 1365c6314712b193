//! One worker thread: pins itself, builds its runtime, spawns its users on schedule, sends a
//! snapshot every tick, and stops on the deadline or the stop flag, giving users `stop_timeout`
//! to finish their task before the rest are cancelled.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::{user, Run, POLL};
use crate::config::{Plan, Step};
use crate::stats::{CoreStats, Snapshot};

/// State shared by the tasks of one worker (single-threaded: `Rc`, `Cell`, `RefCell`).
pub(crate) struct Worker {
    pub run: Arc<Run>,
    pub index: usize,
    pub stats: RefCell<CoreStats>,
    /// Users stop at their next task boundary once this is set.
    pub stopping: Cell<bool>,
    /// Users currently running on this worker.
    pub running: Cell<u64>,
    /// Every user of this worker has been started.
    pub spawned_all: Cell<bool>,
    /// Per local user (global user i is local i / workers): asked to stop at its next task
    /// boundary (a load shape went down), and whether it is running.
    pub user_stop: Vec<Cell<bool>>,
    pub user_alive: Vec<Cell<bool>>,
    /// Fires once the run is over: users still running drop what they were doing (and their
    /// connections) instead of being leaked with the runtime.
    pub cancel: Cancel,
    /// Per round-robin data file: rows taken on this worker so far.
    pub data_next: Vec<Cell<usize>>,
    snapshots: Sender<Snapshot>,
    spares: Receiver<Snapshot>,
}

pub(crate) fn main(index: usize, run: Arc<Run>, snapshots: Sender<Snapshot>, spares: Receiver<Snapshot>) -> Result<()> {
    let plan = &run.plan;
    if let Some(core) = plan.workers[index] {
        // Pinning can fail in restricted containers; the run is still valid, only less stable.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
    }
    if let Some(hook) = run.on_worker_start {
        hook(index);
    }
    let users = plan.users_of_worker(index).count() as u32;
    // Room for every user's in-flight op plus timers; the CQ is twice this.
    let entries = (users + 64).next_power_of_two().clamp(256, 32768);
    let worker = Rc::new(Worker::new(run.clone(), index, snapshots, spares));
    crate::runtime::block_on(plan.io, plan.defer_taskrun, entries, |driver| {
        worker.stats.borrow_mut().set_driver(driver);
        control(worker)
    })
    .with_context(|| format!("worker {index}: cannot build the IO runtime"))?
}

/// Runs run-level `setup` or `teardown` steps once on this thread, outside the measured run:
/// returns the variables and pools as the steps left them (setup captures become every user's
/// starting values, setup pushes the pools' first values), or the first failure.
pub(crate) fn run_fixture(
    plan: Arc<Plan>,
    steps: &[Step],
    vars: Vec<serde_json::Value>,
) -> Result<super::FixtureState> {
    let (snapshots, _) = crossbeam_channel::unbounded();
    let (_, spares) = crossbeam_channel::unbounded();
    let run = Arc::new(Run {
        plan: plan.clone(),
        start: Instant::now(),
        stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        on_worker_start: None,
        pools: super::new_pools(&plan),
    });
    let worker = Worker::new(run.clone(), 0, snapshots, spares);
    let result = crate::runtime::block_on(plan.io, plan.defer_taskrun, 256, |_| async {
        // Setup and teardown run as user 0 ({{ user_index }} is 0, data rows start at the first).
        let mut user = user::User::new(&worker, &plan, 0);
        if let Some(session) = user.session.as_mut() {
            session.vars = vars;
        }
        for step in steps {
            let Step::Call(call) = step else { continue };
            let before = worker.stats.borrow().failures();
            let result = user::execute_call(&mut user, call).await;
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
        Ok(super::FixtureState { vars, pools })
    })
    .context("cannot build the IO runtime for setup/teardown")?;
    result
}

/// The worker's control loop: spawn users, tick, stop.
async fn control(worker: Rc<Worker>) -> Result<()> {
    let run = worker.run.clone();
    let plan = &run.plan;
    if plan.shape.is_some() {
        monoio::spawn(follow_shape(worker.clone()));
    } else {
        monoio::spawn(spawn_users(worker.clone()));
    }
    let deadline = plan.run_time.map(|d| run.start + d);
    let mut seq = 0;
    let mut grace_end: Option<Instant> = None;
    loop {
        monoio::time::sleep(POLL).await;
        let now = Instant::now();
        while now >= run.start + plan.tick * (seq as u32 + 1) {
            worker.send_tick(seq)?;
            seq += 1;
        }
        // With --iterations, a worker whose users have all done theirs is finished.
        let done = plan.iterations.is_some() && worker.spawned_all.get() && worker.running.get() == 0;
        if grace_end.is_none() && (done || run.stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| now >= d)) {
            worker.stopping.set(true);
            grace_end = Some(now + plan.stop_timeout);
        }
        if grace_end.is_some_and(|end| worker.running.get() == 0 || now >= end) {
            break;
        }
    }
    let spare = worker.spare();
    let last = worker.stats.borrow_mut().finish(spare, seq, worker.running.get());
    worker.snapshots.send(last).context("reporter is gone")?;
    // Users still mid-request were just reported as cancelled; end them so their sockets close.
    worker.cancel.fire();
    let until = Instant::now() + CANCEL_GRACE;
    while worker.running.get() > 0 && Instant::now() < until {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// How long cancelled users get to drop their state before the runtime is torn down.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// A one-shot, single-threaded cancellation signal.
#[derive(Default)]
pub(crate) struct Cancel {
    fired: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Cancel {
    pub fn fire(&self) {
        self.fired.set(true);
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Completes when `fire` is called.
    pub fn fired(&self) -> impl Future<Output = ()> + '_ {
        let mut registered = false;
        std::future::poll_fn(move |cx| {
            if self.fired.get() {
                return Poll::Ready(());
            }
            if !registered {
                // Once per user: a task's waker stays valid for the task's life.
                self.wakers.borrow_mut().push(cx.waker().clone());
                registered = true;
            }
            Poll::Pending
        })
    }
}

impl Worker {
    fn new(run: Arc<Run>, index: usize, snapshots: Sender<Snapshot>, spares: Receiver<Snapshot>) -> Worker {
        let plan = &run.plan;
        let local_users = plan.users_of_worker(index).count();
        Worker {
            stats: RefCell::new(CoreStats::new(index, plan.endpoints.len(), plan.histogram_max_us())),
            data_next: plan.data.iter().map(|_| Cell::new(0)).collect(),
            user_stop: (0..local_users).map(|_| Cell::new(false)).collect(),
            user_alive: (0..local_users).map(|_| Cell::new(false)).collect(),
            run,
            index,
            stopping: Cell::new(false),
            running: Cell::new(0),
            spawned_all: Cell::new(false),
            cancel: Cancel::default(),
            snapshots,
            spares,
        }
    }

    fn spare(&self) -> Snapshot {
        match self.spares.try_recv() {
            Ok(mut spare) => {
                spare.reset();
                spare
            }
            // Only until the reporter has handed the first snapshots back.
            Err(_) => {
                let plan = &self.run.plan;
                Snapshot::new(self.index, plan.endpoints.len(), plan.histogram_max_us())
            }
        }
    }

    fn send_tick(&self, seq: u64) -> Result<()> {
        let spare = self.spare();
        let filled = self.stats.borrow_mut().swap(spare, seq, self.running.get());
        self.snapshots.send(filled).context("reporter is gone")
    }
}

/// How often a worker compares its users with the load shape.
const SHAPE_STEP: Duration = Duration::from_millis(20);

/// Keeps this worker's users at the load shape: the users wanted at time t are global users
/// 0 .. n(t); those of this worker that are wanted and not running start, those running and no
/// longer wanted are asked to stop at their next task boundary (the newest first, as n falls).
async fn follow_shape(worker: Rc<Worker>) {
    let run = worker.run.clone();
    let plan = &run.plan;
    let shape = plan.shape.as_ref().expect("follow_shape runs with a shape");
    let run_time = plan.run_time.expect("shapes have a run time");
    while !worker.stopping.get() {
        let wanted = shape.users_at(run.start.elapsed(), run_time, plan.users);
        for (local, user) in plan.users_of_worker(worker.index).enumerate() {
            let (alive, stop) = (&worker.user_alive[local], &worker.user_stop[local]);
            if user < wanted {
                stop.set(false);
                if !alive.get() {
                    alive.set(true);
                    worker.running.set(worker.running.get() + 1);
                    monoio::spawn(user::run(worker.clone(), user));
                }
            } else if alive.get() {
                stop.set(true);
            }
        }
        monoio::time::sleep(SHAPE_STEP).await;
    }
}

/// Starts this worker's users at their scheduled times (global user i at i / spawn_rate).
async fn spawn_users(worker: Rc<Worker>) {
    let run = worker.run.clone();
    for user in run.plan.users_of_worker(worker.index) {
        let at = run.start + run.plan.start_offset(user);
        if at > Instant::now() {
            monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
        }
        if worker.stopping.get() {
            break;
        }
        worker.running.set(worker.running.get() + 1);
        monoio::spawn(user::run(worker.clone(), user));
    }
    worker.spawned_all.set(true);
}
