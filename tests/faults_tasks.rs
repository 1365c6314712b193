//! The hostile and broken servers of `faults.rs`, on the task engine (monoio futures: what
//! `--no-ring`, HTTPS, scenarios and the open model run on).

const RING: bool = false;
include!("common/fault_cases.rs");
