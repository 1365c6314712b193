//! The virtual-user loop: pick a task by weight, run it, wait, repeat until the worker says
//! stop. One loop for every load shape; the steps and the wait vary by parameter.
//!
//! Each user owns its connections (one keep-alive `Conn` per target address) and its RNG.
//! Recording goes to the worker's `CoreStats` through a `RefCell`: no locks, no atomics.
//!
//! Two kinds of step: a `Request` encoded once (quick mode; nothing allocates, `exchange`), and
//! a scenario `Call` built per send from the user's session, then checked and captured from
//! (`call`).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::call::{execute_call, Caller, Stop};
use super::exchange::{execute, Conns};
use super::session::{Session, Shared};
use super::worker::{Running, Slot, Worker};
use crate::config::{Plan, Step, Task, TaskKind, UserType, Wait};

/// How long a user's `on_stop` steps may take once the run is over (its own bound, after the
/// stop timeout's grace): requests still in flight then are counted as cancelled.
pub const ON_STOP_BOUND: Duration = Duration::from_secs(5);

/// Runs user `index` from start to end: its `on_start` steps, then the closed-model loop or
/// (with a `slot`, open model) one task per start the scheduler hands it, until it is told to
/// stop or the worker cancels it; then, as in Locust, its `on_stop` steps, even when it was
/// cancelled mid-task (within `ON_STOP_BOUND`; not after a second Ctrl-C, nor when its
/// `on_start` failed). `running` counts it as running from the moment it was spawned.
pub(crate) async fn run(running: Running, index: u64, slot: Option<Rc<Slot>>) {
    let worker = running.worker();
    let run = worker.run.clone();
    let plan = &run.plan;
    let user_type = &plan.user_types[plan.user_type_of(index)];
    let mut user = User::new(worker, plan, index);
    user.start_session(user_type);
    let lived = monoio::select! {
        // In this order: a cancel wins, and no random number is drawn per poll to pick one.
        biased;
        _ = worker.cancel.fired() => {
            // Whatever was in flight left its connection in an unknown state.
            user.conns.close_all();
            true
        },
        started = live(&mut user, user_type, slot.as_ref()) => started,
    };
    if lived && !user_type.on_stop.is_empty() && !run.abort.load(Ordering::Relaxed) {
        let _ = crate::runtime::timer::timeout(ON_STOP_BOUND, run_steps(&mut user, &user_type.on_stop)).await;
    }
}

/// The user's `on_start`, then its tasks; false when `on_start` failed for good (the user then
/// stops, as a Locust user whose on_start raises).
async fn live(user: &mut User<'_>, user_type: &UserType, slot: Option<&Rc<Slot>>) -> bool {
    if !start(user, user_type).await {
        return false;
    }
    match slot {
        Some(slot) => open_loop(user, user_type, slot).await,
        None => closed_loop(user, user_type).await,
    }
    true
}

/// One user's state while it runs.
pub(crate) struct User<'w> {
    pub worker: &'w Worker,
    pub plan: &'w Plan,
    /// The user's global number.
    pub index: u64,
    pub rng: SmallRng,
    pub conns: Conns,
    /// Scenario users only (quick mode has no session).
    pub session: Option<Session>,
    /// The user type's tasks as a shuffled deck: each task appears `weight / gcd` times and
    /// picks draw without replacement, refilling when empty. Every pick is random, yet over any
    /// run the counts follow the weights to within one deck (Locust's independent draws drift
    /// by √n). Empty when the deck would be large: then picks are independent draws.
    deck: Vec<u32>,
    dealt: usize,
    /// Open model: the intended start of the current task; its first request's latency counts
    /// from here (taken by that request).
    pub intended: Option<Instant>,
}

/// Decks larger than this (after dividing weights by their gcd) fall back to independent draws.
const MAX_DECK: u32 = 4096;

