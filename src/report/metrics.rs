//! OpenMetrics (Prometheus) text of a run in progress, for `--metrics-port` and the web UI's
//! `/metrics`. The reporter adds each interval as it closes; a scrape renders what has been
//! added. Counters only grow, for the life of the process: a statistics reset (`--reset-stats`,
//! the web UI's) and the web UI's next run keep adding to them, as Prometheus expects of a
//! counter.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `swarmer_requests_total`, `swarmer_response_bytes_total`, `swarmer_cancelled_total` | counter | method, name |
//! | `swarmer_failures_total` | counter | method, name, kind |
//! | `swarmer_response_time_seconds` | histogram (fixed buckets, 100 µs … 30 s) | method, name |
//! | `swarmer_response_time_window_seconds` | summary: exact quantiles over the last 10 s | method, name |
//! | `swarmer_users`, `swarmer_current_rps`, `swarmer_current_failures_per_second` | gauge | |
//! | `swarmer_starts_due_total`, `…_late_total`, `…_dropped_total`; `swarmer_target_rate` | counter; gauge | (open model) |
//!
//! Bucket counts come from the HDR histograms at their resolution (3 significant digits): a
//! response within 0.1 % of a bucket's bound may be counted on either side of it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::config::Plan;
use crate::failure::FailureKind;
use crate::stats::EndpointStats;

/// The histogram's upper bounds, µs (then +Inf).
const BUCKETS_US: [u64; 17] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

/// The summary's quantiles over the window.
const WINDOW_QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// The content type of each text format.
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    series: BTreeMap<(String, String), Series>,
    users: u64,
    current_rps: f64,
    current_fps: f64,
    /// Open model: the rate wanted, and the starts due, late and dropped.
    open: Option<(f64, [u64; 3])>,
    run: Option<(String, String)>,
}

#[derive(Default)]
struct Series {
    requests: u64,
    failures: [u64; FailureKind::ALL.len()],
    bytes: u64,
    cancelled: u64,
    /// Requests at or below each of `BUCKETS_US` (not cumulative; the text is).
    buckets: [u64; BUCKETS_US.len()],
    sum_us: u64,
    /// `WINDOW_QUANTILES` over the window, µs; `None` with no request in it.
    window: Option<[u64; WINDOW_QUANTILES.len()]>,
}

