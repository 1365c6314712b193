//! Per-core recording and the snapshots that carry it to the reporter. It imports only the leaf
//! `failure` (the error key); endpoints are plain indices into the plan's endpoint table.
//!
//! A worker records into its own `CoreStats` with no locks and no shared atomics. On each tick
//! it swaps the filled `Snapshot` for an empty one handed back by the reporter, so steady state
//! allocates nothing: histograms are reset, never rebuilt, and error lists keep their capacity.

use hdrhistogram::Histogram;

use crate::failure::Failure;

/// Significant figures of every latency histogram (0.1 % relative error).
pub const SIGFIG: u8 = 3;

/// One failure cause and how often it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCount {
    pub failure: Failure,
    pub count: u64,
    /// Unix seconds of the first and last occurrence.
    pub first_seen: u64,
    pub last_seen: u64,
}

/// Tasks ended early at one step for one reason (a required step failed, a capture found
/// nothing, a pool was empty): Locust's exceptions table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbortCount {
    /// Where: "User type / task / step".
    pub path: &'static str,
    pub reason: String,
    pub count: u64,
}

/// Adds `count` aborts at (`path`, `reason`) to a list (cold path: only on aborts).
pub fn add_abort(aborts: &mut Vec<AbortCount>, path: &'static str, reason: &str, count: u64) {
    match aborts.iter_mut().find(|a| a.path == path && a.reason == reason) {
        Some(seen) => seen.count += count,
        None => aborts.push(AbortCount { path, reason: reason.to_string(), count }),
    }
}

/// Everything measured for one (method, name) endpoint over some span of time.
#[derive(Clone, Debug)]
pub struct EndpointStats {
    /// Response times in microseconds, 1 µs up to the plan's longest timeout.
    pub hist: Histogram<u64>,
    /// Completed requests, failures included (Locust's "Request Count").
    pub count: u64,
    pub failures: u64,
    /// Payload bytes of all responses.
    pub bytes: u64,
    pub sum_us: u64,
    pub min_us: u64,
    pub max_us: u64,
    /// Samples above the histogram's range, recorded at its top.
    pub clamped: u64,
    /// Requests in flight when the run was stopped: neither success nor failure.
    pub cancelled: u64,
    /// Requests started. Over a whole run, `started = count + cancelled` (every start ends as
    /// a success, a failure, or cancelled; nothing is dropped).
    pub started: u64,
    pub errors: Vec<ErrorCount>,
    /// Open model only: the raw service time (from the actual send), beside `hist`, which
    /// counts from the intended start. Made on first use, then reset and reused.
    pub service: Option<Histogram<u64>>,
}

impl EndpointStats {
    pub fn new(max_us: u64) -> EndpointStats {
        let hist = Histogram::new_with_bounds(1, max_us.max(2), SIGFIG).expect("valid histogram bounds");
        EndpointStats {
            hist,
            count: 0,
            failures: 0,
            bytes: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
            clamped: 0,
            cancelled: 0,
            started: 0,
            errors: Vec::new(),
            service: None,
        }
    }

    /// Records a request's service time (open model).
    pub fn record_service(&mut self, service_us: u64, n: u64) {
        let high = self.hist.high();
        let service = self
            .service
            .get_or_insert_with(|| Histogram::new_with_bounds(1, high.max(2), SIGFIG).expect("valid histogram bounds"));
        service.record_n(service_us.clamp(1, high), n).expect("value within bounds");
    }

    /// The service time at `quantile` in µs (0 without service times).
    pub fn service_quantile_us(&self, quantile: f64) -> u64 {
        self.service.as_ref().map_or(0, |h| if h.is_empty() { 0 } else { h.value_at_quantile(quantile) })
    }

    /// Records one completed request.
    #[inline]
    pub fn record(&mut self, latency_us: u64, bytes: u64) {
        self.record_n(latency_us, bytes, 1);
    }

