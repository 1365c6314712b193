//! The reporter thread: merges worker snapshots into per-interval and whole-run statistics and
//! writes them out — Locust's console tables every `print_every`, the CSV files every tick, and
//! a final summary and CSV rewrite once the workers are done.
//!
//! Intervals are exact: snapshot `seq` k of every worker covers [start + k·tick, start +
//! (k+1)·tick), and interval k is processed only once every worker has sent it (or finished).

mod console;
mod csv;
mod format;
mod thresholds;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::Plan;
use crate::failure::FailureKind;
use crate::stats::{add_abort, AbortCount, Arrivals, EndpointStats, Snapshot};

pub use format::{utc_timestamp, PERCENTILES, PERCENTILE_TITLES};

/// Intervals behind the "current" rates and window percentiles (Locust: 10 s).
pub const WINDOW_TICKS: usize = 10;

/// One endpoint's row: its label and its numbers.
pub struct Row<'a> {
    pub method: &'a str,
    pub name: &'a str,
    pub stats: &'a EndpointStats,
}

/// Endpoint rows sorted by (name, method) as Locust does, plus the Aggregated row.
pub struct Table<'a> {
    pub rows: Vec<Row<'a>>,
    pub aggregated: EndpointStats,
}

impl<'a> Table<'a> {
    fn new(plan: &'a Plan, endpoints: &'a [EndpointStats], include_empty: bool) -> Table<'a> {
        let mut aggregated = EndpointStats::new(plan.histogram_max_us());
        let mut rows = Vec::new();
        for (endpoint, stats) in plan.endpoints.iter().zip(endpoints) {
            aggregated.merge(stats);
            if include_empty || stats.count > 0 {
                rows.push(Row { method: &endpoint.method, name: &endpoint.name, stats });
            }
        }
        rows.sort_by(|a, b| (a.name, a.method).cmp(&(b.name, b.method)));
        aggregated.errors.clear();
        Table { rows, aggregated }
    }

    /// (method, name, stats) of every row, then ("", "Aggregated", …).
    pub fn all_rows(&self) -> impl Iterator<Item = (&str, &str, &EndpointStats)> {
        let rows = self.rows.iter().map(|r| (r.method, r.name, r.stats));
        rows.chain([("", "Aggregated", &self.aggregated)])
    }
}

/// Whole-run results as every report reads them: the endpoints' stats (in plan order) and the
/// table sorted from them, aborted tasks, the open model's arrivals, and the seconds they cover.
pub struct Results<'a> {
    pub plan: &'a Plan,
    pub endpoints: &'a [EndpointStats],
    pub totals: Table<'a>,
    pub aborts: &'a [AbortCount],
    pub arrivals: &'a Arrivals,
    pub elapsed_secs: f64,
}

impl<'a> Results<'a> {
    fn new(
        plan: &'a Plan,
        endpoints: &'a [EndpointStats],
        aborts: &'a [AbortCount],
        arrivals: &'a Arrivals,
        elapsed_secs: f64,
    ) -> Results<'a> {
        Results { plan, endpoints, totals: Table::new(plan, endpoints, false), aborts, arrivals, elapsed_secs }
    }
}

/// Whole-run numbers handed back to the caller (exit code, tests).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub requests: u64,
    pub failures: u64,
    pub cancelled: u64,
    /// Failures that were connection errors (nothing could connect when this equals requests).
    pub connect_failures: u64,
    pub elapsed: Duration,
    /// Whole-run stats per endpoint, in plan order.
    pub endpoints: Vec<EndpointStats>,
    /// Tasks ended early (Locust's exceptions), by place and reason.
    pub aborts: Vec<AbortCount>,
    /// Thresholds lost (out of `plan.thresholds`).
    pub thresholds_lost: usize,
    /// Open model: starts due, late, dropped, and their lag.
    pub arrivals: Arrivals,
}

