//! The master–worker link's frames: a 4-byte little-endian length, then one message, in a
//! small hand-written binary encoding (varint integers, length-prefixed bytes; histograms in
//! HdrHistogram's own V2 format, deflated where that pays). Hand-written because it is small
//! (one file), has no schema to drift from the structs it carries, and needs no new crate.
//!
//! Every read is bounded: a frame longer than `MAX_FRAME` or a length inside a frame longer
//! than what is left is refused with a `WireError`, never a panic or an allocation the bytes
//! did not pay for.

use std::io::{Read, Write};

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::Histogram;

use crate::failure::{self, Failure, ParseError};
use crate::stats::{AbortCount, Arrivals, EndpointStats, ErrorCount, Snapshot};

/// The protocol's version: a master refuses a worker that speaks another.
pub const PROTOCOL: u64 = 1;

/// The longest frame either side accepts (a run's bundle carries its data files).
pub const MAX_FRAME: usize = 64 << 20;

/// A histogram serialized bigger than this is deflated.
const DEFLATE_ABOVE: usize = 512;

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn bad<T>(what: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(what.into()))
}

/// Every message either side sends.
#[derive(Debug)]
pub enum Message {
    /// Worker → master, first: who it is and its challenge to the master.
    Hello { protocol: u64, version: String, host: String, cores: u64, nonce: Vec<u8> },
    /// Master → worker: its answer to the worker's challenge and its own challenge.
    Challenge { nonce: Vec<u8>, proof: Vec<u8> },
    /// Worker → master: its answer to the master's challenge.
    Proof { proof: Vec<u8> },
    /// Master → worker: not admitted, and why.
    Refused { reason: String },
    /// Master → worker: the run. `argv` are the master's run flags, `scenario` the file's path
    /// (as the master names it) and text, `files` every data and body file it reads, `fixture`
    /// what its `setup` left (JSON: `{"vars": [...], "pools": [...]}`, or empty).
    Bundle {
        argv: Vec<String>,
        scenario: Option<(String, String)>,
        files: Vec<(String, Vec<u8>)>,
        seed: u64,
        fixture: String,
    },
    /// Master → worker: run these of the run's `total` partitions; the run started
    /// `elapsed_us` ago.
    Take { elapsed_us: u64, total: u64, partitions: Vec<u64> },
    /// Master → worker: stop these partitions (they move to another worker).
    Release { partitions: Vec<u64> },
    /// Master → worker: stop the run (at once when `now`).
    Stop { now: bool },
    /// Either way, once a second. From a worker: its users and CPU (per mille of one core).
    Heartbeat { users: u64, cpu_permille: u64 },
    /// Worker → master: one partition's snapshot.
    Stats(Box<Snapshot>),
    /// Worker → master: its run ended (every partition sent its last snapshot).
    Done,
    /// Worker → master: it could not take the run.
    Failed { reason: String },
}

/// Writes one message as a frame.
pub fn write(out: &mut impl Write, message: &Message) -> std::io::Result<()> {
    let mut buf = vec![0; 4];
    encode(message, &mut buf);
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    out.write_all(&buf)
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub fn read_frame(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            WireError(format!("a frame of {len} bytes (at most {MAX_FRAME})")),
        ));
    }
    let mut frame = vec![0; len];
    input.read_exact(&mut frame)?;
    Ok(Some(frame))
}

