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
//! | flags (Locust names) | `cli.rs` |
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
//! | keep-alive connection, kept responses | `http/conn.rs` |
//! | response head, body framing | `http/head.rs`, `http/body.rs` |
//! | request encoding, URLs | `http/request.rs`, `http/url.rs` |
//! | cookies, redirects | `http/cookie.rs`, `http/redirect.rs` |
//! | TLS (client and target) | `tls.rs` |
//! | error taxonomy | `failure.rs` |
//! | runtime construction (io_uring flags, epoll), precise timer | `runtime.rs` |
//! | per-core histograms and snapshots | `stats/mod.rs` |
//! | merging, the final summary | `report/mod.rs` |
//! | banner, users line, first errors, final notes; task ratios (`--list`) | `report/status.rs`, `report/ratios.rs` |
//! | console tables, CSV files, number formats | `report/console.rs`, `report/csv.rs`, `report/format.rs` |
//! | thresholds judged | `report/thresholds.rs` |
//! | the board the web UI and the HTML report read; the HTML report | `report/board.rs`, `report/html.rs` |
//! | the web UI's server, routes (Locust's API, events), credentials and origins | `web/mod.rs`, `web/routes.rs`, `web/guard.rs` |
//! | live control keys, signals | `keys.rs`, `signal.rs` |
//! | the built-in target: server, canned routes, JSON API | `target/mod.rs`, `target/routes.rs`, `target/api.rs` |
//!
//! `run` is the one composition root: start the reporter, start the engine, wait, return the
//! outcome. `main.rs` parses flags, calls in here, prints the error chain and exits.

