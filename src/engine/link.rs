//! One user of the ring engine (`ring`) and its keep-alive connection, as a state machine
//! driven by completions: connect, write the request (`depth` copies), read the responses, record them,
//! and start again. What the task engine's `exchange::execute` and `Conn` do as futures, with
//! the same rules: the clock runs from just before the first op of an exchange goes to the
//! kernel (the connect too), one idle-close retry for an idempotent unpipelined request, the
//! connection closed after any failure, backoff after a failed connect, failures recorded for
//! every response that did not come.

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::exchange::{micros, unix_now};
use super::worker::{Running, Worker};
use crate::config::Request;
use crate::failure::Failure;
use crate::http::conn::{next_backoff, socket_for};
use crate::http::read::{ReadBuf, Reading};

/// The ops a link can have in flight, one bit each; `user_data` is the link's index shifted
/// left by 8 with one of these (or `CANCEL`) below.
pub(crate) const CONNECT: u8 = 1;
pub(crate) const SEND: u8 = 2;
pub(crate) const RECV: u8 = 4;
pub(crate) const CANCEL: u8 = 8;

/// What the links of one worker share: the ring, the plan's request and its encoded batch.
pub(crate) struct Ctx {
    pub ring: IoUring,
    pub worker: Rc<Worker>,
    pub request: Request,
    /// Responses per exchange (`--pipeline`), and exchanges per user (`--iterations`).
    pub depth: usize,
    pub iterations: Option<u64>,
    /// `depth` copies of the request, written as one.
    pub batch: Vec<u8>,
    pub addr: Box<socket2::SockAddr>,
    /// Links whose exchange starts with this turn's submission: their clocks start then.
    pub starting: Vec<u32>,
    /// No link is due (deadline or end of backoff) before this.
    pub earliest: Instant,
    /// This turn's clock reading (when its completions were taken), and a time after any run.
    pub now: Instant,
    pub never: Instant,
}

