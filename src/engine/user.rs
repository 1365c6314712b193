//! The virtual-user loop: pick a task by weight, run its steps, wait, repeat until the worker
//! says stop. One loop for every load shape; the steps and the wait vary by parameter.
//!
//! Each user owns its connections (one keep-alive `Conn` per target address) and its RNG.
//! Recording goes to the worker's `CoreStats` through a `RefCell`: no locks, no atomics.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::worker::Worker;
use crate::config::{Request, Step, Task, Wait};
use crate::http::{Conn, Failure};

/// Decrements the worker's running-user count however the user ends (even when dropped).
struct Running(Rc<Worker>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
    }
}

pub(crate) async fn run(worker: Rc<Worker>, user: u64) {
    let _running = Running(worker.clone());
    monoio::select! {
        _ = worker.cancel.fired() => {}
        _ = run_tasks(&worker, user) => {}
    }
}

async fn run_tasks(worker: &Worker, user: u64) {
    let run = worker.run.clone();
    let plan = &run.plan;
    let user_type = &plan.user_types[plan.user_type_of(user)];
    let mut rng = SmallRng::seed_from_u64(0x5eed_0000 ^ user);
    let mut conns: Vec<Conn> = Vec::with_capacity(1);
    let total_weight: u32 = user_type.tasks.iter().map(|t| t.weight).sum();
    while !worker.stopping.get() {
        let task_started = Instant::now();
        let task = pick_task(&user_type.tasks, total_weight, &mut rng);
        for step in &task.steps {
            match step {
                Step::Request(request) => {
                    let conn = conn_for(&mut conns, request);
                    execute(worker, conn, request, plan.pipeline).await;
                }
            }
            if worker.stopping.get() {
                return;
            }
        }
        wait(user_type.wait, task_started, &mut rng).await;
    }
}

fn pick_task<'a>(tasks: &'a [Task], total_weight: u32, rng: &mut SmallRng) -> &'a Task {
    if tasks.len() == 1 {
        return &tasks[0];
    }
    let mut ticket = rng.gen_range(0..total_weight);
    for task in tasks {
        if ticket < task.weight {
            return task;
        }
        ticket -= task.weight;
    }
    &tasks[tasks.len() - 1]
}

fn conn_for<'a>(conns: &'a mut Vec<Conn>, request: &Request) -> &'a mut Conn {
    match conns.iter().position(|c| c.addr() == request.addr) {
        Some(index) => &mut conns[index],
        None => {
            conns.push(Conn::new(request.addr));
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
    };
    if !pause.is_zero() {
        monoio::time::sleep(pause).await;
    }
}

/// Sends `depth` copies of `request` and records every response (or the failure) in stats.
/// Latency of each response counts from just before the write.
async fn execute(worker: &Worker, conn: &mut Conn, request: &Request, depth: usize) {
    let endpoint = request.endpoint;
    {
        let mut stats = worker.stats.borrow_mut();
        for _ in 0..depth {
            stats.start(endpoint);
        }
    }
    let started = Instant::now();
    let completed = Cell::new(0);
    let outcome =
        monoio::time::timeout(request.timeout, exchange(worker, conn, request, depth, started, &completed)).await;
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(failure)) => failure,
        Err(_) => Failure::Timeout(request.timeout.as_millis().min(u128::from(u32::MAX)) as u32),
    };
    // The connection's state is unknown (or its buffer went with a cancelled read): start over.
    conn.close();
    let latency_us = micros(started.elapsed());
    let now_unix = unix_now();
    let mut stats = worker.stats.borrow_mut();
    for _ in completed.get()..depth {
        stats.failure(endpoint, latency_us, 0, failure, now_unix);
    }
}

async fn exchange(
    worker: &Worker,
    conn: &mut Conn,
    request: &Request,
    depth: usize,
    started: Instant,
    completed: &Cell<usize>,
) -> Result<(), Failure> {
    let mut retried = false;
    loop {
        if !conn.is_connected() {
            conn.connect(request.timeout).await?;
        }
        match conn.send_and_receive(&request.bytes, depth, request.is_head).await {
            Err(failure) if !retried && depth == 1 && request.idempotent && conn.may_retry(failure) => {
                // The server closed an idle keep-alive connection as we reused it; the request
                // was never received. Retry once on a fresh connection.
                retried = true;
                conn.close();
                continue;
            }
            result => {
                record(worker, request, started, conn.received_at(), result?);
                completed.set(1);
            }
        }
        for done in 1..depth {
            let exchange = conn.receive(request.is_head).await?;
            record(worker, request, started, conn.received_at(), exchange);
            completed.set(done + 1);
        }
        return Ok(());
    }
}

fn record(
    worker: &Worker,
    request: &Request,
    started: Instant,
    completed_at: Instant,
    exchange: crate::http::Exchange,
) {
    let latency_us = micros(completed_at.saturating_duration_since(started));
    let mut stats = worker.stats.borrow_mut();
    if exchange.status >= 400 {
        stats.failure(request.endpoint, latency_us, exchange.payload, Failure::Status(exchange.status), unix_now());
    } else {
        stats.success(request.endpoint, latency_us, exchange.payload);
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
