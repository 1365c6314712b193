//! `swarmer compare BASELINE CANDIDATE`: two `--json-file` summaries side by side, per endpoint
//! and aggregated, with the candidate's ratio to the baseline; the candidate fails when a judged
//! metric is worse beyond the tolerance. A CI regression gate: exit 0 within tolerance, 1
//! worse, 2 for files that are not summaries or a metric that does not exist.
//!
//! Worse means: requests/s lower than the baseline's × (1 − tolerance); a latency metric (µs,
//! exact from the HDR histograms) higher than × (1 + tolerance); the failure ratio higher than
//! × (1 + tolerance) and by at least 0.1 percentage point. An endpoint the baseline has and the
//! candidate lacks is worse; one only the candidate has is shown, not judged.

use std::fmt::Write;
use std::path::Path;

use anyhow::{bail, Result};

use super::json::{read_summary, EndpointSummary, Latency, SummaryFile};

/// Metrics `--metric` may name.
const METRICS: [&str; 15] = [
    "rps",
    "fail_ratio",
    "p50",
    "p66",
    "p75",
    "p80",
    "p90",
    "p95",
    "p98",
    "p99",
    "p99.9",
    "p99.99",
    "max",
    "mean",
    "min",
];

/// The verdict and the text to print.
pub struct Comparison {
    pub text: String,
    pub worse: Vec<String>,
}

/// Reads both files and compares them.
pub fn compare_files(baseline: &Path, candidate: &Path, tolerance: f64, metrics: &[String]) -> Result<Comparison> {
    for metric in metrics {
        if !METRICS.contains(&metric.as_str()) && !METRICS.contains(&metric.replace('_', ".").as_str()) {
            bail!("--metric {metric}: expected one of {}", METRICS.join(", "));
        }
    }
    let (a, b) = (read_summary(baseline)?, read_summary(candidate)?);
    let mut text = String::new();
    for (label, path, summary) in [("baseline ", baseline, &a), ("candidate", candidate, &b)] {
        let run = &summary.run;
        let _ = writeln!(
            text,
            "{label} {}: {}, {:.2}s measured, {} requests, seed {}",
            path.display(),
            run.started_utc,
            run.measured_seconds,
            summary.aggregated.requests,
            run.seed
        );
    }
    for line in differences(&a, &b) {
        let _ = writeln!(text, "  differs: {line}");
    }
    let mut worse = Vec::new();
    let width =
        a.endpoints.iter().chain(&b.endpoints).map(|e| label(e).chars().count()).max().unwrap_or(10).clamp(10, 60);
    let _ =
        writeln!(text, "\n{:<width$}  {:<10} {:>12} {:>12} {:>8}", "Name", "Metric", "baseline", "candidate", "ratio");
    let pairs = a
        .endpoints
        .iter()
        .map(|e| (label(e), Some(e), find(&b, e)))
        .chain(b.endpoints.iter().filter(|e| find(&a, e).is_none()).map(|e| (label(e), None, Some(e))));
    for (name, before, after) in pairs.chain([("Aggregated".to_string(), Some(&a.aggregated), Some(&b.aggregated))]) {
        match (before, after) {
            (Some(before), Some(after)) => {
                rows(&mut text, &mut worse, &name, width, before, after, tolerance, metrics);
            }
            (Some(_), None) => {
                let _ = writeln!(text, "{name:<width$}  no requests in the candidate: worse");
                worse.push(format!("{name}: no requests in the candidate"));
            }
            _ => {
                let _ = writeln!(text, "{name:<width$}  only in the candidate (not judged)");
            }
        }
    }
    let judged = metrics.join(", ");
    let percent = tolerance * 100.0;
    match worse.is_empty() {
        true => {
            let _ = writeln!(text, "\nwithin tolerance ({percent:.1}%) on {judged}");
        }
        false => {
            let _ = writeln!(text, "\nworse beyond tolerance ({percent:.1}%): {}", worse.join("; "));
        }
    }
    Ok(Comparison { text, worse })
}

fn label(endpoint: &EndpointSummary) -> String {
    format!("{} {}", endpoint.method, endpoint.name)
}

fn find<'a>(summary: &'a SummaryFile, endpoint: &EndpointSummary) -> Option<&'a EndpointSummary> {
    summary.endpoints.iter().find(|e| e.method == endpoint.method && e.name == endpoint.name)
}