pub mod cli;
pub mod config;
pub mod engine;
pub mod failure;
pub mod http;
pub mod keys;
pub mod report;
pub mod runtime;
pub mod scenario;
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
        report::notice(&line);
    }
    let handles = engine::start(engine_run.clone(), snapshot_tx, spare_rxs)?;
    let mut signals_seen = 0;
    while handles.iter().any(|h| !h.is_finished()) {
        if options.watch_signals && signal::received() > signals_seen {
            signals_seen = signal::received();
            stop_on_signal(signals_seen, &engine_run);
        }
        while let Some(command) = options.commands.as_ref().and_then(|c| c.try_recv().ok()) {
            steer(command, &engine_run, options.board.as_deref());
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

/// A command of the web UI during a run: stop it, or edit it (users and spawn rate, or the open
/// model's rate), as the live keys do.
fn steer(command: web::Command, run: &engine::Run, board: Option<&report::board::Board>) {
    match command {
        web::Command::Stop => {
            run.stop.store(true, Ordering::Relaxed);
            if let Some(board) = board {
                board.set_state(report::board::RunState::Stopping);
            }
        }
        web::Command::Swarm(swarm, reply) => {
            let _ = reply.send(keys::edit(run, swarm.users, swarm.spawn_rate, swarm.rate));
        }
    }
}

/// The first stop signal stops the run gracefully (users finish their task within
/// `--stop-timeout`), the second at once.
fn stop_on_signal(count: usize, run: &engine::Run) {
    let grace = run.plan.stop_timeout;
    if count >= 2 {
        run.abort.store(true, Ordering::Relaxed);
        report::notice("stopping now: requests still in flight are counted as cancelled");
    } else if grace.is_zero() {
        run.stop.store(true, Ordering::Relaxed);
        report::notice("stopping: the final report follows");
    } else {
        run.stop.store(true, Ordering::Relaxed);
        let users = run.users_running.load(Ordering::Relaxed);
        report::notice(&format!(
            "stopping: waiting up to {} for {users} users to finish their task (Ctrl-C again to stop now)",
            units::HumanDuration(grace)
        ));
    }
}

/// The process exit code a finished run earns (printing why when it could not start).
fn exit_code(plan: &Plan, summary: &Summary, worker_error: Option<anyhow::Error>) -> i32 {
    if let Some(err) = worker_error {
        eprintln!("error: {err:#}");
        EXIT_NO_START
    } else if summary.requests > 0 && summary.connect_failures == summary.requests {
        eprintln!("error: no request could connect (see the error report)");
        EXIT_NO_START
    } else if summary.requests == 0 {
        report::notice(&format!("error: {}", report::nothing_completed(plan, summary)));
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
    match cli.command {
        Some(cli::Command::Target(args)) => run_target(&args),
        Some(cli::Command::Demo(args)) => run_demo(&args),
        None if cli.run.scenario.is_some() => run_scenario(&cli.run),
        None => {
            let plan = Plan::from_cli(&cli.run).map_err(usage)?;
            match wants_ui(&cli.run, &plan) {
                true => serve_ui(&cli.run, plan),
                false => run_from_terminal(plan),
            }
        }
    }
}

/// Whether a run opens the web UI: asked for (`--web`, `--autostart`), or a scenario run with no
/// bound (no run time, no `--iterations`), unless `--headless`. Bounded scenario runs and quick
/// mode ran headless before the UI existed and still do.
fn wants_ui(args: &cli::RunArgs, plan: &Plan) -> bool {
    if args.headless {
        return false;
    }
    args.web || args.autostart || (args.scenario.is_some() && plan.run_time.is_none() && plan.iterations.is_none())
}

/// The plan of a run from the command line and, from the web UI's form, what it changed.
fn plan_with(args: &cli::RunArgs, swarm: &web::Swarm) -> Result<Plan> {
    let mut args = args.clone();
    if swarm.rate.is_some() {
        args.rate = swarm.rate;
        args.max_users = swarm.users.or(args.max_users);
        args.users = None;
    } else if swarm.users.is_some() || swarm.spawn_rate.is_some() {
        args.rate = None;
        args.max_users = None;
        args.users = swarm.users.or(args.users);
        args.spawn_rate = swarm.spawn_rate.or(args.spawn_rate);
    }
    args.run_time = swarm.run_time.or(args.run_time);
    if let Some(host) = &swarm.host {
        match args.scenario.is_some() {
            true => args.host = Some(host.clone()),
            false => args.url = Some(host.clone()),
        }
    }
    let mut plan = match args.scenario.is_some() {
        true => scenario_plan(&args)?,
        false => Plan::from_cli(&args).map_err(usage)?,
    };
    plan.enable_live_control();
    Ok(plan)
}

/// The web UI: serves the page and Locust's API, then runs tests as the UI asks (or at once with
/// `--autostart`), one after another, until Ctrl-C (or `--autoquit` after a run).
fn serve_ui(args: &cli::RunArgs, plan: Plan) -> Result<i32> {
    let board = Arc::new(report::board::Board::new(&plan));
    let (commands, inbox) = crossbeam_channel::unbounded();
    let server = web::start(web_options(args, &plan)?, board.clone(), commands)?;
    report::notice(&format!("swarmer: web UI on {} (Ctrl-C to quit)", server.url()));
    if !server.addr.ip().is_loopback() && args.web_auth.is_none() {
        report::notice("warning: the web UI listens beyond this machine without --web-auth: anyone who reaches it can start load tests");
    }
    signal::install();
    let mut next = args.autostart.then(|| plan_with(args, &web::Swarm::default())).transpose()?;
    let mut exit_code = 0;
    loop {
        let plan = match next.take() {
            Some(plan) => plan,
            None => match wait_for_swarm(args, &inbox, &board) {
                Some(plan) => plan,
                None => return Ok(exit_code),
            },
        };
        let options = RunOptions {
            watch_signals: true,
            board: Some(board.clone()),
            commands: Some(inbox.clone()),
            ..RunOptions::default()
        };
        // The page shows the numbers as they come; the terminal gets the final report.
        let mut plan = plan;
        plan.output.only_summary = true;
        exit_code = run_scenario_plan(plan, options)?.exit_code;
        if let Some(after) = args.autoquit {
            std::thread::sleep(after);
            return Ok(exit_code);
        }
    }
}

/// Waits for the UI's start; `None` on Ctrl-C.
fn wait_for_swarm(
    args: &cli::RunArgs,
    inbox: &crossbeam_channel::Receiver<web::Command>,
    board: &report::board::Board,
) -> Option<Plan> {
    let signals = signal::received();
    loop {
        if signal::received() > signals {
            return None;
        }
        match inbox.recv_timeout(Duration::from_millis(50)) {
            Ok(web::Command::Swarm(swarm, reply)) => match plan_with(args, &swarm) {
                Ok(plan) => {
                    let _ = reply.send(Ok("Swarming started".into()));
                    board.start(&plan);
                    return Some(plan);
                }
                Err(err) => {
                    let _ = reply.send(Err(format!("{err:#}")));
                }
            },
            Ok(web::Command::Stop) | Err(_) => {}
        }
    }
}

/// The web UI's address, credentials, TLS and the form's starting values.
fn web_options(args: &cli::RunArgs, plan: &Plan) -> Result<web::WebOptions> {
    let ip: std::net::IpAddr =
        args.web_host.parse().map_err(|_| usage(anyhow::anyhow!("--web-host {}: not an IP address", args.web_host)))?;
    if let Some(auth) = &args.web_auth {
        if !auth.contains(':') {
            return Err(usage(anyhow::anyhow!("--web-auth {auth:?}: expected USER:PASSWORD")));
        }
    }
    let tls = match (&args.web_tls_cert, &args.web_tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).map_err(|e| usage(anyhow::anyhow!("{}: {e}", path.display())))
            };
            Some(tls::server_config(&read(cert)?, &read(key)?, None).map_err(|e| usage(anyhow::anyhow!(e)))?)
        }
        _ => None,
    };
    let host = match args.scenario.is_some() {
        true => args.host.clone().unwrap_or_default(),
        false => args.url.clone().or(args.host.clone()).unwrap_or_default(),
    };
    let form = web::FormDefaults {
        users: plan.users,
        spawn_rate: plan.spawn_rate,
        rate: plan.rate,
        host,
        run_time: plan.run_time,
    };
    Ok(web::WebOptions { addr: (ip, args.web_port).into(), auth: args.web_auth.clone(), tls, form })
}

