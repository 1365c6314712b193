//! The four Locust CSV files: `_stats.csv`, `_failures.csv` and `_exceptions.csv` rewritten
//! every tick (via a temporary file and rename, so readers never see half a file) and once more
//! at shutdown; `_stats_history.csv` appended every tick. Headers, column order, CRLF and
//! minimal quoting are Locust's; times are milliseconds with µs decimals.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::format::{csv_ms, csv_ms_f, utc_timestamp, PERCENTILES, PERCENTILE_TITLES};
use super::{Results, Table};
use crate::config::Plan;
use crate::stats::{AbortCount, EndpointStats};

pub const STATS_HEADER: [&str; 11] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
];
pub const HISTORY_HEAD: [&str; 6] = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"];
pub const HISTORY_TAIL: [&str; 7] = [
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];
pub const FAILURES_HEADER: [&str; 6] = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"];
pub const EXCEPTIONS_HEADER: [&str; 4] = ["Count", "Message", "Traceback", "Nodes"];

pub struct Files {
    stats: PathBuf,
    failures: PathBuf,
    exceptions: PathBuf,
    /// Open model only: service-time percentiles beside `_stats.csv`'s latency from the
    /// intended start.
    service: PathBuf,
    history: csv::Writer<BufWriter<File>>,
    full_history: bool,
}

/// A CSV writer in Locust's dialect: CRLF, minimal quoting.
pub fn writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .flexible(false)
        .from_writer(out)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes a file through a temporary sibling and a rename.
fn replace_file(path: &Path, fill: impl FnOnce(&mut csv::Writer<BufWriter<File>>) -> Result<()>) -> Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let file = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut out = writer(BufWriter::new(file));
    fill(&mut out)?;
    out.flush().with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(out);
    fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

fn percentile_fields(stats: &EndpointStats) -> Vec<String> {
    if stats.count == 0 {
        return vec!["N/A".to_string(); PERCENTILES.len()];
    }
    PERCENTILES.iter().map(|&q| csv_ms(stats.quantile_us(q))).collect()
}

/// Median, average, min, max, average content size: the columns `_stats.csv` and the history's
/// Total columns share.
fn time_fields(stats: &EndpointStats) -> [String; 5] {
    if stats.count == 0 {
        return ["0", "0", "0", "0", "0"].map(String::from);
    }
    [
        csv_ms(stats.quantile_us(0.5)),
        csv_ms_f(stats.mean_us()),
        csv_ms(stats.min_us),
        csv_ms(stats.max_us),
        format!("{:.2}", stats.bytes as f64 / stats.count as f64),
    ]
}

impl Files {
    /// Creates the four files (and parent directories) with their headers, and the history's
    /// first row (User Count 0, zeros and N/A) as Locust writes it.
    pub fn create(prefix: &Path, full_history: bool, start_unix: u64) -> Result<Files> {
        if let Some(parent) = prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .with_context(|| format!("--csv {}: cannot create {}", prefix.display(), parent.display()))?;
        }
        let history_path = with_suffix(prefix, "_stats_history.csv");
        let file =
            File::create(&history_path).with_context(|| format!("--csv: cannot write {}", history_path.display()))?;
        let mut history = writer(BufWriter::new(file));
        history.write_record(history_header())?;
        let mut first: Vec<String> = vec![start_unix.to_string(), "0".into(), String::new(), "Aggregated".into()];
        first.extend(["0.000000", "0.000000"].map(String::from));
        first.extend(vec!["N/A".to_string(); PERCENTILES.len()]);
        first.extend(["0", "0"].map(String::from));
        first.extend(time_fields(&EndpointStats::new(2)));
        history.write_record(&first)?;
        history.flush()?;
        let files = Files {
            stats: with_suffix(prefix, "_stats.csv"),
            failures: with_suffix(prefix, "_failures.csv"),
            exceptions: with_suffix(prefix, "_exceptions.csv"),
            service: with_suffix(prefix, "_stats_service.csv"),
            history,
            full_history,
        };
        Ok(files)
    }

    /// Rewrites `_stats.csv`, `_failures.csv`, `_exceptions.csv` (and, open model,
    /// `_stats_service.csv`) with whole-run numbers.
    pub fn write_snapshot(&mut self, results: &Results) -> Result<()> {
        replace_file(&self.stats, |out| write_stats(out, &results.totals, results.elapsed_secs))?;
        replace_file(&self.failures, |out| write_failures(out, results.plan, results.endpoints))?;
        if results.plan.rate.is_some() {
            replace_file(&self.service, |out| write_service(out, &results.totals))?;
        }
        replace_file(&self.exceptions, |out| write_exceptions(out, results.aborts))
    }

    /// Appends this tick's rows (`history_records`): per endpoint with `--csv-full-history`,
    /// then Aggregated.
    pub fn write_history(&mut self, records: &[Vec<String>]) -> Result<()> {
        let keep = if self.full_history { records.len() } else { 1 };
        for record in &records[records.len() - keep..] {
            self.history.write_record(record)?;
        }
        self.history.flush()?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        Ok(self.history.flush()?)
    }
}

