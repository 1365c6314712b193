//! The lines around the tables: the banner a run starts with, the users above each periodic
//! table, the ramp complete, each kind of error the first time it happens, and after the final
//! tables what Locust does not say (cancelled and clamped requests, failures by kind, the open
//! model's schedule, the reset) and the run's summary line. When no request completed, why.

use std::time::Duration;

use super::{Results, Summary};
use crate::config::{Plan, Shape};
use crate::failure::{Failure, FailureKind};
use crate::units::HumanDuration;

/// What a run is about to do (stderr): what is tested, the load, the threads, how long; and
/// for a closed-model ramp, Locust's "Ramping to N users".
pub fn banner(plan: &Plan) -> Vec<String> {
    let load = match (plan.rate, &plan.shape) {
        (Some(rate), None) => format!("{} task starts/s (up to {} users)", rate_text(rate), plan.users),
        (Some(_), Some(shape)) => format!("the rate of {} (up to {} users)", shape_text(shape), plan.users),
        (None, Some(shape)) => format!("the users of {} (peak {})", shape_text(shape), plan.users),
        (None, None) => format!("{} user{}", plan.users, if plan.users == 1 { "" } else { "s" }),
    };
    let length = match (plan.run_time, plan.iterations) {
        (Some(t), Some(n)) => format!("{n} tasks per user, at most {}", HumanDuration(t)),
        (None, Some(n)) => format!("{n} tasks per user"),
        (Some(t), None) => HumanDuration(t).to_string(),
        (None, None) => "until Ctrl-C".to_string(),
    };
    let threads = plan.partition_count();
    let mut lines =
        vec![format!("swarmer: {} with {load} on {threads} worker thread(s), {length}", plan.origin.trim())];
    if plan.rate.is_none() && plan.shape.is_none() && plan.users > 1 {
        lines.push(format!("Ramping to {} users at {}/s", plan.users, rate_text(plan.spawn_rate)));
    }
    lines
}

fn rate_text(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

fn shape_text(shape: &Shape) -> String {
    match shape {
        Shape::Stages(stages) => format!("{} stages", stages.len()),
        Shape::Step { every, users } => format!("a staircase (+{users} every {})", HumanDuration(*every)),
        Shape::Spike => "a spike".into(),
        Shape::Sine { period } => format!("a sine (period {})", HumanDuration(*period)),
        Shape::Gaussian => "a bell curve".into(),
    }
}

/// The line above each periodic table: users running, and where the run is.
pub fn users_line(plan: &Plan, users: u64, secs: f64) -> String {
    let last_start = plan.start_offset(plan.users.saturating_sub(1)).as_secs_f64();
    let ramping = plan.rate.is_none() && plan.shape.is_none() && users < plan.users && secs <= last_start + 1.0;
    let context = if plan.rate.is_some() {
        format!(" in the pool (at most {})", plan.users)
    } else if ramping {
        format!(" of {} (starting {}/s)", plan.users, rate_text(plan.spawn_rate))
    } else {
        String::new()
    };
    let time = match plan.run_time {
        Some(t) => format!("{} of {}", HumanDuration(Duration::from_secs(secs.round() as u64)), HumanDuration(t)),
        None => HumanDuration(Duration::from_secs(secs.round() as u64)).to_string(),
    };
    format!("Users: {users}{context} · {time}")
}

/// Locust's "All users spawned": the closed model's ramp is complete, users by type.
pub fn all_started(plan: &Plan, last_start_secs: f64) -> String {
    let mut counts = vec![0u64; plan.user_types.len()];
    for user in 0..plan.users {
        counts[plan.user_type_of(user)] += 1;
    }
    let by_type: Vec<String> =
        plan.user_types.iter().zip(&counts).map(|(t, count)| format!("{} {count}", t.name)).collect();
    format!("All {} users started after {last_start_secs:.1}s: {}", plan.users, by_type.join(", "))
}

/// A kind of error the first time it happens (stderr): all occurrences are counted in the
/// tables and the error report.
pub fn first_error(plan: &Plan, endpoint: usize, failure: Failure, secs: f64) -> String {
    let e = &plan.endpoints[endpoint];
    format!("[{secs:.0}s] {} {}: {failure} (first seen; every occurrence is in the error report)", e.method, e.name)
}

/// Why a run in which no request completed is not a success.
pub fn nothing_completed(plan: &Plan, summary: &Summary) -> String {
    let elapsed = format!("{:.1}s", summary.elapsed.as_secs_f64());
    if summary.cancelled == 0 {
        return format!("no request was sent in {elapsed}; the run ended before any user sent one");
    }
    format!(
        "no request completed in {elapsed}: {} were still in flight when the run stopped, for up to {elapsed} \
         with no response (the {} timeout, --timeout, had not fired)",
        summary.cancelled,
        HumanDuration(plan.max_timeout)
    )
}

/// The lines after the final tables.
pub fn notes(results: &Results) -> Vec<String> {
    let Results { plan, endpoints, arrivals, elapsed_secs, .. } = results;
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
            HumanDuration(Duration::from_micros(plan.histogram_max_us()))
        ));
    }
    if let Some(line) = failures_by_kind(results) {
        notes.push(line);
    }
    if let Some(rate) = plan.rate {
        notes.push(open_model_note(plan, rate, arrivals, *elapsed_secs));
    }
    if let Some(at) = results.reset_at {
        notes.push(format!(
            "Statistics cover the last {elapsed_secs:.2}s of the {:.2}s run: reset at {at:.1}s, when every user had started (--reset-stats)",
            results.run_secs
        ));
    }
    notes.push(summary_line(results));
    notes
}

/// The run in one line: time, users at the end and at most, threads and driver, requests.
fn summary_line(results: &Results) -> String {
    let Results { plan, totals, users, .. } = results;
    let users = match users.peak > users.last {
        true => format!("{} users at the end ({} at most)", users.last, users.peak),
        false => format!("{} users", users.last),
    };
    format!(
        "Run time {:.2}s, {users} on {} worker thread(s) ({}); {} requests, {:.2} req/s; seed {}",
        results.run_secs,
        plan.partition_count(),
        results.drivers,
        totals.aggregated.count,
        totals.aggregated.count as f64 / results.elapsed_secs,
        plan.seed
    )
}

/// wrk's split of failures: connection-level errors apart from the server's answers.
fn failures_by_kind(results: &Results) -> Option<String> {
    let mut counts = [0u64; 7];
    for error in results.endpoints.iter().flat_map(|e| &e.errors) {
        let index = FailureKind::ALL.iter().position(|k| *k == error.failure.kind()).expect("every kind listed");
        counts[index] += error.count;
    }
    if counts.iter().all(|c| *c == 0) {
        return None;
    }
    let [connect, read, write, timeout, status, parse, check] = counts;
    Some(format!(
        "Failures by kind: connection errors: connect {connect}, read {read}, write {write}, timeout {timeout}; \
         responses: HTTP status {status}, malformed {parse}, check {check}"
    ))
}

/// The open model's schedule: starts due, late, dropped, and their lag.
fn open_model_note(plan: &Plan, rate: f64, arrivals: &crate::stats::Arrivals, elapsed_secs: f64) -> String {
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
