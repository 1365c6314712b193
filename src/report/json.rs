//! JSON outputs. `--json`: the final statistics as Locust prints them (its `StatsEntry` fields,
//! milliseconds, per-second counts). `--json-file`: swarmer's whole-run summary, a versioned
//! schema (`SummaryFile`) with the run's metadata and exact percentiles in microseconds, which
//! `swarmer compare` reads back. Keys come out in the order the structs declare them; numbers
//! are numbers, except the 64-bit seed (text: JavaScript's numbers cannot hold it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::machine::Machine;
use super::thresholds::Verdict;
use super::Results;
use crate::stats::{AbortCount, EndpointStats};
use crate::units::utc_civil;

/// The summary's `schema` and `schema_version`: a reader checks both. The version grows when a
/// key changes meaning or goes; new keys may appear within a version.
pub const SCHEMA: &str = "swarmer-summary";
pub const SCHEMA_VERSION: u32 = 1;

/// Per endpoint: the requests and failures of each whole Unix second (Locust's
/// `num_reqs_per_sec`, `num_fail_per_sec`), and when its first and last requests came (to
/// the tick).
#[derive(Default)]
pub struct PerSecond {
    endpoints: Vec<Seconds>,
}

#[derive(Default, Clone)]
struct Seconds {
    counts: BTreeMap<u64, (u64, u64)>,
    first: Option<f64>,
    last: f64,
}

impl PerSecond {
    pub fn new(endpoints: usize) -> PerSecond {
        PerSecond { endpoints: vec![Seconds::default(); endpoints] }
    }

    /// Takes in an interval from `begin` to `end` (Unix seconds) with these per-endpoint stats.
    pub fn add(&mut self, begin: f64, end: f64, stats: &[EndpointStats]) {
        let second = ((begin + end) / 2.0) as u64;
        for (seconds, stats) in self.endpoints.iter_mut().zip(stats).filter(|(_, s)| s.count > 0) {
            let entry = seconds.counts.entry(second).or_default();
            entry.0 += stats.count;
            entry.1 += stats.failures;
            seconds.first.get_or_insert(begin);
            seconds.last = end;
        }
    }

    pub fn reset(&mut self) {
        self.endpoints.iter_mut().for_each(|s| *s = Seconds::default());
    }
}

/// One entry of Locust's `--json` list.
#[derive(Serialize)]
struct LocustEntry<'a> {
    name: &'a str,
    method: &'a str,
    last_request_timestamp: Option<f64>,
    start_time: f64,
    num_requests: u64,
    num_none_requests: u64,
    num_failures: u64,
    total_response_time: f64,
    max_response_time: f64,
    min_response_time: Option<f64>,
    total_content_length: u64,
    response_times: BTreeMap<u64, u64>,
    num_reqs_per_sec: BTreeMap<u64, u64>,
    num_fail_per_sec: BTreeMap<u64, u64>,
}

/// Locust's rounding of a response time (ms) to about two significant digits
/// (`bucket_response_time`: 147 → 150, 3432 → 3400), half to even as Python's `round`.
fn locust_bucket(ms: f64) -> u64 {
    let step = match ms {
        m if m < 100.0 => 1.0,
        m if m < 1000.0 => 10.0,
        m if m < 10_000.0 => 100.0,
        _ => 1000.0,
    };
    ((ms / step).round_ties_even() * step) as u64
}

/// Locust's `--json`: the endpoints with requests, sorted as its tables are, as a list.
pub fn locust(results: &Results, per_second: &PerSecond) -> String {
    let plan = results.plan;
    let mut entries = Vec::new();
    for (index, (endpoint, stats)) in plan.endpoints.iter().zip(results.endpoints).enumerate() {
        if stats.count == 0 {
            continue;
        }
        let seconds = per_second.endpoints.get(index).cloned().unwrap_or_default();
        let mut response_times = BTreeMap::new();
        for value in stats.hist.iter_recorded() {
            let us = stats.hist.median_equivalent(value.value_iterated_to()) as f64;
            *response_times.entry(locust_bucket(us / 1000.0)).or_insert(0) += value.count_since_last_iteration();
        }
        entries.push(LocustEntry {
            name: &endpoint.name,
            method: &endpoint.method,
            last_request_timestamp: seconds.first.map(|_| seconds.last),
            start_time: seconds.first.unwrap_or_default(),
            num_requests: stats.count,
            num_none_requests: 0,
            num_failures: stats.failures,
            total_response_time: stats.sum_us as f64 / 1000.0,
            max_response_time: stats.max_us as f64 / 1000.0,
            min_response_time: Some(stats.min_us as f64 / 1000.0),
            total_content_length: stats.bytes,
            response_times,
            num_reqs_per_sec: seconds.counts.iter().map(|(s, c)| (*s, c.0)).collect(),
            num_fail_per_sec: seconds.counts.iter().map(|(s, c)| (*s, c.1)).collect(),
        });
    }
    entries.sort_by(|a, b| (a.name, a.method).cmp(&(b.name, b.method)));
    serde_json::to_string_pretty(&entries).expect("plain data serializes")
}

