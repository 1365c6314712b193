//! A worker process (`--worker`): connect to the master, prove the secret, take the run it
//! sends (flags, scenario text, data files), then run the partitions it is given — one engine
//! thread each, on the master's clock — and forward every snapshot. It follows the master's
//! moves (take, release, stop) and stops its load when the master goes silent.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::link::{self, Link};
use super::wire::Message;
use crate::config::Plan;
use crate::engine::{self, Run, Thread};
use crate::log::Level;
use crate::report::notice;
use crate::stats::Snapshot;

/// The run a master sends, as the worker compiles it.
pub struct Bundle {
    pub argv: Vec<String>,
    pub scenario: Option<(String, String)>,
    pub files: Arc<HashMap<String, Vec<u8>>>,
    pub seed: u64,
    pub fixture: String,
    /// What the master's web UI form changed of its flags (JSON, or empty).
    pub form: String,
}

/// How the worker was started.
pub struct Options {
    pub master: String,
    pub port: u16,
    pub secret: Option<String>,
    pub heartbeat_timeout: Duration,
    /// Worker threads it offers (its share of partitions follows them).
    pub cores: usize,
    /// How long to keep trying to reach the master.
    pub connect_for: Duration,
    /// Plain TCP or TLS (`--master-ca-cert`).
    pub security: link::Security,
}

/// What ended a worker.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The run ended and every snapshot was sent.
    Done,
    /// The master refused the worker or its run could not be compiled (a usage error).
    Refused(String),
    /// The master could not be reached or was lost: the load was stopped.
    Lost(String),
}

/// Runs a worker to the end of one run. `compile` turns the master's bundle into this
/// worker's plan (the composition root's job: flags and scenario parsing).
pub fn run(options: &Options, compile: &dyn Fn(&Bundle) -> Result<Plan>) -> Ending {
    let mut link = match connect(options) {
        Ok(link) => link,
        Err(reason) => return Ending::Lost(reason),
    };
    let deadline = Instant::now() + options.connect_for;
    if let Err(reason) = link::join(&mut link, options.secret.as_deref(), options.cores, deadline) {
        return Ending::Refused(reason);
    }
    notice(Level::Info, &format!("swarmer worker: connected to the master at {}; waiting for the run", link.peer));
    let plan = loop {
        match link.recv_until(deadline) {
            Ok(Message::Bundle { argv, scenario, files, seed, fixture, form }) => {
                let bundle =
                    Bundle { argv, scenario, files: Arc::new(files.into_iter().collect()), seed, fixture, form };
                match compile(&bundle) {
                    Ok(plan) => break plan,
                    Err(err) => {
                        let reason = format!("{err:#}");
                        let _ = link.send(&Message::Failed { reason: reason.clone() });
                        return Ending::Refused(format!("cannot take the master's run: {reason}"));
                    }
                }
            }
            Ok(Message::Heartbeat { .. }) => {}
            Ok(Message::Refused { reason }) => {
                return Ending::Refused(format!("the master refused this worker: {reason}"))
            }
            Ok(other) => return Ending::Lost(format!("expected the run, got {}", link::name(&other))),
            Err(reason) => return Ending::Lost(format!("the master: {reason}")),
        }
    };
    // Ready: an empty heartbeat says so.
    if let Err(reason) = link.send(&Message::Heartbeat { users: 0, cpu_permille: 0 }) {
        return Ending::Lost(reason);
    }
    let mut worker = Worker::new(Arc::new(plan), link.sender.clone(), link.peer);
    let messages = read_master(link);
    let lost = worker.follow(&messages);
    worker.finish(lost)
}

