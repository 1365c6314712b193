//! Locust's console layout: the request table (periodic with current rates, final with
//! whole-run rates), the percentile table and the error report. Format strings follow Locust's
//! `stats.py` column for column; times are milliseconds with decimals below one second.

use std::io::Write;

use super::format::{console_ms, PERCENTILES, PERCENTILE_TITLES};
use super::{Results, Row, Table};
use crate::config::Plan;
use crate::stats::{AbortCount, Arrivals, EndpointStats};
use crate::units::HumanDuration;

const TYPE_WIDTH: usize = 8;
const NAME_WIDTH: usize = 80;
/// Locust narrows the name column of the request table by the space the other columns save.
const REQUEST_NAME_WIDTH: usize = NAME_WIDTH - TYPE_WIDTH + 4;

fn request_header() -> String {
    format!(
        "{:<TYPE_WIDTH$} {:<REQUEST_NAME_WIDTH$} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7} {:>11}",
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
    )
}

fn request_separator() -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        "-".repeat(TYPE_WIDTH),
        "-".repeat(REQUEST_NAME_WIDTH),
        "-".repeat(7),
        "-".repeat(13),
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(8),
        "-".repeat(11)
    )
}

/// One request-table line. `rates` are (req/s, failures/s).
fn request_line(method: &str, name: &str, stats: &EndpointStats, rates: (f64, f64)) -> String {
    let fail_pct = stats.fail_ratio() * 100.0;
    let min = if stats.count == 0 { 0.0 } else { stats.min_us as f64 };
    let method = if method.is_empty() { String::new() } else { format!("{method} ") };
    format!(
        "{:<TYPE_WIDTH$} {:<REQUEST_NAME_WIDTH$} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7.2} {:>11.2}",
        method,
        name,
        stats.count,
        format!("{}({:.2}%)", stats.failures, fail_pct),
        console_ms(stats.mean_us()),
        console_ms(min),
        console_ms(stats.max_us as f64),
        console_ms(stats.quantile_us(0.5) as f64),
        rates.0,
        rates.1,
    )
}

/// Builds the request table. Counts and times are whole-run; rates come from `current` over
/// `window_secs` when given (periodic table), else whole-run over `elapsed_secs`.
pub fn request_table(totals: &Table, current: Option<(&Table, f64)>, elapsed_secs: f64) -> Vec<String> {
    let rates = |row_of: &dyn Fn(&Table) -> Option<(u64, u64)>| -> (f64, f64) {
        let (source, secs) = match current {
            Some((window, secs)) => (window, secs),
            None => (totals, elapsed_secs),
        };
        let (count, failures) = row_of(source).unwrap_or((0, 0));
        let secs = secs.max(1e-9);
        (count as f64 / secs, failures as f64 / secs)
    };
    let mut lines = vec![request_header(), request_separator()];
    for row in &totals.rows {
        let find = |t: &Table| {
            t.rows
                .iter()
                .find(|r| r.method == row.method && r.name == row.name)
                .map(|r| (r.stats.count, r.stats.failures))
        };
        lines.push(request_line(row.method, row.name, row.stats, rates(&find)));
    }
    lines.push(request_separator());
    let aggregated = |t: &Table| Some((t.aggregated.count, t.aggregated.failures));
    lines.push(request_line("", "Aggregated", &totals.aggregated, rates(&aggregated)));
    lines
}

pub fn percentile_table(totals: &Table) -> Vec<String> {
    percentile_table_of(totals, "Response time percentiles (approximated)", EndpointStats::quantile_us)
}

/// Open model: the raw service times (from the actual send), beside the table above, which
/// counts from each request's intended start.
pub fn service_table(totals: &Table) -> Vec<String> {
    percentile_table_of(
        totals,
        "Service time percentiles (from the actual send; the table above counts from the intended start)",
        EndpointStats::service_quantile_us,
    )
}