/// Reads one message: `Ok(None)` at a clean end, an `InvalidData` error for a bad frame.
pub fn read(input: &mut impl Read) -> std::io::Result<Option<Message>> {
    let Some(frame) = read_frame(input)? else { return Ok(None) };
    decode(&frame).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

const HELLO: u8 = 1;
const CHALLENGE: u8 = 2;
const PROOF: u8 = 3;
const REFUSED: u8 = 4;
const BUNDLE: u8 = 5;
const TAKE: u8 = 6;
const RELEASE: u8 = 7;
const STOP: u8 = 8;
const HEARTBEAT: u8 = 9;
const STATS: u8 = 10;
const DONE: u8 = 11;
const FAILED: u8 = 12;

fn encode(message: &Message, out: &mut Vec<u8>) {
    match message {
        Message::Hello { protocol, version, host, cores, nonce } => {
            out.push(HELLO);
            put_u64(out, *protocol);
            put_str(out, version);
            put_str(out, host);
            put_u64(out, *cores);
            put_bytes(out, nonce);
        }
        Message::Challenge { nonce, proof } => {
            out.push(CHALLENGE);
            put_bytes(out, nonce);
            put_bytes(out, proof);
        }
        Message::Proof { proof } => {
            out.push(PROOF);
            put_bytes(out, proof);
        }
        Message::Refused { reason } => {
            out.push(REFUSED);
            put_str(out, reason);
        }
        Message::Bundle { argv, scenario, files, seed, fixture } => {
            out.push(BUNDLE);
            put_u64(out, argv.len() as u64);
            argv.iter().for_each(|a| put_str(out, a));
            out.push(scenario.is_some() as u8);
            if let Some((path, text)) = scenario {
                put_str(out, path);
                put_str(out, text);
            }
            put_u64(out, files.len() as u64);
            for (path, bytes) in files {
                put_str(out, path);
                put_bytes(out, bytes);
            }
            put_u64(out, *seed);
            put_str(out, fixture);
        }
        Message::Take { elapsed_us, total, partitions } => {
            out.push(TAKE);
            put_u64(out, *elapsed_us);
            put_u64(out, *total);
            put_list(out, partitions);
        }
        Message::Release { partitions } => {
            out.push(RELEASE);
            put_list(out, partitions);
        }
        Message::Stop { now } => out.extend([STOP, *now as u8]),
        Message::Heartbeat { users, cpu_permille } => {
            out.push(HEARTBEAT);
            put_u64(out, *users);
            put_u64(out, *cpu_permille);
        }
        Message::Stats(snapshot) => {
            out.push(STATS);
            put_snapshot(out, snapshot);
        }
        Message::Done => out.push(DONE),
        Message::Failed { reason } => {
            out.push(FAILED);
            put_str(out, reason);
        }
    }
}

/// Decodes one frame's message.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { bytes: frame };
    let message = match r.u8()? {
        HELLO => Message::Hello {
            protocol: r.u64()?,
            version: r.string()?,
            host: r.string()?,
            cores: r.u64()?,
            nonce: r.bytes()?.to_vec(),
        },
        CHALLENGE => Message::Challenge { nonce: r.bytes()?.to_vec(), proof: r.bytes()?.to_vec() },
        PROOF => Message::Proof { proof: r.bytes()?.to_vec() },
        REFUSED => Message::Refused { reason: r.string()? },
        BUNDLE => {
            let argv = (0..r.count()?).map(|_| r.string()).collect::<Result<_, _>>()?;
            let scenario = match r.u8()? {
                0 => None,
                _ => Some((r.string()?, r.string()?)),
            };
            let files = (0..r.count()?).map(|_| Ok((r.string()?, r.bytes()?.to_vec()))).collect::<Result<_, _>>()?;
            Message::Bundle { argv, scenario, files, seed: r.u64()?, fixture: r.string()? }
        }
        TAKE => Message::Take { elapsed_us: r.u64()?, total: r.u64()?, partitions: r.list()? },
        RELEASE => Message::Release { partitions: r.list()? },
        STOP => Message::Stop { now: r.u8()? != 0 },
        HEARTBEAT => Message::Heartbeat { users: r.u64()?, cpu_permille: r.u64()? },
        STATS => Message::Stats(Box::new(r.snapshot()?)),
        DONE => Message::Done,
        FAILED => Message::Failed { reason: r.string()? },
        other => return bad(format!("unknown message type {other}")),
    };
    if !r.bytes.is_empty() {
        return bad(format!("{} bytes after the message", r.bytes.len()));
    }
    Ok(message)
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_list(out: &mut Vec<u8>, values: &[u64]) {
    put_u64(out, values.len() as u64);
    values.iter().for_each(|&v| put_u64(out, v));
}

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

fn put_snapshot(out: &mut Vec<u8>, s: &Snapshot) {
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

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let (&first, rest) = self.bytes.split_first().ok_or_else(|| WireError("the frame ends early".into()))?;
        self.bytes = rest;
        Ok(first)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        bad("an integer longer than 64 bits")
    }

    /// A count of items that follow, each at least one byte: never more than the bytes left.
    fn count(&mut self) -> Result<usize, WireError> {
        let n = self.u64()?;
        if n > self.bytes.len() as u64 {
            return bad(format!("a count of {n} with {} bytes left", self.bytes.len()));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.count()?;
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).or_else(|_| bad("a string that is not UTF-8"))
    }

    fn list(&mut self) -> Result<Vec<u64>, WireError> {
        (0..self.count()?).map(|_| self.u64()).collect()
    }

    fn histogram(&mut self) -> Result<Histogram<u64>, WireError> {
        let mut bytes = self.bytes()?;
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

    fn snapshot(&mut self) -> Result<Snapshot, WireError> {
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

    #[test]
    fn a_snapshot_survives_the_wire_exactly() {
        let mut s = Snapshot::new(3, 2, 60_000_000);
        for us in [5, 50, 500, 5000, 50_000] {
            s.endpoints[1].record(us, 10);
        }
        s.endpoints[1].record_failure(Failure::Expected { status: 418, wanted: "200" }, 7);
        s.endpoints[1].record_service(40);
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
    fn bad_frames_are_errors_not_panics() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[99]).is_err());
        assert!(decode(&[HELLO, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(decode(&[REFUSED, 200, 1]).is_err());
        let huge = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert!(read(&mut huge.as_slice()).is_err());
        let mut buf = Vec::new();
        write(&mut buf, &Message::Done).unwrap();
        buf.push(0);
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        assert!(read(&mut buf.as_slice()).is_err(), "trailing bytes");
    }

    #[test]
    fn a_histogram_beyond_the_plan_is_refused() {
        let mut s = Snapshot::new(0, 1, 60_000_000);
        s.endpoints[0].record(50_000_000, 0);
        assert!(fit(&mut s, 1, 1_000_000).is_err());
        assert!(fit(&mut Snapshot::new(0, 2, 1000), 1, 1000).is_err());
    }
}
