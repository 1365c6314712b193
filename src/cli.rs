//! Command-line flags, raw: clap definitions with Locust's names where Locust has the flag.
//! Nothing here is resolved or cross-checked; `config::Plan::from_cli` does that once.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub mod conf;
mod dist;

pub use dist::DistArgs;

use crate::log::Level;
use crate::runtime::Io;
use crate::units;

/// The exit codes, as `--help` lists them.
const EXIT_CODES: &str = "\
Exit codes:
  0   the run completed and nothing failed
  1   a request failed or a task aborted (--exit-code-on-error sets the code)
  2   bad flags, a bad scenario file (file:line:col) or a resource limit, before any traffic
  3   the run could not start, nothing could connect, or no request completed
  99  a threshold was lost (--threshold)";

/// What the built-in target answers, as `swarmer target --help` lists it.
const TARGET_ENDPOINTS: &str = "\
Endpoints:
  /                 200 \"Hello, World!\"
  /bytes/N          200 with an N-byte body (up to 64 MiB)
  /chunked/N        200 with an N-byte chunked body
  /delay/D          200 after D (e.g. 20ms, 1s; up to 120s)
  /status/C         status C
  /close            200 with Connection: close
  /api/...          a small JSON API for the scenario examples: login, logout, me, posts,
                    comments, photos, redirect, echo, stats (see src/target/api.rs)";

