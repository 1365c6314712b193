//! swarmer: Locust's way of describing load on a thread-per-core io_uring engine.
//!
//! # Layout
//!
//! Data flows one way: **cli / scenario → config (`Plan`) → engine (workers, users) → http (`Conn`) →
//! stats (`CoreStats`, `Snapshot`) → report**. `tests/layers.rs` checks every import against
//! this flow and that this map names every file.
//!
//! | concept | files |
//! |---|---|
//! | the binary: parse, run, exit code | `main.rs` |
//! | the composition root: run, dispatch, exit codes | `lib.rs` |
//! | the web UI's runs: serve, start from the form, steer | `session.rs` |
//! | the subcommands: target, demo, compare | `commands.rs` |
//! | distributed runs composed: master, worker, `--processes` | `cluster.rs` |
//! | flags (Locust names); distributed runs' flags | `cli.rs`, `cli/dist.rs` |
//! | flags from config files and `SWARMER_*` variables | `cli/conf.rs` |
//! | durations, counts, rates | `units.rs` |
//! | the validated plan of a run, its limits and workers | `config.rs` |
//! | the plan from flags; quick mode | `config/flags.rs` |
//! | user types, tasks, steps, think time, variables | `config/task.rs` |
//! | scenario calls: templates, checks, captures | `config/call.rs` |
//! | load shapes and stages | `config/shape.rs` |
//! | thresholds (`p99<250ms`) | `config/threshold.rs` |
//! | scenario files: loading, errors, names, hosts | `scenario/mod.rs` |
//! | the file's keys (serde) | `scenario/file.rs` |
//! | user types and task sets compiled | `scenario/users.rs` |
//! | a request step compiled; its body; its checks | `scenario/step.rs`, `scenario/body.rs`, `scenario/check.rs` |
//! | `{{ }}` templates | `scenario/template.rs` |
//! | the engine's map and threads | `engine/mod.rs` |
//! | a worker thread's life; setup/teardown | `engine/thread.rs` |
//! | the ring engine: quick mode on a hand-driven io_uring; one user's state machine | `engine/ring.rs`, `engine/link.rs` |
//! | spawn ramp, shapes, live users, arrivals | `engine/pacer.rs` |
//! | the open model's start times | `engine/schedule.rs` |
//! | the virtual-user loop, task sets, think time | `engine/user.rs` |
//! | a scenario request: build, redirects, judge, effects | `engine/call.rs` |
//! | checks and captures on a response | `engine/check.rs` |
//! | a scenario user's variables, headers, cookies, request bytes | `engine/session.rs` |
//! | send, retry an idle close, record | `engine/exchange.rs` |
//! | a worker's state (slots, cancellation) | `engine/worker.rs` |
//! | what every worker of a run shares | `engine/run.rs` |
//! | the HTTP/1.1 client's map | `http/mod.rs` |
//! | keep-alive connection; reading responses (buffer, kept copies) without the IO | `http/conn.rs`, `http/read.rs` |
//! | response head, body framing | `http/head.rs`, `http/body.rs` |
//! | request encoding, URLs | `http/request.rs`, `http/url.rs` |
//! | cookies, redirects | `http/cookie.rs`, `http/redirect.rs` |
//! | TLS (client and target) | `tls.rs` |
//! | error taxonomy | `failure.rs` |
//! | the log: levels, `--logfile` | `log.rs` |
//! | runtime construction (io_uring flags, epoll), precise timer | `runtime.rs` |
//! | the load path's deadlines and sleeps: one timer table per thread | `runtime/timer.rs` |
//! | per-core histograms and snapshots | `stats/mod.rs` |
//! | merging, the final summary; the numbers every report reads | `report/mod.rs`, `report/results.rs` |
//! | banner, users line, first errors, final notes; task ratios (`--list`) | `report/status.rs`, `report/ratios.rs` |
//! | console tables, CSV files, number formats | `report/console.rs`, `report/csv.rs`, `report/format.rs` |
//! | thresholds judged | `report/thresholds.rs` |
//! | JSON (Locust's `--json`, the `--json-file` summary), comparing summaries | `report/json.rs`, `report/compare.rs` |
//! | HdrHistogram interval log; OpenMetrics; the machine's facts | `report/hdrlog.rs`, `report/metrics.rs`, `report/machine.rs` |
//! | the board the web UI and the HTML report read; the HTML report | `report/board.rs`, `report/html.rs` |
//! | the web UI's server, routes (Locust's API, events), credentials and origins | `web/mod.rs`, `web/routes.rs`, `web/guard.rs` |
//! | live control keys, signals | `keys.rs`, `signal.rs` |
//! | recordings (HAR) into scenarios: reading, correlation, the file written | `har/mod.rs`, `har/read.rs`, `har/correlate.rs`, `har/write.rs` |
//! | distributed runs: the master, its listener, the worker, placing partitions | `dist/mod.rs`, `dist/master.rs`, `dist/listen.rs`, `dist/members.rs`, `dist/worker.rs`, `dist/share.rs` |
//! | the master–worker link: framing, handshake, frames, snapshots, the secret | `dist/link.rs`, `dist/wire.rs`, `dist/snapshot.rs`, `dist/auth.rs` |
//! | the built-in target: server, canned routes, JSON API | `target/mod.rs`, `target/routes.rs`, `target/api.rs` |
//!
//! `run` is the one composition root: start the reporter, start the engine, wait, return the
//! outcome. `main.rs` parses flags, calls in here, prints the error chain and exits.

