//! Locust's console layout: the request table (periodic with current rates, final with
//! whole-run rates), the percentile table and the error report. Format strings follow Locust's
//! `stats.py` column for column; times are milliseconds with decimals below one second.
//!
//! In a terminal narrower than Locust's tables (160-odd columns), the tables fit its width: the
//! name column shrinks (long names end in `…`; the CSV files keep them whole), then the request
//! table drops its Type column and narrows its numbers, then Min and Max, and the percentile
//! table keeps the percentiles that matter most. Output that is not a terminal keeps Locust's
//! layout (unless `COLUMNS` says otherwise), so scripts that read it see what Locust prints.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use super::format::{console_ms, PERCENTILES, PERCENTILE_TITLES};
use super::{Results, Row, Table};
use crate::config::Plan;
use crate::log::{self, Level};
use crate::stats::{AbortCount, EndpointStats};

const TYPE_WIDTH: usize = 8;
const NAME_WIDTH: usize = 80;
/// Locust narrows the name column of the request table by the space the other columns save.
const REQUEST_NAME_WIDTH: usize = NAME_WIDTH - TYPE_WIDTH + 4;
/// The narrowest name column before the tables drop columns instead.
const MIN_NAME_WIDTH: usize = 20;
/// The request table's columns other than the name in Locust's layout.
const REQUEST_OTHERS: usize = 86;
/// The percentile table's columns other than the name in Locust's layout.
const PERCENTILE_OTHERS: usize = 95;
/// Which percentiles a narrow percentile table keeps first (indices into `PERCENTILES`).
const PERCENTILE_PRIORITY: [usize; 11] = [0, 7, 5, 4, 10, 8, 2, 9, 6, 1, 3];

/// The width the console's lines may take: `None` for Locust's own layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Width(pub Option<usize>);

impl Width {
    /// Standard output's terminal width, or `COLUMNS`; `None` when neither says.
    pub fn of_stdout() -> Width {
        Width::of(libc::STDOUT_FILENO)
    }

    fn of(fd: libc::c_int) -> Width {
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills a winsize we own; on a non-terminal it fails and we ignore it.
        let terminal = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
        if terminal && size.ws_col > 0 {
            return Width(Some(usize::from(size.ws_col)));
        }
        Width(std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()).filter(|&c| c > 0))
    }

    /// The name column when the rest of a line takes `others` columns and Locust's is `locust`.
    fn name(self, others: usize, locust: usize) -> Option<usize> {
        match self.0 {
            None => Some(locust),
            Some(width) if width >= others + MIN_NAME_WIDTH => Some((width - others).min(locust)),
            Some(_) => None,
        }
    }
}

/// `text` cut to `width` characters, ending in `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn request_header(name: usize) -> String {
    format!(
        "{:<TYPE_WIDTH$} {:<name$} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7} {:>11}",
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
    )
}

fn request_separator(name: usize) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        "-".repeat(TYPE_WIDTH),
        "-".repeat(name),
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

