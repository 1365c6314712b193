//! The virtual-user loop: pick a task by weight, run it, wait, repeat until the worker says
//! stop. One loop for every load shape; the steps and the wait vary by parameter.
//!
//! Each user owns its connections (one keep-alive `Conn` per target address) and its RNG.
//! Recording goes to the worker's `CoreStats` through a `RefCell`: no locks, no atomics.
//!
//! Two kinds of step: a `Request` encoded once (quick mode; nothing allocates), and a scenario
//! `Call` built per send from the user's session, then checked and captured from.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::session::{RenderError, Session, Shared, POOL_CAPACITY};
use super::worker::Worker;
use crate::config::{Call, Expr, Part, Plan, Request, Step, Task, TaskKind, UserType, Wait};
use crate::failure::Failure;
use crate::http::Url;
use crate::http::{Conn, Exchange};

/// Decrements the worker's running-user count however the user ends (even when dropped), and
/// marks the user as not running for the load shape.
struct Running(Rc<Worker>, usize);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
        if let Some(alive) = self.0.user_alive.get(self.1) {
            alive.set(false);
        }
    }
}

/// Runs user `user` until it stops or the worker cancels it: the closed-model loop, or (with
/// a `slot`, open model) one task per start the scheduler hands it.
pub(crate) async fn run(worker: Rc<Worker>, user: u64, slot: Option<Rc<super::worker::Slot>>) {
    let local = (user / worker.run.plan.workers.len() as u64) as usize;
    let _running = Running(worker.clone(), local);
    match slot {
        Some(slot) => monoio::select! {
            _ = worker.cancel.fired() => {}
            _ = run_open_user(&worker, user, &slot) => {}
        },
        None => monoio::select! {
            _ = worker.cancel.fired() => {}
            _ = run_user(&worker, user) => {}
        },
    }
}

/// One user's state while it runs.
pub(crate) struct User<'w> {
    pub worker: &'w Worker,
    pub plan: &'w Plan,
    pub rng: SmallRng,
    pub conns: Vec<Conn>,
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
            conns: Vec::with_capacity(1),
            session,
            deck: Vec::new(),
            dealt: 0,
            intended: None,
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
async fn run_open_user(worker: &Worker, index: u64, slot: &Rc<super::worker::Slot>) {
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
    let local = (index / plan.workers.len() as u64) as usize;
    let told_to_stop = || worker.user_stop.get(local).is_some_and(Cell::get);
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
                let conn = conn_for(&mut user.conns, request.addr, request.tls.as_ref());
                execute(user.worker, conn, request, pipeline, intended).await;
            }
            Step::Call(call) => {
                if let Err(reason) = execute_call(user, call).await {
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

/// The user's connection to `addr` (over TLS to `tls`'s name when given), made on first use.
fn conn_for<'a>(
    conns: &'a mut Vec<Conn>,
    addr: std::net::SocketAddr,
    tls: Option<&crate::tls::Target>,
) -> &'a mut Conn {
    match conns.iter().position(|c| c.addr() == addr && c.tls() == tls) {
        Some(index) => &mut conns[index],
        None => {
            conns.push(Conn::with_tls(addr, tls.cloned()));
            conns.last_mut().expect("just pushed")
        }
    }
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

/// Sends `depth` copies of `request` and records every response (or the failure) in stats.
/// Latency of each response counts from just before the write, or from `intended` (open
/// model), with the service time from the write recorded beside it.
async fn execute(worker: &Worker, conn: &mut Conn, request: &Request, depth: usize, intended: Option<Instant>) {
    let endpoint = request.endpoint;
    {
        let mut stats = worker.stats.borrow_mut();
        for _ in 0..depth {
            stats.start(endpoint);
        }
    }
    let started = Instant::now();
    let times = Times { started, intended };
    let completed = Cell::new(0);
    let outcome =
        monoio::time::timeout(request.timeout, exchange(worker, conn, request, depth, times, &completed)).await;
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(failure)) => failure,
        Err(_) => timeout_failure(request.timeout),
    };
    // The connection's state is unknown (or its buffer went with a cancelled read): start over.
    conn.close();
    let now = Instant::now();
    let now_unix = unix_now();
    let mut stats = worker.stats.borrow_mut();
    for _ in completed.get()..depth {
        stats.failure(endpoint, times.latency_us(now), 0, failure, now_unix);
        times.service(&mut stats, endpoint, now);
    }
}

/// When a request started, and (open model) when it was meant to.
#[derive(Clone, Copy)]
struct Times {
    started: Instant,
    intended: Option<Instant>,
}

impl Times {
    /// Latency: from the intended start when there is one (wrk2's correction for coordinated
    /// omission), else from the write.
    fn latency_us(self, completed_at: Instant) -> u64 {
        micros(completed_at.saturating_duration_since(self.intended.unwrap_or(self.started)))
    }

    /// Open model: the raw service time beside the latency.
    fn service(self, stats: &mut crate::stats::CoreStats, endpoint: usize, completed_at: Instant) {
        if self.intended.is_some() {
            stats.service(endpoint, micros(completed_at.saturating_duration_since(self.started)));
        }
    }
}