/// One interval as the reporter closes it.
pub struct Tick<'a> {
    pub plan: &'a Plan,
    /// This interval's numbers per endpoint (plan order).
    pub interval: &'a [EndpointStats],
    /// The window's (the last 10 s) per endpoint, and its seconds.
    pub window: &'a [EndpointStats],
    pub window_secs: f64,
    pub users: u64,
    /// Open model: starts due, late and dropped in the interval; and the rate wanted now.
    pub starts: [u64; 3],
    pub target_rate: Option<f64>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Adds an interval.
    pub fn add(&self, tick: &Tick) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let plan = tick.plan;
        let model = if plan.rate.is_some() { "open" } else { "closed" };
        state.run = Some((plan.origin.trim().to_string(), model.to_string()));
        let (mut count, mut failures) = (0, 0);
        for ((endpoint, part), window) in plan.endpoints.iter().zip(tick.interval).zip(tick.window) {
            count += window.count;
            failures += window.failures;
            if part.count == 0 && part.cancelled == 0 && window.count == 0 {
                if let Some(series) = state.series.get_mut(&(endpoint.method.clone(), endpoint.name.clone())) {
                    series.window = None;
                }
                continue;
            }
            let series = state.series.entry((endpoint.method.clone(), endpoint.name.clone())).or_default();
            series.add(part);
            series.window = (window.count > 0).then(|| WINDOW_QUANTILES.map(|q| window.quantile_us(q)));
        }
        state.users = tick.users;
        state.current_rps = count as f64 / tick.window_secs.max(1e-9);
        state.current_fps = failures as f64 / tick.window_secs.max(1e-9);
        if let Some(rate) = tick.target_rate {
            let (_, totals) = state.open.get_or_insert((rate, [0; 3]));
            for (total, add) in totals.iter_mut().zip(tick.starts) {
                *total += add;
            }
            state.open.as_mut().expect("just set").0 = rate;
        }
    }

    /// The text a scrape gets: OpenMetrics 1.0 (`openmetrics`) or Prometheus' 0.0.4 format.
    pub fn render(&self, openmetrics: bool) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Text { out: String::with_capacity(4096), openmetrics };
        if let Some((target, model)) = &state.run {
            out.family("swarmer_run", "gauge", "The run: swarmer's version, what it tests, its model", None);
            let labels = [("version", env!("CARGO_PKG_VERSION")), ("target", target.as_str()), ("model", model)];
            out.sample("swarmer_run", &labels, "1");
        }
        out.family("swarmer_users", "gauge", "Users running", None);
        out.sample("swarmer_users", &[], &state.users.to_string());
        out.family("swarmer_current_rps", "gauge", "Requests per second over the last 10 s", None);
        out.sample("swarmer_current_rps", &[], &fmt_f64(state.current_rps));
        out.family("swarmer_current_failures_per_second", "gauge", "Failures per second over the last 10 s", None);
        out.sample("swarmer_current_failures_per_second", &[], &fmt_f64(state.current_fps));
        state.counters(&mut out);
        state.histograms(&mut out);
        if let Some((rate, [due, late, dropped])) = state.open {
            out.family("swarmer_target_rate", "gauge", "Open model: task starts per second wanted", None);
            out.sample("swarmer_target_rate", &[], &fmt_f64(rate));
            for (name, help, value) in [
                ("swarmer_starts_due", "Open model: task starts whose intended time came", due),
                ("swarmer_starts_late", "Open model: starts more than 1 ms behind their intended time", late),
                ("swarmer_starts_dropped", "Open model: starts dropped, every user busy", dropped),
            ] {
                out.family(name, "counter", help, None);
                out.sample(&format!("{name}_total"), &[], &value.to_string());
            }
        }
        if openmetrics {
            out.out.push_str("# EOF\n");
        }
        out.out
    }
}

impl Series {
    fn add(&mut self, stats: &EndpointStats) {
        self.requests += stats.count;
        self.bytes += stats.bytes;
        self.cancelled += stats.cancelled;
        self.sum_us += stats.sum_us;
        for error in &stats.errors {
            let kind = FailureKind::ALL.iter().position(|k| *k == error.failure.kind()).expect("every kind listed");
            self.failures[kind] += error.count;
        }
        for value in stats.hist.iter_recorded() {
            let us = stats.hist.median_equivalent(value.value_iterated_to());
            if let Some(bucket) = BUCKETS_US.iter().position(|&bound| us <= bound) {
                self.buckets[bucket] += value.count_since_last_iteration();
            }
        }
    }
}

/// A counter family: its name, its help, its value in a series.
type CounterFamily = (&'static str, &'static str, fn(&Series) -> u64);

impl State {
    fn counters(&self, out: &mut Text) {
        let families: [CounterFamily; 3] = [
            ("swarmer_requests", "Requests completed (failures included)", |s| s.requests),
            ("swarmer_response_bytes", "Response payload bytes", |s| s.bytes),
            ("swarmer_cancelled", "Requests in flight when a run stopped", |s| s.cancelled),
        ];
        for (name, help, value) in families {
            out.family(name, "counter", help, None);
            for ((method, endpoint), series) in &self.series {
                out.sample(
                    &format!("{name}_total"),
                    &[("method", method), ("name", endpoint)],
                    &value(series).to_string(),
                );
            }
        }
        out.family("swarmer_failures", "counter", "Failed requests, by kind of failure", None);
        for ((method, endpoint), series) in &self.series {
            for (kind, count) in FailureKind::ALL.iter().zip(series.failures) {
                let labels = [("method", method.as_str()), ("name", endpoint), ("kind", kind.name())];
                out.sample("swarmer_failures_total", &labels, &count.to_string());
            }
        }
    }

