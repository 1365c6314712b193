//! The reporter thread: merges worker snapshots into per-interval and whole-run statistics and
//! writes them out — Locust's console tables every `print_every`, the CSV files every tick, and
//! a final summary and CSV rewrite once the workers are done.
//!
//! Intervals are exact: snapshot `seq` k of every worker covers [start + k·tick, start +
//! (k+1)·tick), and interval k is processed only once every worker has sent it (or finished).

pub mod board;
pub mod compare;
mod console;
mod csv;
mod format;
mod hdrlog;
mod html;
pub mod json;
mod machine;
pub mod metrics;
mod ratios;
mod results;
mod status;
mod thresholds;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::Plan;
use crate::failure::{Failure, FailureKind};
use crate::log::Level;
use crate::stats::{add_abort, AbortCount, Arrivals, EndpointStats, Snapshot};

pub use console::notice;
pub use format::{utc_timestamp, PERCENTILES, PERCENTILE_TITLES};
pub use html::{render as html_report, SCRIPT as UI_SCRIPT};
pub use ratios::task_ratios;
pub use results::{Results, Row, Summary, Table, UsersSeen};
pub use status::{banner, nothing_completed};

/// Intervals behind the "current" rates and window percentiles (Locust: 10 s).
pub const WINDOW_TICKS: usize = 10;

/// Interval k being assembled from the workers' snapshots.
struct Interval {
    endpoints: Vec<EndpointStats>,
    users: u64,
    /// The most users at once during the interval (summed over workers: an upper bound).
    peak_users: u64,
    /// Open model: starts due, late and dropped in the interval.
    arrivals: [u64; 3],
    /// A worker's last snapshot is in it: the run ended inside this interval.
    partial: bool,
    /// Seconds covered: one tick, or less for the interval the run ended in.
    secs: f64,
}

/// A sender that joins a distributed run: sender `worker` starts with its snapshot of tick
/// `first_seq`, and intervals from there on wait for it. (One that leaves ends with a last
/// snapshot, its own or the master's for it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Joined {
    pub worker: usize,
    pub first_seq: u64,
}

/// New kinds of error printed as they first happen, at most this many (the rest are in the
/// final error report).
const MAX_ANNOUNCED_ERRORS: usize = 20;

pub struct Reporter {
    plan: Arc<Plan>,
    start: Instant,
    start_unix: f64,
    workers: usize,
    /// Per worker: the next seq expected, and whether its last snapshot came.
    next_seq: Vec<u64>,
    finished: Vec<bool>,
    pending: BTreeMap<u64, Interval>,
    totals: Vec<EndpointStats>,
    aborts: Vec<AbortCount>,
    skips: Vec<AbortCount>,
    arrivals: Arrivals,
    window: VecDeque<Interval>,
    users: UsersSeen,
    /// IO drivers the workers reported (normally one).
    drivers: Vec<&'static str>,
    csv: Option<csv::Files>,
    /// Set to stop the run early (`--abort-on-threshold`).
    stop: Arc<AtomicBool>,
    /// Where whole-run numbers start, in seconds from the start: 0, or the tick at which
    /// `--reset-stats` reset them.
    origin_secs: f64,
    reset_done: bool,
    /// The closed model's ramp was announced as complete.
    all_started: bool,
    /// (endpoint, failure) pairs already announced.
    errors_seen: HashSet<(usize, Failure)>,
    /// The Timestamp of the last `_stats_history.csv` row.
    last_history: Option<u64>,
    /// The board the web UI and the HTML report read, when there is one.
    board: Option<Arc<board::Board>>,
    /// `--hdr-log`.
    hdr_log: Option<hdrlog::HdrLog>,
    /// `--json`: per-second counts for Locust's JSON.
    per_second: Option<json::PerSecond>,
    /// `--metrics-port`, the web UI's `/metrics`.
    metrics: Option<Arc<metrics::Metrics>>,
    /// Distributed runs: senders come and go; the run ends when `engine_done` says so.
    membership: Option<Receiver<Joined>>,
    /// Intervals before this one have been processed.
    next_interval: u64,
}