    /// Records `n` completed requests of the same latency, `bytes` in all (pipelined responses
    /// that arrived in one read).
    #[inline]
    pub fn record_n(&mut self, latency_us: u64, bytes: u64, n: u64) {
        let high = self.hist.high();
        let value = if latency_us > high {
            self.clamped += n;
            high
        } else {
            latency_us.max(1)
        };
        self.hist.record_n(value, n).expect("value within bounds");
        self.count += n;
        self.bytes += bytes;
        self.sum_us += latency_us * n;
        self.min_us = self.min_us.min(latency_us);
        self.max_us = self.max_us.max(latency_us);
    }

    /// Counts a failure of a request already passed to `record`.
    pub fn record_failure(&mut self, failure: Failure, now_unix: u64) {
        self.failures += 1;
        self.add_error(ErrorCount { failure, count: 1, first_seen: now_unix, last_seen: now_unix });
    }

    fn add_error(&mut self, error: ErrorCount) {
        match self.errors.iter_mut().find(|e| e.failure == error.failure) {
            Some(seen) => {
                seen.count += error.count;
                seen.first_seen = seen.first_seen.min(error.first_seen);
                seen.last_seen = seen.last_seen.max(error.last_seen);
            }
            None => self.errors.push(error),
        }
    }

    /// Adds another span's measurements into this one (exact: histograms add bucket by bucket).
    pub fn merge(&mut self, other: &EndpointStats) {
        self.hist.add(&other.hist).expect("histograms of one run share bounds");
        self.count += other.count;
        self.failures += other.failures;
        self.bytes += other.bytes;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
        self.clamped += other.clamped;
        self.cancelled += other.cancelled;
        self.started += other.started;
        for error in &other.errors {
            self.add_error(*error);
        }
        if let Some(theirs) = &other.service {
            let high = self.hist.high();
            let ours = self.service.get_or_insert_with(|| {
                Histogram::new_with_bounds(1, high.max(2), SIGFIG).expect("valid histogram bounds")
            });
            ours.add(theirs).expect("histograms of one run share bounds");
        }
    }

    pub fn reset(&mut self) {
        self.hist.reset();
        self.count = 0;
        self.failures = 0;
        self.bytes = 0;
        self.sum_us = 0;
        self.min_us = u64::MAX;
        self.max_us = 0;
        self.clamped = 0;
        self.cancelled = 0;
        self.started = 0;
        self.errors.clear();
        if let Some(service) = self.service.as_mut() {
            service.reset();
        }
    }

    /// The value at `quantile` (0..=1) in µs, never above the exact maximum.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if quantile >= 1.0 {
            return self.max_us;
        }
        self.hist.value_at_quantile(quantile).min(self.max_us).max(self.min_us.min(self.max_us))
    }

    /// Failures per request (0 with no requests).
    pub fn fail_ratio(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.failures as f64 / self.count as f64
        }
    }

    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64
        }
    }
}

/// What one worker measured during one tick (or, when `last`, since its previous tick until it
/// stopped).
#[derive(Debug)]
pub struct Snapshot {
    pub worker: usize,
    /// Tick number: the interval [start + seq·tick, start + (seq+1)·tick).
    pub seq: u64,
    /// Indexed by endpoint id.
    pub endpoints: Vec<EndpointStats>,
    /// Users running on the worker when the snapshot was taken, and the most at once during
    /// the interval.
    pub users: u64,
    pub peak_users: u64,
    pub last: bool,
    /// The IO driver the worker runs on (`io_uring (defer_taskrun)`, `io_uring`, `epoll`).
    pub driver: &'static str,
    pub aborts: Vec<AbortCount>,
    /// Tasks skipped because a pool they need was empty or a variable unset (not failures).
    pub skips: Vec<AbortCount>,
    pub arrivals: Arrivals,
}

/// The open model's schedule: task starts due, started late, or dropped.
#[derive(Clone, Debug, Default)]
pub struct Arrivals {
    /// Starts whose intended time came.
    pub scheduled: u64,
    /// Started more than `LATE_US` after their intended time.
    pub late: u64,
    /// Not started: every user of the worker was busy (`--max-users`).
    pub dropped: u64,
    /// Start lag (actual − intended) in µs, made on first use.
    pub lag: Option<Histogram<u64>>,
}

