//! The master (`--master`): listens for workers, admits those with our version and secret,
//! sends each the run, waits for `--expect-workers`, places the partitions, and feeds every
//! snapshot to the ordinary reporter (which merges exactly and writes every report). It moves a
//! lost worker's partitions to the others, gives a late worker its share, and ends the run when
//! every worker has finished its part.
//!
//! Threads: one accepts connections; one per worker reads its frames (decoding and checking
//! snapshots there, off the coordinator); the caller's thread coordinates (`Coordinator`);
//! the reporter thread merges.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::link::{self, WorkerInfo};
use super::listen::{self, Event};
use super::members::{self, Member, State};
use super::share::{self, Holder};
use super::wire::Message;
use crate::config::Plan;
use crate::log::Level;
use crate::report::board::{Board, WorkerRow};
use crate::report::{self, notice, Joined, Reporter, Summary};
use crate::stats::Snapshot;

/// The run as workers receive it.
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    pub argv: Vec<String>,
    pub scenario: Option<(String, String)>,
    pub files: Vec<(String, Vec<u8>)>,
    pub seed: u64,
    pub fixture: String,
    pub form: String,
}

/// How the master runs.
pub struct Options {
    pub listener: TcpListener,
    pub expect: usize,
    pub max_wait: Duration,
    pub secret: Option<String>,
    pub heartbeat_timeout: Duration,
    pub print_workers: bool,
    /// Follow SIGINT/SIGTERM (first: stop; second: stop now).
    pub watch_signals: bool,
    /// Plain TCP or TLS (`--master-tls-cert/-key`).
    pub security: link::Security,
    /// The web UI's board: the run's numbers and the Workers tab.
    pub board: Option<Arc<Board>>,
    /// Set from outside (the web UI's stop button) to stop the run.
    pub stop: Arc<AtomicBool>,
    /// The numbers `/metrics` serves (`--metrics-port`, the web UI).
    pub metrics: Option<Arc<report::metrics::Metrics>>,
}

/// Runs a distributed run to its end and returns the merged summary.
pub fn run(plan: Arc<Plan>, bundle: Bundle, options: Options) -> Result<Summary> {
    let addr = options.listener.local_addr().context("the master's listener")?;
    let (events_tx, events) = crossbeam_channel::unbounded();
    listen::accept(options.listener.try_clone()?, events_tx, &plan, &options);
    notice(Level::Info, &format!("swarmer master: listening on {addr}; waiting for {} worker(s)", options.expect));
    let mut c = Coordinator::new(plan, bundle, options);
    c.wait_for_workers(&events)?;
    c.start()?;
    c.follow(&events);
    c.finish()
}

struct Coordinator {
    plan: Arc<Plan>,
    bundle: Bundle,
    options: Options,
    members: BTreeMap<usize, Member>,
    holders: Vec<Holder>,
    /// Reporter senders: (member, partition) → sender id, and those whose last snapshot came.
    slots: HashMap<(usize, usize), usize>,
    finished_slots: HashSet<usize>,
    /// Per sender, per endpoint: requests started and not yet reported as ended.
    in_flight: HashMap<usize, Vec<u64>>,
    start: Instant,
    start_unix: f64,
    total_partitions: usize,
    snapshots: Option<Sender<Snapshot>>,
    membership: Option<Sender<Joined>>,
    reporter: Option<std::thread::JoinHandle<Result<Summary>>>,
    engine_done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    stop_sent: u8,
}

impl Coordinator {
    fn new(plan: Arc<Plan>, bundle: Bundle, options: Options) -> Coordinator {
        Coordinator {
            plan,
            bundle,
            options,
            members: BTreeMap::new(),
            holders: Vec::new(),
            slots: HashMap::new(),
            finished_slots: HashSet::new(),
            in_flight: HashMap::new(),
            start: Instant::now(),
            start_unix: 0.0,
            total_partitions: 0,
            snapshots: None,
            membership: None,
            reporter: None,
            engine_done: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            stop_sent: 0,
        }
    }