fn timeout_failure(timeout: Duration) -> Failure {
    Failure::Timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32)
}

async fn exchange(
    worker: &Worker,
    conn: &mut Conn,
    request: &Request,
    depth: usize,
    times: Times,
    completed: &Cell<usize>,
) -> Result<(), Failure> {
    if depth == 1 {
        let exchange = send_once(conn, &request.bytes, request.is_head, request.idempotent, request.timeout).await?;
        record(worker, request.endpoint, times, conn.received_at(), exchange);
        completed.set(1);
        return Ok(());
    }
    if !conn.is_connected() {
        conn.connect(request.timeout).await?;
    }
    let first = conn.send_and_receive(&request.bytes, depth, request.is_head).await?;
    record(worker, request.endpoint, times, conn.received_at(), first);
    completed.set(1);
    for done in 1..depth {
        let exchange = conn.receive(request.is_head).await?;
        record(worker, request.endpoint, times, conn.received_at(), exchange);
        completed.set(done + 1);
    }
    Ok(())
}

/// One request and its response on `conn` (connecting first if needed). A request that went
/// out on a reused connection the server had just closed is sent once more on a new one when
/// it is idempotent: the server cannot have seen it.
async fn send_once(
    conn: &mut Conn,
    bytes: &[u8],
    is_head: bool,
    idempotent: bool,
    timeout: Duration,
) -> Result<Exchange, Failure> {
    let mut retried = false;
    loop {
        if !conn.is_connected() {
            conn.connect(timeout).await?;
        }
        match conn.send_and_receive(bytes, 1, is_head).await {
            Err(failure) if !retried && idempotent && conn.may_retry(failure) => {
                retried = true;
                conn.close();
            }
            result => return result,
        }
    }
}

fn record(worker: &Worker, endpoint: usize, times: Times, completed_at: Instant, exchange: Exchange) {
    let latency_us = times.latency_us(completed_at);
    let mut stats = worker.stats.borrow_mut();
    times.service(&mut stats, endpoint, completed_at);
    if exchange.status >= 400 {
        stats.failure(endpoint, latency_us, exchange.payload, Failure::Status(exchange.status), unix_now());
    } else {
        stats.success(endpoint, latency_us, exchange.payload);
    }
}

/// Runs one scenario request: build it from the session, exchange it (following redirects),
/// then check, capture, store cookies and apply session effects. `Err(reason)` ends the task:
/// a required step failed, a capture later steps need found nothing, or a template could not be
/// filled (then no request was sent or counted).
pub(crate) async fn execute_call(user: &mut User<'_>, call: &Call) -> Result<(), String> {
    let worker = user.worker;
    let shared = Shared { pools: &worker.run.pools, plan: user.plan };
    let session = user.session.as_mut().expect("scenario users have a session");
    session.build(call, &shared, &mut user.rng).map_err(|RenderError(reason)| reason)?;
    worker.stats.borrow_mut().start(call.endpoint);
    let started = Instant::now();
    let times = Times { started, intended: user.intended.take() };
    let keep_body = !call.checks.is_empty() || !call.captures.is_empty();
    let mut addr = call.addr;
    let mut tls_owned: Option<crate::tls::Target> = None;
    let mut authority_owned: Option<String> = None;
    let mut redirects = 0;
    let outcome = loop {
        let conn = conn_for(&mut user.conns, addr, tls_owned.as_ref().or(call.tls.as_ref()));
        conn.keep(true, keep_body);
        let result = monoio::time::timeout_at(
            monoio::time::Instant::from_std(started + call.timeout),
            send_once(conn, &session.wbuf, call.is_head, call.idempotent, call.timeout),
        )
        .await;
        let exchange = match result {
            Ok(Ok(exchange)) => exchange,
            Ok(Err(failure)) => {
                conn.close();
                break Err(failure);
            }
            Err(_) => {
                conn.close();
                break Err(timeout_failure(call.timeout));
            }
        };
        let kept = conn.kept().expect("keep was asked for");
        let authority = authority_owned.as_deref().unwrap_or(&call.authority);
        session.take_cookies(authority, kept);
        let location = redirect_location(exchange.status, kept);
        match location {
            Some(location) if redirects < call.max_redirects => {
                redirects += 1;
                let current = tls_owned.as_ref().or(call.tls.as_ref());
                match follow(session, call, exchange.status, &location, authority, current) {
                    Ok((next_addr, next_authority, next_tls)) => {
                        addr = next_addr;
                        authority_owned = Some(next_authority);
                        tls_owned = next_tls;
                    }
                    Err(failure) => break Err(failure),
                }
            }
            _ => break Ok((exchange, conn.received_at())),
        }
    };
    let (exchange, completed_at) = match outcome {
        Ok(done) => done,
        Err(failure) => {
            let now = Instant::now();
            let mut stats = worker.stats.borrow_mut();
            stats.failure(call.endpoint, times.latency_us(now), 0, failure, unix_now());
            times.service(&mut stats, call.endpoint, now);
            return abort_if(call.required, failure);
        }
    };
    // Checks on response time see the service time; the stats the (open-model) latency.
    let elapsed = completed_at.saturating_duration_since(started);
    let latency_us = times.latency_us(completed_at);
    times.service(&mut worker.stats.borrow_mut(), call.endpoint, completed_at);
    let rejected = match &call.accept {
        Some((statuses, message)) => (!statuses.contains(&exchange.status)).then_some(Failure::Check(message)),
        None => (exchange.status >= 400).then_some(Failure::Status(exchange.status)),
    };
    let verdict = if let Some(failure) = rejected {
        Err(failure)
    } else {
        let conn = conn_for(&mut user.conns, addr, tls_owned.as_ref().or(call.tls.as_ref()));
        let kept = conn.kept().expect("keep was asked for");
        session.evaluate(call, exchange.status, elapsed, kept, &shared, &mut user.rng).map_err(Failure::Check)
    };
    match verdict {
        Ok(()) => {
            worker.stats.borrow_mut().success(call.endpoint, latency_us, exchange.payload);
            apply_effects(session, call, &shared, &mut user.rng);
            Ok(())
        }
        Err(failure) => {
            worker.stats.borrow_mut().failure(call.endpoint, latency_us, exchange.payload, failure, unix_now());
            abort_if(call.required || !call.captures.is_empty(), failure)
        }
    }
}

