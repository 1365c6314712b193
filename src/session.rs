//! The web UI's side of the composition root: when a run opens the UI, serving it, turning its
//! form into plans, running them one after another, and steering a run from its buttons.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::Plan;
use crate::log::Level;
use crate::{cli, engine, keys, report, run_scenario_plan, scenario_plan, signal, tls, usage, web, RunOptions};

/// A command of the web UI during a run: stop it, or edit it (users and spawn rate, or the open
/// model's rate), as the live keys do.
pub(crate) fn steer(command: web::Command, run: &engine::Run, board: Option<&report::board::Board>) {
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

/// Whether a run opens the web UI: asked for (`--web`, `--autostart`), or a scenario run with no
/// bound (no run time, no `--iterations`), unless `--headless`. Bounded scenario runs and quick
/// mode ran headless before the UI existed and still do.
pub(crate) fn wants_ui(args: &cli::RunArgs, plan: &Plan) -> bool {
    if args.headless {
        return false;
    }
    args.web || args.autostart || (args.scenario.is_some() && plan.run_time.is_none() && plan.iterations.is_none())
}

/// The plan of a run from the command line and, from the web UI's form, what it changed.
fn plan_with(args: &cli::RunArgs, swarm: &web::Swarm) -> Result<Plan> {
    let args = form_args(args, swarm);
    let mut plan = match args.scenario.is_some() {
        true => scenario_plan(&args)?,
        false => Plan::from_cli(&args).map_err(usage)?,
    };
    plan.enable_live_control();
    Ok(plan)
}

/// The command line with the web UI's form applied (a distributed master's workers apply the
/// same form to the master's command line).
pub(crate) fn form_args(args: &cli::RunArgs, swarm: &web::Swarm) -> cli::RunArgs {
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
    args
}

/// What a run driven by the web UI gets: the board, a stop flag for its button, the metrics,
/// and the form it was started with.
#[derive(Default)]
pub(crate) struct Ui {
    pub board: Option<Arc<report::board::Board>>,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub metrics: Option<Arc<report::metrics::Metrics>>,
    pub swarm: Option<web::Swarm>,
}

/// The web UI for one run that `run` makes (a distributed master's): served until Ctrl-C or
/// `--autoquit`; during the run its stop button works and edits are refused (a distributed run
/// cannot be edited yet); after it, another start is refused (the master runs one test).
pub(crate) fn serve_once(args: &cli::RunArgs, plan: Plan, run: &dyn Fn(Plan, Ui) -> Result<i32>) -> Result<i32> {
    let (board, inbox, metrics) = open(args, &plan)?;
    let (swarm, mut plan) = match args.autostart {
        true => (web::Swarm::default(), plan_with(args, &web::Swarm::default())?),
        false => match wait_for_swarm(args, &inbox, &board) {
            Some(start) => start,
            None => return Ok(0),
        },
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, steering) = (stop.clone(), board.clone());
    std::thread::spawn(move || {
        for command in inbox {
            match command {
                web::Command::Stop => {
                    flag.store(true, Ordering::Relaxed);
                    steering.set_state(report::board::RunState::Stopping);
                }
                web::Command::Swarm(_, reply) => {
                    let _ = reply.send(Err("a distributed run cannot be edited or restarted from the UI yet; \
                                            stop it, and start the master again for another"
                        .into()));
                }
            }
        }
    });
    plan.output.only_summary = true;
    let ui = Ui { board: Some(board), stop, metrics: Some(metrics), swarm: Some(swarm) };
    let code = run(plan, ui)?;
    match args.autoquit {
        Some(after) => std::thread::sleep(after),
        None => {
            let seen = signal::received();
            while signal::received() == seen {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(code)
}

/// The web UI: serves the page and Locust's API, then runs tests as the UI asks (or at once with
/// `--autostart`), one after another, until Ctrl-C (or `--autoquit` after a run).
pub(crate) fn serve_ui(args: &cli::RunArgs, plan: Plan) -> Result<i32> {
    let (board, inbox, metrics) = open(args, &plan)?;
    let mut next = args.autostart.then(|| plan_with(args, &web::Swarm::default())).transpose()?;
    let mut exit_code = 0;
    loop {
        let plan = match next.take() {
            Some(plan) => plan,
            None => match wait_for_swarm(args, &inbox, &board) {
                Some((_, plan)) => plan,
                None => return Ok(exit_code),
            },
        };
        let options = RunOptions {
            watch_signals: true,
            board: Some(board.clone()),
            commands: Some(inbox.clone()),
            metrics: Some(metrics.clone()),
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

/// Serves the web UI for `plan` (and `/metrics`; `--metrics-port` serves the same numbers on a
/// port of its own): its board, the commands it sends, the numbers it serves.
type Opened = (Arc<report::board::Board>, crossbeam_channel::Receiver<web::Command>, Arc<report::metrics::Metrics>);

fn open(args: &cli::RunArgs, plan: &Plan) -> Result<Opened> {
    let board = Arc::new(report::board::Board::new(plan));
    let (commands, inbox) = crossbeam_channel::unbounded();
    let metrics = crate::metrics_server(args)?.unwrap_or_default();
    let server = web::start(web_options(args, plan)?, board.clone(), metrics.clone(), commands)?;
    report::notice(Level::Info, &format!("swarmer: web UI on {} (Ctrl-C to quit)", server.url()));
    if !server.addr.ip().is_loopback() && args.web_auth.is_none() {
        report::notice(Level::Warning, "warning: the web UI listens beyond this machine without --web-auth: anyone who reaches it can start load tests");
    }
    signal::install();
    Ok((board, inbox, metrics))
}

/// Waits for the UI's start: the form and the plan made from it; `None` on Ctrl-C.
fn wait_for_swarm(
    args: &cli::RunArgs,
    inbox: &crossbeam_channel::Receiver<web::Command>,
    board: &report::board::Board,
) -> Option<(web::Swarm, Plan)> {
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
                    return Some((swarm, plan));
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
