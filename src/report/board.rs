//! The board: the run as the web UI, the HTML report and the machine-readable outputs read it.
//! The reporter posts to it once per tick (whole-run rows, the window's rates, the second that
//! just ended as a point of the charts); readers take a copy under its lock. Rows use Locust's
//! field names (`/stats/requests`), times in milliseconds with microsecond decimals, and exact
//! percentiles from the merged HDR histograms.
//!
//! Memory is bounded: the charts keep the last `HISTORY_POINTS` seconds, the full-history CSV
//! the last `HISTORY_POINTS` rows per endpoint; the CSV files on disk hold the whole run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{csv, Results, Table};
use crate::config::Plan;
use crate::stats::{AbortCount, EndpointStats};

/// Seconds of chart history kept in memory (one hour).
pub const HISTORY_POINTS: usize = 3600;

/// The heat map's latency buckets: 5 per decade from 10 µs; bucket i holds latencies from
/// `heat_edge_us(i)` up to `heat_edge_us(i + 1)`, the last one everything above.
pub const HEAT_BUCKETS: usize = 36;

/// The lower edge of heat bucket `i`, in µs.
pub fn heat_edge_us(i: usize) -> f64 {
    10.0 * 10f64.powf(i as f64 / 5.0)
}

/// Where a run is, in Locust's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Ready,
    Spawning,
    Running,
    Stopping,
    Stopped,
}

/// One row of the statistics: Locust's `/stats/requests` fields, and swarmer's exact
/// percentiles and cancelled requests beside them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsRow {
    pub method: String,
    pub name: String,
    pub num_requests: u64,
    pub num_failures: u64,
    pub min_response_time: f64,
    pub max_response_time: f64,
    pub current_rps: f64,
    pub current_fail_per_sec: f64,
    pub avg_response_time: f64,
    pub median_response_time: f64,
    pub total_rps: f64,
    pub total_fail_per_sec: f64,
    #[serde(rename = "response_time_percentile_0.95")]
    pub p95: f64,
    #[serde(rename = "response_time_percentile_0.99")]
    pub p99: f64,
    pub avg_content_length: f64,
    /// 50 % … 100 % (Locust's CSV columns), exact.
    pub response_time_percentiles: Vec<(String, f64)>,
    pub num_cancelled: u64,
}

/// A failure cause: Locust's error fields.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorRow {
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen: u64,
    pub last_seen: u64,
}

/// An aborted (or skipped) task: Locust's exception fields.
#[derive(Clone, Debug, Serialize)]
pub struct ExceptionRow {
    pub count: u64,
    pub msg: String,
    pub traceback: String,
    pub nodes: String,
}

/// One second of the charts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Point {
    /// Unix seconds at the end of the second.
    pub time: u64,
    pub users: u64,
    pub rps: f64,
    pub fps: f64,
    /// Latency percentiles of this second alone, exact (ms; 0 with no requests).
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Requests of this second per latency bucket (`heat_edge_us`).
    pub heat: Vec<u32>,
    /// Open model: starts wanted and begun this second, and service-time percentiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenPoint>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct OpenPoint {
    pub target_rate: f64,
    pub started: f64,
    pub service_p50: f64,
    pub service_p99: f64,
}

/// What a run is, for the report's header.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Meta {
    pub version: &'static str,
    pub command_line: String,
    pub origin: String,
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub threads: usize,
    pub driver: String,
    pub users: u64,
    pub spawn_rate: f64,
    pub rate: Option<f64>,
    pub run_time_secs: Option<f64>,
    /// As text: a 64-bit seed does not survive JavaScript's numbers.
    #[serde(serialize_with = "as_text")]
    pub seed: u64,
    pub start_unix: u64,
    pub end_unix: Option<u64>,
}

/// A threshold's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub threshold: String,
    pub measured: String,
    pub pass: bool,
}

/// One worker of a distributed run, as the Workers tab shows it (Locust's columns, and ours).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub address: String,
    pub state: String,
    pub cores: usize,
    pub partitions: usize,
    pub user_count: u64,
    pub cpu_usage: f64,
    pub requests: u64,
    pub failures: u64,
}

/// Everything on the board at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct BoardState {
    pub state: RunState,
    pub user_count: u64,
    pub meta: Meta,
    /// Endpoints sorted as Locust sorts them, then `Aggregated`.
    pub stats: Vec<StatsRow>,
    pub errors: Vec<ErrorRow>,
    pub exceptions: Vec<ExceptionRow>,
    pub skipped: Vec<ExceptionRow>,
    pub history: VecDeque<Point>,
    /// The `--list` view of the user types and tasks.
    pub ratios: String,
    pub thresholds: Vec<Verdict>,
    /// The statistics were reset (at this many seconds into the run).
    pub reset_at: Option<f64>,
    /// A distributed run's workers (empty otherwise).
    pub workers: Vec<WorkerRow>,
    #[serde(skip)]
    pub csv: CsvTexts,
}

