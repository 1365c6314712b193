//! The engine: one pinned OS thread per selected core, each with its own slice of the virtual
//! users and its own io_uring: a monoio runtime running a task per user (the task engine, for
//! every plan), or for plain-HTTP quick mode a hand-driven ring with a state machine per user
//! (the ring engine: `ring.rs`, `link.rs`). Nothing is shared between workers per request: each owns its
//! users, connections, buffers, RNGs and `CoreStats`. The only cross-thread traffic is the stop
//! flag (a Relaxed load every `POLL`) and one `Snapshot` per tick to the reporter.
//!
//! # Layout
//!
//! Each file imports only the ones below it in this list (a run read from the top down):
//!
//! | file | owns |
//! |---|---|
//! | `thread.rs` | a worker thread's life: pinning, runtime, the tick and stop loop; setup/teardown |
//! | `ring.rs` | the ring engine: quick mode's loop on a hand-driven io_uring, per worker thread |
//! | `link.rs` | one ring-engine user and its connection, as a state machine driven by completions |
//! | `pacer.rs` | starting users: spawn ramp, load shape and live users, the open model's starts |
//! | `schedule.rs` | the open model's start times on one worker |
//! | `user.rs` | the virtual-user loop: task picks, task sets, think time, steps |
//! | `call.rs` | one scenario request: build, exchange with redirects, judge, apply effects |
//! | `check.rs` | checks and captures on a response (JSON walked without a tree) |
//! | `session.rs` | a scenario user's variables, headers, cookie jar and request building |
//! | `exchange.rs` | send once, retry an idle close, record a response or failure with its times |
//! | `worker.rs` | one worker's state: recorder, running users, open-model slots, cancellation |
//! | `run.rs` | what every worker of a run shares: plan, start, stop flag, pools, live levels |

mod call;
mod check;
mod exchange;
mod link;
mod pacer;
mod ring;
mod run;
mod schedule;
mod session;
mod thread;
mod user;
mod worker;

use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use crate::stats::Snapshot;

pub use run::{Live, Run, POLL};
pub use thread::{run_fixture, FixtureState};
pub use worker::Thread;

/// Starts one thread per worker, thread `i` running partition `i`. Each sends its snapshots on
/// `snapshots` and takes spare ones back from its entry of `spares`; it exits when the run is
/// over, after a final snapshot.
pub fn start(
    run: Arc<Run>,
    snapshots: Sender<Snapshot>,
    spares: Vec<Receiver<Snapshot>>,
) -> Result<Vec<JoinHandle<Result<()>>>> {
    let mut handles = Vec::new();
    for (index, spares) in spares.into_iter().enumerate() {
        let core = run.plan.workers.get(index).copied().flatten();
        handles.push(start_thread(run.clone(), Thread { index, partition: index, core }, snapshots.clone(), spares)?);
    }
    Ok(handles)
}

/// Starts one worker thread (a distributed worker starts one per partition it is given, also
/// mid-run: its first snapshot is of the tick it started in).
pub fn start_thread(
    run: Arc<Run>,
    thread: Thread,
    snapshots: Sender<Snapshot>,
    spares: Receiver<Snapshot>,
) -> Result<JoinHandle<Result<()>>> {
    std::thread::Builder::new()
        .name(format!("swarmer-worker-{}", thread.index))
        .spawn(move || thread::main(thread, run, snapshots, spares))
        .context("cannot start a worker thread")
}
