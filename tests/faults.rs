//! Hostile and broken servers: a scripted server per case (real sockets on loopback, a thread per
//! connection, no mocks), each run bounded in time. In every case the run ends on time with no
//! panic, the accounting invariant holds per endpoint (requests started = completed (successes
//! + failures) + cancelled), and the failures name their cause.
//!
//! These run on the ring engine (quick mode's default); `faults_tasks.rs` runs the same cases
//! on the task engine (`--no-ring`, and what TLS, scenarios and the open model use).

const RING: bool = true;
include!("common/fault_cases.rs");