impl<'w> User<'w> {
    pub fn new(worker: &'w Worker, plan: &'w Plan, user: u64) -> User<'w> {
        let scenario = !plan.vars.names.is_empty() || plan_has_calls(plan);
        let mut session = scenario.then(|| Session::new(plan.vars.initial.clone(), user));
        if let Some(session) = session.as_mut() {
            for data in plan.data.iter().filter(|d| d.per_user && !d.rows.is_empty()) {
                let row = &data.rows[(user % data.rows.len() as u64) as usize];
                for (slot, value) in data.slots.iter().zip(row) {
                    session.vars[*slot] = value.clone();
                }
            }
        }
        User {
            worker,
            plan,
            index: user,
            rng: SmallRng::seed_from_u64(plan.user_seed(user)),
            conns: Conns::from(plan.source_of(user)),
            session,
            deck: Vec::new(),
            dealt: 0,
            intended: None,
        }
    }

    /// The session's default headers, from the user type.
    pub fn start_session(&mut self, user_type: &UserType) {
        let Some(session) = self.session.as_mut() else { return };
        let shared = Shared { pools: &self.worker.run.pools, plan: self.plan };
        for (name, value) in &user_type.headers {
            // Default headers cannot read pools (the plan builder refuses it), so this cannot fail.
            let value = session.render_string(value, &shared, &mut self.rng).unwrap_or_default();
            session.headers.push((name.clone(), value));
        }
    }

    /// What a scenario call of this user works with.
    pub fn caller(&mut self) -> Caller<'_, 'w> {
        Caller {
            worker: self.worker,
            plan: self.plan,
            conns: &mut self.conns,
            session: self.session.as_mut().expect("scenario users have a session"),
            rng: &mut self.rng,
            intended: self.intended.take(),
        }
    }

    /// Picks the next top-level task: from the deck, or by an independent weighted draw.
    fn next_task<'t>(&mut self, tasks: &'t [Task]) -> &'t Task {
        if tasks.len() == 1 {
            return &tasks[0];
        }
        let gcd = tasks.iter().map(|t| t.weight).fold(0, gcd);
        let size: u32 = tasks.iter().map(|t| t.weight / gcd).sum();
        if size > MAX_DECK {
            return pick(tasks, &mut self.rng);
        }
        if self.dealt == self.deck.len() {
            use rand::seq::SliceRandom;
            self.deck.clear();
            for (index, task) in tasks.iter().enumerate() {
                self.deck.extend(std::iter::repeat_n(index as u32, (task.weight / gcd) as usize));
            }
            self.deck.shuffle(&mut self.rng);
            self.dealt = 0;
        }
        self.dealt += 1;
        &tasks[self.deck[self.dealt - 1] as usize]
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn plan_has_calls(plan: &Plan) -> bool {
    let mut calls = false;
    plan.for_each_step(|step| calls |= matches!(step, Step::Call(_)));
    calls || plan.user_types.iter().any(|u| !u.on_start.is_empty())
}

/// `on_start`: tried `1 + on_start_retries` times (the user's wait between tries). A try that
/// ends early (a required step failed, a capture found nothing) is counted as an abort; when
/// the last one does, the user stops, and the abort says so.
async fn start(user: &mut User<'_>, user_type: &UserType) -> bool {
    if user_type.on_start.is_empty() {
        return true;
    }
    for attempt in 0..=user_type.on_start_retries {
        let started = task_start(user_type.wait);
        match run_steps(user, &user_type.on_start).await {
            Ended::Done | Ended::Skipped => return true,
            Ended::Aborted(path, reason) => {
                let last = attempt == user_type.on_start_retries;
                let reason = match last {
                    true => format!("{reason}; the user stopped (its on_start failed)"),
                    false => format!("{reason}; on_start tried again"),
                };
                user.worker.stats.borrow_mut().abort(path, &reason);
                if last || user.worker.stopping.get() {
                    break;
                }
                wait(user_type.wait, started, &mut user.rng).await;
            }
        }
    }
    if let Some(failed) = user.worker.user_failed.get(user.worker.local(user.index)) {
        failed.set(true);
    }
    false
}

