//! The ring engine: quick mode's hot loop on a hand-driven io_uring, for the plans that need
//! nothing else (one plain-HTTP request, closed model, no think time; users by the spawn ramp,
//! a load shape or live control; `--iterations`). One loop per worker thread, one state machine
//! per user (`link`), no futures: each completion goes straight to its connection, each wait is
//! one `io_uring_enter` that submits what the completions started. What monoio spends per request on its op bookkeeping (a slab
//! entry, a waker, a wake and a task poll per op) and the task's nested futures is not spent,
//! and the clock is read twice per loop turn instead of twice per request.
//!
//! It keeps the task engine's rules (see `link`) and its reports: the same `CoreStats`, ticks,
//! stop timeout and final snapshot, the driver named `io_uring (defer_taskrun, ring)`. Every
//! other plan, or any with `--no-ring`, runs on the task engine (`thread`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use io_uring::{types, IoUring};

use super::link::{After, Ctx, Link, Phase, CANCEL};
use super::pacer::{Wanted, SHAPE_STEP};
use super::run::POLL;
use super::worker::Worker;
use crate::config::{Plan, Request, Step, TaskKind, Wait};

/// How long the ops still in flight at the end get to come back once cancelled; past this
/// their buffers are leaked rather than freed under the kernel.
const DRAIN_BOUND: Duration = Duration::from_secs(1);

/// The request a plan's users repeat, when the ring engine can run the plan.
pub(crate) fn request_of(plan: &Plan) -> Option<&Request> {
    if !plan.ring || plan.io == crate::runtime::Io::Epoll || !crate::runtime::uring_available() || plan.rate.is_some() {
        return None;
    }
    let [user_type] = &plan.user_types[..] else { return None };
    let [task] = &user_type.tasks[..] else { return None };
    if user_type.wait != Wait::None
        || !user_type.on_start.is_empty()
        || !user_type.on_stop.is_empty()
        || task.repeat > 1
    {
        return None;
    }
    match &task.kind {
        TaskKind::Steps(steps) => match &steps[..] {
            [Step::Request(request)] if request.tls.is_none() => Some(request),
            _ => None,
        },
        TaskKind::Set { .. } => None,
    }
}

