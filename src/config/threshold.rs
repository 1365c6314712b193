//! Pass/fail criteria of a run (`--threshold 'p99<250ms'`, `thresholds = [...]` in a scenario):
//! parsed and resolved to endpoints before the run, evaluated on the whole-run numbers at the
//! end (and, for criteria that can only get worse, as the run goes).

use std::fmt;

use crate::units::parse_duration;

/// What a threshold measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A response-time percentile, 0 < q ≤ 100 (`p50`, `p99`, `p99.9`).
    Percentile(f64),
    Avg,
    Min,
    Max,
    /// Failures / requests, as a fraction (written as a percentage or a fraction).
    FailRatio,
    Failures,
    Requests,
    /// Requests per second over the run.
    Rps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// One criterion, e.g. `GET /api/posts/[id] p95<100ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// As written, for the report.
    pub text: String,
    /// `None`: the aggregate of all endpoints.
    pub endpoint: Option<EndpointFilter>,
    pub metric: Metric,
    pub op: Op,
    /// Microseconds for times, a fraction for fail_ratio, a count or a rate otherwise.
    pub value: f64,
}

/// Which endpoints a threshold covers: a name, with or without its method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointFilter {
    pub method: Option<String>,
    pub name: String,
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

impl Threshold {
    /// Parses `[METHOD] [NAME] METRIC OP VALUE`: the criterion is the end of the text
    /// (`p99<250ms`, `fail_ratio < 1%`, `rps>1000`), what comes before it names the endpoint.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let trimmed = text.trim();
        let op_at = trimmed.rfind(['<', '>']).ok_or_else(|| {
            format!("{text:?}: expected METRIC<VALUE or METRIC>VALUE, e.g. p99<250ms, fail_ratio<1%, rps>1000")
        })?;
        let (op, value_text) = match trimmed[op_at..].strip_prefix(['<', '>']).map(|rest| rest.strip_prefix('=')) {
            Some(Some(rest)) => (if trimmed.as_bytes()[op_at] == b'<' { Op::Le } else { Op::Ge }, rest),
            _ => (if trimmed.as_bytes()[op_at] == b'<' { Op::Lt } else { Op::Gt }, &trimmed[op_at + 1..]),
        };
        let before = trimmed[..op_at].trim_end();
        let (endpoint_text, metric_text) = match before.rfind(char::is_whitespace) {
            Some(space) => (before[..space].trim(), &before[space + 1..]),
            None => ("", before),
        };
        let metric = parse_metric(metric_text).map_err(|e| format!("{text:?}: {e}"))?;
        let value = parse_value(metric, value_text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        let endpoint = (!endpoint_text.is_empty()).then(|| match endpoint_text.split_once(' ') {
            Some((method, name)) if METHODS.contains(&method) => {
                EndpointFilter { method: Some(method.to_string()), name: name.trim().to_string() }
            }
            _ => EndpointFilter { method: None, name: endpoint_text.to_string() },
        });
        Ok(Threshold { text: trimmed.to_string(), endpoint, metric, op, value })
    }

    pub fn holds(&self, measured: f64) -> bool {
        match self.op {
            Op::Lt => measured < self.value,
            Op::Le => measured <= self.value,
            Op::Gt => measured > self.value,
            Op::Ge => measured >= self.value,
        }
    }

    /// Whether a value that broke the threshold during the run can never come back: counts and
    /// the maximum only grow, so `failures<N` or `max<D` are lost for good once crossed.
    pub fn is_final_when_broken(&self) -> bool {
        matches!((self.metric, self.op), (Metric::Failures | Metric::Requests | Metric::Max, Op::Lt | Op::Le))
    }