impl Reporter {
    pub fn new(plan: Arc<Plan>, start: Instant, start_unix: f64, stop: Arc<AtomicBool>) -> Result<Reporter> {
        let workers = plan.workers.len();
        let max_us = plan.histogram_max_us();
        let totals = (0..plan.endpoints.len()).map(|_| EndpointStats::new(max_us)).collect();
        let csv = match &plan.output.csv_prefix {
            Some(prefix) => Some(csv::Files::create(prefix, plan.output.csv_full_history, start_unix as u64)?),
            None => None,
        };
        // The HTML report is drawn from a board, with or without the web UI.
        let board = plan.output.html.is_some().then(|| Arc::new(board::Board::new(&plan)));
        let hdr_log = match &plan.output.hdr_log {
            Some(path) => Some(hdrlog::HdrLog::create(path, &plan, start_unix)?),
            None => None,
        };
        let per_second = plan.output.json_stdout.then(|| json::PerSecond::new(plan.endpoints.len()));
        // With --json, standard output carries the JSON alone.
        console::tables_to_stderr(plan.output.json_stdout);
        Ok(Reporter {
            plan,
            start,
            start_unix,
            workers,
            next_seq: vec![0; workers],
            finished: vec![false; workers],
            pending: BTreeMap::new(),
            totals,
            aborts: Vec::new(),
            skips: Vec::new(),
            arrivals: Arrivals::default(),
            window: VecDeque::with_capacity(WINDOW_TICKS + 1),
            users: UsersSeen::default(),
            drivers: Vec::new(),
            csv,
            stop,
            origin_secs: 0.0,
            reset_done: false,
            all_started: false,
            errors_seen: HashSet::new(),
            last_history: None,
            board,
            hdr_log,
            per_second,
            metrics: None,
            membership: None,
            next_interval: 0,
        })
    }

    /// Posts every tick to `board` (the web UI, the HTML report).
    pub fn with_board(mut self, board: Arc<board::Board>) -> Reporter {
        self.board = Some(board);
        self
    }