/// The CSV files' text as they stand (downloads from the web UI).
#[derive(Clone, Debug, Default)]
pub struct CsvTexts {
    pub stats: String,
    pub failures: String,
    pub exceptions: String,
    /// `_stats_history.csv`'s header and its newest rows (every endpoint's).
    pub history_header: String,
    pub history: VecDeque<String>,
}

/// The board, shared between the reporter (writes), the web server and the report (read).
pub struct Board {
    state: Mutex<BoardState>,
    version: AtomicU64,
    /// Counts the runs this board has shown (a new run starts the charts afresh).
    epoch: AtomicU64,
    /// Set by the web UI's reset button; the reporter resets at its next tick.
    pub reset_requested: AtomicBool,
}

impl Board {
    /// An empty board for `plan`, ready to start.
    pub fn new(plan: &Plan) -> Board {
        let state = BoardState {
            state: RunState::Ready,
            user_count: 0,
            meta: Meta::of(plan),
            stats: Vec::new(),
            errors: Vec::new(),
            exceptions: Vec::new(),
            skipped: Vec::new(),
            history: VecDeque::new(),
            ratios: super::task_ratios(plan),
            thresholds: Vec::new(),
            reset_at: None,
            workers: Vec::new(),
            csv: CsvTexts {
                history_header: csv_text(|out| Ok(out.write_record(csv::history_header())?)),
                ..CsvTexts::default()
            },
        };
        Board {
            state: Mutex::new(state),
            version: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            reset_requested: AtomicBool::new(false),
        }
    }

    /// A copy of what is on the board.
    pub fn read(&self) -> BoardState {
        self.lock().clone()
    }

    /// Changes at each update; the web server's event stream sends when it moves.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the board under its lock and announces it.
    pub fn change(&self, change: impl FnOnce(&mut BoardState)) {
        change(&mut self.lock());
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Which run the board shows (it moves when a new one starts).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A new run of `plan` is starting: the numbers of the last one are cleared.
    pub fn start(&self, plan: &Plan) {
        self.epoch.fetch_add(1, Ordering::Release);
        self.reset_requested.store(false, Ordering::Relaxed);
        self.change(|board| {
            *board = Board::new(plan).state.into_inner().unwrap_or_else(|e| e.into_inner());
            board.state = RunState::Spawning;
        });
    }

    pub fn set_state(&self, state: RunState) {
        self.change(|board| board.state = state);
    }

    /// The board as JSON for the live page, with the chart points newer than `since` (all when
    /// `None`), and the time of the newest point sent. Serialized under the lock, once per
    /// second per open page: no copy of the history is made.
    pub fn update_since(&self, since: Option<u64>) -> (String, Option<u64>) {
        let board = self.lock();
        let points: Vec<&Point> = board.history.iter().filter(|p| since.is_none_or(|t| p.time > t)).collect();
        let newest = board.history.back().map(|p| p.time).or(since);
        let update = Update {
            full: since.is_none(),
            points,
            state: board.state,
            user_count: board.user_count,
            meta: &board.meta,
            stats: &board.stats,
            errors: &board.errors,
            exceptions: &board.exceptions,
            skipped: &board.skipped,
            ratios: &board.ratios,
            thresholds: &board.thresholds,
            reset_at: board.reset_at,
            workers: &board.workers,
        };
        (serde_json::to_string(&update).unwrap_or_default(), newest)
    }
}

/// What the live page receives each second: the board, and only the chart points it has not
/// seen (`full`: all of them, after a reconnect).
#[derive(Serialize)]
struct Update<'a> {
    full: bool,
    points: Vec<&'a Point>,
    state: RunState,
    user_count: u64,
    meta: &'a Meta,
    stats: &'a [StatsRow],
    errors: &'a [ErrorRow],
    exceptions: &'a [ExceptionRow],
    skipped: &'a [ExceptionRow],
    ratios: &'a str,
    thresholds: &'a [Verdict],
    reset_at: Option<f64>,
    workers: &'a [WorkerRow],
}

