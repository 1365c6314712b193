//! Distributed runs: a master that users talk to and that merges what its workers measure, and
//! workers that make the load. Locust's model (`--master`, `--worker`) over one TCP link per
//! worker with swarmer's own frames.
//!
//! | file | owns |
//! |---|---|
//! | `master.rs` | the coordinator: waiting for workers, placing partitions, the merge feed, losses |
//! | `listen.rs` | the master's listener: accepting, the handshake, each worker's frames read |
//! | `members.rs` | the master's view of its workers: states, what each reported, their table |
//! | `worker.rs` | connecting, taking the run, the engine threads, forwarding snapshots |
//! | `share.rs` | which worker runs which partitions (in proportion to cores) |
//! | `link.rs` | one framed connection: handshake, heartbeats, reading with a deadline |
//! | `wire.rs` | the frames and their encoding |
//! | `snapshot.rs` | a snapshot on the wire, and the check that it fits the plan |
//! | `auth.rs` | the secret's challenge-response |
//!
//! The users of a run are split into partitions (one per worker thread across all workers, global
//! user `i` in partition `i % partitions`), so user numbers, spawn times, shapes and the open
//! model's schedule are those of one process with that many threads. Each partition's thread
//! sends a snapshot per tick; the master feeds them to the ordinary reporter, which adds
//! histograms bucket by bucket: its percentiles are those of one histogram of every sample.

pub mod auth;
pub mod link;
mod listen;
pub mod master;
mod members;
pub mod share;
mod snapshot;
pub mod wire;
pub mod worker;