/// Runs this worker's users on the ring engine: `None` when its ring cannot be built (the
/// caller then uses the task engine).
pub(crate) fn main(worker: Rc<Worker>, request: &Request) -> Option<Result<()>> {
    let plan = worker.run.plan.clone();
    let users: Vec<u64> = plan.users_of_worker(worker.partition).collect();
    // Room for every link's send and read, and cancels; the completion queue is twice this.
    let entries = (2 * users.len() as u32 + 64).next_power_of_two().clamp(256, 32768);
    let mut builder = IoUring::builder();
    builder.setup_cqsize(2 * entries);
    if plan.defer_taskrun {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    let ring = builder.build(entries).ok()?;
    let driver = if plan.defer_taskrun { "io_uring (defer_taskrun, ring)" } else { "io_uring (ring)" };
    worker.stats.borrow_mut().set_driver(driver);
    let depth = plan.pipeline.max(1);
    let now = Instant::now();
    let never = now + crate::units::LONGEST;
    let mut engine = Engine {
        links: users.iter().enumerate().map(|(i, &user)| Link::new(i as u32, user, now)).collect(),
        ctx: Ctx {
            ring,
            worker,
            batch: request.bytes.repeat(depth),
            request: request.clone(),
            depth,
            iterations: plan.iterations,
            addr: Box::new(request.addr.into()),
            starting: Vec::new(),
            earliest: never,
            now,
            never,
        },
        spawned: 0,
        wanted: (plan.shape.is_some() || plan.live_control).then(|| (Wanted::new(), now)),
        completions: Vec::with_capacity(entries as usize),
    };
    Some(engine.run())
}

struct Engine {
    links: Vec<Link>,
    ctx: Ctx,
    /// Links started so far (in order of their users' start times), without a load shape or
    /// live control.
    spawned: usize,
    /// With a load shape or live control: the users it wants, and when to look again.
    wanted: Option<(Wanted, Instant)>,
    /// The completions of one turn, copied out of the ring before they are handled.
    completions: Vec<(u64, i32)>,
}

impl Engine {
    /// The worker's loop: spawn users on schedule, handle completions, send ticks, time out
    /// exchanges, stop as the task engine does; then cancel what is in flight and send the last
    /// snapshot.
    fn run(&mut self) -> Result<()> {
        let run = self.ctx.worker.run.clone();
        let plan = &run.plan;
        let mut seq = (run.start.elapsed().as_nanos() / plan.tick.as_nanos().max(1)) as u64;
        let mut grace_end: Option<Instant> = None;
        loop {
            let now = Instant::now();
            self.ctx.now = now;
            self.handle_completions(now);
            match self.wanted.is_some() {
                true => self.follow(now),
                false => self.spawn_due(now),
            }
            if now >= self.ctx.earliest {
                self.scan(now);
            }
            self.ctx.worker.send_due_ticks(&mut seq)?;
            if self.ctx.worker.stop_if_over(now, &mut grace_end) {
                self.stop_waiting(now);
            }
            if self.ctx.worker.is_done(now, grace_end) {
                break;
            }
            let next_tick = run.start + plan.tick * (seq as u32 + 1);
            let next_start = match &self.wanted {
                Some((_, at)) => Some(*at),
                None => self.next_spawn(),
            };
            let wake = [next_tick, now + POLL, self.ctx.earliest, next_start.unwrap_or(next_tick)];
            self.wait(wake.into_iter().min().expect("four times"));
        }
        self.cancel_all();
        self.ctx.worker.send_last(seq)
    }

    /// Starts the clocks of the exchanges this turn began, submits, and waits for a completion
    /// or until `wake`.
    fn wait(&mut self, wake: Instant) {
        let sent = Instant::now();
        let timeout = self.ctx.request.timeout;
        for i in self.ctx.starting.drain(..) {
            let link = &mut self.links[i as usize];
            link.started = sent;
            link.deadline = sent.checked_add(timeout).unwrap_or(sent + crate::units::LONGEST);
            self.ctx.earliest = self.ctx.earliest.min(link.deadline);
        }
        let left = wake.saturating_duration_since(sent);
        let ts = types::Timespec::new().sec(left.as_secs()).nsec(left.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        // ETIME (the wait ended at `wake`) and EINTR are ordinary; a full completion queue
        // (EBUSY) empties in the next turn.
        let _ = self.ctx.ring.submitter().submit_with_args(1, &args);
    }

    /// Hands each completion to its link.
    fn handle_completions(&mut self, now: Instant) {
        self.completions.clear();
        self.completions.extend(self.ctx.ring.completion().map(|cqe| (cqe.user_data(), cqe.result())));
        for &(data, result) in &self.completions {
            let op = (data & 0xff) as u8;
            if op == CANCEL {
                continue;
            }
            self.links[(data >> 8) as usize].complete(op, result, now, &mut self.ctx);
        }
    }

    /// When the next user of this worker is due to start, if any is left.
    fn next_spawn(&self) -> Option<Instant> {
        let run = &self.ctx.worker.run;
        let link = self.links.get(self.spawned)?;
        (!self.ctx.worker.stopping.get()).then(|| run.start + run.plan.start_offset(link.user))
    }

    /// Starts the users whose time has come (the closed model's spawn ramp).
    fn spawn_due(&mut self, now: Instant) {
        while self.next_spawn().is_some_and(|at| at <= now) {
            self.links[self.spawned].start(&mut self.ctx);
            self.spawned += 1;
        }
        if self.spawned == self.links.len() {
            self.ctx.worker.spawned_all.set(true);
        }
    }

    /// Every `SHAPE_STEP`: starts the users a load shape or live control wants and that are not
    /// running, and asks those running and no longer wanted to stop after their exchange.
    fn follow(&mut self, now: Instant) {
        let Some((wanted, at)) = self.wanted.as_mut() else { return };
        if now < *at || self.ctx.worker.stopping.get() {
            return;
        }
        *at = now + SHAPE_STEP;
        let wanted = wanted.now(&self.ctx.worker.run);
        for (local, link) in self.links.iter_mut().enumerate() {
            if self.ctx.worker.wants(local, link.user, wanted) && link.phase == Phase::Idle {
                link.start(&mut self.ctx);
            }
        }
    }

    /// Times out the exchanges past their deadline, starts those whose backoff ended, and
    /// finds the next time one is due.
    fn scan(&mut self, now: Instant) {
        self.ctx.earliest = self.ctx.never;
        for link in &mut self.links {
            match link.phase {
                Phase::Connecting | Phase::Exchanging if link.deadline <= now => link.time_out(now, &mut self.ctx),
                Phase::Backoff if link.retry_at <= now => link.next(now, &mut self.ctx),
                _ => {}
            }
            if let Some(due) = link.due() {
                self.ctx.earliest = self.ctx.earliest.min(due);
            }
        }
    }

    /// The run is stopping: users between exchanges (waiting out a backoff) stop now; the
    /// others at the end of their exchange.
    fn stop_waiting(&mut self, now: Instant) {
        for link in self.links.iter_mut().filter(|l| l.phase == Phase::Backoff) {
            link.close(After::Stop, now, &mut self.ctx);
        }
    }

    /// Cancels every op in flight and waits (within `DRAIN_BOUND`) until all are back, so no
    /// buffer is freed while the kernel may still write to it; what was started and did not
    /// end is reported as cancelled by the last snapshot.
    fn cancel_all(&mut self) {
        let now = Instant::now();
        for link in &mut self.links {
            match link.phase {
                // Already closing: it ends there, whatever it was to do next.
                Phase::Draining(_) => link.phase = Phase::Draining(After::Stop),
                _ => link.close(After::Stop, now, &mut self.ctx),
            }
        }
        let until = now + DRAIN_BOUND;
        while self.links.iter().any(|l| l.ops != 0) {
            let now = Instant::now();
            if now >= until {
                // Ops that never came back: keep their buffers alive rather than free them.
                std::mem::forget(std::mem::take(&mut self.links));
                return;
            }
            self.ctx.starting.clear();
            self.wait(until);
            self.handle_completions(Instant::now());
        }
        for link in &mut self.links {
            link.running = None;
        }
    }
}

impl Drop for Engine {
    /// However the loop ended (the reporter gone, a panic), the kernel is done with every
    /// buffer before the links free them.
    fn drop(&mut self) {
        if self.links.iter().any(|l| l.ops != 0) {
            self.cancel_all();
        }
    }
}
