//! The subcommands: `swarmer target` (the built-in target server), `swarmer demo` (a short
//! test against it in-process) and `swarmer compare` (two `--json-file` summaries).

use std::time::Duration;

use anyhow::Result;

use crate::config::Plan;
use crate::{cli, config, har, http, report, signal, target, tls, units, usage, RunOptions};

pub(crate) fn run_target(args: &cli::TargetArgs) -> Result<i32> {
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

pub(crate) fn run_demo(args: &cli::DemoArgs) -> Result<i32> {
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
    let outcome = crate::run(plan, RunOptions { watch_signals: true, ..RunOptions::default() })?;
    println!("target served {} responses", server.served());
    Ok(outcome.exit_code)
}

/// `swarmer har`: writes the scenario converted from a recording.
pub(crate) fn run_har(args: &cli::HarArgs) -> Result<i32> {
    let think_time =
        args.think_time.parse().map_err(|e| usage(anyhow::anyhow!("--think-time {}: {e}", args.think_time)))?;
    let exclude = match &args.exclude {
        Some(re) => Some(regex::Regex::new(re).map_err(|e| usage(anyhow::anyhow!("--exclude {re}: {e}")))?),
        None => None,
    };
    let options = har::Options {
        include_hosts: args.include_host.clone(),
        exclude,
        keep_static: args.keep_static,
        think_time,
        source: String::new(),
    };
    let text = har_text(&args.recording, &options)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| usage(anyhow::anyhow!("{}: {e}", path.display())))?;
            eprintln!("swarmer: wrote {} from {}", path.display(), args.recording.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}

/// A recording converted to a scenario's text; a bad recording is a usage error at
/// file:line:col.
pub(crate) fn har_text(path: &std::path::Path, options: &har::Options) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| usage(anyhow::anyhow!("{}: {e}", path.display())))?;
    let options = har::Options { source: path.display().to_string(), ..options.clone() };
    let conversion = har::convert(&bytes, &options).map_err(|e| usage(anyhow::anyhow!("{}:{e}", path.display())))?;
    report::notice(
        crate::log::Level::Debug,
        &format!(
            "{}: {} of {} entries kept, {} correlation(s)",
            path.display(),
            conversion.steps,
            conversion.entries,
            conversion.correlations
        ),
    );
    Ok(conversion.text)
}

/// `swarmer compare`: prints the comparison; 0 within tolerance, 1 worse.
pub(crate) fn run_compare(args: &cli::CompareArgs) -> Result<i32> {
    let comparison =
        report::compare::compare_files(&args.baseline, &args.candidate, args.tolerance, &args.metric).map_err(usage)?;
    print!("{}", comparison.text);
    Ok(if comparison.worse.is_empty() { 0 } else { 1 })
}