fn percentile_table_of(totals: &Table, title: &str, value: fn(&EndpointStats, f64) -> u64) -> Vec<String> {
    let mut header = format!("{:<TYPE_WIDTH$} {:<NAME_WIDTH$} {:>8}", "Type", "Name", PERCENTILE_TITLES[0]);
    for title in &PERCENTILE_TITLES[1..] {
        header.push_str(&format!(" {title:>6}"));
    }
    header.push_str(&format!(" {:>6}", "# reqs"));
    let mut separator = format!("{}|{}|{}|", "-".repeat(TYPE_WIDTH), "-".repeat(NAME_WIDTH), "-".repeat(8));
    separator.push_str(&"------|".repeat(PERCENTILES.len()));
    separator.pop();
    let line = |method: &str, name: &str, stats: &EndpointStats| {
        let values: Vec<String> = PERCENTILES.iter().map(|&q| console_ms(value(stats, q) as f64)).collect();
        let mut out = format!("{:<TYPE_WIDTH$} {:<NAME_WIDTH$} {:>8}", method, name, values[0]);
        for value in &values[1..] {
            out.push_str(&format!(" {value:>6}"));
        }
        out.push_str(&format!(" {:>6}", stats.count));
        out
    };
    let mut lines = vec![title.to_string(), header, separator.clone()];
    for Row { method, name, stats } in &totals.rows {
        lines.push(line(method, name, stats));
    }
    lines.push(separator);
    if totals.aggregated.count > 0 {
        lines.push(line("", "Aggregated", &totals.aggregated));
    }
    lines
}

pub fn error_report(plan: &Plan, endpoints: &[EndpointStats]) -> Vec<String> {
    let mut errors: Vec<(u64, String)> = Vec::new();
    for (endpoint, stats) in plan.endpoints.iter().zip(endpoints) {
        for error in &stats.errors {
            errors.push((error.count, format!("{} {}: {}", endpoint.method, endpoint.name, error.failure)));
        }
    }
    if errors.is_empty() {
        return Vec::new();
    }
    errors.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let separator = format!("{}|{}", "-".repeat(18), "-".repeat(80 + NAME_WIDTH - 19));
    let mut lines =
        vec!["Error report".to_string(), format!("{:<18} {:<100}", "# occurrences", "Error"), separator.clone()];
    lines.extend(errors.iter().map(|(count, text)| format!("{count:<18} {text:<100}")));
    lines.push(separator);
    lines
}

pub(super) fn emit(lines: &[String]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out);
    let _ = out.flush();
}

/// The periodic table: whole-run counts, current rates.
pub fn print_requests(totals: &Table, current: Option<(&Table, f64)>) {
    emit(&request_table(totals, current, 1.0));
}

/// Tasks ended early, like the error report: count, where, why.
fn abort_report(aborts: &[AbortCount]) -> Vec<String> {
    let separator = "-".repeat(120);
    let mut rows: Vec<&AbortCount> = aborts.iter().collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(b.path)));
    let mut lines =
        vec!["Aborted tasks".to_string(), format!("{:<18} {}", "# occurrences", "Where: why"), separator.clone()];
    lines.extend(rows.iter().map(|a| format!("{:<18} {}: {}", a.count, a.path, a.reason)));
    lines.push(separator);
    lines
}

/// The final report: whole-run table, percentiles, errors, and what Locust does not show.
pub fn print_final(results: &Results, drivers: &str) {
    let Results { plan, totals, endpoints, aborts, .. } = results;
    emit(&request_table(totals, None, results.elapsed_secs));
    emit(&percentile_table(totals));
    if plan.rate.is_some() {
        emit(&service_table(totals));
    }
    let errors = error_report(plan, endpoints);
    if !errors.is_empty() {
        emit(&errors);
    }
    if !aborts.is_empty() {
        emit(&abort_report(aborts));
    }
    emit(&notes(results, drivers));
}