/// A start this much behind its intended time counts as late.
pub const LATE_US: u64 = 1000;

impl Arrivals {
    pub fn record(&mut self, lag_us: u64) {
        self.scheduled += 1;
        if lag_us > LATE_US {
            self.late += 1;
        }
        let lag = self.lag.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, SIGFIG).expect("bounds"));
        lag.record(lag_us.clamp(1, 60_000_000)).expect("value within bounds");
    }

    pub fn merge(&mut self, other: &Arrivals) {
        self.scheduled += other.scheduled;
        self.late += other.late;
        self.dropped += other.dropped;
        if let Some(theirs) = &other.lag {
            let ours =
                self.lag.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, SIGFIG).expect("bounds"));
            ours.add(theirs).expect("same bounds");
        }
    }

    pub fn reset(&mut self) {
        self.scheduled = 0;
        self.late = 0;
        self.dropped = 0;
        if let Some(lag) = self.lag.as_mut() {
            lag.reset();
        }
    }
}

impl Snapshot {
    pub fn new(worker: usize, endpoints: usize, max_us: u64) -> Snapshot {
        Snapshot {
            worker,
            seq: 0,
            endpoints: (0..endpoints).map(|_| EndpointStats::new(max_us)).collect(),
            users: 0,
            peak_users: 0,
            last: false,
            driver: "",
            aborts: Vec::new(),
            skips: Vec::new(),
            arrivals: Arrivals::default(),
        }
    }

    pub fn reset(&mut self) {
        self.endpoints.iter_mut().for_each(EndpointStats::reset);
        self.aborts.clear();
        self.skips.clear();
        self.arrivals.reset();
        self.users = 0;
        self.peak_users = 0;
        self.last = false;
    }
}

/// A worker's recorder: the snapshot being filled plus requests currently in flight.
pub struct CoreStats {
    current: Snapshot,
    in_flight: Vec<u64>,
    driver: &'static str,
}

impl CoreStats {
    pub fn new(worker: usize, endpoints: usize, max_us: u64) -> CoreStats {
        CoreStats { current: Snapshot::new(worker, endpoints, max_us), in_flight: vec![0; endpoints], driver: "" }
    }

    pub fn set_driver(&mut self, driver: &'static str) {
        self.driver = driver;
    }

    /// A request on `endpoint` was started (its bytes are about to be written).
    #[inline]
    pub fn start(&mut self, endpoint: usize) {
        self.in_flight[endpoint] += 1;
        self.current.endpoints[endpoint].started += 1;
    }

    /// A started request completed successfully.
    #[inline]
    pub fn success(&mut self, endpoint: usize, latency_us: u64, bytes: u64) {
        self.successes(endpoint, latency_us, bytes, 1);
    }

    /// `n` started requests completed successfully, all after `latency_us`, `bytes` in all.
    #[inline]
    pub fn successes(&mut self, endpoint: usize, latency_us: u64, bytes: u64, n: u64) {
        self.in_flight[endpoint] -= n;
        self.current.endpoints[endpoint].record_n(latency_us, bytes, n);
    }

    /// A started request failed after `latency_us`.
    pub fn failure(&mut self, endpoint: usize, latency_us: u64, bytes: u64, failure: Failure, now_unix: u64) {
        self.in_flight[endpoint] -= 1;
        let stats = &mut self.current.endpoints[endpoint];
        stats.record(latency_us, bytes);
        stats.record_failure(failure, now_unix);
    }

    /// Failures recorded since the last swap (setup and teardown check their steps with it).
    pub fn failures(&self) -> u64 {
        self.current.endpoints.iter().map(|e| e.failures).sum()
    }

    /// A failure cause recorded since the last swap, if any.
    pub fn last_failure(&self) -> Option<Failure> {
        self.current.endpoints.iter().rev().find_map(|e| e.errors.last()).map(|e| e.failure)
    }