pub mod cli;
mod cluster;
mod commands;
pub mod config;
pub mod dist;
pub mod engine;
pub mod failure;
pub mod har;
pub mod http;
pub mod keys;
pub mod log;
pub mod report;
pub mod runtime;
pub mod scenario;
mod session;
pub mod signal;
pub mod stats;
pub mod target;
pub mod tls;
pub mod units;
pub mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use config::Plan;
use log::Level;
use report::{Reporter, Summary};

/// Exit code when the arguments or configuration are invalid.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the run could not start (nothing could connect, no runtime) or no request
/// completed.
pub const EXIT_NO_START: i32 = 3;
/// Exit code when a threshold was lost (k6's).
pub const EXIT_THRESHOLDS: i32 = 99;

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    pub exit_code: i32,
}

/// Knobs for embedding a run (tests, `demo`, the web UI).
#[derive(Default, Clone)]
pub struct RunOptions {
    /// Stops the run gracefully when set (in addition to SIGINT/SIGTERM when `watch_signals`).
    pub stop: Arc<AtomicBool>,
    pub watch_signals: bool,
    pub on_worker_start: Option<fn(usize)>,
    /// Read live-control keys from the terminal (with a plan that has live control).
    pub keys: bool,
    /// The web UI's board (the reporter posts to it) and its commands (stop, edit).
    pub board: Option<Arc<report::board::Board>>,
    pub commands: Option<crossbeam_channel::Receiver<web::Command>>,
    /// The numbers `/metrics` serves (`--metrics-port`, the web UI).
    pub metrics: Option<Arc<report::metrics::Metrics>>,
}

/// Runs `plan` to completion: reporter thread, worker threads, final report.
pub fn run(plan: Plan, options: RunOptions) -> Result<Outcome> {
    plan.check_resources().map_err(usage)?;
    let plan = Arc::new(plan);
    let workers = plan.workers.len();
    let (snapshot_tx, snapshot_rx) = crossbeam_channel::bounded(workers * 64);
    let (spare_txs, spare_rxs): (Vec<_>, Vec<_>) = (0..workers).map(|_| crossbeam_channel::bounded(4)).unzip();
    let engine_run = Arc::new(engine::Run::new(plan.clone(), options.stop.clone(), options.on_worker_start));
    let start_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let mut reporter = Reporter::new(plan.clone(), engine_run.start, start_unix, options.stop.clone())?;
    if let Some(board) = &options.board {
        board.start(&plan);
        reporter = reporter.with_board(board.clone());
    }
    if let Some(metrics) = &options.metrics {
        reporter = reporter.with_metrics(metrics.clone());
    }
    let engine_done = Arc::new(AtomicBool::new(false));
    let reporter_done = engine_done.clone();
    let reporter = std::thread::Builder::new()
        .name("swarmer-reporter".into())
        .spawn(move || reporter.run(snapshot_rx, spare_txs, &reporter_done))
        .context("cannot start the reporter thread")?;
    let keys = match plan.live_control && options.keys {
        true => Some(keys::Keys::start(engine_run.clone()).context("cannot start the key reader")?),
        false => None,
    };
    for line in report::banner(&plan) {
        report::notice(Level::Info, &line);
    }
    let handles = engine::start(engine_run.clone(), snapshot_tx, spare_rxs)?;
    let mut signals_seen = 0;
    while handles.iter().any(|h| !h.is_finished()) {
        if options.watch_signals && signal::received() > signals_seen {
            signals_seen = signal::received();
            stop_on_signal(signals_seen, &engine_run);
        }
        while let Some(command) = options.commands.as_ref().and_then(|c| c.try_recv().ok()) {
            session::steer(command, &engine_run, options.board.as_deref());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(keys) = keys {
        keys.finish();
    }
    let mut worker_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => worker_error = Some(err),
            Err(_) => worker_error = Some(anyhow::anyhow!("a worker thread panicked")),
        }
    }
    engine_done.store(true, Ordering::Release);
    let summary = match reporter.join() {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("the reporter thread panicked"),
    };
    let exit_code = exit_code(&plan, &summary, worker_error);
    Ok(Outcome { summary, exit_code })
}

