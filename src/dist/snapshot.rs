//! A worker's snapshot on the wire: counts, sums, errors, aborts and its HDR histograms in
//! HdrHistogram's V2 format (deflated where that is smaller), and the master's check that a
//! decoded snapshot fits the plan before it is merged.

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::Histogram;

use super::wire::{bad, put_bytes, put_str, put_u64, Reader, WireError};
use crate::failure::{self, Failure, ParseError};
use crate::stats::{AbortCount, Arrivals, EndpointStats, ErrorCount, Snapshot};

/// A histogram serialized bigger than this is deflated.
const DEFLATE_ABOVE: usize = 512;

fn put_histogram(out: &mut Vec<u8>, hist: &Histogram<u64>) {
    let mut plain = Vec::new();
    V2Serializer::new().serialize(hist, &mut plain).expect("writing to a Vec cannot fail");
    if plain.len() > DEFLATE_ABOVE {
        let mut deflated = Vec::new();
        V2DeflateSerializer::new().serialize(hist, &mut deflated).expect("writing to a Vec cannot fail");
        if deflated.len() < plain.len() {
            plain = deflated;
        }
    }
    put_bytes(out, &plain);
}

pub(super) fn put_snapshot(out: &mut Vec<u8>, s: &Snapshot) {
    put_u64(out, s.worker as u64);
    put_u64(out, s.seq);
    out.push(s.last as u8);
    put_u64(out, s.users);
    put_u64(out, s.peak_users);
    put_str(out, s.driver);
    put_u64(out, s.endpoints.len() as u64);
    for e in &s.endpoints {
        for v in [e.count, e.failures, e.bytes, e.sum_us, e.min_us, e.max_us, e.clamped, e.cancelled, e.started] {
            put_u64(out, v);
        }
        // Histograms of endpoints that saw nothing are left out (one byte says so).
        out.push((e.count > 0) as u8);
        if e.count > 0 {
            put_histogram(out, &e.hist);
        }
        out.push(e.service.as_ref().is_some_and(|h| !h.is_empty()) as u8);
        if let Some(service) = e.service.as_ref().filter(|h| !h.is_empty()) {
            put_histogram(out, service);
        }
        put_u64(out, e.errors.len() as u64);
        for error in &e.errors {
            put_failure(out, error.failure);
            put_u64(out, error.count);
            put_u64(out, error.first_seen);
            put_u64(out, error.last_seen);
        }
    }
    for list in [&s.aborts, &s.skips] {
        put_u64(out, list.len() as u64);
        for a in list {
            put_str(out, a.path);
            put_str(out, &a.reason);
            put_u64(out, a.count);
        }
    }
    let a = &s.arrivals;
    put_u64(out, a.scheduled);
    put_u64(out, a.late);
    put_u64(out, a.dropped);
    out.push(a.lag.as_ref().is_some_and(|h| !h.is_empty()) as u8);
    if let Some(lag) = a.lag.as_ref().filter(|h| !h.is_empty()) {
        put_histogram(out, lag);
    }
}

fn put_failure(out: &mut Vec<u8>, failure: Failure) {
    match failure {
        Failure::Connect(errno) => put_tagged(out, 0, errno as i64 as u64),
        Failure::ConnectTimeout(ms) => put_tagged(out, 1, ms as u64),
        Failure::Write(errno) => put_tagged(out, 2, errno as i64 as u64),
        Failure::Read(errno) => put_tagged(out, 3, errno as i64 as u64),
        Failure::Closed => put_tagged(out, 4, 0),
        Failure::Timeout(ms) => put_tagged(out, 5, ms as u64),
        Failure::Parse(e) => put_tagged(out, 6, e as u64),
        Failure::Status(code) => put_tagged(out, 7, code as u64),
        Failure::Check(text) => {
            out.push(8);
            put_str(out, text);
        }
        Failure::Expected { status, wanted } => {
            put_tagged(out, 9, status as u64);
            put_str(out, wanted);
        }
        Failure::Tls(text) => {
            out.push(10);
            put_str(out, text);
        }
    }
}