/// The closed model: pick a task, run it (`repeat` times), the user's wait after each run;
/// until the worker stops, the load shape no longer wants this user, or `--iterations` runs.
async fn closed_loop(user: &mut User<'_>, user_type: &UserType) {
    let worker = user.worker;
    let limit = user.plan.iterations;
    let local = worker.local(user.index);
    let told_to_stop = || worker.user_stop.get(local).is_some_and(std::cell::Cell::get);
    let mut iterations = 0;
    while !worker.stopping.get() && !told_to_stop() && limit.is_none_or(|limit| iterations < limit) {
        let task = user.next_task(&user_type.tasks);
        iterations += 1;
        if !run_picked(user, user_type, task).await {
            return;
        }
    }
}

/// An open-model user: runs one task per start the scheduler hands it (latency counted from
/// the intended start), then waits idle for the next; no think time (the schedule paces).
async fn open_loop(user: &mut User<'_>, user_type: &UserType, slot: &Rc<Slot>) {
    let worker = user.worker;
    loop {
        let Some(intended) = slot.next().await else { break };
        user.intended = Some(intended);
        let task = user.next_task(&user_type.tasks);
        run_once(user, user_type, task).await;
        if worker.stopping.get() {
            break;
        }
        worker.user_free(slot);
    }
}

/// Runs a picked task `repeat` times, each run followed by the user's wait (a task set returns
/// without one: Locust reschedules at once after an interrupt). False when the worker stopped.
async fn run_picked(user: &mut User<'_>, user_type: &UserType, task: &Task) -> bool {
    for _ in 0..task.repeat.max(1) {
        let started = task_start(user_type.wait);
        run_once(user, user_type, task).await;
        if user.worker.stopping.get() {
            return false;
        }
        if matches!(task.kind, TaskKind::Steps(_)) && user_type.wait != Wait::None {
            wait(user_type.wait, started, &mut user.rng).await;
        }
    }
    true
}

/// One run of a task: its steps (with the next rows of round-robin data files), or a nested
/// task set until it returns.
async fn run_once(user: &mut User<'_>, user_type: &UserType, task: &Task) {
    match &task.kind {
        TaskKind::Steps(steps) => {
            next_data_rows(user);
            if let Ended::Aborted(path, reason) = run_steps(user, steps).await {
                user.worker.stats.borrow_mut().abort(path, &reason);
            }
        }
        TaskKind::Set { .. } => run_set(user, user_type, task).await,
    }
}

/// A nested task set: sequential (its tasks in order, `loops` times), or weighted until
/// "interrupt" is picked. Boxed because sets nest (the recursion needs a known size); tasks of
/// plain steps, the hot path, are not boxed.
fn run_set<'a>(
    user: &'a mut User<'_>,
    user_type: &'a UserType,
    task: &'a Task,
) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
    Box::pin(async move {
        let TaskKind::Set { tasks, sequential, interrupt_weight, loops } = &task.kind else { return };
        if *sequential {
            for _ in 0..(*loops).max(1) {
                for sub in tasks {
                    if !run_picked(user, user_type, sub).await {
                        return;
                    }
                }
            }
            return;
        }
        let total: u32 = tasks.iter().map(|t| t.weight).sum::<u32>() + interrupt_weight;
        loop {
            let ticket = user.rng.gen_range(0..total.max(1));
            if ticket >= total - interrupt_weight {
                return;
            }
            if !run_picked(user, user_type, pick_ticket(tasks, ticket)).await {
                return;
            }
        }
    })
}

/// Round-robin data files: the task takes the next row (rows are dealt across workers).
fn next_data_rows(user: &mut User<'_>) {
    let Some(session) = user.session.as_mut() else { return };
    for (index, data) in user.plan.data.iter().enumerate() {
        if data.per_user || data.rows.is_empty() {
            continue;
        }
        let next = &user.worker.data_next[index];
        let row = (next.get() * user.plan.partition_count() + user.worker.partition) % data.rows.len();
        next.set(next.get() + 1);
        for (slot, value) in data.slots.iter().zip(&data.rows[row]) {
            session.vars[*slot] = value.clone();
        }
    }
}

