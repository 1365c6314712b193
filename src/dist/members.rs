//! The master's view of its workers: their states, what each reported, and the table the
//! console, `PREFIX_workers.csv` and the web UI's Workers tab show.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};

use super::link::{self, WorkerInfo};
use crate::report::board::WorkerRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Admitted, compiling the run.
    Joining,
    Ready,
    Running,
    Done,
    Lost,
    Failed,
}

impl State {
    pub(super) fn name(self) -> &'static str {
        match self {
            State::Joining => "joining",
            State::Ready => "ready",
            State::Running => "running",
            State::Done => "done",
            State::Lost => "missing",
            State::Failed => "failed",
        }
    }
}

pub(super) struct Member {
    pub(super) info: WorkerInfo,
    pub(super) sender: link::Sender,
    pub(super) peer: SocketAddr,
    pub(super) state: State,
    /// Its place in `holders` once it runs partitions.
    pub(super) holder: Option<usize>,
    pub(super) users: u64,
    pub(super) cpu_permille: u64,
    pub(super) last_seen: Instant,
    pub(super) requests: u64,
    pub(super) failures: u64,
}

/// PREFIX_workers.csv: one row per worker.
pub(super) fn write_csv(prefix: &std::path::Path, rows: &[WorkerRow]) -> Result<()> {
    let path = std::path::PathBuf::from(format!("{}_workers.csv", prefix.display()));
    let mut out = csv::Writer::from_path(&path).with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record([
        "Worker",
        "Host",
        "Address",
        "State",
        "Cores",
        "Partitions",
        "Users",
        "CPU %",
        "Requests",
        "Failures",
    ])?;
    for w in rows {
        let cpu = format!("{:.1}", w.cpu_usage);
        let numbers = [w.cores, w.partitions].map(|n| n.to_string());
        let counts = [w.user_count, w.requests, w.failures].map(|n| n.to_string());
        out.write_record([
            &w.id,
            &w.host,
            &w.address,
            &w.state,
            &numbers[0],
            &numbers[1],
            &counts[0],
            &cpu,
            &counts[1],
            &counts[2],
        ])?;
    }
    out.flush()?;
    Ok(())
}