#[derive(Parser, Debug)]
#[command(
    name = "swarmer",
    version,
    about = "Locust-style load testing on a thread-per-core io_uring engine",
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the built-in target server (canned endpoints for demos, tests and benchmarks).
    Target(TargetArgs),
    /// Start the built-in target in-process and run a short test against it.
    Demo(DemoArgs),
    /// Compare two --json-file summaries: side by side with ratios per endpoint; exits 1 when
    /// the second run is worse than the first beyond --tolerance (a CI regression gate).
    Compare(CompareArgs),
    /// Convert a browser or REST-client recording (HAR) into a scenario file: the page's own
    /// requests in order, tokens and created ids captured from the responses that produced them.
    Har(HarArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Quick mode: one GET task on this URL, no think time (like wrk).
    #[arg(value_name = "URL")]
    pub url: Option<String>,

    /// Scenario file (TOML; see scenarios/README.md).
    #[arg(short = 'f', long, visible_alias = "locustfile", value_name = "FILE")]
    pub scenario: Option<PathBuf>,

    /// With --scenario: check the file and exit (0 when valid, 2 with file:line:col otherwise).
    #[arg(long, requires = "scenario")]
    pub check: bool,

    /// With --scenario: show the user types and tasks with their weights and ratios, and exit.
    #[arg(long, visible_alias = "show-task-ratio", requires = "scenario")]
    pub list: bool,

    /// Run only tasks with one of these tags (comma-separated or repeated).
    #[arg(short = 'T', long, value_delimiter = ',')]
    pub tags: Vec<String>,

    /// Leave out tasks with any of these tags.
    #[arg(short = 'E', long, value_delimiter = ',')]
    pub exclude_tags: Vec<String>,

    /// Base URL for relative paths (Locust's --host).
    #[arg(short = 'H', long)]
    pub host: Option<String>,

    /// Peak number of concurrent users (each has its own keep-alive connection). Default 1, or
    /// the scenario file's `users`.
    #[arg(short = 'u', long, value_parser = parse_count, allow_negative_numbers = true)]
    pub users: Option<u64>,

    /// Users started per second. Default 1, or the scenario file's `spawn_rate`.
    #[arg(short = 'r', long, value_parser = parse_rate, allow_negative_numbers = true)]
    pub spawn_rate: Option<f64>,

    /// Stop after this long (30s, 5m, 1h30m; bare number = seconds). Default: until Ctrl-C.
    #[arg(short = 't', long, value_parser = parse_run_time, allow_negative_numbers = true)]
    pub run_time: Option<Duration>,

    /// Open model: start tasks at this rate (e.g. 500, 5k/s) whether or not earlier ones have
    /// finished; latency counts from each task's intended start. Users are a pool that grows
    /// to --max-users.
    #[arg(long, value_parser = parse_rate, allow_negative_numbers = true)]
    pub rate: Option<f64>,

    /// Open model: the most users (and connections) at once; a start that finds them all busy
    /// is dropped and counted. Default 1000.
    #[arg(long, value_parser = parse_count, allow_negative_numbers = true)]
    pub max_users: Option<u64>,

    /// Open model: how long a start may wait for a free user (all --max-users busy) before it is
    /// dropped and counted; its wait is part of its latency.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub max_start_delay: Duration,

    /// HTTPS: accept any server certificate (self-signed, expired, other names); the server
    /// must still prove it holds the certificate's key.
    #[arg(short = 'k', long)]
    pub insecure: bool,

    /// HTTPS: trust this CA certificate (PEM) besides the built-in webpki roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// HTTPS: present this client certificate chain (PEM) to servers that ask (mTLS); needs
    /// --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,

    /// HTTPS: the client certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,

    /// Users follow these stages instead of the spawn ramp: DURATION:USERS linear ramps from the
    /// previous level, e.g. 30s:100,1m:100,30s:0 (sets the run time unless -t is given). Written
    /// as rates (30s:500/s,1m:500/s,30s:0/s), the open model's start rate follows them.
    #[arg(long, value_name = "STAGES")]
    pub stages: Option<String>,

    /// Users follow a named shape over the run time with --users as the peak: gaussian, spike,
    /// sine[:PERIOD], step:EVERY:USERS. With --rate, the start rate follows it, --rate the peak.
    #[arg(long, value_name = "SHAPE")]
    pub shape: Option<String>,

    /// Each user runs this many tasks, then stops; the run ends when all have (or at -t).
    #[arg(short = 'i', long, value_parser = parse_count, allow_negative_numbers = true)]
    pub iterations: Option<u64>,

    /// Seed of the run's random numbers (think times, task picks, uuid(), random_int(), …): the
    /// same seed replays the same choices. Default: a new one each run, printed at the end.
    #[arg(long, value_parser = parse_seed)]
    pub seed: Option<u64>,

    /// Reset the statistics once every user has started (measure the steady state only).
    #[arg(long)]
    pub reset_stats: bool,

    /// No web UI: run at once and print a table every 2 s. A scenario file without a run time
    /// (-t or the file's) or --iterations opens the web UI otherwise; quick mode (a URL) is
    /// always headless unless --web.
    #[arg(long, conflicts_with_all = ["web", "autostart"])]
    pub headless: bool,

    /// Open the web UI (on --web-host:--web-port) even in quick mode or for a bounded run.
    #[arg(long)]
    pub web: bool,

    /// With the web UI: start the test at once, with the flags' and the file's values.
    #[arg(long)]
    pub autostart: bool,

    /// With the web UI: exit this long after the run ends (e.g. 10s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub autoquit: Option<Duration>,

    /// The web UI's address (loopback by default: the UI starts load tests).
    #[arg(long, default_value = "127.0.0.1")]
    pub web_host: String,

    /// The web UI's port.
    #[arg(short = 'P', long, default_value_t = 8089)]
    pub web_port: u16,

    /// HTTP Basic credentials the web UI asks for, USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub web_auth: Option<String>,

    /// Serve the web UI over HTTPS with this certificate chain (PEM); needs --web-tls-key.
    #[arg(long, value_name = "FILE", requires = "web_tls_key")]
    pub web_tls_cert: Option<PathBuf>,

    /// The web UI's certificate key (PEM).
    #[arg(long, value_name = "FILE", requires = "web_tls_cert")]
    pub web_tls_key: Option<PathBuf>,

    /// Write PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv and
    /// PREFIX_exceptions.csv (Locust's four), and with --rate PREFIX_stats_service.csv.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,

    /// Write a self-contained HTML report of the run here when it ends (tables, charts, the
    /// latency heat map; it opens offline).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Print the final statistics as Locust's JSON on standard output, and nothing else there
    /// (the tables go to standard error).
    #[arg(long)]
    pub json: bool,

    /// Write a whole-run summary here when the run ends: swarmer's versioned JSON schema (run
    /// metadata, exact percentiles per endpoint, errors, thresholds, the open model's arrivals),
    /// what `swarmer compare` reads. Not Locust's --json-file (see README, Outputs).
    #[arg(long, value_name = "FILE")]
    pub json_file: Option<PathBuf>,

    /// Write an HdrHistogram interval log here: one compressed histogram (µs) per endpoint per
    /// second, tagged by endpoint, as HistogramLogProcessor, HistogramLogAnalyzer and hdr-plot
    /// read it.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,

    /// Serve OpenMetrics (Prometheus) text at http://--metrics-host:PORT/metrics while the run
    /// goes on (the web UI serves /metrics too).
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,

    /// The address --metrics-port listens on (loopback by default).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub metrics_host: String,

    /// Read flags from this file: long names without dashes, one per line (`users = 100`,
    /// `run-time = 5m`, `headless = true`), as Locust's locust.conf. ./swarmer.conf is read when
    /// present; SWARMER_USERS-style variables set any flag. The command line wins, then the
    /// environment, then the file, then the scenario file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The lowest level of message kept: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    #[arg(short = 'L', long, value_enum, default_value = "INFO", ignore_case = true)]
    pub loglevel: Level,

    /// Write messages (the banner, first errors, thresholds lost, stopping) to this file, with
    /// timestamps, instead of standard error.
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// Also write one row per endpoint per second to PREFIX_stats_history.csv.
    #[arg(long)]
    pub csv_full_history: bool,

    /// Print only the final summary, not the periodic table.
    #[arg(long)]
    pub only_summary: bool,

    /// Let users finish their current task for up to this long when the run stops.
    #[arg(short = 's', long, value_parser = parse_duration, default_value = "0s")]
    pub stop_timeout: Duration,

    /// A pass/fail criterion on the whole run, e.g. 'p99<250ms', 'fail_ratio<1%', 'rps>1000',
    /// or per endpoint: 'GET /api/posts/[id] p95<100ms'. Repeatable. A lost one exits 99.
    #[arg(long, value_name = "EXPR")]
    pub threshold: Vec<String>,

    /// Stop the run as soon as a threshold that can only get worse (failures<N, requests<N,
    /// max<D) is lost.
    #[arg(long)]
    pub abort_on_threshold: bool,

    /// Exit code when any request failed.
    #[arg(long, default_value_t = 1)]
    pub exit_code_on_error: i32,

    /// Worker threads, one pinned per core (default: all cores, or the --cpus list).
    #[arg(long, value_parser = parse_positive, allow_negative_numbers = true)]
    pub threads: Option<usize>,

    /// Cores to run workers on, e.g. 0,1 or 2-5.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,

    /// Per-request timeout, applied to connecting and to each response (default 30s, or the
    /// scenario file's `timeout`).
    #[arg(long, value_parser = parse_timeout, allow_negative_numbers = true)]
    pub timeout: Option<Duration>,

    /// Requests written back to back per user before reading responses (quick mode), as wrk's
    /// pipeline script.
    #[arg(long, value_parser = parse_positive, default_value = "1", allow_negative_numbers = true)]
    pub pipeline: usize,

    /// IO driver: io_uring when available (auto), or force one.
    #[arg(long, value_enum, default_value = "auto")]
    pub io: Io,

    /// Build io_uring rings without IORING_SETUP_DEFER_TASKRUN (for measuring its effect).
    #[arg(long)]
    pub no_defer_taskrun: bool,

    /// Run quick mode on the task engine (monoio futures) instead of the ring engine (a state
    /// machine per user on a hand-driven io_uring), for measuring the difference. The ring
    /// engine runs plain-HTTP quick mode with the closed model; everything else always runs on
    /// the task engine.
    #[arg(long)]
    pub no_ring: bool,

    /// Source addresses to connect from, user i from the (i mod n)-th: `127.0.0.2-127.0.0.40`,
    /// `10.0.0.5,10.0.0.6`. Each (source, target) pair has ~28k ports; more connections to one
    /// target need more sources.
    #[arg(long, value_name = "LIST")]
    pub source_addrs: Option<String>,

    #[command(flatten)]
    pub dist: DistArgs,

    /// The command line as given (with the config file's and the environment's flags): what a
    /// distributed master sends its workers.
    #[arg(skip)]
    pub argv: Vec<String>,
}