/// `_stats.csv`: per endpoint and Aggregated, whole-run counts, times, rates over
/// `elapsed_secs` and percentiles.
pub fn write_stats<W: Write>(out: &mut csv::Writer<W>, totals: &Table, elapsed_secs: f64) -> Result<()> {
    let header: Vec<&str> = STATS_HEADER.iter().chain(&PERCENTILE_TITLES).copied().collect();
    out.write_record(&header)?;
    for (method, name, stats) in totals.all_rows() {
        let mut record =
            vec![method.to_string(), name.to_string(), stats.count.to_string(), stats.failures.to_string()];
        record.extend(time_fields(stats));
        record.push(format!("{:.6}", stats.count as f64 / elapsed_secs));
        record.push(format!("{:.6}", stats.failures as f64 / elapsed_secs));
        record.extend(percentile_fields(stats));
        out.write_record(&record)?;
    }
    Ok(())
}

/// `_failures.csv`: one row per (method, name, error), sorted by name, method, error.
pub fn write_failures<W: Write>(out: &mut csv::Writer<W>, plan: &Plan, endpoints: &[EndpointStats]) -> Result<()> {
    out.write_record(FAILURES_HEADER)?;
    let mut rows = Vec::new();
    for (endpoint, stats) in plan.endpoints.iter().zip(endpoints) {
        for error in &stats.errors {
            rows.push([
                endpoint.method.clone(),
                endpoint.name.clone(),
                error.failure.to_string(),
                error.count.to_string(),
                utc_timestamp(error.first_seen),
                utc_timestamp(error.last_seen),
            ]);
        }
    }
    rows.sort_by(|a, b| (&a[1], &a[0], &a[2]).cmp(&(&b[1], &b[0], &b[2])));
    for row in rows {
        out.write_record(&row)?;
    }
    Ok(())
}

/// `_stats_service.csv` (open model): the raw service times, in `_stats.csv`'s row order.
pub fn write_service<W: Write>(out: &mut csv::Writer<W>, totals: &Table) -> Result<()> {
    let header: Vec<&str> = ["Type", "Name", "Request Count"].iter().chain(&PERCENTILE_TITLES).copied().collect();
    out.write_record(&header)?;
    for (method, name, stats) in totals.all_rows() {
        let mut record = vec![method.to_string(), name.to_string(), stats.count.to_string()];
        record.extend(PERCENTILES.iter().map(|&q| match stats.service {
            Some(_) if stats.count > 0 => csv_ms(stats.service_quantile_us(q)),
            _ => "N/A".to_string(),
        }));
        out.write_record(&record)?;
    }
    Ok(())
}

/// `_exceptions.csv`: flow aborts (a required step failed, a capture found nothing, a pool was
/// empty), most frequent first.
pub fn write_exceptions<W: Write>(out: &mut csv::Writer<W>, aborts: &[AbortCount]) -> Result<()> {
    out.write_record(EXCEPTIONS_HEADER)?;
    let mut rows: Vec<&AbortCount> = aborts.iter().collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(b.path)));
    for abort in rows {
        let message = format!("task aborted: {}", abort.reason);
        out.write_record([abort.count.to_string().as_str(), &message, abort.path, "local"])?;
    }
    Ok(())
}

/// `_stats_history.csv`'s header row.
pub fn history_header() -> Vec<&'static str> {
    HISTORY_HEAD.iter().chain(&PERCENTILE_TITLES).chain(&HISTORY_TAIL).copied().collect()
}

/// One tick's history rows: per endpoint, then Aggregated (last). Rates and percentiles are
/// over the window (`current` over `window_secs`); Total columns whole-run.
pub fn history_records(
    timestamp: u64,
    users: u64,
    totals: &Table,
    current: &Table,
    window_secs: f64,
) -> Vec<Vec<String>> {
    let window_secs = window_secs.max(1e-9);
    let mut lines: Vec<(&str, &str, &EndpointStats, Option<&EndpointStats>)> = Vec::new();
    for row in &totals.rows {
        let now = current.rows.iter().find(|r| r.method == row.method && r.name == row.name).map(|r| r.stats);
        lines.push((row.method, row.name, row.stats, now));
    }
    lines.push(("", "Aggregated", &totals.aggregated, Some(&current.aggregated)));
    let empty = EndpointStats::new(2);
    let mut records = Vec::with_capacity(lines.len());
    for (method, name, total, now) in lines {
        let now = now.unwrap_or(&empty);
        let mut record = vec![timestamp.to_string(), users.to_string(), method.to_string(), name.to_string()];
        record.push(format!("{:.6}", now.count as f64 / window_secs));
        record.push(format!("{:.6}", now.failures as f64 / window_secs));
        record.extend(percentile_fields(now));
        record.push(total.count.to_string());
        record.push(total.failures.to_string());
        record.extend(time_fields(total));
        records.push(record);
    }
    records
}