impl Ctx {
    /// Queues an op; a full submission queue goes to the kernel first.
    pub fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: every op points into memory that outlives it: the batch and the address
        // (owned here), a link's read buffer (not touched until its read is back: see
        // `Link::push_recv`, and `Link::close`, which waits for cancelled ops).
        unsafe {
            if self.ring.submission().push(&entry).is_err() {
                let _ = self.ring.submit();
                self.ring.submission().push(&entry).expect("room after a submit");
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not started yet, or stopped.
    Idle,
    /// Waiting until `retry_at` before the next exchange (after a failed connect; not counted).
    Backoff,
    Connecting,
    Exchanging,
    /// The connection is closing: its ops were cancelled; once they are all back, the socket
    /// closes and the link goes on (`After`).
    Draining(After),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Connect again and send the same request (the idle-close retry; the clock keeps running).
    Retry,
    /// The next exchange (or backoff, or stop).
    Next,
    /// The user stops (the run is over, or it is no longer wanted).
    Stop,
}

pub(crate) struct Link {
    index: u32,
    pub user: u64,
    /// Counts the user as running while it is `Some`.
    pub running: Option<Running>,
    fd: Option<OwnedFd>,
    /// Ops in flight (`CONNECT | SEND | RECV`).
    pub ops: u8,
    pub phase: Phase,
    /// The exchange's clock: set just before its first op goes to the kernel.
    pub started: Instant,
    pub deadline: Instant,
    /// Bytes of the request batch written so far.
    written: usize,
    /// The connection may not carry another request (the server said close, or it ended).
    closing: bool,
    buf: ReadBuf,
    reading: Reading,
    /// Responses of the exchange received so far.
    completed: usize,
    /// Exchanges (tasks) begun since the user started (`--iterations`).
    tasks: u64,
    retried: bool,
    backoff: Duration,
    pub retry_at: Instant,
}

impl Link {
    pub fn new(index: u32, user: u64, now: Instant) -> Link {
        Link {
            index,
            user,
            running: None,
            fd: None,
            ops: 0,
            phase: Phase::Idle,
            started: now,
            deadline: now,
            written: 0,
            closing: false,
            buf: ReadBuf::default(),
            reading: Reading::default(),
            completed: 0,
            tasks: 0,
            retried: false,
            backoff: Duration::ZERO,
            retry_at: now,
        }
    }

    /// Starts the user (counted as running from here) with its first exchange.
    pub fn start(&mut self, ctx: &mut Ctx) {
        self.running = Some(Running::new(ctx.worker.clone(), self.user));
        self.tasks = 0;
        self.begin(ctx);
    }

    /// Starts the next exchange (the user's next task): counted from here, its clock set when
    /// its first op is submitted.
    fn begin(&mut self, ctx: &mut Ctx) {
        {
            let mut stats = ctx.worker.stats.borrow_mut();
            for _ in 0..ctx.depth {
                stats.start(ctx.request.endpoint);
            }
        }
        self.completed = 0;
        self.retried = false;
        self.tasks += 1;
        // The clock starts when this turn's submission goes (`ring::Engine::wait`); until then
        // it reads as starting now, with no deadline.
        self.started = ctx.now;
        self.deadline = ctx.never;
        ctx.starting.push(self.index);
        if self.fd.is_some() {
            self.send(ctx);
        } else {
            self.connect(ctx);
        }
    }

    /// After an exchange (or a backoff): the next one, or a wait for the reconnect backoff, or
    /// (the run is stopping, or the user is no longer wanted) the end of this user.
    pub fn next(&mut self, now: Instant, ctx: &mut Ctx) {
        // The run is over, a load shape or live control no longer wants this user, or it has
        // run its `--iterations`.
        let done = ctx.iterations.is_some_and(|limit| self.tasks >= limit);
        if done || ctx.worker.stopping.get() || ctx.worker.user_stop[self.index as usize].get() {
            // Its connection goes with it, as a task engine user's does.
            self.close(After::Stop, now, ctx);
        } else if self.fd.is_none() && self.retry_at > now {
            self.phase = Phase::Backoff;
            ctx.earliest = ctx.earliest.min(self.retry_at);
        } else {
            self.begin(ctx);
        }
    }

    fn connect(&mut self, ctx: &mut Ctx) {
        let source = ctx.worker.run.plan.source_of(self.user);
        let socket = match open_socket(ctx.request.addr, source) {
            Ok(socket) => socket,
            // Nothing went to the kernel: the exchange fails now, and the next waits.
            Err(failure) => return self.fail(failure, ctx.now, ctx),
        };
        let fd = types::Fd(socket.as_raw_fd());
        self.fd = Some(socket);
        self.phase = Phase::Connecting;
        let connect = opcode::Connect::new(fd, ctx.addr.as_ptr(), ctx.addr.len()).build();
        self.push(ctx, CONNECT, connect);
    }

    /// Writes the request batch and reads, in one submission.
    fn send(&mut self, ctx: &mut Ctx) {
        self.phase = Phase::Exchanging;
        self.buf.sent();
        self.reading = Reading::default();
        self.written = 0;
        self.closing = false;
        self.push_send(ctx);
        if self.buf.unconsumed() {
            // Bytes the server sent beyond the last response answer this request first, as
            // they would on the task engine (whose read starts with what is buffered).
            self.advance(false, ctx.now, ctx);
        } else {
            self.push_recv(ctx);
        }
    }

    fn push_send(&mut self, ctx: &mut Ctx) {
        let fd = types::Fd(self.fd.as_ref().expect("connected").as_raw_fd());
        let rest = &ctx.batch[self.written..];
        self.push(ctx, SEND, opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32).build());
    }

    fn push_recv(&mut self, ctx: &mut Ctx) {
        let fd = types::Fd(self.fd.as_ref().expect("connected").as_raw_fd());
        let space = self.buf.spare();
        let bytes = &mut self.buf.bytes;
        // The spare capacity after the length; the buffer is not touched until this completes.
        let at = bytes.as_mut_ptr().wrapping_add(bytes.len());
        self.push(ctx, RECV, opcode::Recv::new(fd, at, space.min(u32::MAX as usize) as u32).build());
    }

    fn push(&mut self, ctx: &mut Ctx, op: u8, entry: squeue::Entry) {
        self.ops |= op;
        ctx.push(entry.user_data(u64::from(self.index) << 8 | u64::from(op)));
    }

    /// An op of this link completed with `result`.
    pub fn complete(&mut self, op: u8, result: i32, now: Instant, ctx: &mut Ctx) {
        self.ops &= !op;
        if let Phase::Draining(after) = self.phase {
            // Whatever came back (a read that raced the cancel included) goes with the connection.
            if self.ops == 0 {
                self.closed(after, now, ctx);
            }
            return;
        }
        match op {
            CONNECT if result < 0 => {
                self.fail(Failure::Connect(-result), now, ctx);
            }
            CONNECT => {
                self.backoff = Duration::ZERO;
                self.send(ctx);
            }
            SEND if result < 0 => self.fail(Failure::Write(-result), now, ctx),
            // A write that took nothing would be tried forever (the task engine's `write_all`
            // calls it an error without an errno: EIO).
            SEND if result == 0 => self.fail(Failure::Write(libc::EIO), now, ctx),
            SEND => {
                self.written += result as usize;
                if self.written < ctx.batch.len() {
                    self.push_send(ctx);
                } else if self.completed == ctx.depth {
                    // Every response is already in: the write was the last to finish.
                    self.finish(now, ctx);
                }
            }
            RECV if result < 0 => self.fail(Failure::Read(-result), now, ctx),
            RECV => self.received(result as usize, now, ctx),
            _ => {}
        }
    }

    /// A read of `n` bytes completed (0: the server closed the connection).
    fn received(&mut self, n: usize, now: Instant, ctx: &mut Ctx) {
        // SAFETY: the kernel wrote `n` bytes into the spare capacity it was given.
        unsafe { self.buf.bytes.set_len(self.buf.bytes.len() + n) };
        self.buf.filled(n);
        self.advance(n == 0, now, ctx);
    }

    /// Completes what the buffered bytes complete (`ended`: the stream is over), records it, and
    /// goes on: another read, the end of the exchange, or its failure.
    fn advance(&mut self, ended: bool, now: Instant, ctx: &mut Ctx) {
        let latency = micros(now.saturating_duration_since(self.started));
        let (mut n_ok, mut payload) = (0u64, 0u64);
        let mut outcome = Ok(());
        if ended {
            match self.buf.at_end(&mut self.reading) {
                Ok((exchange, _)) => {
                    self.got(exchange, latency, &mut n_ok, &mut payload, ctx);
                    self.closing = true;
                }
                Err(failure) => outcome = Err(failure),
            }
        }
        while !ended && self.completed < ctx.depth {
            match self.buf.advance(&mut self.reading, ctx.request.is_head) {
                Ok(Some((exchange, keep_alive))) => {
                    self.got(exchange, latency, &mut n_ok, &mut payload, ctx);
                    if !keep_alive {
                        self.closing = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(failure) => {
                    outcome = Err(failure);
                    break;
                }
            }
        }
        if n_ok > 0 {
            ctx.worker.stats.borrow_mut().successes(ctx.request.endpoint, latency, payload, n_ok);
        }
        if let Err(failure) = outcome {
            return self.fail(failure, now, ctx);
        }
        if self.closing && self.completed < ctx.depth {
            // The connection ends before the rest of the batch was answered.
            return self.fail(Failure::Closed, now, ctx);
        }
        if self.completed < ctx.depth {
            return self.push_recv(ctx);
        }
        // Every response is in; the exchange ends when the write has too.
        if self.ops & SEND == 0 {
            self.finish(now, ctx);
        }
    }

    /// A complete response: successes are added to the read's batch, failures recorded.
    fn got(&mut self, exchange: crate::http::Exchange, latency: u64, n_ok: &mut u64, payload: &mut u64, ctx: &Ctx) {
        self.completed += 1;
        if exchange.status < 400 {
            *n_ok += 1;
            *payload += exchange.payload;
        } else {
            let failure = Failure::Status(exchange.status);
            ctx.worker.stats.borrow_mut().failure(ctx.request.endpoint, latency, exchange.payload, failure, unix_now());
        }
    }

    /// The exchange is over, every response in and the write done.
    fn finish(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.closing || self.written < ctx.batch.len() {
            self.close(After::Next, now, ctx);
        } else {
            self.next(now, ctx);
        }
    }

    /// The exchange failed: once (an idle close of a reused connection, nothing received)
    /// it is sent again on a new connection; otherwise every response that did not come is a
    /// failure, the connection closes, and a failed connect delays the next one.
    pub fn fail(&mut self, failure: Failure, now: Instant, ctx: &mut Ctx) {
        if ctx.depth == 1 && !self.retried && ctx.request.idempotent && self.buf.may_retry(failure) {
            self.retried = true;
            return self.close(After::Retry, now, ctx);
        }
        if matches!(failure, Failure::Connect(_) | Failure::ConnectTimeout(_)) {
            // The next attempt waits: twice as long after each failure, from 1 ms to 1 s.
            self.backoff = next_backoff(self.backoff);
            self.retry_at = now + self.backoff;
        }
        {
            let latency = micros(now.saturating_duration_since(self.started));
            let mut stats = ctx.worker.stats.borrow_mut();
            for _ in self.completed..ctx.depth {
                stats.failure(ctx.request.endpoint, latency, 0, failure, unix_now());
            }
        }
        self.close(After::Next, now, ctx);
    }

    /// The deadline passed (`now` is past it).
    pub fn time_out(&mut self, now: Instant, ctx: &mut Ctx) {
        let failure = match self.phase {
            Phase::Connecting => Failure::connect_timeout(ctx.request.timeout),
            _ => Failure::timeout(ctx.request.timeout),
        };
        self.fail(failure, now, ctx);
    }

    /// Closes the connection, after its ops in flight are cancelled and back (their buffers
    /// stay untouched until then), then goes on as `after` says.
    pub fn close(&mut self, after: After, now: Instant, ctx: &mut Ctx) {
        let Some(fd) = self.fd.as_ref() else {
            return self.closed(after, now, ctx);
        };
        if self.ops == 0 {
            return self.closed(after, now, ctx);
        }
        // SAFETY: shutting down a socket this link owns; a pending read then ends at once.
        unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        for op in [CONNECT, SEND, RECV] {
            if self.ops & op != 0 {
                let target = u64::from(self.index) << 8 | u64::from(op);
                ctx.push(
                    opcode::AsyncCancel::new(target).build().user_data(u64::from(self.index) << 8 | u64::from(CANCEL)),
                );
            }
        }
        self.phase = Phase::Draining(after);
    }

    /// Every op is back: the socket closes, and the link goes on.
    fn closed(&mut self, after: After, now: Instant, ctx: &mut Ctx) {
        self.fd = None;
        self.buf.reset();
        self.reading = Reading::default();
        match after {
            After::Retry => {
                self.connect(ctx);
            }
            After::Next => self.next(now, ctx),
            After::Stop => {
                self.phase = Phase::Idle;
                self.running = None;
            }
        }
    }

    /// When this link needs the loop to look at it (its deadline, or the end of its backoff).
    pub fn due(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting | Phase::Exchanging => Some(self.deadline),
            Phase::Backoff => Some(self.retry_at),
            Phase::Idle | Phase::Draining(_) => None,
        }
    }
}

/// A non-blocking TCP socket with `TCP_NODELAY`, bound to the user's source address if any.
fn open_socket(addr: std::net::SocketAddr, source: Option<std::net::IpAddr>) -> Result<OwnedFd, Failure> {
    let io = |err: std::io::Error| Failure::from_io(&err, Failure::Connect);
    let socket = socket_for(addr, source).map_err(io)?;
    socket.set_nodelay(true).map_err(io)?;
    Ok(OwnedFd::from(socket))
}
