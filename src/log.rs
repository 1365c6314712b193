//! The log: what a run says besides its numbers (the banner, each kind of error the first time it
//! happens, thresholds lost, stopping, the web UI's address), at Locust's levels. By default it
//! goes to standard error as plain lines; `--loglevel` drops what is below a level and
//! `--logfile` sends it to a file instead, one timestamped line per message in Locust's layout:
//!
//! ```text
//! [2026-12-02 18:54:00,123] myhost/WARNING/swarmer: [3s] GET /api: connection refused (first seen; …)
//! ```
//!
//! Every message is once per event of the run, never once per request, so the log stays small
//! however many requests a run makes. Timestamps are UTC.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::units::utc_civil;

/// Locust's (Python's) levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
    Critical = 50,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FILE: Mutex<Option<(BufWriter<File>, String)>> = Mutex::new(None);

/// Sets the lowest level kept and, with a path, the file messages go to (appended to, as
/// Locust's `--logfile`).
pub fn configure(level: Level, path: Option<&Path>) -> std::io::Result<()> {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
    if let Some(path) = path {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        *FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some((BufWriter::new(file), hostname()));
    }
    Ok(())
}

/// Whether messages at `level` are kept.
pub fn enabled(level: Level) -> bool {
    level as u8 >= THRESHOLD.load(Ordering::Relaxed)
}

/// Writes `text` to the log file when there is one (returns false when there is none: the
/// caller shows it on standard error).
pub fn to_file(level: Level, text: &str) -> bool {
    let mut file = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let Some((out, host)) = file.as_mut() else {
        return false;
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let [y, mo, d, h, mi, s] = utc_civil(now.as_secs());
    let millis = now.subsec_millis();
    for line in text.lines() {
        let _ = writeln!(
            out,
            "[{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02},{millis:03}] {host}/{}/swarmer: {line}",
            level.name()
        );
    }
    let _ = out.flush();
    true
}

/// This machine's name, as the log's lines carry it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match ok {
        true => String::from_utf8_lossy(&buf[..end]).into_owned(),
        false => "localhost".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_filter() {
        assert!(Level::Debug < Level::Info && Level::Error < Level::Critical);
        THRESHOLD.store(Level::Warning as u8, Ordering::Relaxed);
        assert!(!enabled(Level::Info));
        assert!(enabled(Level::Warning) && enabled(Level::Error));
        THRESHOLD.store(Level::Info as u8, Ordering::Relaxed);
    }
}