/// When the run started and ended, in Unix seconds.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub start: f64,
    pub end: f64,
}

/// `--json-file`: the whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryFile {
    pub schema: String,
    pub schema_version: u32,
    pub run: RunInfo,
    /// Every endpoint together (Locust's Aggregated row).
    pub aggregated: EndpointSummary,
    /// Endpoints with requests, sorted by name then method (as the tables).
    pub endpoints: Vec<EndpointSummary>,
    /// Failures by endpoint and cause (`_failures.csv`).
    pub errors: Vec<ErrorSummary>,
    /// Tasks ended early (`_exceptions.csv`), and tasks skipped for a need not met.
    pub aborted_tasks: Vec<TaskCount>,
    pub skipped_tasks: Vec<TaskCount>,
    pub thresholds: Vec<ThresholdSummary>,
    /// The open model's schedule (`--rate`); null for a closed-model run.
    pub open_model: Option<OpenModel>,
}

/// What ran, where, when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub swarmer_version: String,
    pub command_line: Vec<String>,
    /// What was tested: `GET http://host/path` (quick mode) or the scenario file.
    pub target: String,
    pub hostname: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpus_online: usize,
    pub threads: usize,
    /// The core each worker thread was pinned to (null: not pinned).
    pub worker_cpus: Vec<Option<usize>>,
    /// The IO driver the workers ran (`io_uring`, `epoll`).
    pub io: String,
    /// `closed` (users) or `open` (`--rate`).
    pub model: String,
    /// Users (closed model) or the pool's cap (open model).
    pub users: u64,
    pub spawn_rate: f64,
    pub rate: Option<f64>,
    pub run_time_limit_seconds: Option<f64>,
    pub iterations: Option<u64>,
    /// The run's seed, as text (`--seed` replays it).
    pub seed: String,
    pub started_utc: String,
    pub ended_utc: String,
    pub started_unix: f64,
    pub ended_unix: f64,
    /// The whole run, and the part the numbers cover (they differ after a reset).
    pub run_seconds: f64,
    pub measured_seconds: f64,
    /// `--reset-stats` (or the web UI's reset): when the numbers started again.
    pub stats_reset_at_seconds: Option<f64>,
    pub users_at_end: u64,
    pub users_peak: u64,
}

/// One endpoint's (or the aggregate's) numbers; rates over `measured_seconds`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointSummary {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    /// In flight when the run stopped: neither success nor failure.
    pub cancelled: u64,
    /// Requests started: `requests + cancelled` over a whole run (nothing is dropped).
    #[serde(default)]
    pub started: u64,
    pub bytes: u64,
    pub requests_per_second: f64,
    pub failures_per_second: f64,
    pub fail_ratio: f64,
    /// Response times (open model: from each task's intended start); null without requests.
    pub latency_us: Option<Latency>,
    /// Open model: from the actual send.
    pub service_time_us: Option<Latency>,
    /// Response times above the histogram's top, recorded there (max stays exact).
    pub clamped: u64,
}

/// Exact percentiles from the HDR histograms (3 significant digits), in µs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p66: u64,
    pub p75: u64,
    pub p80: u64,
    pub p90: u64,
    pub p95: u64,
    pub p98: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
}