    /// Open model: a request's raw service time beside its latency from the intended start.
    pub fn service(&mut self, endpoint: usize, service_us: u64, n: u64) {
        self.current.endpoints[endpoint].record_service(service_us, n);
    }

    /// Open model: a start came due and began `lag_us` after its intended time.
    pub fn arrival(&mut self, lag_us: u64) {
        self.current.arrivals.record(lag_us);
    }

    /// Open model: a start came due and no user was free.
    pub fn dropped(&mut self) {
        self.current.arrivals.scheduled += 1;
        self.current.arrivals.dropped += 1;
    }

    /// A task was ended early at `path` for `reason`.
    pub fn abort(&mut self, path: &'static str, reason: &str) {
        add_abort(&mut self.current.aborts, path, reason, 1);
    }

    /// A task was skipped at `path`: something it needs was missing (`reason`).
    pub fn skip(&mut self, path: &'static str, reason: &str) {
        add_abort(&mut self.current.skips, path, reason, 1);
    }

    /// `running` users run now (one just started): the interval's most at once.
    pub fn users_running(&mut self, running: u64) {
        self.current.peak_users = self.current.peak_users.max(running);
    }

    /// Hands out the filled snapshot and continues in `spare` (which must be reset).
    pub fn swap(&mut self, spare: Snapshot, seq: u64, users: u64) -> Snapshot {
        let mut filled = std::mem::replace(&mut self.current, spare);
        self.current.peak_users = users;
        filled.seq = seq;
        filled.users = users;
        filled.peak_users = filled.peak_users.max(users);
        filled.driver = self.driver;
        filled
    }

    /// The final snapshot (continuing in `spare`): whatever is still in flight is reported as
    /// cancelled, once.
    pub fn finish(&mut self, spare: Snapshot, seq: u64, users: u64) -> Snapshot {
        let mut last = self.swap(spare, seq, users);
        for (stats, in_flight) in last.endpoints.iter_mut().zip(&mut self.in_flight) {
            stats.cancelled += std::mem::take(in_flight);
        }
        last.last = true;
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_and_capped_at_max() {
        let mut stats = EndpointStats::new(60_000_000);
        for us in 1..=1000 {
            stats.record(us, 10);
        }
        assert_eq!(stats.quantile_us(0.5), 500);
        assert_eq!(stats.quantile_us(0.99), 990);
        assert_eq!(stats.quantile_us(1.0), 1000);
        let mut one = EndpointStats::new(60_000_000);
        one.record(123_456, 0);
        // The bucket's highest equivalent value would be above the sample; never report that.
        assert!(one.quantile_us(0.99) <= 123_456);
        assert!(one.quantile_us(0.5) >= 123_400);
    }

    #[test]
    fn clamps_and_counts_samples_above_range() {
        let mut stats = EndpointStats::new(1000);
        stats.record(5000, 0);
        assert_eq!(stats.clamped, 1);
        assert_eq!(stats.max_us, 5000);
        assert_eq!(stats.count, 1);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = EndpointStats::new(60_000_000);
        let mut b = EndpointStats::new(60_000_000);
        a.record(10, 1);
        a.record_failure(Failure::Status(500), 100);
        b.record(30, 2);
        b.record_failure(Failure::Status(500), 90);
        b.record(20, 2);
        a.merge(&b);
        assert_eq!((a.count, a.failures, a.bytes, a.min_us, a.max_us), (3, 2, 5, 10, 30));
        assert_eq!(
            a.errors,
            vec![ErrorCount { failure: Failure::Status(500), count: 2, first_seen: 90, last_seen: 100 }]
        );
    }

    #[test]
    fn in_flight_becomes_cancelled() {
        let mut core = CoreStats::new(0, 2, 1000);
        core.start(0);
        core.start(0);
        core.start(1);
        core.success(0, 5, 0);
        let last = core.finish(Snapshot::new(0, 2, 1000), 3, 0);
        assert_eq!(last.endpoints[0].cancelled, 1);
        assert_eq!(last.endpoints[1].cancelled, 1);
        assert!(last.last);
    }
}