/// The first stop signal stops the run gracefully (users finish their task within
/// `--stop-timeout`), the second at once.
fn stop_on_signal(count: usize, run: &engine::Run) {
    let grace = run.plan.stop_timeout;
    if count >= 2 {
        run.abort.store(true, Ordering::Relaxed);
        report::notice(Level::Info, "stopping now: requests still in flight are counted as cancelled");
    } else if grace.is_zero() {
        run.stop.store(true, Ordering::Relaxed);
        report::notice(Level::Info, "stopping: the final report follows");
    } else {
        run.stop.store(true, Ordering::Relaxed);
        let users = run.users_running.load(Ordering::Relaxed);
        report::notice(
            Level::Info,
            &format!(
                "stopping: waiting up to {} for {users} users to finish their task (Ctrl-C again to stop now)",
                units::HumanDuration(grace)
            ),
        );
    }
}

/// The process exit code a finished run earns (printing why when it could not start).
pub(crate) fn exit_code(plan: &Plan, summary: &Summary, worker_error: Option<anyhow::Error>) -> i32 {
    if let Some(err) = worker_error {
        report::notice(Level::Error, &format!("error: {err:#}"));
        EXIT_NO_START
    } else if summary.requests > 0 && summary.connect_failures == summary.requests {
        report::notice(Level::Error, "error: no request could connect (see the error report)");
        EXIT_NO_START
    } else if summary.requests == 0 {
        report::notice(Level::Error, &format!("error: {}", report::nothing_completed(plan, summary)));
        EXIT_NO_START
    } else if summary.thresholds_lost > 0 {
        EXIT_THRESHOLDS
    } else if summary.failures > 0 || !summary.aborts.is_empty() {
        plan.output.exit_code_on_error
    } else {
        0
    }
}

/// Dispatches a parsed command line; returns the process exit code.
pub fn main_with(cli: cli::Cli) -> Result<i32> {
    let args = match cli.command {
        Some(cli::Command::Target(args)) => return commands::run_target(&args),
        Some(cli::Command::Demo(args)) => return commands::run_demo(&args),
        Some(cli::Command::Compare(args)) => return commands::run_compare(&args),
        Some(cli::Command::Har(args)) => return commands::run_har(&args),
        None => cli.run,
    };
    log::configure(args.loglevel, args.logfile.as_deref()).map_err(|e| {
        let path = args.logfile.as_deref().unwrap_or(std::path::Path::new("")).display();
        usage(anyhow::anyhow!("--logfile {path}: {e}"))
    })?;
    if args.dist.worker {
        return cluster::run_worker(&args);
    }
    if let Some(processes) = args.dist.processes {
        return cluster::run_processes(&args, processes);
    }
    if args.dist.master && !args.check && !args.list {
        return cluster::run_master(&args);
    }
    if args.scenario.is_some() {
        return run_scenario(&args);
    }
    let plan = Plan::from_cli(&args).map_err(usage)?;
    match session::wants_ui(&args, &plan) {
        true => session::serve_ui(&args, plan),
        false => run_from_terminal(plan, &args),
    }
}

/// `--metrics-port`: the numbers `/metrics` serves, and their server started; `None` without
/// the flag.
fn metrics_server(args: &cli::RunArgs) -> Result<Option<Arc<report::metrics::Metrics>>> {
    let Some(port) = args.metrics_port else {
        return Ok(None);
    };
    let ip: std::net::IpAddr = args
        .metrics_host
        .parse()
        .map_err(|_| usage(anyhow::anyhow!("--metrics-host {}: not an IP address", args.metrics_host)))?;
    let metrics = Arc::new(report::metrics::Metrics::new());
    let addr = web::start_metrics((ip, port).into(), metrics.clone()).map_err(usage)?;
    report::notice(Level::Info, &format!("swarmer: metrics on http://{addr}/metrics"));
    if !ip.is_loopback() {
        report::notice(
            Level::Warning,
            "warning: --metrics-host listens beyond this machine; the metrics name what is tested",
        );
    }
    Ok(Some(metrics))
}

/// Runs a plan from the command line: live keys when stdin is a terminal, Ctrl-C stops it
/// gracefully, `setup`/`teardown` around it.
fn run_from_terminal(mut plan: Plan, args: &cli::RunArgs) -> Result<i32> {
    if keys::stdin_is_terminal() {
        plan.enable_live_control();
    }
    let metrics = metrics_server(args)?;
    signal::install();
    let options = RunOptions { watch_signals: true, keys: plan.live_control, metrics, ..RunOptions::default() };
    Ok(run_scenario_plan(plan, options)?.exit_code)
}