/// One request-table line in Locust's layout, the name column `width` wide. `rates` are
/// (req/s, failures/s).
fn request_line(method: &str, name: &str, width: usize, stats: &EndpointStats, rates: (f64, f64)) -> String {
    let fail_pct = stats.fail_ratio() * 100.0;
    let min = if stats.count == 0 { 0.0 } else { stats.min_us as f64 };
    let method = if method.is_empty() { String::new() } else { format!("{method} ") };
    format!(
        "{:<TYPE_WIDTH$} {:<width$} {:>7} {:>12} |{:>7} {:>7} {:>7}{:>7} | {:>7.2} {:>11.2}",
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
pub fn request_table(totals: &Table, current: Option<(&Table, f64)>, elapsed_secs: f64, width: Width) -> Vec<String> {
    let rates = |row_of: &dyn Fn(&Table) -> Option<(u64, u64)>| -> (f64, f64) {
        let (source, secs) = match current {
            Some((window, secs)) => (window, secs),
            None => (totals, elapsed_secs),
        };
        let (count, failures) = row_of(source).unwrap_or((0, 0));
        let secs = secs.max(1e-9);
        (count as f64 / secs, failures as f64 / secs)
    };
    let mut rows = Vec::new();
    for row in &totals.rows {
        let find = |t: &Table| {
            t.rows
                .iter()
                .find(|r| r.method == row.method && r.name == row.name)
                .map(|r| (r.stats.count, r.stats.failures))
        };
        rows.push((row.method, row.name, row.stats, rates(&find)));
    }
    let aggregated = |t: &Table| Some((t.aggregated.count, t.aggregated.failures));
    let last = ("", "Aggregated", &totals.aggregated, rates(&aggregated));
    match width.name(REQUEST_OTHERS, REQUEST_NAME_WIDTH) {
        Some(name) => locust_request_table(&rows, last, name),
        None => compact_request_table(&rows, last, width.0.unwrap_or(80)),
    }
}

/// One row of the request table: method, name, whole-run stats, (req/s, failures/s).
type RequestRow<'a> = (&'a str, &'a str, &'a EndpointStats, (f64, f64));

/// Locust's request table, its name column `name` wide (Locust's own width keeps long names
/// whole, as Locust does).
fn locust_request_table(rows: &[RequestRow], last: RequestRow, name: usize) -> Vec<String> {
    let line = |(method, label, stats, rates): RequestRow| {
        let label = if name == REQUEST_NAME_WIDTH { label.to_string() } else { fit(label, name) };
        request_line(method, &label, name, stats, rates)
    };
    let mut lines = vec![request_header(name), request_separator(name)];
    lines.extend(rows.iter().map(|row| line(*row)));
    lines.push(request_separator(name));
    lines.push(line(last));
    lines
}

/// The request table in `width` columns: method and name in one column, the numbers as wide
/// as they need, Min and Max left out when the name would get too narrow.
fn compact_request_table(rows: &[RequestRow], last: RequestRow, width: usize) -> Vec<String> {
    let cells = |(method, name, stats, rates): RequestRow, min_max: bool| -> Vec<String> {
        let label = if method.is_empty() { name.to_string() } else { format!("{method} {name}") };
        let min = if stats.count == 0 { 0.0 } else { stats.min_us as f64 };
        let mut cells = vec![label, stats.count.to_string()];
        cells.push(format!("{}({:.1}%)", stats.failures, stats.fail_ratio() * 100.0));
        cells.push(console_ms(stats.mean_us()));
        if min_max {
            cells.extend([console_ms(min), console_ms(stats.max_us as f64)]);
        }
        cells.extend([console_ms(stats.quantile_us(0.5) as f64), rate(rates.0), rate(rates.1)]);
        cells
    };
    let header = |min_max: bool| -> Vec<String> {
        let mut titles = vec!["Name", "# reqs", "# fails", "Avg"];
        if min_max {
            titles.extend(["Min", "Max"]);
        }
        titles.extend(["Med", "req/s", "fail/s"]);
        titles.into_iter().map(String::from).collect()
    };
    let table = |min_max: bool| -> Vec<Vec<String>> {
        let mut table = vec![header(min_max)];
        table.extend(rows.iter().map(|row| cells(*row, min_max)));
        table.push(cells(last, min_max));
        table
    };
    let mut grid = table(true);
    let mut widths = column_widths(&grid);
    // Each column after the name takes a space before it, three with the two bars.
    let others = |widths: &[usize]| widths[1..].iter().sum::<usize>() + widths.len() - 1 + 4;
    if others(&widths) + MIN_NAME_WIDTH > width {
        grid = table(false);
        widths = column_widths(&grid);
    }
    widths[0] = width.saturating_sub(others(&widths)).max(12);
    // The bars go before Avg and before req/s.
    let bars = [3, widths.len() - 2];
    let lines: Vec<String> = grid.iter().map(|row| lay_out(row, &widths, &bars)).collect();
    let separator = "-".repeat(lines[0].chars().count());
    let mut out = vec![lines[0].clone(), separator.clone()];
    out.extend(lines[1..lines.len() - 1].iter().cloned());
    out.push(separator);
    out.push(lines[lines.len() - 1].clone());
    out
}

/// The widest cell of each column.
fn column_widths(grid: &[Vec<String>]) -> Vec<usize> {
    (0..grid[0].len()).map(|c| grid.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect()
}

/// One row: the first cell left-aligned (cut to its width), the others right-aligned, a space
/// between cells and a bar before the columns in `bars`.
fn lay_out(row: &[String], widths: &[usize], bars: &[usize]) -> String {
    let mut line = format!("{:<w$}", fit(&row[0], widths[0]), w = widths[0]);
    for (column, cell) in row.iter().enumerate().skip(1) {
        line.push_str(if bars.contains(&column) { " | " } else { " " });
        line.push_str(&format!("{cell:>w$}", w = widths[column]));
    }
    line
}

/// A rate with two decimals below 100,000 per second, whole above.
fn rate(value: f64) -> String {
    match value {
        v if v < 100_000.0 => format!("{v:.2}"),
        v => format!("{v:.0}"),
    }
}

pub fn percentile_table(totals: &Table, width: Width) -> Vec<String> {
    percentile_table_of(totals, "Response time percentiles (approximated)", EndpointStats::quantile_us, width)
}

/// Open model: the raw service times (from the actual send), beside the table above, which
/// counts from each request's intended start.
pub fn service_table(totals: &Table, width: Width) -> Vec<String> {
    percentile_table_of(
        totals,
        "Service time percentiles (from the actual send; the table above counts from the intended start)",
        EndpointStats::service_quantile_us,
        width,
    )
}

fn percentile_table_of(
    totals: &Table,
    title: &str,
    value: fn(&EndpointStats, f64) -> u64,
    width: Width,
) -> Vec<String> {
    match width.name(PERCENTILE_OTHERS, NAME_WIDTH) {
        Some(name) => locust_percentiles(totals, title, value, name),
        None => narrow_percentiles(totals, title, value, width.0.unwrap_or(80)),
    }
}

/// Locust's percentile table, its name column `name_width` wide.
fn locust_percentiles(
    totals: &Table,
    title: &str,
    value: fn(&EndpointStats, f64) -> u64,
    name_width: usize,
) -> Vec<String> {
    let mut header = format!("{:<TYPE_WIDTH$} {:<name_width$} {:>8}", "Type", "Name", PERCENTILE_TITLES[0]);
    for title in &PERCENTILE_TITLES[1..] {
        header.push_str(&format!(" {title:>6}"));
    }
    header.push_str(&format!(" {:>6}", "# reqs"));
    let mut separator = format!("{}|{}|{}|", "-".repeat(TYPE_WIDTH), "-".repeat(name_width), "-".repeat(8));
    separator.push_str(&"------|".repeat(PERCENTILES.len()));
    separator.pop();
    let line = |method: &str, name: &str, stats: &EndpointStats| {
        let values: Vec<String> = PERCENTILES.iter().map(|&q| console_ms(value(stats, q) as f64)).collect();
        let name = if name_width == NAME_WIDTH { name.to_string() } else { fit(name, name_width) };
        let mut out = format!("{:<TYPE_WIDTH$} {:<name_width$} {:>8}", method, name, values[0]);
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

/// The percentile table in `width` columns: method and name together, and as many percentiles
/// as fit, the most telling first (50, 99, 95, 90, 100, 99.9, …), shown in their order.
fn narrow_percentiles(totals: &Table, title: &str, value: fn(&EndpointStats, f64) -> u64, width: usize) -> Vec<String> {
    let grid = |kept: &[usize]| -> Vec<Vec<String>> {
        let row = |label: String, stats: &EndpointStats| {
            let mut cells = vec![label];
            cells.extend(kept.iter().map(|&i| console_ms(value(stats, PERCENTILES[i]) as f64)));
            cells.push(stats.count.to_string());
            cells
        };
        let mut header = vec!["Name".to_string()];
        header.extend(kept.iter().map(|&i| PERCENTILE_TITLES[i].to_string()));
        header.push("# reqs".to_string());
        let mut grid = vec![header];
        grid.extend(totals.rows.iter().map(|r| row(format!("{} {}", r.method, r.name), r.stats)));
        if totals.aggregated.count > 0 {
            grid.push(row("Aggregated".to_string(), &totals.aggregated));
        }
        grid
    };
    // As many percentiles as leave the name its room (at least three).
    let mut count = PERCENTILES.len();
    let (mut cells, mut widths) = loop {
        let mut kept: Vec<usize> = PERCENTILE_PRIORITY[..count].to_vec();
        kept.sort_unstable();
        let cells = grid(&kept);
        let widths = column_widths(&cells);
        if count == 3 || widths[1..].iter().sum::<usize>() + widths.len() + MIN_NAME_WIDTH <= width {
            break (cells, widths);
        }
        count -= 1;
    };
    widths[0] = width.saturating_sub(widths[1..].iter().sum::<usize>() + widths.len() - 1).max(12);
    let mut lines: Vec<String> = cells.drain(..).map(|row| lay_out(&row, &widths, &[])).collect();
    let separator = "-".repeat(lines[0].chars().count());
    lines.insert(1, separator.clone());
    let aggregated_at = lines.len() - usize::from(totals.aggregated.count > 0);
    lines.insert(aggregated_at, separator);
    lines.insert(0, title.to_string());
    lines
}

pub fn error_report(plan: &Plan, endpoints: &[EndpointStats], width: Width) -> Vec<String> {
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
    let rows = errors.iter().map(|(count, text)| (count.to_string(), text.as_str()));
    counted_report("Error report", "Error", rows, 80 + NAME_WIDTH - 19, width)
}

/// Tasks ended early or skipped, like the error report: count, where, why.
fn abort_report(title: &str, aborts: &[AbortCount], width: Width) -> Vec<String> {
    let mut rows: Vec<&AbortCount> = aborts.iter().collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(b.path)));
    let texts: Vec<(String, String)> =
        rows.iter().map(|a| (a.count.to_string(), format!("{}: {}", a.path, a.reason))).collect();
    let rows = texts.iter().map(|(count, text)| (count.clone(), text.as_str()));
    counted_report(title, "Where: why", rows, 101, width)
}

/// A titled list of (count, text) rows, Locust's error-report layout: texts cut to the width.
fn counted_report<'a>(
    title: &str,
    column: &str,
    rows: impl Iterator<Item = (String, &'a str)>,
    locust_text_width: usize,
    width: Width,
) -> Vec<String> {
    let text_width = width.0.map_or(usize::MAX, |w| w.saturating_sub(19).max(20));
    let separator = format!("{}|{}", "-".repeat(18), "-".repeat(locust_text_width.min(text_width)));
    let mut lines = vec![title.to_string(), format!("{:<18} {column}", "# occurrences"), separator.clone()];
    lines.extend(rows.map(|(count, text)| format!("{count:<18} {}", fit(text, text_width))));
    lines.push(separator);
    lines
}

/// Whether the tables go to standard error (`--json` keeps standard output for the JSON).
static TABLES_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends the tables to standard error (`true`) or standard output.
pub fn tables_to_stderr(yes: bool) {
    TABLES_TO_STDERR.store(yes, Ordering::Relaxed);
}

pub(super) fn emit(lines: &[String]) {
    let mut out: Box<dyn Write> = match TABLES_TO_STDERR.load(Ordering::Relaxed) {
        true => Box::new(std::io::stderr().lock()),
        false => Box::new(std::io::stdout().lock()),
    };
    for line in lines {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(out);
    let _ = out.flush();
}

/// Lines of prose wrapped at `width` (continuations indented; a word longer than a line is
/// split), or as they are.
fn wrapped(lines: Vec<String>, width: Width) -> Vec<String> {
    let Some(width) = width.0 else { return lines };
    let width = width.max(20);
    let mut out = Vec::new();
    for line in lines {
        let mut current = String::new();
        for word in line.split(' ') {
            let mut word: Vec<char> = word.chars().collect();
            loop {
                let used = current.chars().count();
                let gap = usize::from(used > 0 && current != "  ");
                if used + gap + word.len() <= width {
                    if gap == 1 {
                        current.push(' ');
                    }
                    current.extend(word.iter());
                    break;
                }
                if used > 2 {
                    out.push(std::mem::replace(&mut current, "  ".to_string()));
                    continue;
                }
                // A word longer than a whole line: as much as fits, then the rest.
                let room = width - used;
                current.extend(word.drain(..room));
                out.push(std::mem::replace(&mut current, "  ".to_string()));
            }
        }
        out.push(current);
    }
    out
}

/// The periodic table: the users line, whole-run counts, current rates.
pub fn print_requests(users_line: String, totals: &Table, current: Option<(&Table, f64)>) {
    let width = Width::of_stdout();
    let mut lines = wrapped(vec![users_line], width);
    lines.extend(request_table(totals, current, 1.0, width));
    emit(&lines);
}

/// The final report: whole-run table, percentiles, errors, and what Locust does not show.
pub fn print_final(results: &Results) {
    let width = Width::of_stdout();
    let Results { plan, totals, endpoints, aborts, .. } = results;
    emit(&request_table(totals, None, results.elapsed_secs, width));
    emit(&percentile_table(totals, width));
    if plan.rate.is_some() {
        emit(&service_table(totals, width));
    }
    let errors = error_report(plan, endpoints, width);
    if !errors.is_empty() {
        emit(&errors);
    }
    if !aborts.is_empty() {
        emit(&abort_report("Aborted tasks", aborts, width));
    }
    if !results.skips.is_empty() {
        emit(&abort_report("Skipped tasks (a need not met; not failures)", results.skips, width));
    }
    emit(&wrapped(super::status::notes(results), width));
}

/// A message for the person watching: banners, the first of each error, stopping. On standard
/// error wrapped to the terminal, or in the `--logfile`; nothing below `--loglevel`.
pub fn notice(level: Level, text: &str) {
    if !log::enabled(level) || log::to_file(level, text) {
        return;
    }
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for line in wrapped(vec![text.to_string()], Width::of(libc::STDERR_FILENO)) {
        let _ = writeln!(err, "{line}");
    }
}

/// A message for the `--logfile` alone (what the console already shows another way).
pub fn log_only(level: Level, text: &str) {
    if log::enabled(level) {
        log::to_file(level, text);
    }
}

/// Lines printed after the tables (thresholds), wrapped to the terminal.
pub fn print_lines(lines: Vec<String>) {
    emit(&wrapped(lines, Width::of_stdout()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_locust() {
        // Column boundaries from Locust's own output (reference/locust-compat.md).
        let header = request_header(REQUEST_NAME_WIDTH);
        assert!(header.starts_with("Type     Name"));
        assert!(header
            .trim_end()
            .ends_with("# reqs      # fails |    Avg     Min     Max    Med |   req/s  failures/s"));
        assert_eq!(
            request_separator(REQUEST_NAME_WIDTH),
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
        let line = request_line("GET", "/fast", REQUEST_NAME_WIDTH, &stats, (22.49, 3.03));
        let expected_tail = "104   14(13.46%) |   4.27    4.00    6.00   4.00 |   22.49        3.03";
        assert!(line.starts_with("GET      /fast "), "{line}");
        assert!(line.ends_with(expected_tail), "{line}");
        assert_eq!(line.len(), request_header(REQUEST_NAME_WIDTH).len());
    }

    #[test]
    fn tables_fit_the_width_and_keep_locusts_layout_without_one() {
        let mut plan = Plan::empty(vec![None], std::time::Duration::from_secs(1));
        let name = "/api/a/very/long/path/that/names/a/resource/[id]/and/its/comments/newest/first";
        plan.endpoints.push(crate::config::Endpoint { method: "GET".into(), name: name.into() });
        let mut stats = EndpointStats::new(60_000_000);
        for us in [120, 4_500, 1_234_567] {
            stats.record(us, 10);
        }
        stats.record_failure(crate::failure::Failure::Status(503), 0);
        let endpoints = [stats];
        let table = Table::new(&plan, &endpoints, false);
        for width in [72, 80, 100, 120, 140] {
            let mut lines = request_table(&table, None, 1.0, Width(Some(width)));
            lines.extend(percentile_table(&table, Width(Some(width))));
            lines.extend(error_report(&plan, &endpoints, Width(Some(width))));
            for line in &lines {
                assert!(line.trim_end().chars().count() <= width, "{width}: {line:?}");
            }
            // The name is cut, not dropped, and the numbers are all there.
            assert!(lines.iter().any(|l| l.contains("GET /api/a/") || l.contains("/api/a/")), "{lines:?}");
            assert!(lines.iter().any(|l| l.contains("Aggregated") && l.contains("1235")), "{width}: {lines:?}");
        }
        // At 80 columns the percentile table keeps 50%, 90%, 95%, 99% and 100%.
        let narrow = percentile_table(&table, Width(Some(80)));
        for title in ["50%", "90%", "95%", "99%", "100%"] {
            assert!(narrow[1].contains(title), "{}", narrow[1]);
        }
        // No width: Locust's layout, the long name whole.
        let locust = request_table(&table, None, 1.0, Width(None));
        assert_eq!(locust[0], request_header(REQUEST_NAME_WIDTH));
        assert!(locust[2].contains(&plan.endpoints[0].name));
    }
}
