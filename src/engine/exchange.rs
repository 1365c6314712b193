//! Sending requests and recording what came back: one request (or a pipelined batch) on a
//! user's connection, timed from just before the write (or, open model, from the intended
//! start), each response or failure recorded once in the worker's `CoreStats`.
//!
//! The static path (`execute`, quick mode) allocates nothing: the request bytes were encoded
//! when the plan was built and the connection's buffers are reused.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::worker::Worker;
use crate::config::Request;
use crate::failure::Failure;
use crate::http::{Conn, Exchange};
use crate::stats::CoreStats;

/// A user's connections: one keep-alive `Conn` per (address, TLS target), made on first use.
#[derive(Default)]
pub(crate) struct Conns(Vec<Conn>, Option<std::net::IpAddr>);

impl Conns {
    /// A user's connections, bound to `source` when given (`--source-addrs`).
    pub fn from(source: Option<std::net::IpAddr>) -> Conns {
        Conns(Vec::new(), source)
    }

    /// Closes every connection (after a cancelled request: its state is unknown).
    pub fn close_all(&mut self) {
        self.0.iter_mut().for_each(Conn::close);
    }

    /// The connection to `addr` (over TLS to `tls`'s name when given).
    pub fn to(&mut self, addr: SocketAddr, tls: Option<&crate::tls::Target>) -> &mut Conn {
        match self.0.iter().position(|c| c.addr() == addr && c.tls() == tls) {
            Some(index) => &mut self.0[index],
            None => {
                let mut conn = Conn::with_tls(addr, tls.cloned());
                conn.source = self.1;
                // Exactly one more: most users talk to one host, and `push` alone would make room
                // for four connections (a kilobyte per user unused).
                self.0.reserve_exact(1);
                self.0.push(conn);
                self.0.last_mut().expect("just pushed")
            }
        }
    }
}

/// When a request started, and (open model) when it was meant to.
#[derive(Clone, Copy)]
pub(crate) struct Times {
    pub started: Instant,
    pub intended: Option<Instant>,
}

impl Times {
    /// Starting now, meant for `intended` (open model) if given.
    pub fn now(intended: Option<Instant>) -> Times {
        Times { started: Instant::now(), intended }
    }

    /// Latency: from the intended start when there is one (wrk2's correction for coordinated
    /// omission), else from the write.
    pub fn latency_us(self, completed_at: Instant) -> u64 {
        micros(completed_at.saturating_duration_since(self.intended.unwrap_or(self.started)))
    }

    /// Open model: the raw service time beside the latency (of `n` requests).
    pub fn service(self, stats: &mut CoreStats, endpoint: usize, completed_at: Instant, n: u64) {
        if self.intended.is_some() {
            stats.service(endpoint, micros(completed_at.saturating_duration_since(self.started)), n);
        }
    }

    /// Records a failure of a request started at these times, ending now.
    pub fn fail(self, stats: &mut CoreStats, endpoint: usize, failure: Failure) {
        let now = Instant::now();
        stats.failure(endpoint, self.latency_us(now), 0, failure, unix_now());
        self.service(stats, endpoint, now, 1);
    }
}

/// Sends `depth` copies of `request` and records every response (or the failure) in stats.
/// Latency of each response counts from just before the write, or from `intended` (open
/// model), with the service time from the write recorded beside it.
pub(crate) async fn execute(
    worker: &Worker,
    conn: &mut Conn,
    request: &Request,
    depth: usize,
    intended: Option<Instant>,
) {
    let endpoint = request.endpoint;
    if let Some(at) = conn.reconnect_after() {
        crate::runtime::timer::sleep_until(at).await;
    }
    {
        let mut stats = worker.stats.borrow_mut();
        for _ in 0..depth {
            stats.start(endpoint);
        }
    }
    let times = Times::now(intended);
    let done = Done { worker, times, endpoint, completed: Cell::new(0), batch: Cell::new(None) };
    let deadline = times.started + request.timeout;
    let outcome = crate::runtime::timer::timeout_at(deadline, exchange(conn, request, depth, &done)).await;
    // Responses received before a failure or the timeout still count: `done` outlives the
    // exchange's future, and records its batch when it goes (even when this future is dropped,
    // as a user cancelled at the end of the run is).
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(failure)) => failure,
        Err(_) => Failure::timeout(request.timeout),
    };
    // The connection's state is unknown (or its buffer went with a cancelled read): start over.
    conn.close();
    let completed = done.completed.get();
    drop(done);
    let mut stats = worker.stats.borrow_mut();
    for _ in completed..depth {
        times.fail(&mut stats, endpoint, failure);
    }
}

