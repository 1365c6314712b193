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
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::call::{execute_call, Caller};
use super::exchange::{execute, Conns};
use super::session::{Session, Shared};
use super::worker::{Running, Slot, Worker};
use crate::config::{Plan, Step, Task, TaskKind, UserType, Wait};

/// Runs user `user` until it stops or the worker cancels it: the closed-model loop, or (with
/// a `slot`, open model) one task per start the scheduler hands it. `running` counts it as
/// running from the moment it was spawned.
pub(crate) async fn run(running: Running, user: u64, slot: Option<Rc<Slot>>) {
    let worker = running.worker();
    match slot {
        Some(slot) => monoio::select! {
            _ = worker.cancel.fired() => {}
            _ = run_open_user(worker, user, &slot) => {}
        },
        None => monoio::select! {
            _ = worker.cancel.fired() => {}
            _ = run_user(worker, user) => {}
        },
    }
}

/// One user's state while it runs.
pub(crate) struct User<'w> {
    pub worker: &'w Worker,
    pub plan: &'w Plan,
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
            rng: SmallRng::seed_from_u64(0x5eed_0000 ^ user),
            conns: Conns::default(),
            session,
            deck: Vec::new(),
            dealt: 0,
            intended: None,
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
    fn in_tasks(tasks: &[Task]) -> bool {
        tasks.iter().any(|t| match &t.kind {
            TaskKind::Steps(steps) => steps.iter().any(|s| matches!(s, Step::Call(_))),
            TaskKind::Set { tasks, .. } => in_tasks(tasks),
        })
    }
    plan.user_types.iter().any(|u| in_tasks(&u.tasks) || !u.on_start.is_empty())
}

/// An open-model user: runs one task per start the scheduler hands it (latency counted from
/// the intended start), then waits idle for the next; no think time (the schedule paces).
async fn run_open_user(worker: &Worker, index: u64, slot: &Rc<Slot>) {
    let run = worker.run.clone();
    let (mut user, user_type) = begin(worker, &run.plan, index).await;
    loop {
        let Some(intended) = slot.next().await else { break };
        user.intended = Some(intended);
        let task = user.next_task(&user_type.tasks);
        run_task(&mut user, user_type, task).await;
        if worker.stopping.get() {
            break;
        }
        worker.user_free(slot);
    }
    run_steps(&mut user, &user_type.on_stop).await;
}

/// A user's start: its type, its session's default headers, its `on_start` steps. A failed
/// on_start is counted as an abort; the user goes on to its tasks (as in Locust, where the
/// exception is logged and the user keeps running).
async fn begin<'w>(worker: &'w Worker, plan: &'w Plan, index: u64) -> (User<'w>, &'w UserType) {
    let user_type = &plan.user_types[plan.user_type_of(index)];
    let mut user = User::new(worker, plan, index);
    if let Some(session) = user.session.as_mut() {
        let shared = Shared { pools: &worker.run.pools, plan };
        for (name, value) in &user_type.headers {
            // Default headers cannot read pools (the plan builder refuses it), so this cannot fail.
            let value = session.render_string(value, &shared, &mut user.rng).unwrap_or_default();
            session.headers.push((name.clone(), value));
        }
    }
    run_steps(&mut user, &user_type.on_start).await;
    (user, user_type)
}

async fn run_user(worker: &Worker, index: u64) {
    let run = worker.run.clone();
    let plan = &run.plan;
    let (mut user, user_type) = begin(worker, plan, index).await;
    let mut iterations = 0;
    let local = worker.local(index);
    let told_to_stop = || worker.user_stop.get(local).is_some_and(std::cell::Cell::get);
    while !worker.stopping.get() && !told_to_stop() && plan.iterations.is_none_or(|limit| iterations < limit) {
        iterations += 1;
        let task_started = Instant::now();
        let task = user.next_task(&user_type.tasks);
        run_task(&mut user, user_type, task).await;
        if worker.stopping.get() {
            break;
        }
        wait(user_type.wait, task_started, &mut user.rng).await;
    }
    // Within --stop-timeout: cancellation ends whatever is left when the grace runs out.
    run_steps(&mut user, &user_type.on_stop).await;
}

/// Runs a task `repeat` times; a task set runs its own tasks until it interrupts.
async fn run_task(user: &mut User<'_>, user_type: &UserType, task: &Task) {
    match &task.kind {
        TaskKind::Steps(steps) => {
            for _ in 0..task.repeat.max(1) {
                next_data_rows(user);
                run_steps(user, steps).await;
            }
        }
        TaskKind::Set { .. } => {
            for _ in 0..task.repeat.max(1) {
                run_set(user, user_type, task).await;
            }
        }
    }
}

/// A nested task set. Boxed because sets nest (the recursion needs a known size); tasks of
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
                    let started = Instant::now();
                    run_task(user, user_type, sub).await;
                    if user.worker.stopping.get() {
                        return;
                    }
                    wait(user_type.wait, started, &mut user.rng).await;
                }
            }
            return;
        }
        let total: u32 = tasks.iter().map(|t| t.weight).sum::<u32>() + interrupt_weight;
        loop {
            let started = Instant::now();
            let ticket = user.rng.gen_range(0..total.max(1));
            if ticket >= total - interrupt_weight {
                return;
            }
            run_task(user, user_type, pick_ticket(tasks, ticket)).await;
            if user.worker.stopping.get() {
                return;
            }
            wait(user_type.wait, started, &mut user.rng).await;
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
        let row = (next.get() * user.plan.workers.len() + user.worker.index) % data.rows.len();
        next.set(next.get() + 1);
        for (slot, value) in data.slots.iter().zip(&data.rows[row]) {
            session.vars[*slot] = value.clone();
        }
    }
}

/// Runs steps in order. A failed required step (or one whose captures later steps need) ends
/// the sequence and is counted as an abort.
async fn run_steps(user: &mut User<'_>, steps: &[Step]) {
    for step in steps {
        match step {
            Step::Request(request) => {
                let pipeline = user.plan.pipeline;
                let intended = user.intended.take();
                let conn = user.conns.to(request.addr, request.tls.as_ref());
                execute(user.worker, conn, request, pipeline, intended).await;
            }
            Step::Call(call) => {
                if let Err(reason) = execute_call(user.caller(), call).await {
                    user.worker.stats.borrow_mut().abort(call.path, &reason);
                    return;
                }
            }
        }
    }
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

async fn wait(wait: Wait, task_started: Instant, rng: &mut SmallRng) {
    let pause = match wait {
        Wait::None => return,
        Wait::Constant(d) => d,
        Wait::Between(low, high) if high > low => rng.gen_range(low..=high),
        Wait::Between(low, _) => low,
        Wait::Pacing(period) => period.saturating_sub(task_started.elapsed()),
        Wait::Poisson(rate) => {
            // Exponential gap with mean 1/rate between task starts.
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            Duration::from_secs_f64(-u.ln() / rate).saturating_sub(task_started.elapsed())
        }
    };
    if !pause.is_zero() {
        monoio::time::sleep(pause).await;
    }
}