/// Connects to the master, retrying once a second for `connect_for` (workers often start first).
fn connect(options: &Options) -> Result<Link, String> {
    let until = Instant::now() + options.connect_for;
    let target = match options.master.contains(':') && !options.master.starts_with('[') {
        true => format!("[{}]:{}", options.master, options.port),
        false => format!("{}:{}", options.master, options.port),
    };
    loop {
        let error = match TcpStream::connect(&target) {
            Ok(stream) => {
                return Link::secured(stream, options.heartbeat_timeout, &options.security)
                    .map_err(|e| format!("{target}: {e}"))
            }
            Err(e) => e,
        };
        if Instant::now() >= until {
            return Err(format!("cannot reach the master at {target}: {error}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Messages from the master's reader thread, or why it ended.
enum FromMaster {
    Message(Message),
    Lost(String),
}

struct Worker {
    plan: Arc<Plan>,
    link: link::Sender,
    peer: std::net::SocketAddr,
    run: Option<Arc<Run>>,
    threads: Vec<JoinHandle<Result<()>>>,
    /// Per thread index: its partition, and the spare channel it takes snapshots back from.
    partition_of: Vec<usize>,
    snapshots: (Sender<Snapshot>, Receiver<Snapshot>),
    spares: Vec<Sender<Snapshot>>,
    cpu: CpuClock,
}

impl Worker {
    fn new(plan: Arc<Plan>, link: link::Sender, peer: std::net::SocketAddr) -> Worker {
        Worker {
            plan,
            link,
            peer,
            run: None,
            threads: Vec::new(),
            partition_of: Vec::new(),
            snapshots: crossbeam_channel::unbounded(),
            spares: Vec::new(),
            cpu: CpuClock::start(),
        }
    }
}

/// Reads the master's messages on a thread of its own.
fn read_master(mut link: Link) -> Receiver<FromMaster> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("swarmer-master-link".into())
        .spawn(move || loop {
            match link.recv() {
                Ok(message) => {
                    if tx.send(FromMaster::Message(message)).is_err() {
                        return;
                    }
                }
                Err(reason) => {
                    let _ = tx.send(FromMaster::Lost(reason));
                    return;
                }
            }
        })
        .expect("a thread can be started");
    rx
}

impl Worker {
    /// Follows the master until this worker's part of the run is over: forwards snapshots,
    /// sends heartbeats, takes and releases partitions, stops.
    fn follow(&mut self, messages: &Receiver<FromMaster>) -> Option<String> {
        let mut next_beat = Instant::now();
        loop {
            if let Err(reason) = self.forward() {
                return Some(reason);
            }
            if Instant::now() >= next_beat {
                let users = self.run.as_ref().map_or(0, |r| r.users_running.load(Ordering::Relaxed));
                let beat = Message::Heartbeat { users, cpu_permille: self.cpu.permille() };
                if let Err(e) = self.link.send(&beat) {
                    return Some(format!("cannot send to the master ({e})"));
                }
                next_beat += Duration::from_secs(1);
            }
            if self.run.is_some() && self.threads.iter().all(|t| t.is_finished()) && self.is_over() {
                return None;
            }
            match messages.recv_timeout(Duration::from_millis(20)) {
                Ok(FromMaster::Message(message)) => {
                    if let Err(reason) = self.obey(message) {
                        return Some(reason);
                    }
                }
                Ok(FromMaster::Lost(reason)) => return Some(reason),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Some("the link's reader ended".into()),
            }
        }
    }

    /// Whether the run is over for this worker (its threads have ended for good): stopped,
    /// past its run time, or every user done with its iterations.
    fn is_over(&self) -> bool {
        let Some(run) = &self.run else { return false };
        let plan = &self.plan;
        let released = (0..self.partition_of.len()).all(|k| run.released[self.partition_of[k]].load(Ordering::Relaxed));
        run.stop.load(Ordering::Relaxed)
            || plan.run_time.is_some_and(|t| run.start.elapsed() >= t)
            || plan.iterations.is_some()
            || released
    }

    fn obey(&mut self, message: Message) -> Result<(), String> {
        match message {
            Message::Take { elapsed_us, total, partitions } => self.take(elapsed_us, total as usize, &partitions),
            Message::Release { partitions } => {
                if let Some(run) = &self.run {
                    for p in partitions {
                        if let Some(flag) = run.released.get(p as usize) {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Ok(())
            }
            Message::Stop { now } => {
                if let Some(run) = &self.run {
                    run.stop.store(true, Ordering::Relaxed);
                    if now {
                        run.abort.store(true, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            Message::Heartbeat { .. } => Ok(()),
            other => Err(format!("unexpected {} from the master", link::name(&other))),
        }
    }

    /// Starts a thread for each of `partitions`; the first take also starts the run, its
    /// origin `elapsed_us` before now.
    fn take(&mut self, elapsed_us: u64, total: usize, partitions: &[u64]) -> Result<(), String> {
        if self.run.is_none() {
            let mut plan = (*self.plan).clone();
            plan.partitions = Some(total.max(1));
            self.plan = Arc::new(plan);
            let start = Instant::now() - Duration::from_micros(elapsed_us);
            self.run = Some(Arc::new(Run::starting_at(start, self.plan.clone(), Default::default(), None)));
        }
        let plan = self.plan.clone();
        let run = self.run.clone().expect("made above");
        let local: u64 = partitions.iter().map(|&p| plan.users_of_worker(p as usize).count() as u64).sum();
        let users: u64 = self.partition_of.iter().map(|&p| plan.users_of_worker(p).count() as u64).sum();
        plan.check_sockets(users + local).map_err(|e| format!("{e:#}"))?;
        for &p in partitions {
            let partition = p as usize;
            if partition >= plan.partition_count() {
                return Err(format!("partition {partition} of {}", plan.partition_count()));
            }
            let index = self.partition_of.len();
            let core = plan.workers.get(index).copied().flatten();
            let (spare_tx, spare_rx) = crossbeam_channel::bounded(4);
            let thread = Thread { index, partition, core };
            let handle = engine::start_thread(run.clone(), thread, self.snapshots.0.clone(), spare_rx)
                .map_err(|e| format!("{e:#}"))?;
            self.partition_of.push(partition);
            self.spares.push(spare_tx);
            self.threads.push(handle);
        }
        notice(
            Level::Info,
            &format!(
                "swarmer worker: running partition(s) {partitions:?} of {} ({local} users)",
                plan.partition_count()
            ),
        );
        Ok(())
    }

    /// Sends every snapshot the threads have made, as its partition's.
    /// A snapshot that cannot be sent means the master is gone: the error says so, and the
    /// worker stops its load (the master counts what it had in flight as cancelled).
    fn forward(&mut self) -> Result<(), String> {
        while let Ok(mut snapshot) = self.snapshots.1.try_recv() {
            let index = snapshot.worker;
            snapshot.worker = self.partition_of[index];
            let message = Message::Stats(Box::new(snapshot));
            let sent = self.link.send(&message);
            let Message::Stats(mut snapshot) = message else { unreachable!("built above") };
            snapshot.worker = index;
            snapshot.reset();
            let _ = self.spares[index].try_send(*snapshot);
            sent.map_err(|e| format!("cannot send to the master ({e})"))?;
        }
        Ok(())
    }

    /// Ends the worker: on a lost master, stops the load at once; waits for the threads, sends
    /// what they measured last, says done.
    fn finish(mut self, lost: Option<String>) -> Ending {
        if let (Some(_), Some(run)) = (&lost, &self.run) {
            notice(Level::Warning, "swarmer worker: lost the master; stopping the load");
            run.stop.store(true, Ordering::Relaxed);
            run.abort.store(true, Ordering::Relaxed);
        }
        for handle in std::mem::take(&mut self.threads) {
            if let Ok(Err(err)) = handle.join() {
                notice(Level::Error, &format!("swarmer worker: {err:#}"));
            }
        }
        // The last snapshots; when they cannot go, the master is gone after all.
        let unsent = self.forward().err();
        match lost.or(unsent) {
            // A worker given no users (it joined when there were none to move) ends with the run.
            Some(_) if self.run.is_none() => {
                notice(Level::Info, "swarmer worker: the master ended the run before giving this worker users");
                Ending::Done
            }
            Some(reason) => Ending::Lost(format!("the master at {}: {reason}", self.peer)),
            None => {
                let _ = self.link.send(&Message::Done);
                Ending::Done
            }
        }
    }
}

/// The process's CPU time (user + system) per wall second since the last reading.
struct CpuClock {
    last: (Instant, Duration),
}

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock { last: (Instant::now(), process_cpu()) }
    }

    fn permille(&mut self) -> u64 {
        let now = (Instant::now(), process_cpu());
        let wall = now.0.duration_since(self.last.0).as_secs_f64();
        let cpu = now.1.saturating_sub(self.last.1).as_secs_f64();
        self.last = now;
        if wall <= 0.0 {
            0
        } else {
            (cpu / wall * 1000.0).round() as u64
        }
    }
}

fn process_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Reads a master's bundle's flags as this worker's: the master's run flags, this worker's
/// threads, cores and log. Its plan's outputs are then replaced whole (`cluster::compile`).
pub fn worker_args(bundle: &Bundle, own: &crate::cli::RunArgs) -> Result<crate::cli::RunArgs> {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from(&bundle.argv).map_err(|e| anyhow!("the master's flags: {e}"))?;
    let mut args = cli.run;
    args.threads = own.threads;
    args.cpus = own.cpus.clone();
    args.io = own.io;
    args.no_defer_taskrun = own.no_defer_taskrun;
    args.no_ring = own.no_ring;
    args.dist = own.dist.clone();
    // Served by the master (not part of a plan's outputs).
    args.metrics_port = None;
    args.logfile = own.logfile.clone();
    args.loglevel = own.loglevel;
    args.seed = Some(bundle.seed);
    Ok(args)
}
