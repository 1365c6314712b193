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
    /// Open model: users waiting for their next start, and starts waiting for a user (their
    /// intended times, oldest first).
    pub idle: RefCell<Vec<Rc<Slot>>>,
    pub waiting: RefCell<std::collections::VecDeque<Instant>>,
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
        live: super::Live::new(&plan),
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
    if plan.rate.is_some() {
        monoio::spawn(arrivals(worker.clone()));
    } else if plan.shape.is_some() || plan.live_control {
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
            // Open model: starts still waiting for a user will never begin; count them now,
            // before the final snapshot.
            for _ in worker.waiting.borrow_mut().drain(..) {
                worker.stats.borrow_mut().dropped();
            }
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
            idle: RefCell::new(Vec::with_capacity(local_users)),
            waiting: RefCell::new(std::collections::VecDeque::new()),
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

/// An open-model user's mailbox: the scheduler puts the intended start of its next task here
/// (`None`: the run is over) and wakes it.
#[derive(Default)]
pub(crate) struct Slot {
    ticket: Cell<Option<Option<Instant>>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    pub fn give(&self, start: Option<Instant>) {
        self.ticket.set(Some(start));
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// The next start handed to this user.
    pub fn next(&self) -> impl Future<Output = Option<Instant>> + '_ {
        std::future::poll_fn(move |cx| match self.ticket.take() {
            Some(start) => Poll::Ready(start),
            None => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// The open model's schedule on this worker (`Schedule`: at a constant rate, starts at
/// `rate / workers` per second, this worker's phase `index / rate` after the others', so the
/// workers' starts interleave evenly with no shared state; with rate stages or a shape, the
/// same interleaving along the rate's integral). Each start goes to an idle user, or to a new one while the pool is
/// below its share of `--max-users`, or waits (oldest first) for a user to finish — for at most
/// `--max-start-delay`, after which it is dropped and counted. Starts are timed with
/// `sleep_until_precisely`; how late each one began is recorded.
async fn arrivals(worker: Rc<Worker>) {
    let run = worker.run.clone();
    let plan = &run.plan;
    let rate = plan.rate.expect("arrivals run with a rate");
    let mut schedule =
        crate::config::Schedule::new(rate, plan.shape.clone(), plan.run_time, worker.index, plan.workers.len());
    let mut pool = plan.users_of_worker(worker.index);
    let mut previous = run.start;
    let mut paused = false;
    loop {
        if plan.live_control {
            let permille = run.live.rate_permille.load(Ordering::Relaxed);
            if permille == 0 {
                // Keys took the rate to 0: no starts until they raise it, none made up after.
                if worker.stopping.get() || plan.run_time.is_some_and(|t| run.start.elapsed() >= t) {
                    break;
                }
                paused = true;
                monoio::time::sleep(SHAPE_STEP).await;
                continue;
            }
            if paused {
                schedule.resume_at(run.start.elapsed().as_secs_f64());
                paused = false;
            }
            schedule.set_scale(permille as f64 / 1000.0);
        }
        let Some(due) = schedule.next() else { break };
        let intended = run.start + due;
        // On io_uring every start is timed to the µs (the thread's timerfd). On epoll only starts
        // far enough apart are (coarse timer, then a short yield loop); closer ones would keep the
        // loop spinning and starve the thread's timers, so they are started by the coarse timer
        // alone, each batch as its millisecond tick comes (lag under ~1 ms, recorded).
        let precise = crate::runtime::can_time_precisely(intended.saturating_duration_since(previous));
        previous = intended;
        // Wake at least every POLL to see the stop.
        while !worker.stopping.get() && intended.saturating_duration_since(Instant::now()) > POLL {
            monoio::time::sleep(POLL).await;
        }
        if precise {
            crate::runtime::sleep_until_precisely(intended).await;
        } else if intended > Instant::now() {
            monoio::time::sleep_until(monoio::time::Instant::from_std(intended)).await;
        }
        if worker.stopping.get() {
            break;
        }
        drop_overdue(&worker);
        let idle = worker.idle.borrow_mut().pop();
        let slot = match idle {
            Some(slot) => slot,
            None => match pool.next() {
                Some(user) => {
                    let slot = Rc::new(Slot::default());
                    worker.running.set(worker.running.get() + 1);
                    monoio::spawn(user::run(worker.clone(), user, Some(slot.clone())));
                    slot
                }
                None => {
                    // Every user is busy: the start waits for the first to finish.
                    worker.waiting.borrow_mut().push_back(intended);
                    continue;
                }
            },
        };
        worker.start(&slot, intended);
    }
    worker.spawned_all.set(true);
    for slot in worker.idle.borrow_mut().drain(..) {
        slot.give(None);
    }
}

/// Drops the starts that have waited longer than `--max-start-delay` for a user.
fn drop_overdue(worker: &Worker) {
    let bound = worker.run.plan.max_start_delay;
    let now = Instant::now();
    let mut waiting = worker.waiting.borrow_mut();
    while waiting.front().is_some_and(|&intended| now.saturating_duration_since(intended) > bound) {
        waiting.pop_front();
        worker.stats.borrow_mut().dropped();
    }
}

impl Worker {
    /// Hands the start meant for `intended` to the user behind `slot`, recording its lag.
    pub(crate) fn start(&self, slot: &Slot, intended: Instant) {
        let lag = Instant::now().saturating_duration_since(intended);
        self.stats.borrow_mut().arrival(lag.as_micros().min(u128::from(u64::MAX)) as u64);
        slot.give(Some(intended));
    }

    /// An open-model user is free: it takes the oldest waiting start (within the bound), or
    /// goes idle. True when it got a start.
    pub(crate) fn user_free(&self, slot: &Rc<Slot>) -> bool {
        drop_overdue(self);
        let next = self.waiting.borrow_mut().pop_front();
        match next {
            Some(intended) => {
                self.start(slot, intended);
                true
            }
            None => {
                self.idle.borrow_mut().push(slot.clone());
                false
            }
        }
    }
}

/// How often a worker compares its users with the load shape.
const SHAPE_STEP: Duration = Duration::from_millis(20);

/// Keeps this worker's users at the load shape, or (live control) at the users the keys ask
/// for, reached at the spawn rate: the users wanted at time t are global users 0 .. n(t); those
/// of this worker that are wanted and not running start, those running and no longer wanted are
/// asked to stop at their next task boundary (the newest first, as n falls).
async fn follow_shape(worker: Rc<Worker>) {
    let run = worker.run.clone();
    let plan = &run.plan;
    while !worker.stopping.get() {
        let elapsed = run.start.elapsed();
        let wanted = match (&plan.shape, plan.run_time) {
            (Some(shape), Some(run_time)) => shape.users_at(elapsed, run_time, plan.users),
            _ => {
                let spawned = (elapsed.as_secs_f64() * plan.spawn_rate).floor() as u64 + 1;
                run.live.users.load(Ordering::Relaxed).min(spawned)
            }
        };
        for (local, user) in plan.users_of_worker(worker.index).enumerate() {
            let (alive, stop) = (&worker.user_alive[local], &worker.user_stop[local]);
            if user < wanted {
                stop.set(false);
                if !alive.get() {
                    alive.set(true);
                    worker.running.set(worker.running.get() + 1);
                    monoio::spawn(user::run(worker.clone(), user, None));
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
        monoio::spawn(user::run(worker.clone(), user, None));
    }
    worker.spawned_all.set(true);
}