#[derive(Args, Debug, Clone)]
#[command(after_help = TARGET_ENDPOINTS)]
pub struct TargetArgs {
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Share the port with other servers already listening on it (SO_REUSEPORT: the kernel
    /// splits connections between them). Without it, a port in use is refused.
    #[arg(long)]
    pub reuse_port: bool,
    /// Server threads, each with its own io_uring runtime and SO_REUSEPORT listener.
    #[arg(long, value_parser = parse_positive, default_value = "1")]
    pub threads: usize,
    /// Cores to pin server threads to, e.g. 0 or 0-1.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Serve HTTPS (a test certificate for localhost, 127.0.0.1 and ::1 signed by
    /// tests/tls/ca.pem, unless --tls-cert/--tls-key give one).
    #[arg(long)]
    pub tls: bool,
    /// HTTPS: the certificate chain to serve (PEM); implies --tls, needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How long the demo test runs.
    #[arg(short = 't', long, value_parser = parse_duration, default_value = "10s")]
    pub run_time: Duration,
    /// Concurrent users.
    #[arg(short = 'u', long, value_parser = parse_count, default_value = "64")]
    pub users: u64,
    /// Also write the four CSV files with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct HarArgs {
    /// The recording (HAR 1.2, as browsers' DevTools and REST clients export it).
    #[arg(value_name = "RECORDING")]
    pub recording: PathBuf,
    /// Write the scenario here (default: standard output).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep requests to these hosts (`host` or `host:port`; comma-separated or repeated).
    /// Default: the hosts of the page's own requests (documents, XHR and fetch).
    #[arg(long, value_delimiter = ',', value_name = "HOST")]
    pub include_host: Vec<String>,
    /// Leave out requests whose URL matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Option<String>,
    /// Keep images, fonts, CSS, scripts and media (left out by default).
    #[arg(long)]
    pub keep_static: bool,
    /// Pauses between the requests: recorded (the recording's gaps, as sleep steps), none, or
    /// a duration between every two.
    #[arg(long, default_value = "recorded", value_name = "recorded|none|DURATION")]
    pub think_time: String,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The baseline: a --json-file summary.
    #[arg(value_name = "BASELINE")]
    pub baseline: PathBuf,
    /// The candidate, judged against the baseline.
    #[arg(value_name = "CANDIDATE")]
    pub candidate: PathBuf,
    /// How much worse the candidate may be before it fails: slower percentiles or fewer
    /// requests/s by this fraction (10%, 0.1), a failure ratio higher by this fraction and
    /// by at least 0.1 percentage point.
    #[arg(long, value_parser = parse_fraction, default_value = "10%")]
    pub tolerance: f64,
    /// What is judged (the rest is shown): any of rps, fail_ratio, p50, p66, p75, p80, p90,
    /// p95, p98, p99, p99.9, p99.99, max, mean.
    #[arg(long, value_delimiter = ',', default_value = "rps,fail_ratio,p50,p95,p99")]
    pub metric: Vec<String>,
}

/// A fraction written as a percentage (`10%`) or a number (`0.1`).
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    };
    match value {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("invalid fraction {text:?}; expected e.g. 10% or 0.1")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    units::parse_duration(text)
}