/// Runs a plan from the command line: live keys when stdin is a terminal, Ctrl-C stops it
/// gracefully, `setup`/`teardown` around it.
fn run_from_terminal(mut plan: Plan) -> Result<i32> {
    if keys::stdin_is_terminal() {
        plan.enable_live_control();
    }
    signal::install();
    let options = RunOptions { watch_signals: true, keys: plan.live_control, ..RunOptions::default() };
    Ok(run_scenario_plan(plan, options)?.exit_code)
}

/// Builds the plan of a scenario run: the file compiled, the command line applied over it.
pub fn scenario_plan(args: &cli::RunArgs) -> Result<Plan> {
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
    };
    let base = Plan::empty(workers, args.timeout.unwrap_or(config::DEFAULT_TIMEOUT));
    let (mut plan, file) = scenario::load(path, &overrides, base).map_err(|e| usage(e.into()))?;
    plan.apply_run_args(args, file).map_err(usage)?;
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
    match wants_ui(args, &plan) {
        true => serve_ui(args, plan),
        false => run_from_terminal(plan),
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
            eprintln!("error: teardown failed: {err:#}");
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

fn run_target(args: &cli::TargetArgs) -> Result<i32> {
    let ip: std::net::IpAddr =
        args.bind.parse().map_err(|_| usage(anyhow::anyhow!("--bind {}: not an IP address", args.bind)))?;
    let cpus = config::resolve_workers(Some(args.threads), args.cpus.as_deref()).map_err(usage)?;
    let cpus = if args.cpus.is_some() { cpus } else { vec![None; args.threads] };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).map_err(|e| usage(anyhow::anyhow!("{}: {e}", path.display())))
            };
            Some(tls::server_config(&read(cert)?, &read(key)?, None).map_err(|e| usage(anyhow::anyhow!(e)))?)
        }
        _ if args.tls => Some(
            tls::server_config(target::TEST_CERT_PEM, target::TEST_KEY_PEM, None).map_err(|e| anyhow::anyhow!(e))?,
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server =
        target::start_with((ip, args.port).into(), args.threads, &cpus, tls, args.reuse_port).map_err(|e| {
            if e.downcast_ref::<target::PortInUse>().is_some() {
                usage(e)
            } else {
                e
            }
        })?;
    // One line, flushed: scripts read it to learn the port.
    println!(
        "swarmer target listening on {scheme}://{} ({} thread(s)); endpoints: / /bytes/N /chunked/N /delay/D /status/C /close",
        server.addr, args.threads
    );
    loop {
        std::thread::park();
    }
}

fn run_demo(args: &cli::DemoArgs) -> Result<i32> {
    let server = target::start(([127, 0, 0, 1], 0).into(), 1, &[None])?;
    let url = http::Url::parse(&format!("http://{}/", server.addr)).map_err(anyhow::Error::msg)?;
    println!(
        "swarmer demo: built-in target on http://{}, {} users for {}\n",
        server.addr,
        args.users,
        units::HumanDuration(args.run_time)
    );
    let workers = config::resolve_workers(None, None)?;
    let mut plan = Plan::quick(&url, server.addr, None, Duration::from_secs(10), 1, workers);
    plan.users = args.users;
    plan.spawn_rate = args.users as f64;
    plan.run_time = Some(args.run_time);
    plan.output.csv_prefix = args.csv.clone();
    signal::install();
    let outcome = run(plan, RunOptions { watch_signals: true, ..RunOptions::default() })?;
    println!("target served {} responses", server.served());
    Ok(outcome.exit_code)
}