    /// Adds every tick to `metrics` (`--metrics-port`, the web UI's `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<metrics::Metrics>) -> Reporter {
        self.metrics = Some(metrics);
        self
    }

    /// Takes its senders from `membership` (a distributed master): none to begin with.
    pub fn with_membership(mut self, membership: Receiver<Joined>) -> Reporter {
        self.workers = 0;
        self.next_seq.clear();
        self.finished.clear();
        self.membership = Some(membership);
        self
    }

    fn change_membership(&mut self) {
        while let Some(change) = self.membership.as_ref().and_then(|m| m.try_recv().ok()) {
            let Joined { worker, first_seq } = change;
            self.ensure_sender(worker, first_seq);
            self.next_seq[worker] = first_seq.max(self.next_interval);
            self.finished[worker] = false;
        }
    }

    fn ensure_sender(&mut self, worker: usize, first_seq: u64) {
        while self.workers <= worker {
            self.next_seq.push(first_seq);
            self.finished.push(false);
            self.workers += 1;
        }
    }

    /// Runs until every worker has sent its last snapshot (or all senders are gone); then
    /// prints the final report and rewrites the CSV files one last time.
    /// `engine_done` is set once every worker thread has ended: what is queued then is all
    /// there will be, even if a worker died without its last snapshot.
    pub fn run(
        mut self,
        snapshots: Receiver<Snapshot>,
        spares: Vec<Sender<Snapshot>>,
        engine_done: &AtomicBool,
    ) -> Result<Summary> {
        let dynamic = self.membership.is_some();
        loop {
            self.change_membership();
            match snapshots.recv_timeout(Duration::from_millis(100)) {
                Ok(mut snapshot) => {
                    // A sender's Join is sent before its first snapshot: take it first.
                    self.change_membership();
                    let worker = snapshot.worker;
                    self.absorb(&mut snapshot);
                    // Hand the buffers back; if the worker has enough spares, drop them.
                    if let Some(spare) = spares.get(worker) {
                        let _ = spare.try_send(snapshot);
                    }
                    self.process_complete()?;
                    if !dynamic && self.finished.iter().all(|&f| f) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) if dynamic => {
                    self.process_complete()?;
                    if engine_done.load(Ordering::Acquire) && snapshots.is_empty() {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) if engine_done.load(Ordering::Acquire) && snapshots.is_empty() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let elapsed = self.start.elapsed();
        // Workers that died without a last snapshot must not hold intervals back.
        self.finished.iter_mut().for_each(|f| *f = true);
        self.process_complete()?;
        self.finish(elapsed)
    }

    fn absorb(&mut self, snapshot: &mut Snapshot) {
        self.ensure_sender(snapshot.worker, snapshot.seq);
        // A snapshot of an interval already written (a distributed worker that fell behind)
        // joins the next one: late in the history, never dropped.
        snapshot.seq = snapshot.seq.max(self.next_interval);
        let max_us = self.plan.histogram_max_us();
        let endpoints = self.plan.endpoints.len();
        let interval = self.pending.entry(snapshot.seq).or_insert_with(|| Interval {
            endpoints: (0..endpoints).map(|_| EndpointStats::new(max_us)).collect(),
            users: 0,
            peak_users: 0,
            arrivals: [0; 3],
            partial: false,
            secs: 0.0,
        });
        for (into, from) in interval.endpoints.iter_mut().zip(&snapshot.endpoints) {
            into.merge(from);
        }
        interval.users += snapshot.users;
        interval.peak_users += snapshot.peak_users;
        let a = &snapshot.arrivals;
        for (total, add) in interval.arrivals.iter_mut().zip([a.scheduled, a.late, a.dropped]) {
            *total += add;
        }
        for abort in &snapshot.aborts {
            add_abort(&mut self.aborts, abort.path, &abort.reason, abort.count);
        }
        for skip in &snapshot.skips {
            add_abort(&mut self.skips, skip.path, &skip.reason, skip.count);
        }
        self.arrivals.merge(&snapshot.arrivals);
        if !snapshot.driver.is_empty() && !self.drivers.contains(&snapshot.driver) {
            self.drivers.push(snapshot.driver);
        }
        interval.partial |= snapshot.last;
        self.next_seq[snapshot.worker] = snapshot.seq + 1;
        self.finished[snapshot.worker] |= snapshot.last;
    }

    fn is_complete(&self, seq: u64) -> bool {
        (0..self.workers).all(|w| self.finished[w] || self.next_seq[w] > seq)
    }

    fn process_complete(&mut self) -> Result<()> {
        while let Some((&seq, _)) = self.pending.first_key_value() {
            if !self.is_complete(seq) {
                break;
            }
            let interval = self.pending.remove(&seq).expect("first key exists");
            self.next_interval = seq + 1;
            self.process(seq, interval)?;
        }
        Ok(())
    }

    /// Takes interval `seq` into the whole-run numbers and the window, and writes what is due:
    /// messages, CSV files, the board, the periodic table.
    fn process(&mut self, seq: u64, mut interval: Interval) -> Result<()> {
        let tick = self.plan.tick.as_secs_f64();
        let begin_secs = seq as f64 * tick;
        interval.secs = match interval.partial {
            true => (self.start.elapsed().as_secs_f64() - begin_secs).clamp(1e-3, tick),
            false => tick,
        };
        let partial = interval.partial;
        let end_secs = begin_secs + interval.secs;
        self.announce(begin_secs, end_secs, &interval);
        let all = Table::new(&self.plan, &interval.endpoints, false).aggregated;
        if let Some(log) = &mut self.hdr_log {
            log.write(begin_secs, interval.secs, &interval.endpoints, &all)?;
        }
        if let Some(per_second) = &mut self.per_second {
            per_second.add(self.start_unix + begin_secs, self.start_unix + end_secs, &interval.endpoints);
        }
        for (total, part) in self.totals.iter_mut().zip(&interval.endpoints) {
            total.merge(part);
        }
        // The interval the run ended in counts users that were already stopping.
        if !partial || self.users.peak == 0 {
            self.users.last = interval.users;
        }
        self.users.peak = self.users.peak.max(interval.users).max(interval.peak_users);
        // A run's last second may be a sliver: the charts leave it out (the tables have it).
        let charted = !partial || interval.secs >= 0.5 * tick;
        let point = (self.board.is_some() && charted).then(|| self.point(&interval, &all, end_secs));
        self.window.push_back(interval);
        if self.window.len() > WINDOW_TICKS {
            self.window.pop_front();
        }
        self.write_out(seq, partial, end_secs, point)?;
        self.check_thresholds();
        Ok(())
    }

    /// The CSV files, the board and (when due) the periodic table, after the interval that
    /// ended `end_secs` into the run.
    fn write_out(&mut self, seq: u64, partial: bool, end_secs: f64, point: Option<board::Point>) -> Result<()> {
        let window = self.window_stats();
        let window_secs: f64 = self.window.iter().map(|i| i.secs).sum();
        let plan = self.plan.clone();
        let mut csv = self.csv.take();
        let results = self.results(&plan, end_secs);
        let current = Table::new(&plan, &window, false);
        let timestamp = (self.start_unix + end_secs) as u64;
        let records = csv::history_records(timestamp, self.users.last, &results.totals, &current, window_secs);
        if let Some(files) = &mut csv {
            // The run's last, partial second can end within the same whole second as the one
            // before it: one row per Timestamp (the files written at the end have its numbers).
            if self.last_history != Some(timestamp) {
                files.write_history(&records)?;
            }
            files.write_snapshot(&results)?;
        }
        if let Some(board) = &self.board {
            let lines = records.iter().map(|r| board::csv_text(|out| Ok(out.write_record(r)?))).collect();
            board.change(|b| b.tick(&results, (&current, window_secs), point, lines));
        }
        if let Some(metrics) = &self.metrics {
            let interval = self.window.back().expect("the interval was just pushed");
            metrics.add(&metrics::Tick {
                plan: &plan,
                interval: &interval.endpoints,
                window: &window,
                window_secs,
                users: self.users.last,
                starts: interval.arrivals,
                target_rate: self.target_rate(end_secs - interval.secs / 2.0),
            });
        }
        let every = (plan.output.print_every.as_secs_f64() / plan.tick.as_secs_f64()).round().max(1.0) as u64;
        // The interval the run ended in is followed at once by the final table.
        if !plan.output.only_summary && !partial && (seq + 1).is_multiple_of(every) {
            let users = status::users_line(&plan, self.users.last, end_secs);
            console::print_requests(users, &results.totals, Some((&current, window_secs)));
        }
        drop(results);
        self.csv = csv;
        self.last_history = Some(timestamp);
        Ok(())
    }

    /// The second that ended `end_secs` into the run, as a point of the charts.
    fn point(&self, interval: &Interval, merged: &EndpointStats, end_secs: f64) -> board::Point {
        let time = (self.start_unix + end_secs) as u64;
        let mut point = board::point(time, interval.users, merged, interval.secs);
        if let Some(target_rate) = self.target_rate(end_secs - interval.secs / 2.0) {
            let service = |q: f64| merged.service_quantile_us(q) as f64 / 1000.0;
            point.open = Some(board::OpenPoint {
                target_rate,
                started: ((interval.arrivals[0] - interval.arrivals[2]) as f64) / interval.secs.max(1e-3),
                service_p50: service(0.5),
                service_p99: service(0.99),
            });
        }
        point
    }

    /// Open model: the start rate wanted `secs` into the run (the shape's level, or `--rate`).
    fn target_rate(&self, secs: f64) -> Option<f64> {
        let rate = self.plan.rate?;
        let run_time = self.plan.run_time.unwrap_or(std::time::Duration::from_secs(3600));
        Some(self.plan.shape.as_ref().map_or(rate, |s| s.level_at(secs, run_time, rate)))
    }

    /// What interval [`begin_secs`, `end_secs`) brings that is worth saying as it happens: the
    /// ramp complete (and, with `--reset-stats`, the statistics reset), new kinds of error.
    fn announce(&mut self, begin_secs: f64, end_secs: f64, interval: &Interval) {
        let plan = self.plan.clone();
        let ramped = plan.rate.is_none() && plan.shape.is_none();
        let last_start = plan.start_offset(plan.users.saturating_sub(1)).as_secs_f64();
        if ramped && !self.all_started && last_start < end_secs {
            self.all_started = true;
            console::notice(Level::Info, &status::all_started(&plan, last_start));
        }
        // The web UI's reset: the whole-run numbers start again with this interval.
        if self.board.as_ref().is_some_and(|b| b.reset_requested.swap(false, Ordering::Relaxed)) {
            self.reset_totals(begin_secs);
        }
        // --reset-stats: whole-run numbers start again with the first interval that begins
        // after the last user started (intervals are exact, so nothing is split).
        if plan.reset_stats && !self.reset_done && begin_secs >= last_start {
            self.reset_totals(begin_secs);
            console::notice(
                Level::Info,
                &format!("Statistics reset at {begin_secs:.1}s, every user having started (--reset-stats)"),
            );
        }
        for (endpoint, stats) in interval.endpoints.iter().enumerate() {
            for error in &stats.errors {
                if self.errors_seen.len() <= MAX_ANNOUNCED_ERRORS && self.errors_seen.insert((endpoint, error.failure))
                {
                    let line = match self.errors_seen.len() > MAX_ANNOUNCED_ERRORS {
                        true => "more kinds of error follow in the final error report".to_string(),
                        false => status::first_error(&plan, endpoint, error.failure, end_secs),
                    };
                    console::notice(Level::Warning, &line);
                }
            }
        }
    }

    /// The whole-run numbers start again with the interval that begins at `begin_secs`.
    fn reset_totals(&mut self, begin_secs: f64) {
        self.reset_done = true;
        self.origin_secs = begin_secs;
        self.totals.iter_mut().for_each(EndpointStats::reset);
        self.aborts.clear();
        self.skips.clear();
        self.arrivals.reset();
        if let Some(per_second) = &mut self.per_second {
            per_second.reset();
        }
    }

    /// `--abort-on-threshold`: stops the run once a threshold that can only get worse is lost.
    fn check_thresholds(&mut self) {
        if !self.plan.output.abort_on_threshold || self.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(lost) = thresholds::lost_for_good(&self.plan, &self.totals) {
            let measured = lost.measured.map(|m| lost.threshold.show(m)).unwrap_or_default();
            console::notice(
                Level::Warning,
                &format!(
                    "Threshold lost: {} (measured {measured}); stopping the run (--abort-on-threshold)",
                    lost.threshold
                ),
            );
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// The whole-run results up to `run_secs` seconds into the run.
    fn results<'a>(&'a self, plan: &'a Plan, run_secs: f64) -> Results<'a> {
        Results {
            plan,
            endpoints: &self.totals,
            totals: Table::new(plan, &self.totals, false),
            aborts: &self.aborts,
            skips: &self.skips,
            arrivals: &self.arrivals,
            elapsed_secs: (run_secs - self.origin_secs).max(1e-9),
            run_secs,
            reset_at: self.reset_done.then_some(self.origin_secs),
            users: self.users,
            drivers: self.drivers.join(", "),
        }
    }

    /// Per-endpoint stats over the window (the last `WINDOW_TICKS` intervals).
    fn window_stats(&self) -> Vec<EndpointStats> {
        let max_us = self.plan.histogram_max_us();
        let mut merged: Vec<EndpointStats> =
            (0..self.plan.endpoints.len()).map(|_| EndpointStats::new(max_us)).collect();
        for interval in &self.window {
            for (into, from) in merged.iter_mut().zip(&interval.endpoints) {
                into.merge(from);
            }
        }
        merged
    }

    /// What the run leaves besides the console and the CSV files: the board's last state and
    /// the HTML report, the JSON summary, Locust's JSON on stdout, thresholds lost in the log.
    fn write_final(&self, results: &Results, verdicts: &[thresholds::Verdict], elapsed: Duration) -> Result<()> {
        let plan = results.plan;
        for lost in verdicts.iter().filter(|v| !v.pass) {
            let measured = lost.measured.map_or("nothing".into(), |m| lost.threshold.show(m));
            console::log_only(Level::Warning, &format!("threshold lost: {} (measured {measured})", lost.threshold));
        }
        if let Some(board) = &self.board {
            board.change(|b| b.finish(results, verdicts));
            if let Some(path) = &plan.output.html {
                std::fs::write(path, html::render(&board.read()))
                    .with_context(|| format!("--html: cannot write {}", path.display()))?;
            }
        }
        if let Some(path) = &plan.output.json_file {
            let span = json::Span { start: self.start_unix, end: self.start_unix + elapsed.as_secs_f64() };
            json::write_summary(path, &json::summary(results, verdicts, span))?;
        }
        if let Some(per_second) = &self.per_second {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", json::locust(results, per_second)).context("--json: cannot write to stdout")?;
            out.flush().context("--json: cannot write to stdout")?;
        }
        Ok(())
    }

    fn finish(mut self, elapsed: Duration) -> Result<Summary> {
        let plan = self.plan.clone();
        let mut csv = self.csv.take();
        let results = self.results(&plan, elapsed.as_secs_f64());
        if let Some(files) = &mut csv {
            files.write_snapshot(&results)?;
            files.flush()?;
        }
        console::print_final(&results);
        let verdicts = thresholds::evaluate(&plan, &self.totals, results.elapsed_secs);
        if !verdicts.is_empty() {
            console::print_lines(thresholds::lines(&verdicts));
        }
        self.write_final(&results, &verdicts, elapsed)?;
        drop(results);
        let mut summary = Summary { elapsed, users: self.users, ..Summary::default() };
        summary.thresholds_lost = verdicts.iter().filter(|v| !v.pass).count();
        for stats in &self.totals {
            summary.requests += stats.count;
            summary.failures += stats.failures;
            summary.cancelled += stats.cancelled;
            summary.connect_failures +=
                stats.errors.iter().filter(|e| e.failure.kind() == FailureKind::Connect).map(|e| e.count).sum::<u64>();
        }
        summary.endpoints = self.totals;
        summary.aborts = self.aborts;
        summary.skips = self.skips;
        summary.arrivals = self.arrivals;
        Ok(summary)
    }
}