fn abort_if(abort: bool, failure: Failure) -> Result<(), String> {
    if abort {
        Err(failure.to_string())
    } else {
        Ok(())
    }
}

/// Headers set and pool values pushed after a successful step.
fn apply_effects(session: &mut Session, call: &Call, shared: &Shared, rng: &mut SmallRng) {
    for (name, template) in &call.set_headers {
        let Ok(value) = session.render_string(template, shared, rng) else { continue };
        match session.headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(header) => header.1 = value,
            None => session.headers.push((name.clone(), value)),
        }
    }
    for (pool, template) in &call.push {
        let value = match template.parts.as_slice() {
            [Part::Expr(Expr::Var(slot), _)] => session.vars[*slot].clone(),
            _ => match session.render_string(template, shared, rng) {
                Ok(text) => Value::String(text),
                Err(_) => continue,
            },
        };
        let mut values = shared.pools[*pool].lock().unwrap_or_else(|e| e.into_inner());
        if values.len() < POOL_CAPACITY {
            values.push(value);
        } else {
            let victim = rng.gen_range(0..values.len());
            values[victim] = value;
        }
    }
}

fn redirect_location(status: u16, kept: &crate::http::Kept) -> Option<String> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let text = std::str::from_utf8(&kept.head).ok()?;
    text.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.trim().to_string())
}

/// Rewrites the session's request for a redirect: same connection for a path, another address
/// for an absolute URL with an IP literal (or localhost) host, in the same scheme (an HTTPS
/// redirect keeps the run's TLS configuration and checks the new host's name). 301/302/303
/// turn into a GET without a body; 307/308 repeat the method and body.
fn follow(
    session: &mut Session,
    call: &Call,
    status: u16,
    location: &str,
    authority: &str,
    tls: Option<&crate::tls::Target>,
) -> Result<(std::net::SocketAddr, String, Option<crate::tls::Target>), Failure> {
    let (addr, authority, target, tls) = if location.starts_with('/') {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority).ok().and_then(|mut a| a.next());
        (addr.unwrap_or(call.addr), authority.to_string(), location.to_string(), tls.cloned())
    } else {
        let url = Url::parse(location).map_err(|_| Failure::Check("redirect: Location is not an http(s):// URL"))?;
        if url.tls != tls.is_some() {
            return Err(Failure::Check("redirect: to another scheme is not followed"));
        }
        let ip: Option<std::net::IpAddr> =
            if url.host == "localhost" { Some([127, 0, 0, 1].into()) } else { url.host.parse().ok() };
        let ip = ip.ok_or(Failure::Check("redirect: only IP-literal or localhost hosts are followed"))?;
        let tls = match tls {
            Some(current) => Some(
                crate::tls::Target::new(current.config.clone(), &url.host)
                    .map_err(|_| Failure::Check("redirect: host is not a valid TLS name"))?,
            ),
            None => None,
        };
        ((ip, url.port).into(), url.authority(), url.target.clone(), tls)
    };
    let old = std::mem::take(&mut session.wbuf);
    let text = String::from_utf8_lossy(&old);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let method = request_line.split(' ').next().unwrap_or("GET");
    let keep_method = matches!(status, 307 | 308) || method == "HEAD";
    let method = if keep_method { method } else { "GET" };
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        let dropped = name == "host"
            || name == "cookie"
            || (!keep_method && (name == "content-length" || name == "content-type"));
        if !dropped {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    session.cookies.header_for(&authority, path, &mut out);
    out.extend_from_slice(b"\r\n");
    if keep_method {
        out.extend_from_slice(body.as_bytes());
    }
    session.wbuf = out;
    Ok((addr, authority, tls))
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