impl Meta {
    fn of(plan: &Plan) -> Meta {
        let machine = super::machine::Machine::this();
        Meta {
            version: env!("CARGO_PKG_VERSION"),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            origin: plan.origin.clone(),
            hostname: machine.hostname,
            kernel: machine.kernel,
            cpu_model: machine.cpu_model,
            threads: plan.workers.len(),
            driver: String::new(),
            users: plan.users,
            spawn_rate: plan.spawn_rate,
            rate: plan.rate,
            run_time_secs: plan.run_time.map(|t| t.as_secs_f64()),
            seed: plan.seed,
            start_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            end_unix: None,
        }
    }
}

fn as_text<S: serde::Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_string())
}

/// Milliseconds from µs, for the rows.
fn ms(us: f64) -> f64 {
    (us / 1000.0 * 1000.0).round() / 1000.0
}

/// A statistics row from whole-run `stats` and the window's (`current` over `window_secs`).
pub fn stats_row(
    method: &str,
    name: &str,
    stats: &EndpointStats,
    current: Option<&EndpointStats>,
    window_secs: f64,
    whole_secs: f64,
) -> StatsRow {
    let (now_count, now_failures) = current.map_or((0, 0), |c| (c.count, c.failures));
    let quantile = |q: f64| ms(stats.quantile_us(q) as f64);
    let percentiles =
        super::PERCENTILES.iter().zip(super::PERCENTILE_TITLES).map(|(&q, t)| (t.to_string(), quantile(q)));
    StatsRow {
        method: method.to_string(),
        name: name.to_string(),
        num_requests: stats.count,
        num_failures: stats.failures,
        min_response_time: if stats.count == 0 { 0.0 } else { ms(stats.min_us as f64) },
        max_response_time: ms(stats.max_us as f64),
        current_rps: now_count as f64 / window_secs.max(1e-9),
        current_fail_per_sec: now_failures as f64 / window_secs.max(1e-9),
        avg_response_time: ms(stats.mean_us()),
        median_response_time: quantile(0.5),
        total_rps: stats.count as f64 / whole_secs.max(1e-9),
        total_fail_per_sec: stats.failures as f64 / whole_secs.max(1e-9),
        p95: quantile(0.95),
        p99: quantile(0.99),
        avg_content_length: if stats.count == 0 { 0.0 } else { stats.bytes as f64 / stats.count as f64 },
        response_time_percentiles: percentiles.collect(),
        num_cancelled: stats.cancelled,
    }
}

/// The statistics rows of a whole-run table (`current`: the window's, over `window_secs`).
pub fn stats_rows(totals: &Table, current: Option<(&Table, f64)>, whole_secs: f64) -> Vec<StatsRow> {
    let (window, window_secs) = current.map_or((None, 1.0), |(t, s)| (Some(t), s));
    let find = |method: &str, name: &str| {
        window.and_then(|w| w.rows.iter().find(|r| r.method == method && r.name == name)).map(|r| r.stats)
    };
    let mut rows: Vec<StatsRow> = totals
        .rows
        .iter()
        .map(|r| stats_row(r.method, r.name, r.stats, find(r.method, r.name), window_secs, whole_secs))
        .collect();
    let aggregated = window.map(|w| &w.aggregated);
    rows.push(stats_row("", "Aggregated", &totals.aggregated, aggregated, window_secs, whole_secs));
    rows
}

/// The failure rows of whole-run `endpoints`.
pub fn error_rows(plan: &Plan, endpoints: &[EndpointStats]) -> Vec<ErrorRow> {
    let mut rows = Vec::new();
    for (endpoint, stats) in plan.endpoints.iter().zip(endpoints) {
        for error in &stats.errors {
            rows.push(ErrorRow {
                method: endpoint.method.clone(),
                name: endpoint.name.clone(),
                error: error.failure.to_string(),
                occurrences: error.count,
                first_seen: error.first_seen,
                last_seen: error.last_seen,
            });
        }
    }
    rows.sort_by(|a, b| b.occurrences.cmp(&a.occurrences).then_with(|| a.name.cmp(&b.name)));
    rows
}

/// Aborted or skipped tasks as Locust's exception rows.
pub fn exception_rows(counts: &[AbortCount], prefix: &str) -> Vec<ExceptionRow> {
    let mut rows: Vec<ExceptionRow> = counts
        .iter()
        .map(|a| ExceptionRow {
            count: a.count,
            msg: format!("{prefix}{}", a.reason),
            traceback: a.path.to_string(),
            nodes: "local".into(),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.count));
    rows
}

