//! Thresholds evaluated on whole-run numbers: the PASS/FAIL block of the final report, and the
//! early check of criteria that can only get worse (for `--abort-on-threshold`).

use crate::config::{Metric, Plan, Threshold};
use crate::stats::EndpointStats;

/// One threshold's outcome.
pub struct Verdict<'a> {
    pub threshold: &'a Threshold,
    /// `None` when there was nothing to measure (no requests for a time metric).
    pub measured: Option<f64>,
    pub pass: bool,
}

/// The endpoints a threshold covers, merged (all of them when it names none).
fn covered(plan: &Plan, threshold: &Threshold, endpoints: &[EndpointStats]) -> EndpointStats {
    let mut merged = EndpointStats::new(plan.histogram_max_us());
    for (endpoint, stats) in plan.endpoints.iter().zip(endpoints) {
        let matches = threshold.endpoint.as_ref().is_none_or(|filter| {
            filter.name == endpoint.name && filter.method.as_ref().is_none_or(|m| *m == endpoint.method)
        });
        if matches {
            merged.merge(stats);
        }
    }
    merged
}

/// The value of `metric` over `stats` (`elapsed_secs` for rates); `None` for a time metric with
/// no requests.
fn measure(metric: Metric, stats: &EndpointStats, elapsed_secs: f64) -> Option<f64> {
    let timed = stats.count > 0;
    Some(match metric {
        Metric::Percentile(q) if timed => stats.quantile_us(q / 100.0) as f64,
        Metric::Avg if timed => stats.mean_us(),
        Metric::Min if timed => stats.min_us as f64,
        Metric::Max if timed => stats.max_us as f64,
        Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max => return None,
        Metric::FailRatio => stats.fail_ratio(),
        Metric::Failures => stats.failures as f64,
        Metric::Requests => stats.count as f64,
        Metric::Rps => stats.count as f64 / elapsed_secs.max(1e-9),
    })
}

/// Every threshold of the plan against whole-run `endpoints`. A time threshold with no
/// requests fails: nothing proves it held.
pub fn evaluate<'a>(plan: &'a Plan, endpoints: &[EndpointStats], elapsed_secs: f64) -> Vec<Verdict<'a>> {
    plan.thresholds
        .iter()
        .map(|threshold| {
            let stats = covered(plan, threshold, endpoints);
            let measured = measure(threshold.metric, &stats, elapsed_secs);
            Verdict { threshold, measured, pass: measured.is_some_and(|m| threshold.holds(m)) }
        })
        .collect()
}

/// A threshold already lost for good (see `Threshold::is_final_when_broken`), if any.
pub fn lost_for_good<'a>(plan: &'a Plan, endpoints: &[EndpointStats]) -> Option<Verdict<'a>> {
    plan.thresholds.iter().filter(|t| t.is_final_when_broken()).find_map(|threshold| {
        let stats = covered(plan, threshold, endpoints);
        let measured = measure(threshold.metric, &stats, 1.0)?;
        (!threshold.holds(measured)).then_some(Verdict { threshold, measured: Some(measured), pass: false })
    })
}

/// The report block: one line per threshold, then the result.
pub fn lines(verdicts: &[Verdict]) -> Vec<String> {
    let width = verdicts.iter().map(|v| v.threshold.text.len()).max().unwrap_or(0).max(9);
    let mut lines = vec!["Thresholds".to_string(), "-".repeat(width + 30)];
    for verdict in verdicts {
        let measured = match verdict.measured {
            Some(value) => verdict.threshold.show(value),
            None => "no requests".to_string(),
        };
        let mark = if verdict.pass { "PASS" } else { "FAIL" };
        lines.push(format!(" {mark}  {:<width$}  measured {measured}", verdict.threshold.text));
    }
    lines.push("-".repeat(width + 30));
    let failed = verdicts.iter().filter(|v| !v.pass).count();
    lines.push(if failed == 0 {
        format!("Result: PASS ({} of {} thresholds held)", verdicts.len(), verdicts.len())
    } else {
        format!("Result: FAIL ({failed} of {} thresholds lost)", verdicts.len())
    });
    lines
}
