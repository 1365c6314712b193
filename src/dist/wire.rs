//! The master–worker link's frames: a 4-byte little-endian length, then one message, in a
//! small hand-written binary encoding (varint integers, length-prefixed bytes; histograms in
//! HdrHistogram's own V2 format, deflated where that pays). Hand-written because it is small
//! (one file), has no schema to drift from the structs it carries, and needs no new crate.
//!
//! Every read is bounded: a frame longer than `MAX_FRAME` or a length inside a frame longer
//! than what is left is refused with a `WireError`, never a panic or an allocation the bytes
//! did not pay for.

use std::io::{Read, Write};

pub use super::snapshot::fit;
use super::snapshot::put_snapshot;
use crate::stats::Snapshot;

/// The protocol's version: a master refuses a worker that speaks another.
pub const PROTOCOL: u64 = 1;

/// The longest frame either side accepts (a run's bundle carries its data files).
pub const MAX_FRAME: usize = 64 << 20;

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

pub(super) fn bad<T>(what: impl Into<String>) -> Result<T, WireError> {
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
    /// what its `setup` left (JSON: `{"vars": [...], "pools": [...]}`, or empty), `form` what the
    /// web UI's form changed of the flags (JSON, or empty).
    Bundle {
        argv: Vec<String>,
        scenario: Option<(String, String)>,
        files: Vec<(String, Vec<u8>)>,
        seed: u64,
        fixture: String,
        form: String,
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
        Message::Bundle { argv, scenario, files, seed, fixture, form } => {
            out.push(BUNDLE);
            put_bundle(out, argv, scenario.as_ref(), files, *seed, fixture);
            put_str(out, form);
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

fn put_bundle(
    out: &mut Vec<u8>,
    argv: &[String],
    scenario: Option<&(String, String)>,
    files: &[(String, Vec<u8>)],
    seed: u64,
    fixture: &str,
) {
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
    put_u64(out, seed);
    put_str(out, fixture);
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
            Message::Bundle { argv, scenario, files, seed: r.u64()?, fixture: r.string()?, form: r.string()? }
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

pub(super) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_list(out: &mut Vec<u8>, values: &[u64]) {
    put_u64(out, values.len() as u64);
    values.iter().for_each(|&v| put_u64(out, v));
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        let (&first, rest) = self.bytes.split_first().ok_or_else(|| WireError("the frame ends early".into()))?;
        self.bytes = rest;
        Ok(first)
    }

    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
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
    pub(super) fn count(&mut self) -> Result<usize, WireError> {
        let n = self.u64()?;
        if n > self.bytes.len() as u64 {
            return bad(format!("a count of {n} with {} bytes left", self.bytes.len()));
        }
        Ok(n as usize)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.count()?;
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    pub(super) fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).or_else(|_| bad("a string that is not UTF-8"))
    }

    pub(super) fn list(&mut self) -> Result<Vec<u64>, WireError> {
        (0..self.count()?).map(|_| self.u64()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