fn put_tagged(out: &mut Vec<u8>, tag: u8, value: u64) {
    out.push(tag);
    put_u64(out, value);
}

/// The parse errors in the order of their discriminants.
const PARSE_ERRORS: [ParseError; 11] = [
    ParseError::Head,
    ParseError::HeadTooLarge,
    ParseError::TooManyHeaders,
    ParseError::ContentLength,
    ParseError::TransferEncoding,
    ParseError::ChunkSize,
    ParseError::ChunkSizeOverflow,
    ParseError::ChunkExtTooLong,
    ParseError::ChunkData,
    ParseError::TrailersTooLarge,
    ParseError::Trailer,
];

/// Names of the IO drivers a worker can report (anything else reads as "remote").
const DRIVERS: [&str; 4] = ["io_uring (defer_taskrun)", "io_uring", "epoll", ""];

/// HdrHistogram's V2 cookies (plain, deflated) and header length.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATED_COOKIE: u32 = 0x1c84_9314;
const V2_HEADER: usize = 40;
/// The largest histogram range a worker may send (µs, ~25 days): far above any plan's, and small
/// enough that the arrays it implies are a few hundred KiB.
const MAX_HIGHEST: u64 = 1 << 41;
/// The largest encoded counts a histogram of that range and our precision can need.
const MAX_PAYLOAD: u32 = 1 << 20;

/// Checks an encoded histogram's header before it is decoded: the decoder allocates what the
/// header says (a counts array for its range and precision, a buffer for its payload length), so
/// a worker could otherwise make the master allocate gigabytes with 40 bytes.
fn check_header(bytes: &[u8]) -> Result<(), WireError> {
    use std::io::Read;
    let word = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    if bytes.len() < 8 {
        return bad("a histogram shorter than its header".to_string());
    }
    let mut inner = [0u8; V2_HEADER];
    let header: &[u8] = match word(bytes, 0) {
        V2_COOKIE if bytes.len() >= V2_HEADER => &bytes[..V2_HEADER],
        V2_DEFLATED_COOKIE => {
            flate2::read::ZlibDecoder::new(&bytes[8..])
                .read_exact(&mut inner)
                .map_err(|e| WireError(format!("a histogram: {e}")))?;
            &inner
        }
        _ => return bad("a histogram without HdrHistogram's V2 header".to_string()),
    };
    let long = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (cookie, payload, digits, lowest, highest) =
        (word(header, 0), word(header, 4), word(header, 12), long(16), long(24));
    if cookie != V2_COOKIE
        || payload > MAX_PAYLOAD
        || digits != u32::from(crate::stats::SIGFIG)
        || lowest != 1
        || highest > MAX_HIGHEST
    {
        return bad(format!(
            "a histogram of {digits} digits over {lowest}..{highest} with {payload} bytes of counts (expected {} digits over 1..at most {MAX_HIGHEST}, at most {MAX_PAYLOAD} bytes)",
            crate::stats::SIGFIG
        ));
    }
    Ok(())
}