/// One second of the charts from the interval's merged stats (`aggregated`).
pub fn point(time: u64, users: u64, aggregated: &EndpointStats, secs: f64) -> Point {
    let quantile = |q: f64| if aggregated.count == 0 { 0.0 } else { ms(aggregated.quantile_us(q) as f64) };
    Point {
        time,
        users,
        rps: aggregated.count as f64 / secs.max(1e-3),
        fps: aggregated.failures as f64 / secs.max(1e-3),
        p50: quantile(0.5),
        p95: quantile(0.95),
        p99: quantile(0.99),
        heat: heat_column(&aggregated.hist),
        open: None,
    }
}

/// Requests per heat bucket of one histogram (log scale, `heat_edge_us`).
pub fn heat_column(hist: &Histogram<u64>) -> Vec<u32> {
    let mut column = vec![0u32; HEAT_BUCKETS];
    for value in hist.iter_recorded() {
        let us = value.value_iterated_to() as f64;
        let index = ((us / 10.0).max(1.0).log10() * 5.0).floor() as usize;
        let bucket = &mut column[index.min(HEAT_BUCKETS - 1)];
        *bucket = bucket.saturating_add(value.count_since_last_iteration() as u32);
    }
    column
}

impl BoardState {
    /// Takes in a tick: the whole-run `results`, the window (`current` over `window_secs`), the
    /// second that ended as `point`, and the CSV history rows written for it.
    pub fn tick(&mut self, results: &Results, current: (&Table, f64), point: Option<Point>, history_rows: Vec<String>) {
        self.user_count = results.users.last;
        // Spawning until every user has started (or the run has no ramp to wait for).
        let plan = results.plan;
        let last_start = plan.start_offset(plan.users.saturating_sub(1)).as_secs_f64();
        let ramped = plan.rate.is_some() || plan.shape.is_some() || results.run_secs >= last_start;
        if self.state == RunState::Spawning && ramped {
            self.state = RunState::Running;
        }
        self.stats = stats_rows(&results.totals, Some(current), results.elapsed_secs);
        self.errors = error_rows(results.plan, results.endpoints);
        self.exceptions = exception_rows(results.aborts, "task aborted: ");
        self.skipped = exception_rows(results.skips, "task skipped: ");
        self.reset_at = results.reset_at;
        self.meta.driver = results.drivers.clone();
        if let Some(point) = point {
            self.history.push_back(point);
        }
        while self.history.len() > HISTORY_POINTS {
            self.history.pop_front();
        }
        let per_tick = history_rows.len().max(1);
        self.csv.history.extend(history_rows);
        while self.csv.history.len() > HISTORY_POINTS * per_tick {
            self.csv.history.pop_front();
        }
        self.csv.stats = csv_text(|out| csv::write_stats(out, &results.totals, results.elapsed_secs));
        self.csv.failures = csv_text(|out| csv::write_failures(out, results.plan, results.endpoints));
        self.csv.exceptions = csv_text(|out| csv::write_exceptions(out, results.aborts));
    }

    /// The run is over: final rows (whole-run rates), thresholds, the end.
    pub fn finish(&mut self, results: &Results, verdicts: &[super::thresholds::Verdict]) {
        self.stats = stats_rows(&results.totals, None, results.elapsed_secs);
        self.errors = error_rows(results.plan, results.endpoints);
        self.exceptions = exception_rows(results.aborts, "task aborted: ");
        self.skipped = exception_rows(results.skips, "task skipped: ");
        self.user_count = results.users.last;
        self.reset_at = results.reset_at;
        self.meta.driver = results.drivers.clone();
        self.meta.end_unix = Some(self.meta.start_unix + results.run_secs.round() as u64);
        self.thresholds = verdicts
            .iter()
            .map(|v| Verdict {
                threshold: v.threshold.text.clone(),
                measured: v.measured.map_or("no requests".into(), |m| v.threshold.show(m)),
                pass: v.pass,
            })
            .collect();
        self.csv.stats = csv_text(|out| csv::write_stats(out, &results.totals, results.elapsed_secs));
        self.csv.failures = csv_text(|out| csv::write_failures(out, results.plan, results.endpoints));
        self.csv.exceptions = csv_text(|out| csv::write_exceptions(out, results.aborts));
        self.state = RunState::Stopped;
    }

    /// The full-history CSV: the header and the rows kept.
    pub fn history_csv(&self) -> String {
        let mut text = self.csv.history_header.clone();
        for row in &self.csv.history {
            text.push_str(row);
        }
        text
    }
}

/// What a CSV writer writes, as text.
pub fn csv_text(write: impl FnOnce(&mut ::csv::Writer<&mut Vec<u8>>) -> anyhow::Result<()>) -> String {
    let mut bytes = Vec::new();
    {
        let mut out = csv::writer(&mut bytes);
        let _ = write(&mut out);
        let _ = out.flush();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
