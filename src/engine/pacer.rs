//! Pacing a worker's users: the closed model's spawn ramp (`spawn_users`), a load shape or live
//! control's user count (`follow_shape`), and the open model's start schedule (`arrivals`). One
//! of the three runs per worker; each starts users as `user::run` tasks.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::run::{Run, POLL};
use super::schedule::Schedule;
use super::user;
use super::worker::{Running, Slot, Worker};

/// How often a worker compares its users with the load shape (and looks at a paused rate).
pub(crate) const SHAPE_STEP: Duration = Duration::from_millis(20);

/// Starts this worker's users at their scheduled times (global user i at i / spawn_rate).
pub(crate) async fn spawn_users(worker: Rc<Worker>) {
    let run = worker.run.clone();
    for user in run.plan.users_of_worker(worker.partition) {
        let at = run.start + run.plan.start_offset(user);
        if at > Instant::now() {
            monoio::time::sleep_until(monoio::time::Instant::from_std(at)).await;
        }
        if worker.stopping.get() {
            break;
        }
        monoio::spawn(user::run(Running::new(worker.clone(), user), user, None));
    }
    worker.spawned_all.set(true);
}

/// Keeps this worker's users at the load shape, or (live control) at the users the keys ask
/// for, reached at the spawn rate: the users wanted at time t are global users 0 .. n(t); those
/// of this worker that are wanted and not running start, those running and no longer wanted are
/// asked to stop at their next task boundary (the newest first, as n falls).
pub(crate) async fn follow_shape(worker: Rc<Worker>) {
    let mut wanted = Wanted::new();
    while !worker.stopping.get() {
        let wanted = wanted.now(&worker.run);
        for (local, user) in worker.run.plan.users_of_worker(worker.partition).enumerate() {
            if worker.wants(local, user, wanted) {
                monoio::spawn(user::run(Running::new(worker.clone(), user), user, None));
            }
        }
        monoio::time::sleep(SHAPE_STEP).await;
    }
}

/// How many users (global users 0 .. n) the load shape or live control wants running now,
/// reached at the spawn rate (which live control may change mid-run).
pub(crate) struct Wanted {
    /// Users the spawn rate has let start so far, and when that was worked out.
    allowed: f64,
    last: Instant,
}

impl Wanted {
    pub fn new() -> Wanted {
        Wanted { allowed: 1.0, last: Instant::now() }
    }

    pub fn now(&mut self, run: &Run) -> u64 {
        let plan = &run.plan;
        let cap = (plan.users + plan.headroom) as f64;
        self.allowed = (self.allowed + run.live.spawn_rate() * self.last.elapsed().as_secs_f64()).min(cap + 1.0);
        self.last = Instant::now();
        match (&plan.shape, plan.run_time) {
            (Some(shape), Some(run_time)) => shape.users_at(run.start.elapsed(), run_time, plan.users),
            _ => run.live.users.load(Ordering::Relaxed).min(self.allowed.floor() as u64),
        }
    }
}

/// The open model on this worker: each start of its `Schedule` goes to an idle user, or to a
/// new one while the pool is below its share of `--max-users`, or waits (oldest first) for a
/// user to finish — for at most `--max-start-delay`, after which it is dropped and counted.
/// Starts are timed with `sleep_until_precisely`; how late each one began is recorded.
pub(crate) async fn arrivals(worker: Rc<Worker>) {
    let run = worker.run.clone();
    let plan = &run.plan;
    let rate = plan.rate.expect("arrivals run with a rate");
    let mut schedule = Schedule::new(rate, plan.shape.clone(), plan.run_time, worker.partition, plan.partition_count());
    // A thread that joins a distributed run late starts with the schedule as it is now.
    let late = run.start.elapsed();
    if late > POLL {
        schedule.resume_at(late.as_secs_f64());
    }
    let mut pool = plan.users_of_worker(worker.partition);
    let mut previous = run.start;
    let mut paused = false;
    loop {
        match follow_live_rate(&worker, &mut schedule, &mut paused) {
            Rate::Over => break,
            Rate::Paused => {
                monoio::time::sleep(SHAPE_STEP).await;
                continue;
            }
            Rate::Going => {}
        }
        let Some(due) = schedule.next() else { break };
        let intended = run.start + due;
        wait_until(&worker, intended, previous).await;
        previous = intended;
        if worker.stopping.get() {
            break;
        }
        worker.drop_overdue();
        hand_out(&worker, &mut pool, intended);
    }
    worker.spawned_all.set(true);
    for slot in worker.idle.borrow_mut().drain(..) {
        slot.give(None);
    }
}

/// Where live control has the open model's rate.
enum Rate {
    Going,
    /// At 0 %: no starts until the keys raise it, none made up afterwards.
    Paused,
    /// Paused and the run is over.
    Over,
}

/// Applies live control's rate to `schedule` (nothing without live control).
fn follow_live_rate(worker: &Worker, schedule: &mut Schedule, paused: &mut bool) -> Rate {
    let run = &worker.run;
    let plan = &run.plan;
    if !plan.live_control {
        return Rate::Going;
    }
    let permille = run.live.rate_permille.load(Ordering::Relaxed);
    if permille == 0 {
        *paused = true;
        let over = worker.stopping.get() || plan.run_time.is_some_and(|t| run.start.elapsed() >= t);
        return if over { Rate::Over } else { Rate::Paused };
    }
    if *paused {
        schedule.resume_at(run.start.elapsed().as_secs_f64());
        *paused = false;
    }
    schedule.set_scale(permille as f64 / 1000.0);
    Rate::Going
}

/// Sleeps until the start meant for `intended` (the previous one was meant for `previous`),
/// waking at least every `POLL` to see the stop.
async fn wait_until(worker: &Worker, intended: Instant, previous: Instant) {
    // On io_uring every start is timed to the µs (the thread's timerfd). On epoll only starts
    // far enough apart are (coarse timer, then a short yield loop); closer ones would keep the
    // loop spinning and starve the thread's timers, so they are started by the coarse timer
    // alone, each batch as its millisecond tick comes (lag under ~1 ms, recorded).
    let precise = crate::runtime::can_time_precisely(intended.saturating_duration_since(previous));
    while !worker.stopping.get() && intended.saturating_duration_since(Instant::now()) > POLL {
        monoio::time::sleep(POLL).await;
    }
    if precise {
        crate::runtime::sleep_until_precisely(intended).await;
    } else if intended > Instant::now() {
        monoio::time::sleep_until(monoio::time::Instant::from_std(intended)).await;
    }
}

/// Gives the start meant for `intended` to an idle user, a new one from `pool`, or (every user
/// busy) the queue of waiting starts.
fn hand_out(worker: &Rc<Worker>, pool: &mut impl Iterator<Item = u64>, intended: Instant) {
    let idle = worker.idle.borrow_mut().pop();
    let slot = match idle {
        Some(slot) => slot,
        None => match pool.next() {
            Some(user) => {
                let slot = Rc::new(Slot::default());
                monoio::spawn(user::run(Running::new(worker.clone(), user), user, Some(slot.clone())));
                slot
            }
            None => {
                worker.waiting.borrow_mut().push_back(intended);
                return;
            }
        },
    };
    worker.start(&slot, intended);
}