/// What an exchange of `depth` requests has completed so far: successes are recorded in
/// batches of those that arrived in the same read (the same latency), failures one by one; the
/// last batch when this is dropped.
struct Done<'w> {
    worker: &'w Worker,
    times: Times,
    endpoint: usize,
    /// Responses received (recorded, or waiting in `batch`).
    completed: Cell<usize>,
    batch: Cell<Option<Batch>>,
}

/// Successful responses not yet recorded: `n` that all completed at `at` (one read), `payload`
/// bytes in all.
#[derive(Clone, Copy)]
struct Batch {
    at: Instant,
    n: u64,
    payload: u64,
}

impl Done<'_> {
    /// A complete response whose last byte arrived at `completed_at`.
    fn add(&self, completed_at: Instant, exchange: Exchange) {
        self.completed.set(self.completed.get() + 1);
        match self.batch.get() {
            Some(batch) if exchange.status < 400 && batch.at == completed_at => {
                self.batch.set(Some(Batch { n: batch.n + 1, payload: batch.payload + exchange.payload, ..batch }));
            }
            _ => {
                self.flush();
                match exchange.status < 400 {
                    true => self.batch.set(Some(Batch { at: completed_at, n: 1, payload: exchange.payload })),
                    false => record(self.worker, self.endpoint, self.times, completed_at, exchange),
                }
            }
        }
    }

    /// Records the batch.
    fn flush(&self) {
        let Some(Batch { at, n, payload }) = self.batch.take() else { return };
        let mut stats = self.worker.stats.borrow_mut();
        self.times.service(&mut stats, self.endpoint, at, n);
        stats.successes(self.endpoint, self.times.latency_us(at), payload, n);
    }
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

async fn exchange(conn: &mut Conn, request: &Request, depth: usize, done: &Done<'_>) -> Result<(), Failure> {
    if depth == 1 {
        let exchange = send_once(conn, &request.bytes, request.is_head, request.idempotent, request.timeout).await?;
        done.add(conn.received_at(), exchange);
        return Ok(());
    }
    if !conn.is_connected() {
        conn.connect(request.timeout).await?;
    }
    let first = conn.send_and_receive(&request.bytes, depth, request.is_head).await?;
    done.add(conn.received_at(), first);
    for _ in 1..depth {
        let exchange = conn.receive(request.is_head).await?;
        done.add(conn.received_at(), exchange);
    }
    Ok(())
}

/// One request and its response on `conn` (connecting first if needed). A request that went
/// out on a reused connection the server had just closed is sent once more on a new one when
/// it is idempotent: the server cannot have seen it.
pub(crate) async fn send_once(
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

/// Records a complete response: a success, or a failure for a status of 400 or above.
fn record(worker: &Worker, endpoint: usize, times: Times, completed_at: Instant, exchange: Exchange) {
    let latency_us = times.latency_us(completed_at);
    let mut stats = worker.stats.borrow_mut();
    times.service(&mut stats, endpoint, completed_at, 1);
    if exchange.status >= 400 {
        stats.failure(endpoint, latency_us, exchange.payload, Failure::Status(exchange.status), unix_now());
    } else {
        stats.success(endpoint, latency_us, exchange.payload);
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
