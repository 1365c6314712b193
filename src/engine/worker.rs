//! One worker's state, shared by the tasks of its thread (single-threaded: `Rc`, `Cell`,
//! `RefCell`): its recorder and the snapshots that leave it, which users run, the open model's
//! idle users and waiting starts, and the cancellation that ends the users still running.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::run::Run;
use crate::stats::{CoreStats, Snapshot};

/// Which worker thread: its index in this process (its snapshots' `worker`), the partition of
/// the users it runs, the core it is pinned to.
#[derive(Clone, Copy, Debug)]
pub struct Thread {
    pub index: usize,
    pub partition: usize,
    pub core: Option<usize>,
}

pub(crate) struct Worker {
    pub run: Arc<Run>,
    /// The thread's index in this process (its snapshots' `worker`).
    pub index: usize,
    /// The partition of the users it runs (the thread's index unless the run is distributed).
    pub partition: usize,
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
    /// Per local user: its `on_start` failed for good; it is not started again.
    pub user_failed: Vec<Cell<bool>>,
    /// Open model: users waiting for their next start, and starts waiting for a user (their
    /// intended times, oldest first).
    pub idle: RefCell<Vec<Rc<Slot>>>,
    pub waiting: RefCell<VecDeque<Instant>>,
    /// Fires once the run is over: users still running drop what they were doing (and their
    /// connections) instead of being leaked with the runtime.
    pub cancel: Cancel,
    /// Per round-robin data file: rows taken on this worker so far.
    pub data_next: Vec<Cell<usize>>,
    snapshots: Sender<Snapshot>,
    spares: Receiver<Snapshot>,
}

impl Worker {
    pub fn new(run: Arc<Run>, thread: Thread, snapshots: Sender<Snapshot>, spares: Receiver<Snapshot>) -> Worker {
        let plan = &run.plan;
        let index = thread.index;
        let local_users = plan.users_of_worker(thread.partition).count();
        Worker {
            stats: RefCell::new(CoreStats::new(index, plan.endpoints.len(), plan.histogram_max_us())),
            data_next: plan.data.iter().map(|_| Cell::new(0)).collect(),
            user_stop: (0..local_users).map(|_| Cell::new(false)).collect(),
            user_alive: (0..local_users).map(|_| Cell::new(false)).collect(),
            user_failed: (0..local_users).map(|_| Cell::new(false)).collect(),
            idle: RefCell::new(Vec::with_capacity(local_users)),
            waiting: RefCell::new(VecDeque::new()),
            run,
            index,
            partition: thread.partition,
            stopping: Cell::new(false),
            running: Cell::new(0),
            spawned_all: Cell::new(false),
            cancel: Cancel::default(),
            snapshots,
            spares,
        }
    }

    /// This worker's index among its local users for global user `user`.
    pub fn local(&self, user: u64) -> usize {
        (user / self.run.plan.partition_count() as u64) as usize
    }

    /// Sends the snapshot of tick `seq` and goes on recording into a spare one.
    pub fn send_tick(&self, seq: u64) -> Result<()> {
        let spare = self.spare();
        let filled = self.stats.borrow_mut().swap(spare, seq, self.running.get());
        self.snapshots.send(filled).context("reporter is gone")
    }

    /// Sends the last snapshot: whatever is still in flight is reported as cancelled.
    pub fn send_last(&self, seq: u64) -> Result<()> {
        let spare = self.spare();
        let last = self.stats.borrow_mut().finish(spare, seq, self.running.get());
        self.snapshots.send(last).context("reporter is gone")
    }

    /// Local user `local` (global `user`) against the `wanted` users of a load shape or live
    /// control: asked to stop at its next task boundary when running and no longer wanted; true
    /// when it is wanted, not running and may start (its `on_start` has not failed for good).
    pub fn wants(&self, local: usize, user: u64, wanted: u64) -> bool {
        let (alive, stop) = (&self.user_alive[local], &self.user_stop[local]);
        if user < wanted {
            stop.set(false);
            !alive.get() && !self.user_failed[local].get()
        } else {
            if alive.get() {
                stop.set(true);
            }
            false
        }
    }

    /// Sends the snapshot of every tick that has ended.
    pub fn send_due_ticks(&self, seq: &mut u64) -> Result<()> {
        let run = &self.run;
        while Instant::now() >= run.start + run.plan.tick * (*seq as u32 + 1) {
            self.send_tick(*seq)?;
            *seq += 1;
        }
        Ok(())
    }

    /// Once the run is over for this worker (`is_over`): sets `stopping` and starts the stop
    /// timeout's grace in `grace_end`; true at that moment only.
    pub fn stop_if_over(&self, now: Instant, grace_end: &mut Option<Instant>) -> bool {
        if grace_end.is_some() || !self.is_over(now) {
            return false;
        }
        self.stopping.set(true);
        *grace_end = Some(now + self.run.plan.stop_timeout);
        true
    }

    /// Whether the worker is done once stopping: no user running, the grace over, or aborted.
    pub fn is_done(&self, now: Instant, grace_end: Option<Instant>) -> bool {
        let aborted = self.run.abort.load(Ordering::Relaxed);
        grace_end.is_some_and(|end| self.running.get() == 0 || now >= end || aborted)
    }

    /// Whether the run is over for this worker: stopped, past its run time, or (`--iterations`)
    /// every user of the worker has done its tasks.
    pub fn is_over(&self, now: Instant) -> bool {
        let run = &self.run;
        let plan = &run.plan;
        let done = plan.iterations.is_some() && self.spawned_all.get() && self.running.get() == 0;
        let released = run.released.get(self.partition).is_some_and(|r| r.load(Ordering::Relaxed));
        done || released || run.stop.load(Ordering::Relaxed) || plan.run_time.is_some_and(|t| now >= run.start + t)
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

    /// Open model: hands the start meant for `intended` to the user behind `slot`, recording
    /// how late it began.
    pub fn start(&self, slot: &Slot, intended: Instant) {
        let lag = Instant::now().saturating_duration_since(intended);
        self.stats.borrow_mut().arrival(lag.as_micros().min(u128::from(u64::MAX)) as u64);
        slot.give(Some(intended));
    }

    /// Open model: a user is free. It takes the oldest waiting start (within the bound), or goes
    /// idle. True when it got a start.
    pub fn user_free(&self, slot: &Rc<Slot>) -> bool {
        self.drop_overdue();
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

    /// Open model: drops the starts that have waited longer than `--max-start-delay` for a user.
    pub fn drop_overdue(&self) {
        let bound = self.run.plan.max_start_delay;
        let now = Instant::now();
        let mut waiting = self.waiting.borrow_mut();
        while waiting.front().is_some_and(|&intended| now.saturating_duration_since(intended) > bound) {
            waiting.pop_front();
            self.stats.borrow_mut().dropped();
        }
    }
}

/// Counts a user as running for as long as it lives, however it ends (even when dropped), and
/// marks it as not running for the load shape afterwards.
pub(crate) struct Running(Rc<Worker>, usize);

impl Running {
    pub fn new(worker: Rc<Worker>, user: u64) -> Running {
        let local = worker.local(user);
        if let Some(alive) = worker.user_alive.get(local) {
            alive.set(true);
        }
        worker.running.set(worker.running.get() + 1);
        worker.stats.borrow_mut().users_running(worker.running.get());
        worker.run.users_running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Running(worker, local)
    }

    pub fn worker(&self) -> &Worker {
        &self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
        self.0.run.users_running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(alive) = self.0.user_alive.get(self.1) {
            alive.set(false);
        }
    }
}

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
