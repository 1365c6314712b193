//! The composition root's distributed runs: `--master` (the plan, `setup`/`teardown`, the
//! bundle the workers receive, the exit code), `--worker` (the master's bundle compiled into
//! this worker's plan) and `--processes N` (a master and N local workers in one command).

use std::net::{IpAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::config::Plan;
use crate::dist::{link, master, worker};
use crate::log::Level;
use crate::{cli, engine, report, scenario_plan_from, signal, usage, EXIT_NO_START, EXIT_USAGE};

/// Flags a worker never receives (the secret stays on each machine).
const PRIVATE_FLAGS: [&str; 1] = ["--secret"];

/// `--master`: waits for the workers, runs, writes every report; returns the exit code.
pub(crate) fn run_master(args: &cli::RunArgs) -> Result<i32> {
    let listener = bind(args)?;
    master_on(args, listener)
}

fn master_on(args: &cli::RunArgs, listener: TcpListener) -> Result<i32> {
    let plan = match &args.scenario {
        Some(_) => crate::scenario_plan(args)?,
        None => Plan::from_cli(args).map_err(usage)?,
    };
    if crate::session::wants_ui(args, &plan) {
        let run = |plan: Plan, ui: crate::session::Ui| master_run(args, plan, listener.try_clone()?, ui);
        return crate::session::serve_once(args, plan, &run);
    }
    let metrics = crate::metrics_server(args)?;
    master_run(args, plan, listener, crate::session::Ui { metrics, ..Default::default() })
}

/// One distributed run of `plan`: `setup` here, the bundle out, the merge, `teardown` here.
fn master_run(args: &cli::RunArgs, mut plan: Plan, listener: TcpListener, ui: crate::session::Ui) -> Result<i32> {
    let fixture = run_setup(&mut plan)?;
    let teardown = std::mem::take(&mut plan.teardown);
    let bundle = master::Bundle {
        argv: public_argv(&args.argv),
        scenario: match &args.scenario {
            Some(path) => Some((path.display().to_string(), std::fs::read_to_string(path)?)),
            None => None,
        },
        files: plan.sources.clone(),
        seed: plan.seed,
        fixture,
        form: ui.swarm.as_ref().map(form_json).unwrap_or_default(),
    };
    let options = master::Options {
        listener,
        expect: args.dist.expect_workers,
        max_wait: args.dist.expect_workers_max_wait,
        secret: secret(args),
        heartbeat_timeout: args.dist.heartbeat_timeout,
        print_workers: args.dist.print_workers,
        watch_signals: true,
        security: master_security(args)?,
        board: ui.board,
        stop: ui.stop,
        metrics: ui.metrics,
    };
    signal::install();
    let plan = Arc::new(plan);
    let summary = master::run(plan.clone(), bundle, options)?;
    let mut code = crate::exit_code(&plan, &summary, None);
    if !teardown.is_empty() {
        let vars = plan.vars.initial.clone();
        if let Err(err) = engine::run_fixture(plan.clone(), &teardown, vars) {
            report::notice(Level::Error, &format!("error: teardown failed: {err:#}"));
            if code == 0 {
                code = plan.output.exit_code_on_error;
            }
        }
    }
    Ok(code)
}

/// The master's listener: loopback unless told otherwise; elsewhere without a secret, a
/// warning (anyone who can reach the port could take part).
fn bind(args: &cli::RunArgs) -> Result<TcpListener> {
    let dist = &args.dist;
    let ip: IpAddr = dist
        .master_bind_host
        .parse()
        .map_err(|_| usage(anyhow!("--master-bind-host {}: not an IP address", dist.master_bind_host)))?;
    let listener = TcpListener::bind((ip, dist.master_bind_port))
        .map_err(|e| usage(anyhow!("--master-bind-port {}: cannot listen on {ip}: {e}", dist.master_bind_port)))?;
    if !ip.is_loopback() && secret(args).is_none() {
        report::notice(
            Level::Warning,
            &format!("warning: the master listens on {ip} without --secret: anyone who reaches the port can join"),
        );
    }
    if !ip.is_loopback() && dist.master_tls_cert.is_none() {
        report::notice(
            Level::Warning,
            &format!("warning: the link on {ip} is not encrypted (--master-tls-cert/--master-tls-key encrypt it)"),
        );
    }
    Ok(listener)
}

/// The master's TLS (`--master-tls-cert/-key`), or plain TCP.
fn master_security(args: &cli::RunArgs) -> Result<link::Security> {
    let (Some(cert), Some(key)) = (&args.dist.master_tls_cert, &args.dist.master_tls_key) else {
        return Ok(link::Security::Plain);
    };
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| usage(anyhow!("{flag} {}: {e}", path.display())))
    };
    let config = crate::tls::server_config(&read("--master-tls-cert", cert)?, &read("--master-tls-key", key)?, None)
        .map_err(|e| usage(anyhow!("--master-tls-cert {}: {e}", cert.display())))?;
    Ok(link::Security::Server(config))
}