/// What differs between the two runs' setups (what makes their numbers hard to compare).
fn differences(a: &SummaryFile, b: &SummaryFile) -> Vec<String> {
    let (x, y) = (&a.run, &b.run);
    let fields: [(&str, String, String); 10] = [
        ("swarmer", x.swarmer_version.clone(), y.swarmer_version.clone()),
        ("target", x.target.clone(), y.target.clone()),
        ("host", x.hostname.clone(), y.hostname.clone()),
        ("kernel", x.kernel.clone(), y.kernel.clone()),
        ("cpu", x.cpu_model.clone(), y.cpu_model.clone()),
        ("threads", x.threads.to_string(), y.threads.to_string()),
        ("io", x.io.clone(), y.io.clone()),
        ("model", x.model.clone(), y.model.clone()),
        ("users", x.users.to_string(), y.users.to_string()),
        ("rate", format!("{:?}", x.rate), format!("{:?}", y.rate)),
    ];
    fields.into_iter().filter(|(_, p, q)| p != q).map(|(name, p, q)| format!("{name}: {p} → {q}")).collect()
}

/// One endpoint's rows: requests, then each metric with its ratio and verdict.
#[allow(clippy::too_many_arguments)]
fn rows(
    text: &mut String,
    worse: &mut Vec<String>,
    name: &str,
    width: usize,
    a: &EndpointSummary,
    b: &EndpointSummary,
    tolerance: f64,
    metrics: &[String],
) {
    let _ = writeln!(text, "{name:<width$}  {:<10} {:>12} {:>12}", "requests", a.requests, b.requests);
    for metric in metrics {
        let Some((before, after, shown)) = values(metric, a, b) else {
            continue;
        };
        let ratio = if before > 0.0 { format!("{:.3}", after / before) } else { "-".into() };
        let bad = is_worse(metric, before, after, tolerance);
        let mark = if bad { "  worse" } else { "" };
        let _ = writeln!(text, "{:<width$}  {:<10} {:>12} {:>12} {ratio:>8}{mark}", "", shown.0, shown.1, shown.2);
        if bad {
            worse.push(format!("{name} {} {} → {}", shown.0, shown.1, shown.2));
        }
    }
}

/// A metric's two values (as judged) and how to show them: (title, baseline, candidate).
fn values(metric: &str, a: &EndpointSummary, b: &EndpointSummary) -> Option<(f64, f64, (String, String, String))> {
    match metric {
        "rps" => {
            let (p, q) = (a.requests_per_second, b.requests_per_second);
            Some((p, q, ("req/s".into(), format!("{p:.2}"), format!("{q:.2}"))))
        }
        "fail_ratio" => {
            let (p, q) = (a.fail_ratio, b.fail_ratio);
            Some((p, q, ("failures".into(), format!("{:.2}%", p * 100.0), format!("{:.2}%", q * 100.0))))
        }
        _ => {
            let get = |l: &Option<Latency>| l.as_ref().and_then(|l| l.get(metric));
            let (p, q) = (get(&a.latency_us)?, get(&b.latency_us)?);
            Some((p, q, (format!("{metric} ms"), format!("{:.3}", p / 1000.0), format!("{:.3}", q / 1000.0))))
        }
    }
}

fn is_worse(metric: &str, before: f64, after: f64, tolerance: f64) -> bool {
    match metric {
        "rps" => after < before * (1.0 - tolerance),
        "fail_ratio" => after > before * (1.0 + tolerance) && after - before >= 0.001,
        _ => before > 0.0 && after > before * (1.0 + tolerance),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worse_is_beyond_the_tolerance_in_the_bad_direction() {
        assert!(is_worse("rps", 1000.0, 899.0, 0.1));
        assert!(!is_worse("rps", 1000.0, 901.0, 0.1));
        assert!(!is_worse("rps", 1000.0, 5000.0, 0.1));
        assert!(is_worse("p99", 1000.0, 1101.0, 0.1));
        assert!(!is_worse("p99", 1000.0, 500.0, 0.1));
        // A failure ratio must grow by the tolerance and by 0.1 point.
        assert!(!is_worse("fail_ratio", 0.0, 0.0005, 0.1));
        assert!(is_worse("fail_ratio", 0.0, 0.002, 0.1));
        assert!(!is_worse("fail_ratio", 0.10, 0.105, 0.1));
    }
}