    fn histograms(&self, out: &mut Text) {
        let name = "swarmer_response_time_seconds";
        out.family(name, "histogram", "Response times", Some("seconds"));
        for ((method, endpoint), series) in &self.series {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_US.iter().zip(series.buckets) {
                cumulative += count;
                let le = fmt_f64(*bound as f64 / 1e6);
                let labels = [("method", method.as_str()), ("name", endpoint), ("le", &le)];
                out.sample(&format!("{name}_bucket"), &labels, &cumulative.to_string());
            }
            let labels = [("method", method.as_str()), ("name", endpoint), ("le", "+Inf")];
            out.sample(&format!("{name}_bucket"), &labels, &series.requests.to_string());
            let labels = [("method", method.as_str()), ("name", endpoint)];
            out.sample(&format!("{name}_count"), &labels, &series.requests.to_string());
            out.sample(&format!("{name}_sum"), &labels, &fmt_f64(series.sum_us as f64 / 1e6));
        }
        let name = "swarmer_response_time_window_seconds";
        out.family(name, "summary", "Response times: exact quantiles over the last 10 s", Some("seconds"));
        for ((method, endpoint), series) in &self.series {
            for (q, us) in WINDOW_QUANTILES.iter().zip(series.window.iter().flatten()) {
                let quantile = fmt_f64(*q);
                let labels = [("method", method.as_str()), ("name", endpoint), ("quantile", &quantile)];
                out.sample(name, &labels, &fmt_f64(*us as f64 / 1e6));
            }
            let labels = [("method", method.as_str()), ("name", endpoint)];
            out.sample(&format!("{name}_count"), &labels, &series.requests.to_string());
            out.sample(&format!("{name}_sum"), &labels, &fmt_f64(series.sum_us as f64 / 1e6));
        }
    }
}

/// The text being written, in one of the two formats.
struct Text {
    out: String,
    openmetrics: bool,
}

impl Text {
    /// A family's metadata. OpenMetrics names a counter's family without `_total`; the 0.0.4
    /// format names it as its samples.
    fn family(&mut self, name: &str, kind: &str, help: &str, unit: Option<&str>) {
        let name = match (self.openmetrics, kind) {
            (false, "counter") => format!("{name}_total"),
            _ => name.to_string(),
        };
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        if let Some(unit) = unit.filter(|_| self.openmetrics) {
            let _ = writeln!(self.out, "# UNIT {name} {unit}");
        }
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(text));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A float as both formats want it (`1`, `0.25`, `1e-4` style is allowed but kept plain).
fn fmt_f64(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "NaN".into()
    }
}

/// Whether a request's `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let mut plan = Plan::empty(vec![None], std::time::Duration::from_secs(1));
        plan.endpoints.push(crate::config::Endpoint { method: "GET".into(), name: "/a \"b\"".into() });
        plan
    }

    #[test]
    fn counters_grow_and_buckets_are_cumulative() {
        let plan = plan();
        let metrics = Metrics::new();
        let mut stats = EndpointStats::new(60_000_000);
        for us in [50, 300, 300, 2_000_000] {
            stats.record(us, 10);
        }
        stats.record_failure(crate::failure::Failure::Status(500), 0);
        let tick = Tick {
            plan: &plan,
            interval: std::slice::from_ref(&stats),
            window: std::slice::from_ref(&stats),
            window_secs: 1.0,
            users: 3,
            starts: [0; 3],
            target_rate: None,
        };
        metrics.add(&tick);
        metrics.add(&tick);
        let text = metrics.render(true);
        let labels = r#"method="GET",name="/a \"b\"""#;
        assert!(text.contains(&format!("swarmer_requests_total{{{labels}}} 8\n")), "{text}");
        assert!(text.contains(&format!("swarmer_failures_total{{{labels},kind=\"status\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("swarmer_response_time_seconds_bucket{{{labels},le=\"0.0001\"}} 2\n")));
        assert!(text.contains(&format!("swarmer_response_time_seconds_bucket{{{labels},le=\"0.0005\"}} 6\n")));
        assert!(text.contains(&format!("swarmer_response_time_seconds_bucket{{{labels},le=\"+Inf\"}} 8\n")));
        assert!(text.contains("# TYPE swarmer_requests counter\n") && text.ends_with("# EOF\n"));
        assert!(text.contains("swarmer_users 3\n") && text.contains("swarmer_current_rps 4\n"), "{text}");
        let plain = metrics.render(false);
        assert!(plain.contains("# TYPE swarmer_requests_total counter\n") && !plain.contains("# EOF"));
    }
}