/// A worker's TLS to its master (`--master-ca-cert`), or plain TCP.
fn worker_security(args: &cli::RunArgs) -> Result<link::Security> {
    let Some(ca) = &args.dist.master_ca_cert else { return Ok(link::Security::Plain) };
    let options = crate::tls::ClientOptions { ca_cert: Some(ca.clone()), ..Default::default() };
    let config =
        crate::tls::client_config(&options).map_err(|e| usage(anyhow!("--master-ca-cert {}: {e}", ca.display())))?;
    let host = &args.dist.master_host;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| usage(anyhow!("--master-host {host}: not a name TLS can check")))?;
    Ok(link::Security::Client(config, name))
}

fn secret(args: &cli::RunArgs) -> Option<String> {
    args.dist.secret.clone().or_else(|| std::env::var("SWARMER_SECRET").ok()).filter(|s| !s.is_empty())
}

/// The master's command line without what stays private.
fn public_argv(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for arg in argv {
        if std::mem::take(&mut skip) {
            continue;
        }
        if PRIVATE_FLAGS.contains(&arg.as_str()) {
            skip = true;
        } else if !PRIVATE_FLAGS.iter().any(|f| arg.starts_with(&format!("{f}="))) {
            out.push(arg.clone());
        }
    }
    out
}

/// Runs `setup` once on the master; what it leaves goes to every worker (as JSON).
fn run_setup(plan: &mut Plan) -> Result<String> {
    if plan.setup.is_empty() {
        return Ok(String::new());
    }
    let steps = std::mem::take(&mut plan.setup);
    let state = engine::run_fixture(Arc::new(plan.clone()), &steps, plan.vars.initial.clone())
        .context("setup failed; the run did not start")?;
    plan.vars.initial = state.vars.clone();
    plan.pool_seeds = state.pools.clone();
    Ok(serde_json::json!({ "vars": state.vars, "pools": state.pools }).to_string())
}

/// `--worker`: takes one run from the master; exit 0 when it ended, 2 when refused, 3 when
/// the master could not be reached or was lost.
pub(crate) fn run_worker(args: &cli::RunArgs) -> Result<i32> {
    let cores = crate::config::resolve_workers(args.threads, args.cpus.as_deref()).map_err(usage)?.len();
    let options = worker::Options {
        master: args.dist.master_host.clone(),
        port: args.dist.master_port,
        secret: secret(args),
        heartbeat_timeout: args.dist.heartbeat_timeout,
        cores,
        connect_for: args.dist.expect_workers_max_wait,
        security: worker_security(args)?,
    };
    let compile = |bundle: &worker::Bundle| compile(bundle, args);
    Ok(match worker::run(&options, &compile) {
        worker::Ending::Done => 0,
        worker::Ending::Refused(reason) => {
            report::notice(Level::Error, &format!("error: {reason}"));
            EXIT_USAGE
        }
        worker::Ending::Lost(reason) => {
            report::notice(Level::Error, &format!("error: {reason}"));
            EXIT_NO_START
        }
    })
}

/// The web UI form's fields as the bundle carries them.
fn form_json(swarm: &crate::web::Swarm) -> String {
    serde_json::json!({
        "users": swarm.users,
        "spawn_rate": swarm.spawn_rate,
        "rate": swarm.rate,
        "host": swarm.host,
        "run_time_ms": swarm.run_time.map(|t| t.as_millis() as u64),
    })
    .to_string()
}

/// The form back from the bundle.
fn form_of(json: &str) -> Result<crate::web::Swarm> {
    let v: serde_json::Value = serde_json::from_str(json).context("the master's form")?;
    Ok(crate::web::Swarm {
        users: v["users"].as_u64(),
        spawn_rate: v["spawn_rate"].as_f64(),
        rate: v["rate"].as_f64(),
        host: v["host"].as_str().map(str::to_string),
        run_time: v["run_time_ms"].as_u64().map(Duration::from_millis),
    })
}