/// The lines after the tables: what Locust does not show (cancelled and clamped requests, the
/// open model's schedule, the reset) and the run's one-line summary.
fn notes(results: &Results, drivers: &str) -> Vec<String> {
    let Results { plan, totals, endpoints, arrivals, elapsed_secs, .. } = results;
    let elapsed_secs = *elapsed_secs;
    let mut notes = Vec::new();
    let cancelled: u64 = endpoints.iter().map(|s| s.cancelled).sum();
    if cancelled > 0 {
        notes.push(format!(
            "Cancelled: {cancelled} requests were in flight when the run stopped (not counted above; see --stop-timeout)"
        ));
    }
    let clamped: u64 = endpoints.iter().map(|s| s.clamped).sum();
    if clamped > 0 {
        notes.push(format!(
            "Clamped: {clamped} response times above {} recorded at the histogram's top (max is exact)",
            HumanDuration(std::time::Duration::from_micros(plan.histogram_max_us()))
        ));
    }
    if let Some(rate) = plan.rate {
        notes.push(open_model_note(plan, rate, arrivals, elapsed_secs));
    }
    if plan.reset_stats {
        notes.push(format!("Statistics cover the {elapsed_secs:.2}s after all users started (--reset-stats)"));
    }
    notes.push(format!(
        "Run time {:.2}s, {} users on {} worker thread(s) ({}); {} requests, {:.2} req/s",
        elapsed_secs,
        plan.users,
        plan.workers.len(),
        drivers,
        totals.aggregated.count,
        totals.aggregated.count as f64 / elapsed_secs
    ));
    notes
}

/// The open model's schedule: starts due, late, dropped, and their lag.
fn open_model_note(plan: &Plan, rate: f64, arrivals: &Arrivals, elapsed_secs: f64) -> String {
    let lag = |q: f64| arrivals.lag.as_ref().map_or(0, |h| if h.is_empty() { 0 } else { h.value_at_quantile(q) });
    // Starts come due only within the run time (the stop timeout adds none).
    let schedule_secs = plan.run_time.map_or(elapsed_secs, |t| t.as_secs_f64().min(elapsed_secs));
    let wanted = match plan.shape {
        Some(_) => format!("the load shape's rate wanted (peak {rate}/s)"),
        None => format!("{rate}/s wanted"),
    };
    format!(
        "Open model: {wanted}; {} starts came due ({:.2}/s), {} began late (>1 ms), {} dropped (no free user among --max-users {} within --max-start-delay); start lag p50 {} us, p99 {} us, max {} us",
        arrivals.scheduled,
        arrivals.scheduled as f64 / schedule_secs.max(1e-9),
        arrivals.late,
        arrivals.dropped,
        plan.users,
        lag(0.5),
        lag(0.99),
        lag(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_locust() {
        // Column boundaries from Locust's own output (reference/locust-compat.md).
        let header = request_header();
        assert!(header.starts_with("Type     Name"));
        assert!(header
            .trim_end()
            .ends_with("# reqs      # fails |    Avg     Min     Max    Med |   req/s  failures/s"));
        assert_eq!(
            request_separator(),
            "--------|----------------------------------------------------------------------------|-------|-------------|-------|-------|-------|-------|--------|-----------"
        );
        let mut stats = EndpointStats::new(60_000_000);
        for _ in 0..90 {
            stats.record(4000, 10);
        }
        for _ in 0..14 {
            stats.record(6000, 10);
            stats.record_failure(crate::failure::Failure::Status(500), 0);
        }
        let line = request_line("GET", "/fast", &stats, (22.49, 3.03));
        let expected_tail = "104   14(13.46%) |   4.27    4.00    6.00   4.00 |   22.49        3.03";
        assert!(line.starts_with("GET      /fast "), "{line}");
        assert!(line.ends_with(expected_tail), "{line}");
        assert_eq!(line.len(), request_header().len());
    }
}