/// Builds the plan of a scenario run: the file compiled, the command line applied over it.
pub fn scenario_plan(args: &cli::RunArgs) -> Result<Plan> {
    scenario_plan_from(args, None)
}

/// A distributed worker's files: the scenario's text and its data and body files by the paths
/// it gives.
pub type Sources<'a> = (&'a str, Arc<std::collections::HashMap<String, Vec<u8>>>);

/// `scenario_plan`, compiling `source` (a worker's, from its master) instead of reading the
/// disk when given.
pub fn scenario_plan_from(args: &cli::RunArgs, source: Option<Sources>) -> Result<Plan> {
    let path = args.scenario.as_ref().expect("scenario runs have a file");
    if args.url.is_some() {
        return Err(usage(anyhow::anyhow!(
            "give a URL or a scenario file (-f), not both; use -H/--host to set the host"
        )));
    }
    if args.pipeline > 1 {
        return Err(usage(anyhow::anyhow!("--pipeline {}: only quick mode (a URL) pipelines", args.pipeline)));
    }
    let workers = config::resolve_workers(args.threads, args.cpus.as_deref()).map_err(usage)?;
    let overrides = scenario::Overrides {
        host: args.host.clone(),
        timeout: args.timeout,
        tags: args.tags.clone(),
        exclude_tags: args.exclude_tags.clone(),
        tls: args.tls_options().map_err(|e| usage(anyhow::anyhow!(e)))?,
        sandbox: false,
        files: source.as_ref().map(|(_, files)| files.clone()),
    };
    let base = Plan::empty(workers, args.timeout.unwrap_or(config::DEFAULT_TIMEOUT));
    let converted;
    let source = match source {
        None if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("har")) => {
            converted = commands::har_text(path, &har::Options::default())?;
            Some((converted.as_str(), Default::default()))
        }
        other => other,
    };
    let compiled = match source {
        Some((text, _)) => scenario::compile_str(text, path, &overrides, base),
        None => scenario::load(path, &overrides, base),
    };
    let (mut plan, file) = compiled.map_err(|e| usage(e.into()))?;
    plan.apply_run_args(args, file).map_err(usage)?;
    if plan.source_addrs.is_empty() {
        let targets = config::step_addrs(&plan);
        plan.source_addrs = config::auto_sources_all(&targets, plan.users + plan.headroom);
    }
    Ok(plan)
}

fn run_scenario(args: &cli::RunArgs) -> Result<i32> {
    let plan = scenario_plan(args)?;
    let path = args.scenario.as_ref().expect("checked by the caller").display().to_string();
    if args.check {
        let tasks: usize = plan.user_types.iter().map(|u| u.tasks.len()).sum();
        println!(
            "{path}: ok ({} user type(s), {tasks} task(s), {} endpoint(s))",
            plan.user_types.len(),
            plan.endpoints.len()
        );
        return Ok(0);
    }
    if args.list {
        print!("{}", report::task_ratios(&plan));
        return Ok(0);
    }
    match session::wants_ui(args, &plan) {
        true => session::serve_ui(args, plan),
        false => run_from_terminal(plan, args),
    }
}

/// Runs a scenario plan: its `setup` steps once (their captures become every user's starting
/// values; a failure stops here), the run, then its `teardown` steps once (a failure turns a
/// clean exit code into `--exit-code-on-error`).
pub fn run_scenario_plan(mut plan: Plan, options: RunOptions) -> Result<Outcome> {
    if !plan.setup.is_empty() {
        let steps = std::mem::take(&mut plan.setup);
        let state = engine::run_fixture(Arc::new(plan.clone()), &steps, plan.vars.initial.clone())
            .context("setup failed; the run did not start")?;
        plan.vars.initial = state.vars;
        plan.pool_seeds = state.pools;
    }
    let teardown = std::mem::take(&mut plan.teardown);
    let fixture_plan = (!teardown.is_empty()).then(|| Arc::new(plan.clone()));
    let exit_code_on_error = plan.output.exit_code_on_error;
    let mut outcome = run(plan, options)?;
    if let Some(fixture_plan) = fixture_plan {
        let vars = fixture_plan.vars.initial.clone();
        if let Err(err) = engine::run_fixture(fixture_plan, &teardown, vars) {
            report::notice(Level::Error, &format!("error: teardown failed: {err:#}"));
            if outcome.exit_code == 0 {
                outcome.exit_code = exit_code_on_error;
            }
        }
    }
    Ok(outcome)
}

/// Marks an error as a usage/configuration error (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(err: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(UsageError(err))
}

/// The exit code for an error that ended `main_with`.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    if err.chain().any(|e| e.downcast_ref::<UsageError>().is_some()) {
        EXIT_USAGE
    } else {
        EXIT_NO_START
    }
}