/// A master's bundle as this worker's plan.
fn compile(bundle: &worker::Bundle, own: &cli::RunArgs) -> Result<Plan> {
    let mut args = worker::worker_args(bundle, own)?;
    if !bundle.form.is_empty() {
        args = crate::session::form_args(&args, &form_of(&bundle.form)?);
    }
    let mut plan = match &bundle.scenario {
        Some((_, text)) => scenario_plan_from(&args, Some((text, bundle.files.clone())))?,
        None => Plan::from_cli(&args)?,
    };
    plan.seed = bundle.seed;
    if !bundle.fixture.is_empty() {
        let state: serde_json::Value = serde_json::from_str(&bundle.fixture).context("the master's setup state")?;
        if let Some(vars) = state["vars"].as_array() {
            plan.vars.initial = vars.clone();
        }
        if let Some(pools) = state["pools"].as_array() {
            plan.pool_seeds = pools.iter().map(|p| p.as_array().cloned().unwrap_or_default()).collect();
        }
    }
    plan.setup.clear();
    plan.teardown.clear();
    // No outputs of its own, whichever the master's flags asked for (and whichever are added
    // later): the master writes them all, and judges the thresholds.
    plan.output = crate::config::Output { only_summary: true, ..Default::default() };
    plan.thresholds.clear();
    Ok(plan)
}

/// `--processes N`: a master on a free loopback port and N workers, children of this process,
/// sharing a fresh secret; each worker gets an equal share of the cores (pinned to them, as
/// one process's threads are).
pub(crate) fn run_processes(args: &cli::RunArgs, processes: usize) -> Result<i32> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot listen for local workers")?;
    let port = listener.local_addr()?.port();
    let secret = hex(&crate::dist::auth::nonce());
    let cores = crate::config::resolve_workers(args.threads, args.cpus.as_deref()).map_err(usage)?;
    let threads = (cores.len() / processes).max(1);
    let exe = std::env::current_exe().context("cannot find this program to start workers")?;
    let mut children = Vec::new();
    for k in 0..processes {
        // Worker k is pinned to the next `threads` cores, as one process's threads would be.
        let mine: Vec<String> =
            (0..threads).filter_map(|i| cores[(k * threads + i) % cores.len()]).map(|c| c.to_string()).collect();
        let pin = match mine.len() == threads {
            true => vec!["--cpus".to_string(), mine.join(",")],
            false => Vec::new(),
        };
        let child = Command::new(&exe)
            .args(["--worker", "--master-host", "127.0.0.1", "--master-port", &port.to_string()])
            .args(["--threads", &threads.to_string(), "--loglevel", "WARNING"])
            .args(&pin)
            .env("SWARMER_SECRET", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start a worker process")?;
        children.push(child);
    }
    let mut args = args.clone();
    args.dist.master = true;
    args.dist.expect_workers = processes;
    args.dist.secret = Some(secret);
    let result = master_on(&args, listener);
    reap(children);
    result
}

/// Waits a moment for the workers to exit, then ends those still running (ours, by PID).
fn reap(mut children: Vec<Child>) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None))) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for child in &mut children {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever outputs and thresholds the master's flags name, a worker's plan has none: the
    /// master writes them all (two processes writing one CSV would corrupt it).
    #[test]
    fn a_workers_plan_has_no_outputs_of_its_own() {
        use clap::Parser;
        let argv: Vec<String> = [
            "swarmer",
            "--csv",
            "/tmp/x",
            "--csv-full-history",
            "--json",
            "--json-file",
            "/tmp/x.json",
            "--html",
            "/tmp/x.html",
            "--hdr-log",
            "/tmp/x.hlog",
            "--threshold",
            "p99<100ms",
            "--abort-on-threshold",
            "http://127.0.0.1:9/",
        ]
        .map(String::from)
        .to_vec();
        let bundle = worker::Bundle {
            argv: argv.clone(),
            scenario: None,
            files: Default::default(),
            seed: 7,
            fixture: String::new(),
            form: String::new(),
        };
        let own = cli::Cli::try_parse_from(["swarmer", "--worker"]).unwrap().run;
        let plan = compile(&bundle, &own).unwrap();
        let output = &plan.output;
        assert!(output.only_summary && output.csv_prefix.is_none() && !output.csv_full_history);
        assert!(!output.json_stdout && output.json_file.is_none() && output.html.is_none() && output.hdr_log.is_none());
        assert!(plan.thresholds.is_empty() && !output.abort_on_threshold);
        assert_eq!(plan.seed, 7);
        // The master's own plan from the same flags has them (so the test can fail).
        let master = Plan::from_cli(&cli::Cli::try_parse_from(&argv).unwrap().run).unwrap();
        assert!(master.output.csv_prefix.is_some() && !master.thresholds.is_empty());
    }
}