/// How a sequence of steps ended.
enum Ended {
    Done,
    /// A step ended it early (at its place, for this reason): the caller counts the abort.
    Aborted(&'static str, String),
    /// A step's needs were not met: counted as a skip here, the rest of the steps left out.
    Skipped,
}

/// Runs steps in order, until one ends the sequence.
async fn run_steps(user: &mut User<'_>, steps: &[Step]) -> Ended {
    for step in steps {
        match step {
            Step::Request(request) => {
                let pipeline = user.plan.pipeline;
                let intended = user.intended.take();
                let conn = user.conns.to(request.addr, request.tls.as_ref());
                execute(user.worker, conn, request, pipeline, intended).await;
            }
            Step::Sleep(pause) => crate::runtime::timer::sleep(*pause).await,
            Step::Call(call) => match execute_call(user.caller(), call).await {
                Ok(()) => {}
                Err(Stop::Abort(reason)) => return Ended::Aborted(call.path, reason),
                Err(Stop::Skip(unmet)) => {
                    user.worker.stats.borrow_mut().skip(call.path, unmet);
                    return Ended::Skipped;
                }
            },
        }
    }
    Ended::Done
}

fn pick<'a>(tasks: &'a [Task], rng: &mut SmallRng) -> &'a Task {
    if tasks.len() == 1 {
        return &tasks[0];
    }
    let total: u32 = tasks.iter().map(|t| t.weight).sum();
    pick_ticket(tasks, rng.gen_range(0..total))
}

fn pick_ticket(tasks: &[Task], mut ticket: u32) -> &Task {
    for task in tasks {
        if ticket < task.weight {
            return task;
        }
        ticket -= task.weight;
    }
    &tasks[tasks.len() - 1]
}

/// When a task starts, for the waits that count from it (pacing, Poisson); other waits need no
/// clock read per task.
fn task_start(wait: Wait) -> Option<Instant> {
    matches!(wait, Wait::Pacing(_) | Wait::Poisson(_)).then(Instant::now)
}

async fn wait(wait: Wait, task_started: Option<Instant>, rng: &mut SmallRng) {
    let took = || task_started.map_or(Duration::ZERO, |started| started.elapsed());
    let pause = match wait {
        Wait::None => return,
        Wait::Constant(d) => d,
        Wait::Between(low, high) if high > low => rng.gen_range(low..=high),
        Wait::Between(low, _) => low,
        Wait::Pacing(period) => period.saturating_sub(took()),
        Wait::Poisson(rate) => {
            // Exponential gap with mean 1/rate between task starts.
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            crate::units::capped_duration(-u.ln() / rate).saturating_sub(took())
        }
    };
    if !pause.is_zero() {
        crate::runtime::timer::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::engine::run::Run;
    use crate::engine::worker::Thread;

    /// What one user's task takes in memory for its whole life (monoio boxes it when spawned):
    /// most of the memory per connection (`scripts/bench.sh memory`). Printed, and kept from
    /// growing unnoticed: `cargo test --release --lib users_task -- --nocapture`.
    #[test]
    fn a_users_task_stays_small() {
        let url = crate::http::Url::parse("http://127.0.0.1:9/").unwrap();
        let plan = Plan::quick(&url, ([127, 0, 0, 1], 9).into(), None, Duration::from_secs(1), 1, vec![None]);
        let shared = Arc::new(Run::new(Arc::new(plan), Default::default(), None));
        let (snapshots, _) = crossbeam_channel::unbounded();
        let (_, spares) = crossbeam_channel::unbounded();
        let worker = Rc::new(Worker::new(shared, Thread { index: 0, partition: 0, core: None }, snapshots, spares));
        let task = run(Running::new(worker, 0), 0, None);
        let size = std::mem::size_of_val(&task);
        println!("a user's task: {size} bytes");
        // 2,040 bytes in a release build (4,992 before the TLS handshake, then monoio's timers,
        // were taken out of it: see `crate::runtime::timer`).
        assert!(size <= 2_304, "a user's task grew to {size} bytes");
    }
}