    /// A measured value in the threshold's unit, for the report.
    pub fn show(&self, measured: f64) -> String {
        match self.metric {
            Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max => format!("{:.2} ms", measured / 1000.0),
            Metric::FailRatio => format!("{:.2}%", measured * 100.0),
            Metric::Rps => format!("{measured:.2}/s"),
            Metric::Failures | Metric::Requests => format!("{measured:.0}"),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_metric(text: &str) -> Result<Metric, String> {
    Ok(match text {
        "avg" | "mean" => Metric::Avg,
        "min" => Metric::Min,
        "max" => Metric::Max,
        "med" | "median" => Metric::Percentile(50.0),
        "fail_ratio" | "failure_ratio" => Metric::FailRatio,
        "failures" | "fails" => Metric::Failures,
        "requests" | "reqs" => Metric::Requests,
        "rps" | "req/s" => Metric::Rps,
        p if p.starts_with('p') => match p[1..].parse::<f64>() {
            Ok(q) if q > 0.0 && q <= 100.0 => Metric::Percentile(q),
            _ => return Err(format!("percentile {p:?}: expected p1 to p100, e.g. p99 or p99.9")),
        },
        other => {
            return Err(format!(
                "unknown metric {other:?}; expected pNN, avg, min, max, med, fail_ratio, failures, requests or rps"
            ))
        }
    })
}

fn parse_value(metric: Metric, text: &str) -> Result<f64, String> {
    match metric {
        Metric::Percentile(_) | Metric::Avg | Metric::Min | Metric::Max => {
            // A bare number is milliseconds here, as in the tables.
            let duration = match text.parse::<f64>() {
                Ok(ms) => crate::units::duration_from_secs(ms / 1000.0)
                    .ok_or_else(|| format!("bad time {text:?}: expected milliseconds from 0 to 100 years"))?,
                Err(_) => parse_duration(text).map_err(|e| e.to_string())?,
            };
            Ok(duration.as_secs_f64() * 1e6)
        }
        Metric::FailRatio => match text.strip_suffix('%') {
            Some(percent) => {
                percent.trim().parse::<f64>().map(|p| p / 100.0).map_err(|_| format!("bad percentage {text:?}"))
            }
            None => text.parse::<f64>().map_err(|_| format!("bad ratio {text:?}; expected e.g. 1% or 0.01")),
        },
        Metric::Failures | Metric::Requests | Metric::Rps => {
            let number = text.strip_suffix("/s").unwrap_or(text);
            number.parse::<f64>().map_err(|_| format!("bad number {text:?}"))
        }
    }
    .and_then(|v| if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(format!("bad value {text:?}")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics_values_and_endpoints() {
        let t = Threshold::parse("p99<250ms").unwrap();
        assert_eq!((t.metric, t.op, t.value, t.endpoint.clone()), (Metric::Percentile(99.0), Op::Lt, 250_000.0, None));
        let t = Threshold::parse("fail_ratio < 1%").unwrap();
        assert_eq!((t.metric, t.value), (Metric::FailRatio, 0.01));
        let t = Threshold::parse("rps>=1000").unwrap();
        assert_eq!((t.metric, t.op, t.value), (Metric::Rps, Op::Ge, 1000.0));
        let t = Threshold::parse("GET /api/posts/[id] p99.9<1.5").unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.9));
        assert_eq!(t.value, 1500.0);
        assert_eq!(t.endpoint, Some(EndpointFilter { method: Some("GET".into()), name: "/api/posts/[id]".into() }));
        let t = Threshold::parse("/api/echo (pay) max<2s").unwrap();
        assert_eq!(t.endpoint, Some(EndpointFilter { method: None, name: "/api/echo (pay)".into() }));
        assert!(Threshold::parse("failures<10").unwrap().is_final_when_broken());
        assert!(!Threshold::parse("p99<10ms").unwrap().is_final_when_broken());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in ["p99", "p0<1ms", "p101<1ms", "latency<1ms", "p99<fast", "fail_ratio<lots", "rps>-5"]
            .into_iter()
            // Times past any clock, a bare one or with a unit: refused, not a panic.
            .chain(["p95<inf", "p95<1e300", "avg<-1", "max<1e300s"])
        {
            assert!(Threshold::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
