//! The numbers every report reads: endpoint rows sorted as Locust sorts them with the
//! Aggregated row, the whole run's results, the users seen, and the summary handed back to the
//! caller.

use std::time::Duration;

use crate::config::Plan;
use crate::stats::{AbortCount, Arrivals, EndpointStats};

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
    pub(super) fn new(plan: &'a Plan, endpoints: &'a [EndpointStats], include_empty: bool) -> Table<'a> {
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
/// table sorted from them, aborted tasks, the open model's arrivals, the users, and the seconds
/// they cover.
pub struct Results<'a> {
    pub plan: &'a Plan,
    pub endpoints: &'a [EndpointStats],
    pub totals: Table<'a>,
    pub aborts: &'a [AbortCount],
    /// Tasks skipped for a need not met (`needs`), by place and reason.
    pub skips: &'a [AbortCount],
    pub arrivals: &'a Arrivals,
    /// The seconds the numbers cover: the whole run, or (`--reset-stats`) what followed the reset.
    pub elapsed_secs: f64,
    /// The whole run's seconds so far, and when the statistics were reset (`--reset-stats`).
    pub run_secs: f64,
    pub reset_at: Option<f64>,
    pub users: UsersSeen,
    /// The IO drivers the workers run (normally one).
    pub drivers: String,
}

/// Users running: in the last interval, and the most in any interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsersSeen {
    pub last: u64,
    pub peak: u64,
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
    /// Tasks skipped for a need not met, by place and reason.
    pub skips: Vec<AbortCount>,
    /// Thresholds lost (out of `plan.thresholds`).
    pub thresholds_lost: usize,
    /// Open model: starts due, late, dropped, and their lag.
    pub arrivals: Arrivals,
    pub users: UsersSeen,
}