impl Reader<'_> {
    fn histogram(&mut self) -> Result<Histogram<u64>, WireError> {
        let mut bytes = self.bytes()?;
        check_header(bytes)?;
        let hist: Histogram<u64> =
            Deserializer::new().deserialize(&mut bytes).map_err(|e| WireError(format!("a histogram: {e:?}")))?;
        Ok(hist)
    }

    fn optional_histogram(&mut self) -> Result<Option<Histogram<u64>>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.histogram().map(Some),
        }
    }

    pub(super) fn snapshot(&mut self) -> Result<Snapshot, WireError> {
        let worker = self.u64()? as usize;
        let seq = self.u64()?;
        let last = self.u8()? != 0;
        let (users, peak_users) = (self.u64()?, self.u64()?);
        let driver_name = self.string()?;
        let driver = DRIVERS.iter().find(|d| **d == driver_name).copied().unwrap_or("remote");
        let endpoints = (0..self.count()?).map(|_| self.endpoint()).collect::<Result<_, _>>()?;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            for _ in 0..self.count()? {
                let path = failure::intern_rendered(self.string()?);
                let reason = self.string()?;
                list.push(AbortCount { path, reason, count: self.u64()? });
            }
        }
        let [aborts, skips] = lists;
        let arrivals = Arrivals {
            scheduled: self.u64()?,
            late: self.u64()?,
            dropped: self.u64()?,
            lag: self.optional_histogram()?,
        };
        Ok(Snapshot { worker, seq, endpoints, users, peak_users, last, driver, aborts, skips, arrivals })
    }

    fn endpoint(&mut self) -> Result<EndpointStats, WireError> {
        let mut v = [0u64; 9];
        for value in &mut v {
            *value = self.u64()?;
        }
        let [count, failures, bytes, sum_us, min_us, max_us, clamped, cancelled, started] = v;
        // An empty placeholder histogram: the master swaps in one of its own bounds when it
        // checks the snapshot against the plan (`fit`).
        let hist = self.optional_histogram()?.unwrap_or_else(|| Histogram::new(1).expect("valid"));
        let service = self.optional_histogram()?;
        let errors = (0..self.count()?)
            .map(|_| {
                Ok(ErrorCount {
                    failure: self.failure()?,
                    count: self.u64()?,
                    first_seen: self.u64()?,
                    last_seen: self.u64()?,
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(EndpointStats {
            hist,
            count,
            failures,
            bytes,
            sum_us,
            min_us,
            max_us,
            clamped,
            cancelled,
            started,
            errors,
            service,
        })
    }

    fn failure(&mut self) -> Result<Failure, WireError> {
        let tag = self.u8()?;
        let text = |r: &mut Reader| r.string().map(failure::intern_rendered);
        Ok(match tag {
            0 => Failure::Connect(self.u64()? as i64 as i32),
            1 => Failure::ConnectTimeout(self.u64()? as u32),
            2 => Failure::Write(self.u64()? as i64 as i32),
            3 => Failure::Read(self.u64()? as i64 as i32),
            4 => {
                self.u64()?;
                Failure::Closed
            }
            5 => Failure::Timeout(self.u64()? as u32),
            6 => {
                let index = self.u64()? as usize;
                Failure::Parse(*PARSE_ERRORS.get(index).ok_or_else(|| WireError("an unknown parse error".into()))?)
            }
            7 => Failure::Status(self.u64()? as u16),
            8 => Failure::Check(text(self)?),
            9 => {
                let status = self.u64()? as u16;
                Failure::Expected { status, wanted: text(self)? }
            }
            10 => Failure::Tls(text(self)?),
            other => return bad(format!("unknown failure type {other}")),
        })
    }
}

/// Checks a worker's snapshot against the plan the master holds and makes its histograms the
/// master's own bounds, so merging cannot fail: the endpoint count must match and no value may
/// lie above `max_us` (the plan's histogram range).
pub fn fit(snapshot: &mut Snapshot, endpoints: usize, max_us: u64) -> Result<(), WireError> {
    if snapshot.endpoints.len() != endpoints {
        return bad(format!("{} endpoints, the plan has {endpoints}", snapshot.endpoints.len()));
    }
    let fit_one = |hist: &Histogram<u64>, high: u64| -> Result<Histogram<u64>, WireError> {
        let mut ours = Histogram::new_with_bounds(1, high.max(2), crate::stats::SIGFIG).expect("valid bounds");
        if !hist.is_empty() && hist.max() > ours.high() {
            return bad(format!("a histogram value of {} above the range {}", hist.max(), ours.high()));
        }
        ours.add(hist).map_err(|e| WireError(format!("a histogram: {e:?}")))?;
        Ok(ours)
    };
    for e in &mut snapshot.endpoints {
        if e.count > 0 && e.hist.len() != e.count {
            return bad(format!("a histogram of {} values for {} requests", e.hist.len(), e.count));
        }
        e.hist = fit_one(&e.hist, max_us)?;
        if let Some(service) = e.service.as_mut() {
            *service = fit_one(service, max_us)?;
        }
    }
    if let Some(lag) = snapshot.arrivals.lag.as_mut() {
        *lag = fit_one(lag, 60_000_000)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::wire::{read, write, Message};

    /// A histogram whose header asks for a huge range or precision is refused before anything
    /// is allocated for it, plain or deflated; ours pass both ways.
    #[test]
    fn histogram_headers_are_bounded_before_decoding() {
        // The decoded histogram's count, and whether it crossed the wire deflated.
        let decode = |hist: &Histogram<u64>| {
            let mut out = Vec::new();
            put_histogram(&mut out, hist);
            let deflated = out.windows(4).any(|w| w == V2_DEFLATED_COOKIE.to_be_bytes());
            (Reader { bytes: &out }.histogram().map(|h| h.len()), deflated)
        };
        let mut ours = Histogram::<u64>::new_with_bounds(1, 60_000_000, crate::stats::SIGFIG).unwrap();
        ours.record(5).unwrap();
        assert_eq!(decode(&ours), (Ok(1), false), "plain");
        for v in 1..5000u64 {
            ours.record(v * 997 % 60_000_000).unwrap();
        }
        assert_eq!(decode(&ours), (Ok(5000), true), "deflated");
        for (high, digits) in [(1u64 << 60, 3u8), (60_000_000, 5)] {
            let mut huge = Histogram::<u64>::new_with_bounds(1, high, digits).unwrap();
            huge.record(7).unwrap();
            let (result, deflated) = decode(&huge);
            assert!(!deflated && result.as_ref().unwrap_err().0.contains("expected 3 digits"), "{result:?}");
            for v in 1..5000u64 {
                huge.record(v * 997).unwrap();
            }
            let (result, deflated) = decode(&huge);
            assert!(deflated && result.as_ref().unwrap_err().0.contains("expected 3 digits"), "{result:?}");
        }
    }

    #[test]
    fn a_snapshot_survives_the_wire_exactly() {
        let mut s = Snapshot::new(3, 2, 60_000_000);
        for us in [5, 50, 500, 5000, 50_000] {
            s.endpoints[1].record(us, 10);
        }
        s.endpoints[1].record_failure(Failure::Expected { status: 418, wanted: "200" }, 7);
        s.endpoints[1].record_service(40, 1);
        s.endpoints[0].cancelled = 2;
        s.aborts.push(AbortCount { path: "U / t / s", reason: "why".into(), count: 3 });
        s.arrivals.record(1500);
        s.seq = 9;
        s.last = true;
        let mut buf = Vec::new();
        write(&mut buf, &Message::Stats(Box::new(s))).unwrap();
        let Some(Message::Stats(mut back)) = read(&mut buf.as_slice()).unwrap() else { panic!("not stats") };
        fit(&mut back, 2, 60_000_000).unwrap();
        let e = &back.endpoints[1];
        assert_eq!((back.worker, back.seq, back.last), (3, 9, true));
        assert_eq!((e.count, e.failures, e.bytes, e.min_us, e.max_us), (5, 1, 50, 5, 50_000));
        assert_eq!(e.hist.len(), 5);
        assert_eq!(e.hist.value_at_quantile(0.5), 500);
        assert_eq!(e.service_quantile_us(1.0), 40);
        assert_eq!(e.errors[0].failure, Failure::Expected { status: 418, wanted: "200" });
        assert_eq!(back.endpoints[0].cancelled, 2);
        assert_eq!(back.aborts[0].count, 3);
        assert_eq!(back.arrivals.late, 1);
    }

    #[test]
    fn a_histogram_beyond_the_plan_is_refused() {
        let mut s = Snapshot::new(0, 1, 60_000_000);
        s.endpoints[0].record(50_000_000, 0);
        assert!(fit(&mut s, 1, 1_000_000).is_err());
        assert!(fit(&mut Snapshot::new(0, 2, 1000), 1, 1000).is_err());
    }
}