    fn ready_count(&self) -> usize {
        self.members.values().filter(|m| m.state == State::Ready).count()
    }

    /// Admits workers until `--expect-workers` are ready (or `--expect-workers-max-wait`).
    fn wait_for_workers(&mut self, events: &Receiver<Event>) -> Result<()> {
        let until = Instant::now() + self.options.max_wait;
        while self.ready_count() < self.options.expect {
            if self.options.watch_signals && crate::signal::received() > 0 {
                bail!("stopped while waiting for workers ({} of {} ready)", self.ready_count(), self.options.expect);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "only {} of {} worker(s) ready after {} (--expect-workers-max-wait)",
                    self.ready_count(),
                    self.options.expect,
                    crate::units::HumanDuration(self.options.max_wait)
                );
            }
            match events.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("the master's listener ended"),
            }
        }
        Ok(())
    }

    /// Places the partitions, starts the reporter and every ready worker.
    fn start(&mut self) -> Result<()> {
        let ready: Vec<usize> =
            self.members.iter().filter(|(_, m)| m.state == State::Ready).map(|(&id, _)| id).collect();
        let cores: Vec<usize> = ready.iter().map(|id| self.members[id].info.cores).collect();
        self.holders = share::initial(&cores);
        self.total_partitions = self.holders.iter().map(|h| h.partitions.len()).sum();
        let mut plan = (*self.plan).clone();
        plan.partitions = Some(self.total_partitions);
        self.plan = Arc::new(plan);
        let (snapshot_tx, snapshot_rx) = crossbeam_channel::unbounded();
        let (membership_tx, membership_rx) = crossbeam_channel::unbounded();
        self.start = Instant::now();
        self.start_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut reporter = Reporter::new(self.plan.clone(), self.start, self.start_unix, self.stop.clone())?
            .with_membership(membership_rx);
        if let Some(board) = &self.options.board {
            board.start(&self.plan);
            reporter = reporter.with_board(board.clone());
        }
        if let Some(metrics) = &self.options.metrics {
            reporter = reporter.with_metrics(metrics.clone());
        }
        let done = self.engine_done.clone();
        self.reporter = Some(
            std::thread::Builder::new()
                .name("swarmer-reporter".into())
                .spawn(move || reporter.run(snapshot_rx, Vec::new(), &done))
                .context("cannot start the reporter thread")?,
        );
        self.snapshots = Some(snapshot_tx);
        self.membership = Some(membership_tx);
        for line in report::banner(&self.plan) {
            notice(Level::Info, &line);
        }
        notice(
            Level::Info,
            &format!("swarmer master: {} worker(s), {} partition(s) of the users", ready.len(), self.total_partitions),
        );
        for (holder, id) in ready.into_iter().enumerate() {
            self.members.get_mut(&id).expect("ready").holder = Some(holder);
            let partitions = self.holders[holder].partitions.clone();
            self.take(id, &partitions);
        }
        Ok(())
    }

    /// Registers `partitions` as member `id`'s from the current tick on and tells it.
    fn take(&mut self, id: usize, partitions: &[usize]) {
        self.members.get_mut(&id).expect("known").state = State::Running;
        let elapsed = self.start.elapsed();
        let first_seq = (elapsed.as_nanos() / self.plan.tick.as_nanos().max(1)) as u64;
        for &p in partitions {
            let slot = self.slots.len();
            self.slots.insert((id, p), slot);
            if let Some(m) = &self.membership {
                let _ = m.send(Joined { worker: slot, first_seq });
            }
        }
        let message = Message::Take {
            elapsed_us: elapsed.as_micros() as u64,
            total: self.total_partitions as u64,
            partitions: partitions.iter().map(|&p| p as u64).collect(),
        };
        let _ = self.members[&id].sender.send(&message);
    }

    /// Runs until every worker that took part is done or lost.
    fn follow(&mut self, events: &Receiver<Event>) {
        let mut next_beat = Instant::now();
        let every = self.plan.output.print_every;
        let mut next_print = Instant::now() + every;
        loop {
            match events.recv_timeout(Duration::from_millis(50)) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now >= next_beat {
                next_beat += Duration::from_secs(1);
                self.beat(now);
            }
            if self.options.print_workers && now >= next_print {
                next_print += every;
                self.print_workers();
            }
            self.relay_stop();
            let active = self.members.values().filter(|m| matches!(m.state, State::Running)).count();
            if active == 0 {
                break;
            }
        }
    }

    /// Heartbeats out; workers silent past the timeout are lost.
    fn beat(&mut self, now: Instant) {
        let timeout = self.options.heartbeat_timeout;
        let mut silent = Vec::new();
        for (&id, m) in &self.members {
            if matches!(m.state, State::Running | State::Ready | State::Joining) {
                let _ = m.sender.send(&Message::Heartbeat { users: 0, cpu_permille: 0 });
                if now.duration_since(m.last_seen) > timeout {
                    silent.push(id);
                }
            }
        }
        for id in silent {
            self.lose(id, "silent past the heartbeat timeout".into());
        }
        self.post_workers();
    }

    /// Passes a stop on to the workers: Ctrl-C (the second one: at once) or a threshold lost
    /// with `--abort-on-threshold`.
    fn relay_stop(&mut self) {
        let signals = if self.options.watch_signals { crate::signal::received().min(2) as u8 } else { 0 };
        let asked = self.stop.load(Ordering::Relaxed) || self.options.stop.load(Ordering::Relaxed);
        let wanted = signals.max(asked as u8);
        if wanted > self.stop_sent {
            self.stop_sent = wanted;
            let now = wanted >= 2;
            notice(
                Level::Info,
                if now {
                    "stopping now: requests in flight are counted as cancelled"
                } else {
                    "stopping: the final report follows"
                },
            );
            for m in self.members.values().filter(|m| m.state == State::Running) {
                let _ = m.sender.send(&Message::Stop { now });
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Joined { id, info, sender, peer } => self.joined(id, info, sender, peer),
            Event::Message { id, message } => self.message(id, message),
            Event::Gone { id, reason } => self.lose(id, reason),
        }
    }

    fn joined(&mut self, id: usize, info: WorkerInfo, sender: link::Sender, peer: SocketAddr) {
        notice(
            Level::Info,
            &format!("swarmer master: worker {id} ({}, {peer}) connected with {} core(s)", info.host, info.cores),
        );
        let b = &self.bundle;
        let bundle = Message::Bundle {
            argv: b.argv.clone(),
            scenario: b.scenario.clone(),
            files: b.files.clone(),
            seed: b.seed,
            fixture: b.fixture.clone(),
            form: b.form.clone(),
        };
        let _ = sender.send(&bundle);
        let member = Member {
            info,
            sender,
            peer,
            state: State::Joining,
            holder: None,
            users: 0,
            cpu_permille: 0,
            last_seen: Instant::now(),
            requests: 0,
            failures: 0,
        };
        self.members.insert(id, member);
    }

    fn message(&mut self, id: usize, message: Message) {
        let Some(member) = self.members.get_mut(&id) else { return };
        member.last_seen = Instant::now();
        match message {
            Message::Heartbeat { users, cpu_permille } => {
                member.users = users;
                member.cpu_permille = cpu_permille;
                if member.state == State::Joining {
                    member.state = State::Ready;
                    if self.reporter.is_some() {
                        self.late_join(id);
                    }
                }
            }
            Message::Stats(snapshot) => self.stats(id, snapshot),
            Message::Done => {
                member.state = State::Done;
                notice(Level::Debug, &format!("swarmer master: worker {id} done"));
            }
            Message::Failed { reason } => {
                member.state = State::Failed;
                member.sender.close();
                notice(Level::Error, &format!("swarmer master: worker {id} cannot take the run: {reason}"));
            }
            other => {
                let reason = format!("unexpected {} from a worker", link::name(&other));
                self.lose(id, reason);
            }
        }
    }

    fn stats(&mut self, id: usize, mut snapshot: Box<Snapshot>) {
        let Some(&slot) = self.slots.get(&(id, snapshot.worker)) else {
            return self.lose(id, format!("stats for partition {} it does not run", snapshot.worker));
        };
        let member = self.members.get_mut(&id).expect("known");
        member.requests += snapshot.endpoints.iter().map(|e| e.count).sum::<u64>();
        member.failures += snapshot.endpoints.iter().map(|e| e.failures).sum::<u64>();
        if snapshot.last {
            self.finished_slots.insert(slot);
        }
        let in_flight = self.in_flight.entry(slot).or_insert_with(|| vec![0; snapshot.endpoints.len()]);
        for (n, e) in in_flight.iter_mut().zip(&snapshot.endpoints) {
            *n = (*n + e.started).saturating_sub(e.count + e.cancelled);
        }
        snapshot.worker = slot;
        if let Some(tx) = &self.snapshots {
            let _ = tx.send(*snapshot);
        }
    }

    /// Whether the run is past its end (no partitions move then).
    fn is_over(&self) -> bool {
        self.stop_sent > 0 || self.plan.run_time.is_some_and(|t| self.start.elapsed() >= t)
    }

    fn alive(&self) -> Vec<bool> {
        let mut alive = vec![false; self.holders.len()];
        for m in self.members.values() {
            if let (Some(h), State::Running | State::Ready) = (m.holder, m.state) {
                alive[h] = true;
            }
        }
        alive
    }

    fn member_of_holder(&self, holder: usize) -> usize {
        *self.members.iter().find(|(_, m)| m.holder == Some(holder)).expect("every holder is a member").0
    }

    /// A worker joined after the start: it takes partitions from the busiest workers.
    fn late_join(&mut self, id: usize) {
        if self.is_over() {
            return;
        }
        let holder = self.holders.len();
        self.holders.push(Holder { cores: self.members[&id].info.cores, partitions: Vec::new() });
        self.members.get_mut(&id).expect("known").holder = Some(holder);
        let alive = self.alive();
        let moves = share::rebalance(holder, &mut self.holders, &alive);
        let at = self.start.elapsed().as_secs_f64();
        let moved: Vec<usize> = moves.iter().map(|&(_, p)| p).collect();
        notice(
            Level::Warning,
            &format!("swarmer master: worker {id} joined at {at:.1}s; it takes partition(s) {moved:?}"),
        );
        for (donor, partition) in moves {
            let donor_id = self.member_of_holder(donor);
            let _ = self.members[&donor_id].sender.send(&Message::Release { partitions: vec![partition as u64] });
        }
        if !moved.is_empty() {
            self.take(id, &moved);
        }
    }

    /// A worker is gone: stop waiting for it; move its partitions to the others.
    fn lose(&mut self, id: usize, reason: String) {
        let Some(member) = self.members.get_mut(&id) else { return };
        let was = member.state;
        if matches!(was, State::Done | State::Lost | State::Failed) {
            return;
        }
        member.state = State::Lost;
        member.sender.close();
        let at = self.start.elapsed().as_secs_f64();
        let Some(holder) = member.holder else {
            return notice(Level::Warning, &format!("swarmer master: worker {id} left before the run ({reason})"));
        };
        let users = member.users;
        let mine: Vec<usize> = self
            .slots
            .iter()
            .filter(|((m, _), s)| *m == id && !self.finished_slots.contains(s))
            .map(|(_, &s)| s)
            .collect();
        for slot in mine {
            self.end_lost(slot);
        }
        let orphans = std::mem::take(&mut self.holders[holder].partitions);
        if self.is_over() {
            return notice(Level::Warning, &format!("swarmer master: worker {id} lost at {at:.1}s ({reason})"));
        }
        let alive = self.alive();
        let moves = share::adopt(&orphans, &mut self.holders, &alive);
        if moves.is_empty() {
            return notice(
                Level::Error,
                &format!("swarmer master: worker {id} lost at {at:.1}s ({reason}); no worker is left to take its {users} users"),
            );
        }
        let mut by_holder: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (h, p) in moves {
            by_holder.entry(h).or_default().push(p);
        }
        let to: Vec<String> =
            by_holder.iter().map(|(h, ps)| format!("worker {} {ps:?}", self.member_of_holder(*h))).collect();
        notice(
            Level::Warning,
            &format!(
                "swarmer master: worker {id} lost at {at:.1}s ({reason}): its partition(s) {orphans:?} ({users} users) move to {}",
                to.join(", ")
            ),
        );
        for (h, partitions) in by_holder {
            let member = self.member_of_holder(h);
            self.take(member, &partitions);
        }
    }

    /// A lost worker's sender ends with a last snapshot of its own: what it had in flight at
    /// its last report counts as cancelled (every start still ends somewhere).
    fn end_lost(&mut self, slot: usize) {
        self.finished_slots.insert(slot);
        let endpoints = self.plan.endpoints.len();
        let mut last = Snapshot::new(slot, endpoints, self.plan.histogram_max_us());
        let seq = (self.start.elapsed().as_nanos() / self.plan.tick.as_nanos().max(1)) as u64;
        last.seq = seq;
        last.last = true;
        if let Some(in_flight) = self.in_flight.remove(&slot) {
            for (e, n) in last.endpoints.iter_mut().zip(in_flight) {
                e.cancelled = n;
            }
        }
        if let Some(tx) = &self.snapshots {
            let _ = tx.send(last);
        }
    }

    fn print_workers(&self) {
        for line in self.worker_lines() {
            notice(Level::Info, &line);
        }
    }

    /// Each worker as the Workers tab, the console and `PREFIX_workers.csv` show it.
    fn worker_rows(&self) -> Vec<WorkerRow> {
        self.members
            .iter()
            .map(|(id, m)| WorkerRow {
                id: id.to_string(),
                host: m.info.host.clone(),
                address: m.peer.to_string(),
                state: m.state.name().to_string(),
                cores: m.info.cores,
                partitions: m.holder.map_or(0, |h| self.holders[h].partitions.len()),
                user_count: m.users,
                cpu_usage: (m.cpu_permille as f64 / 10.0 * 10.0).round() / 10.0,
                requests: m.requests,
                failures: m.failures,
            })
            .collect()
    }

    fn worker_lines(&self) -> Vec<String> {
        let line = |w: WorkerRow| {
            format!(
                "worker {} {} ({}): {}, {} partition(s), {} users, CPU {:.0}%, {} requests ({} failed)",
                w.id, w.host, w.address, w.state, w.partitions, w.user_count, w.cpu_usage, w.requests, w.failures
            )
        };
        self.worker_rows().into_iter().map(line).collect()
    }

    /// The Workers tab's rows, when there is a board.
    fn post_workers(&self) {
        if let Some(board) = &self.options.board {
            let rows = self.worker_rows();
            board.change(|b| b.workers = rows);
        }
    }

    /// The run is over: the reporter gets what is left, the links close, the workers' table.
    fn finish(mut self) -> Result<Summary> {
        // Last snapshots come with each worker's done; drop our senders so the reporter ends.
        self.engine_done.store(true, Ordering::Release);
        self.snapshots = None;
        self.membership = None;
        for m in self.members.values() {
            m.sender.close();
        }
        let summary = match self.reporter.take().expect("started").join() {
            Ok(result) => result?,
            Err(_) => bail!("the reporter thread panicked"),
        };
        self.post_workers();
        notice(Level::Info, "Workers");
        for line in self.worker_lines() {
            notice(Level::Info, &format!("  {line}"));
        }
        if let Some(prefix) = &self.plan.output.csv_prefix {
            members::write_csv(prefix, &self.worker_rows())?;
        }
        Ok(summary)
    }
}
