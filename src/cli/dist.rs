//! The flags of distributed runs: Locust 2's names (its 1.x names as aliases) for the master
//! and its workers, and swarmer's own for the link's security.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_duration, parse_positive};

/// Distributed runs: Locust 2's flags (its 1.x names as aliases).
#[derive(Args, Debug, Clone, Default)]
pub struct DistArgs {
    /// Run as the master of a distributed run: wait for --expect-workers workers, send them the
    /// run, merge what they measure (exactly), write every report.
    #[arg(long, conflicts_with = "worker")]
    pub master: bool,

    /// Run as a worker: connect to --master-host, take the run the master sends, make its share
    /// of the load. Needs no scenario file or other flags.
    #[arg(long, visible_alias = "slave")]
    pub worker: bool,

    /// Master: workers to wait for before the run starts.
    #[arg(long, visible_alias = "expect-slaves", default_value_t = 1, value_parser = parse_positive)]
    pub expect_workers: usize,

    /// Master: give up when fewer than --expect-workers are ready after this long. Worker: keep
    /// trying to reach the master this long.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub expect_workers_max_wait: Duration,

    /// Worker: the master's address.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_host: String,

    /// Worker: the master's port.
    #[arg(long, default_value_t = 5557)]
    pub master_port: u16,

    /// Master: the address to listen on for workers (loopback by default; any other address
    /// needs --secret or is warned about).
    #[arg(long, default_value = "127.0.0.1")]
    pub master_bind_host: String,

    /// Master: the port to listen on for workers (0 picks a free one and prints it).
    #[arg(long, default_value_t = 5557)]
    pub master_bind_port: u16,

    /// Start a master and this many local workers in one command (the way past one process's
    /// open-file limit).
    #[arg(long, value_parser = parse_positive, conflicts_with_all = ["worker", "master"])]
    pub processes: Option<usize>,

    /// A worker (or master) silent for this long is lost: its users move to the other workers
    /// (a worker without its master stops its load and exits).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub heartbeat_timeout: Duration,

    /// A shared secret both sides prove they hold (HMAC challenge-response) before anything
    /// else passes; also SWARMER_SECRET.
    #[arg(long, value_name = "TEXT")]
    pub secret: Option<String>,

    /// Master: print a line per worker (state, users, CPU, requests) with every table.
    #[arg(long)]
    pub print_workers: bool,

    /// Master: serve the link to workers over TLS with this certificate chain (PEM); needs
    /// --master-tls-key.
    #[arg(long, value_name = "FILE", requires = "master_tls_key")]
    pub master_tls_cert: Option<PathBuf>,

    /// Master: the private key (PEM) of --master-tls-cert.
    #[arg(long, value_name = "FILE", requires = "master_tls_cert")]
    pub master_tls_key: Option<PathBuf>,

    /// Worker: reach the master over TLS, trusting this CA (PEM) beside the system's roots; the
    /// master's certificate must name --master-host.
    #[arg(long, value_name = "FILE")]
    pub master_ca_cert: Option<PathBuf>,
}