/// Interval k being assembled from the workers' snapshots.
struct Interval {
    endpoints: Vec<EndpointStats>,
    users: u64,
    /// A worker's last snapshot is in it: the run ended inside this interval.
    partial: bool,
    /// Seconds covered: one tick, or less for the interval the run ended in.
    secs: f64,
}

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
    arrivals: Arrivals,
    window: VecDeque<Interval>,
    users: u64,
    /// IO drivers the workers reported (normally one).
    drivers: Vec<&'static str>,
    csv: Option<csv::Files>,
    /// Set to stop the run early (`--abort-on-threshold`).
    stop: Arc<AtomicBool>,
    /// Where whole-run numbers start, in seconds from the start: 0, or the tick at which
    /// `--reset-stats` reset them.
    origin_secs: f64,
    reset_done: bool,
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
            arrivals: Arrivals::default(),
            window: VecDeque::with_capacity(WINDOW_TICKS + 1),
            users: 0,
            drivers: Vec::new(),
            csv,
            stop,
            origin_secs: 0.0,
            reset_done: false,
        })
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
        loop {
            match snapshots.recv_timeout(Duration::from_millis(100)) {
                Ok(snapshot) => {
                    let worker = snapshot.worker;
                    self.absorb(&snapshot);
                    // Hand the buffers back; if the worker has enough spares, drop them.
                    let _ = spares[worker].try_send(snapshot);
                    self.process_complete()?;
                    if self.finished.iter().all(|&f| f) {
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

    fn absorb(&mut self, snapshot: &Snapshot) {
        let max_us = self.plan.histogram_max_us();
        let endpoints = self.plan.endpoints.len();
        let interval = self.pending.entry(snapshot.seq).or_insert_with(|| Interval {
            endpoints: (0..endpoints).map(|_| EndpointStats::new(max_us)).collect(),
            users: 0,
            partial: false,
            secs: 0.0,
        });
        for (into, from) in interval.endpoints.iter_mut().zip(&snapshot.endpoints) {
            into.merge(from);
        }
        interval.users += snapshot.users;
        for abort in &snapshot.aborts {
            add_abort(&mut self.aborts, abort.path, &abort.reason, abort.count);
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
            self.process(seq, interval)?;
        }
        Ok(())
    }

    fn process(&mut self, seq: u64, mut interval: Interval) -> Result<()> {
        let tick = self.plan.tick.as_secs_f64();
        interval.secs = if interval.partial {
            (self.start.elapsed().as_secs_f64() - seq as f64 * tick).clamp(1e-3, tick)
        } else {
            tick
        };
        let partial = interval.partial;
        let end_secs = seq as f64 * tick + interval.secs;
        // --reset-stats: whole-run numbers start again with the first interval that begins
        // after the last user started (intervals are exact, so nothing is split).
        let last_start = self.plan.start_offset(self.plan.users.saturating_sub(1)).as_secs_f64();
        if self.plan.reset_stats && !self.reset_done && seq as f64 * tick >= last_start {
            self.reset_done = true;
            self.origin_secs = seq as f64 * tick;
            self.totals.iter_mut().for_each(EndpointStats::reset);
            self.aborts.clear();
            self.arrivals.reset();
            if !self.plan.output.only_summary {
                println!("All {} users started: statistics reset (--reset-stats)\n", self.plan.users);
            }
        }
        let whole_secs = end_secs - self.origin_secs;
        for (total, part) in self.totals.iter_mut().zip(&interval.endpoints) {
            total.merge(part);
        }
        self.users = interval.users;
        self.window.push_back(interval);
        if self.window.len() > WINDOW_TICKS {
            self.window.pop_front();
        }
        let window = self.window_stats();
        let window_secs: f64 = self.window.iter().map(|i| i.secs).sum();
        let timestamp = (self.start_unix + end_secs) as u64;
        let plan = self.plan.clone();
        let totals = Table::new(&plan, &self.totals, false);
        let current = Table::new(&plan, &window, false);
        if let Some(files) = &mut self.csv {
            files.write_history(timestamp, self.users, &totals, &current, window_secs)?;
            let results = Results::new(&plan, &self.totals, &self.aborts, &self.arrivals, whole_secs);
            files.write_snapshot(&results)?;
        }
        if plan.output.abort_on_threshold && !self.stop.load(Ordering::Relaxed) {
            if let Some(lost) = thresholds::lost_for_good(&plan, &self.totals) {
                let measured = lost.measured.map(|m| lost.threshold.show(m)).unwrap_or_default();
                println!(
                    "Threshold lost: {} (measured {measured}); stopping the run (--abort-on-threshold)\n",
                    lost.threshold
                );
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        let every = (plan.output.print_every.as_secs_f64() / tick).round().max(1.0) as u64;
        // The interval the run ended in is followed at once by the final table.
        if !plan.output.only_summary && !partial && (seq + 1).is_multiple_of(every) {
            console::print_requests(&totals, Some((&current, window_secs)));
        }
        Ok(())
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

    fn finish(mut self, elapsed: Duration) -> Result<Summary> {
        let plan = self.plan.clone();
        let secs = (elapsed.as_secs_f64() - self.origin_secs).max(1e-9);
        let results = Results::new(&plan, &self.totals, &self.aborts, &self.arrivals, secs);
        if let Some(files) = &mut self.csv {
            files.write_snapshot(&results)?;
            files.flush()?;
        }
        console::print_final(&results, &self.drivers.join(", "));
        let mut summary = Summary { elapsed, ..Summary::default() };
        if !plan.thresholds.is_empty() {
            let verdicts = thresholds::evaluate(&plan, &self.totals, secs);
            summary.thresholds_lost = verdicts.iter().filter(|v| !v.pass).count();
            console::emit(&thresholds::lines(&verdicts));
        }
        for stats in &self.totals {
            summary.requests += stats.count;
            summary.failures += stats.failures;
            summary.cancelled += stats.cancelled;
            summary.connect_failures +=
                stats.errors.iter().filter(|e| e.failure.kind() == FailureKind::Connect).map(|e| e.count).sum::<u64>();
        }
        summary.endpoints = self.totals;
        summary.aborts = self.aborts;
        summary.arrivals = self.arrivals;
        Ok(summary)
    }
}

/// Locust's `--show-task-ratio`: each user type's share of the users and each task's share of
/// its parent's picks (nested task sets included; "interrupt" is the share that returns).
pub fn task_ratios(plan: &Plan) -> String {
    use crate::config::{Task, TaskKind};
    use std::fmt::Write;
    fn tasks(out: &mut String, list: &[Task], extra_weight: Option<u32>, depth: usize) {
        let total = f64::from(list.iter().map(|t| t.weight).sum::<u32>() + extra_weight.unwrap_or(0));
        for (position, task) in list.iter().enumerate() {
            let indent = "   ".repeat(depth);
            // In a sequential set (no extra weight) tasks run in order, `repeat` times each.
            let share = match extra_weight {
                Some(_) => format!("{:.1}%, weight {}", 100.0 * f64::from(task.weight) / total, task.weight),
                None => format!("#{} in order, ×{}", position + 1, task.repeat),
            };
            let kind = match &task.kind {
                TaskKind::Steps(steps) if steps.len() > 1 => format!(", {} steps", steps.len()),
                TaskKind::Steps(_) => String::new(),
                TaskKind::Set { sequential: true, .. } => ", sequential task set".into(),
                TaskKind::Set { .. } => ", task set".into(),
            };
            let tags = if task.tags.is_empty() { String::new() } else { format!(", tags {}", task.tags.join(",")) };
            let _ = writeln!(out, "{indent} - {} ({share}{kind}{tags})", task.name);
            if let TaskKind::Set { tasks: subtasks, interrupt_weight, sequential, loops } = &task.kind {
                let extra = (!sequential).then_some(*interrupt_weight);
                tasks(out, subtasks, extra, depth + 1);
                if *sequential && *loops > 1 {
                    let _ = writeln!(out, "{indent}    (the sequence runs {loops} times, then returns)");
                }
                if !sequential {
                    let sub_total = f64::from(subtasks.iter().map(|t| t.weight).sum::<u32>() + interrupt_weight);
                    let share = 100.0 * f64::from(*interrupt_weight) / sub_total;
                    let _ = writeln!(out, "{}    - interrupt ({share:.1}%, weight {interrupt_weight})", indent);
                }
            }
        }
    }
    let mut out = String::from("Task ratio per user type:\n");
    let weighted: u32 = plan.user_types.iter().filter(|u| u.fixed_count.is_none()).map(|u| u.weight).sum();
    for user_type in &plan.user_types {
        let share = match user_type.fixed_count {
            Some(count) => format!("{count} fixed"),
            None => {
                format!("{:.1}% of the other users", 100.0 * f64::from(user_type.weight) / f64::from(weighted.max(1)))
            }
        };
        let _ = writeln!(out, " - {} ({share}, weight {})", user_type.name, user_type.weight);
        tasks(&mut out, &user_type.tasks, Some(0), 1);
    }
    out
}