fn parse_run_time(text: &str) -> Result<Duration, String> {
    match units::parse_duration(text)? {
        d if d.is_zero() => {
            Err("a run time of 0 runs nothing; give e.g. 30s, or leave -t out to run until Ctrl-C".into())
        }
        d => Ok(d),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match units::parse_duration(text)? {
        d if d.is_zero() => Err("a timeout of 0 fails every request; give e.g. 5s".into()),
        d => Ok(d),
    }
}

/// A seed is any 64-bit number, digit for digit (a count's parser goes through f64).
fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("invalid seed {text:?}; expected a whole number from 0 to {}", u64::MAX))
}

fn parse_count(text: &str) -> Result<u64, String> {
    units::parse_count(text)
}

impl RunArgs {
    /// The TLS settings the flags give (files are read when the configuration is built).
    pub fn tls_options(&self) -> Result<crate::tls::ClientOptions, String> {
        Ok(crate::tls::ClientOptions {
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone().zip(self.client_key.clone()),
        })
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    units::parse_rate(text)
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match units::parse_count(text)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n as usize),
    }
}

/// Parses a core list such as `0,2-3`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("invalid core list {text:?}; expected e.g. 0,1 or 2-5");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("empty core list {text:?}"));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2-4").unwrap(), vec![0, 2, 3, 4]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn locust_flags_parse() {
        let cli = Cli::try_parse_from([
            "swarmer",
            "--headless",
            "-u",
            "64",
            "-r",
            "64",
            "-t",
            "10s",
            "http://127.0.0.1:8080/",
            "--csv",
            "out/run",
        ])
        .unwrap();
        assert_eq!(cli.run.users, Some(64));
        assert_eq!(cli.run.run_time, Some(Duration::from_secs(10)));
        assert_eq!(cli.run.url.as_deref(), Some("http://127.0.0.1:8080/"));
        let err = Cli::try_parse_from(["swarmer", "-t", "10x"]).unwrap_err();
        assert!(err.to_string().contains("--run-time"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