impl Latency {
    /// The quantiles behind p50 … p99_99, in field order.
    pub const QUANTILES: [f64; 10] = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999];

    fn from_quantiles(min: u64, mean: f64, max: u64, at: impl Fn(f64) -> u64) -> Latency {
        let [p50, p66, p75, p80, p90, p95, p98, p99, p99_9, p99_99] = Latency::QUANTILES.map(at);
        Latency { min, mean, p50, p66, p75, p80, p90, p95, p98, p99, p99_9, p99_99, max }
    }

    /// A value by the name `swarmer compare --metric` uses (`p99.9` or `p99_9`, `mean`, …).
    pub fn get(&self, metric: &str) -> Option<f64> {
        Some(match metric.replace('.', "_").as_str() {
            "min" => self.min as f64,
            "mean" => self.mean,
            "p50" => self.p50 as f64,
            "p66" => self.p66 as f64,
            "p75" => self.p75 as f64,
            "p80" => self.p80 as f64,
            "p90" => self.p90 as f64,
            "p95" => self.p95 as f64,
            "p98" => self.p98 as f64,
            "p99" => self.p99 as f64,
            "p99_9" => self.p99_9 as f64,
            "p99_99" => self.p99_99 as f64,
            "max" => self.max as f64,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorSummary {
    pub method: String,
    pub name: String,
    /// connect, read, write, timeout, status, parse or check.
    pub kind: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen_utc: String,
    pub last_seen_utc: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskCount {
    /// "User type / task / step".
    pub place: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThresholdSummary {
    pub threshold: String,
    /// In the threshold's unit: µs for times, a fraction for fail_ratio, per second for rps, a
    /// count otherwise; null when there was nothing to measure.
    pub measured: Option<f64>,
    pub measured_text: Option<String>,
    pub pass: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenModel {
    pub rate: f64,
    pub max_users: u64,
    /// Starts whose intended time came; of them, started, late (over 1 ms behind) and dropped
    /// (every user busy for --max-start-delay).
    pub due: u64,
    pub started: u64,
    pub late: u64,
    pub dropped: u64,
    /// How far behind their intended time starts began (µs); null with no start.
    pub lag_us: Option<Lag>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lag {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

/// The summary of a finished run.
pub fn summary(results: &Results, verdicts: &[Verdict], span: Span) -> SummaryFile {
    let totals = &results.totals;
    let elapsed = results.elapsed_secs;
    let mut errors = Vec::new();
    for (endpoint, stats) in results.plan.endpoints.iter().zip(results.endpoints) {
        for error in &stats.errors {
            errors.push(ErrorSummary {
                method: endpoint.method.clone(),
                name: endpoint.name.clone(),
                kind: error.failure.kind().name().into(),
                error: error.failure.to_string(),
                occurrences: error.count,
                first_seen_utc: crate::units::utc_timestamp(error.first_seen),
                last_seen_utc: crate::units::utc_timestamp(error.last_seen),
            });
        }
    }
    errors.sort_by(|a, b| (&a.name, &a.method, &a.error).cmp(&(&b.name, &b.method, &b.error)));
    SummaryFile {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        run: run_info(results, span),
        aggregated: endpoint("", "Aggregated", &totals.aggregated, elapsed),
        endpoints: totals.rows.iter().map(|r| endpoint(r.method, r.name, r.stats, elapsed)).collect(),
        errors,
        aborted_tasks: task_counts(results.aborts),
        skipped_tasks: task_counts(results.skips),
        thresholds: verdicts
            .iter()
            .map(|v| ThresholdSummary {
                threshold: v.threshold.to_string(),
                measured: v.measured,
                measured_text: v.measured.map(|m| v.threshold.show(m)),
                pass: v.pass,
            })
            .collect(),
        open_model: open_model(results),
    }
}

fn run_info(results: &Results, span: Span) -> RunInfo {
    let plan = results.plan;
    let machine = Machine::this();
    RunInfo {
        swarmer_version: env!("CARGO_PKG_VERSION").into(),
        command_line: std::env::args().collect(),
        target: plan.origin.clone(),
        hostname: machine.hostname,
        kernel: machine.kernel,
        arch: machine.arch.into(),
        cpu_model: machine.cpu_model,
        cpus_online: machine.cpus,
        threads: plan.partition_count(),
        worker_cpus: plan.workers.clone(),
        io: results.drivers.clone(),
        model: if plan.rate.is_some() { "open" } else { "closed" }.into(),
        users: plan.users,
        spawn_rate: plan.spawn_rate,
        rate: plan.rate,
        run_time_limit_seconds: plan.run_time.map(|t| t.as_secs_f64()),
        iterations: plan.iterations,
        seed: plan.seed.to_string(),
        started_utc: utc_millis(span.start),
        ended_utc: utc_millis(span.end),
        started_unix: round3(span.start),
        ended_unix: round3(span.end),
        run_seconds: round3(results.run_secs),
        measured_seconds: round3(results.elapsed_secs),
        stats_reset_at_seconds: results.reset_at.map(round3),
        users_at_end: results.users.last,
        users_peak: results.users.peak,
    }
}

fn endpoint(method: &str, name: &str, stats: &EndpointStats, elapsed_secs: f64) -> EndpointSummary {
    let latency = (stats.count > 0).then(|| {
        Latency::from_quantiles(stats.min_us, round3(stats.mean_us()), stats.max_us, |q| stats.quantile_us(q))
    });
    let service = stats
        .service
        .as_ref()
        .filter(|h| !h.is_empty())
        .map(|h| Latency::from_quantiles(h.min(), round3(h.mean()), h.max(), |q| h.value_at_quantile(q)));
    EndpointSummary {
        method: method.into(),
        name: name.into(),
        requests: stats.count,
        failures: stats.failures,
        cancelled: stats.cancelled,
        started: stats.started,
        bytes: stats.bytes,
        requests_per_second: round3(stats.count as f64 / elapsed_secs),
        failures_per_second: round3(stats.failures as f64 / elapsed_secs),
        fail_ratio: stats.fail_ratio(),
        latency_us: latency,
        service_time_us: service,
        clamped: stats.clamped,
    }
}

fn task_counts(counts: &[AbortCount]) -> Vec<TaskCount> {
    let mut out: Vec<TaskCount> =
        counts.iter().map(|a| TaskCount { place: a.path.into(), reason: a.reason.clone(), count: a.count }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.place.cmp(&b.place)));
    out
}

fn open_model(results: &Results) -> Option<OpenModel> {
    let rate = results.plan.rate?;
    let arrivals = results.arrivals;
    let lag = arrivals.lag.as_ref().filter(|h| !h.is_empty()).map(|h| Lag {
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p99_9: h.value_at_quantile(0.999),
        max: h.max(),
    });
    Some(OpenModel {
        rate,
        max_users: results.plan.users,
        due: arrivals.scheduled,
        started: arrivals.scheduled - arrivals.dropped,
        late: arrivals.late,
        dropped: arrivals.dropped,
        lag_us: lag,
    })
}

/// Writes the summary to `path` (through a temporary file and a rename).
pub fn write_summary(path: &Path, summary: &SummaryFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(summary).expect("plain data serializes");
    text.push('\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).with_context(|| format!("--json-file: cannot write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("--json-file: cannot write {}", path.display()))
}

/// Reads a summary back, checking its schema.
pub fn read_summary(path: &Path) -> Result<SummaryFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    let version = value.get("schema_version").and_then(|v| v.as_u64()).unwrap_or(0);
    if schema != SCHEMA {
        anyhow::bail!("{}: not a swarmer summary (written by --json-file)", path.display());
    }
    if version != u64::from(SCHEMA_VERSION) {
        anyhow::bail!(
            "{}: summary schema version {version}; this swarmer reads version {SCHEMA_VERSION}",
            path.display()
        );
    }
    serde_json::from_value(value).with_context(|| format!("{}: not a valid summary", path.display()))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc_millis(unix: f64) -> String {
    let [y, mo, d, h, mi, s] = utc_civil(unix as u64);
    let millis = ((unix.fract() * 1000.0) as u64).min(999);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locust_buckets_round_as_python() {
        assert_eq!(locust_bucket(0.4), 0);
        assert_eq!(locust_bucket(2.5), 2);
        assert_eq!(locust_bucket(3.5), 4);
        assert_eq!(locust_bucket(147.0), 150);
        assert_eq!(locust_bucket(3432.0), 3400);
        assert_eq!(locust_bucket(58_760.0), 59_000);
    }

    #[test]
    fn utc_with_millis() {
        assert_eq!(utc_millis(1_795_747_025.25), "2026-11-27T02:37:05.250Z");
    }
}
