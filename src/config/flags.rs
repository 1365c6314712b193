//! The plan from the command line: quick mode's one-request plan, and the flags every kind of
//! run shares (users, spawn rate, run time, load shape, open model, outputs, thresholds) applied
//! over what a scenario file says.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};

use super::*;
use crate::cli::RunArgs;
use crate::http::{encode_request, Url};

/// What a scenario file may say about the run, for the command line to override.
#[derive(Clone, Debug, Default)]
pub struct FileSettings {
    pub users: Option<u64>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<Duration>,
    pub shape: Option<Shape>,
}

impl Plan {
    /// Resolves command-line flags into a plan (quick mode: the URL, or `--host`).
    pub fn from_cli(args: &RunArgs) -> Result<Plan> {
        let url_text = match (&args.url, &args.host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => host.clone(),
            (None, None) => bail!(
                "nothing to test: give a URL (e.g. swarmer http://127.0.0.1:8080/), --host, or a scenario file (-f FILE)"
            ),
        };
        let url = Url::parse(&url_text).map_err(anyhow::Error::msg)?;
        let workers = resolve_workers(args.threads, args.cpus.as_deref())?;
        let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let tls = args.tls_options().map_err(anyhow::Error::msg)?;
        let tls = match url.tls {
            true => Some(
                crate::tls::Target::new(crate::tls::client_config(&tls).map_err(anyhow::Error::msg)?, &url.host)
                    .map_err(anyhow::Error::msg)?,
            ),
            false => None,
        };
        let addr = url.resolve()?;
        let mut plan = Plan::quick(&url, addr, tls, timeout, args.pipeline, workers);
        plan.apply_run_args(args, FileSettings::default())?;
        if plan.source_addrs.is_empty() {
            plan.source_addrs = auto_sources(addr, plan.users + plan.headroom);
        }
        Ok(plan)
    }

    /// Applies the flags every kind of run shares. `file` holds what a scenario file says about
    /// users, spawn rate, run time and load shape; the command line wins where both say
    /// something.
    pub fn apply_run_args(&mut self, args: &RunArgs, file: FileSettings) -> Result<()> {
        self.users = args.users.or(file.users).unwrap_or(1);
        if self.users == 0 {
            bail!("--users 0: at least one user is needed");
        }
        self.spawn_rate = args.spawn_rate.or(file.spawn_rate).unwrap_or(1.0);
        if !(self.spawn_rate > 0.0 && self.spawn_rate.is_finite()) {
            bail!("spawn rate {}: expected users per second above 0", self.spawn_rate);
        }
        self.run_time = args.run_time.or(file.run_time);
        self.apply_shape(args, file.shape)?;
        self.apply_load_model(args)?;
        self.iterations = args.iterations;
        if self.iterations == Some(0) {
            bail!("--iterations 0: each user needs at least one task");
        }
        self.reset_stats = args.reset_stats;
        if let Some(seed) = args.seed {
            self.seed = seed;
        }
        self.stop_timeout = args.stop_timeout;
        self.io = args.io;
        self.defer_taskrun = !args.no_defer_taskrun;
        self.ring = !args.no_ring;
        self.output.only_summary = args.only_summary;
        self.output.csv_prefix = args.csv.clone();
        self.output.csv_full_history = args.csv_full_history;
        self.output.exit_code_on_error = args.exit_code_on_error;
        self.output.abort_on_threshold = args.abort_on_threshold;
        self.output.html = args.html.clone();
        self.output.json_stdout = args.json;
        self.output.json_file = args.json_file.clone();
        self.output.hdr_log = args.hdr_log.clone();
        if let Some(list) = &args.source_addrs {
            self.source_addrs = parse_source_addrs(list).map_err(|e| anyhow::anyhow!("--source-addrs {list}: {e}"))?;
        }
        for text in &args.threshold {
            self.thresholds.push(Threshold::parse(text).map_err(|e| anyhow::anyhow!("--threshold {e}"))?);
        }
        self.check_thresholds()?;
        Ok(())
    }

    /// The load shape: `--stages`, `--shape`, or the file's; stages decide the run time unless
    /// `-t` says otherwise.
    fn apply_shape(&mut self, args: &RunArgs, file_shape: Option<Shape>) -> Result<()> {
        self.shape = match (&args.stages, &args.shape) {
            (Some(_), Some(_)) => bail!("give --stages or --shape, not both"),
            (Some(text), None) => Some(Shape::parse_stages(text).map_err(|e| anyhow::anyhow!("--stages {text}: {e}"))?),
            (None, Some(text)) => Some(Shape::parse_named(text).map_err(|e| anyhow::anyhow!("--shape {text}: {e}"))?),
            (None, None) => file_shape,
        };
        if let Some(shape) = &self.shape {
            match (shape.duration(), self.run_time) {
                (Some(total), None) => self.run_time = Some(total),
                (None, None) => bail!("--shape needs -t/--run-time: the shape is laid over the run time"),
                _ => {}
            }
        }
        Ok(())
    }

    /// The closed model (users, with their peak from the shape) or the open one: a constant
    /// `--rate`, rate stages (N/s), or a named shape with `--rate` as its peak, with a pool of
    /// users capped by `--max-users`.
    fn apply_load_model(&mut self, args: &RunArgs) -> Result<()> {
        self.rate = args.rate;
        self.max_start_delay = args.max_start_delay;
        match (&self.shape, args.rate) {
            (Some(shape), Some(_)) if shape.is_rate() => {
                bail!("--rate and rate stages (N/s) both give the rate: drop --rate, the stages' highest rate is the peak")
            }
            (Some(Shape::Stages(_)), Some(rate)) => {
                bail!("--stages with --rate {rate}: give the stages as rates, e.g. 30s:500/s,1m:500/s")
            }
            (Some(shape), None) if shape.is_rate() => self.rate = Some(shape.peak(0.0)),
            _ => {}
        }
        let Some(rate) = self.rate else {
            if args.max_users.is_some() {
                bail!("--max-users caps the open model's pool: it needs --rate");
            }
            if let Some(shape) = &self.shape {
                // The peak is the most users at once: sockets and the user table are sized for it.
                self.users = (shape.peak(self.users as f64) as u64).max(1);
            }
            return Ok(());
        };
        if rate <= 0.0 {
            bail!("the rate stages never rise above 0/s");
        }
        if args.iterations.is_some() {
            bail!("--rate (open model) does not combine with --iterations");
        }
        if args.users.is_some() {
            bail!("--rate: the open model has no --users; --max-users caps the pool of users");
        }
        self.users = args.max_users.unwrap_or(DEFAULT_MAX_USERS);
        if self.users < self.workers.len() as u64 {
            bail!("--max-users {}: at least one per worker thread ({})", self.users, self.workers.len());
        }
        Ok(())
    }

    /// Every threshold that names an endpoint must name one of the plan's.
    pub fn check_thresholds(&self) -> Result<()> {
        for threshold in &self.thresholds {
            let Some(filter) = &threshold.endpoint else { continue };
            let known = self
                .endpoints
                .iter()
                .any(|e| e.name == filter.name && filter.method.as_ref().is_none_or(|m| *m == e.method));
            if !known {
                let names: Vec<String> = self.endpoints.iter().map(|e| format!("{} {}", e.method, e.name)).collect();
                bail!(
                    "threshold {:?}: no endpoint {:?}; the endpoints are: {}",
                    threshold.text,
                    filter.name,
                    names.join(", ")
                );
            }
        }
        Ok(())
    }

    /// A plan with no user types yet (scenario files fill them in), defaults elsewhere.
    pub fn empty(workers: Vec<Option<usize>>, timeout: Duration) -> Plan {
        let mut plan = Plan::quick(
            &Url { tls: false, host: "127.0.0.1".into(), port: 80, target: "/".into() },
            ([127, 0, 0, 1], 80).into(),
            None,
            timeout,
            1,
            workers,
        );
        plan.user_types.clear();
        plan.endpoints.clear();
        plan
    }

    /// A one-request plan: GET `url` in a loop with no think time, defaults elsewhere.
    pub fn quick(
        url: &Url,
        addr: SocketAddr,
        tls: Option<crate::tls::Target>,
        timeout: Duration,
        pipeline: usize,
        workers: Vec<Option<usize>>,
    ) -> Plan {
        let request = Request {
            endpoint: 0,
            addr,
            tls,
            bytes: encode_request("GET", &url.target, &url.authority(), &[], b""),
            is_head: false,
            idempotent: true,
            timeout,
        };
        let task = Task::steps(format!("GET {}", url.target), vec![Step::Request(request)]);
        Plan {
            user_types: vec![UserType::new("QuickUser", vec![task])],
            endpoints: vec![Endpoint { method: "GET".into(), name: url.target.clone() }],
            vars: Vars::default(),
            data: Vec::new(),
            pools: Vec::new(),
            pool_seeds: Vec::new(),
            thresholds: Vec::new(),
            setup: Vec::new(),
            teardown: Vec::new(),
            users: 1,
            spawn_rate: 1.0,
            run_time: None,
            shape: None,
            rate: None,
            live_control: false,
            headroom: 0,
            max_start_delay: Duration::from_secs(1),
            iterations: None,
            reset_stats: false,
            stop_timeout: Duration::ZERO,
            max_timeout: timeout,
            pipeline,
            workers,
            partitions: None,
            source_addrs: Vec::new(),
            sources: Vec::new(),
            io: Io::Auto,
            defer_taskrun: true,
            ring: true,
            tick: Duration::from_secs(1),
            seed: rand::random(),
            origin: format!("GET {}://{}{}", if url.tls { "https" } else { "http" }, url.authority(), url.target),
            output: Output::default(),
        }
    }
}

/// The most source addresses a run takes.
const MAX_SOURCE_ADDRS: usize = 4096;

/// `127.0.0.2-127.0.0.40,10.0.0.5`: addresses and inclusive IPv4 ranges, each one this machine
/// can bind (checked here, so a typo fails before any traffic).
pub fn parse_source_addrs(list: &str) -> Result<Vec<std::net::IpAddr>, String> {
    use std::net::{IpAddr, Ipv4Addr};
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |text: &str| text.trim().parse::<IpAddr>().map_err(|_| format!("{text}: not an IP address"));
        match part.split_once('-') {
            Some((from, to)) => {
                let (IpAddr::V4(from), IpAddr::V4(to)) = (parse(from)?, parse(to)?) else {
                    return Err(format!("{part}: ranges are IPv4 only"));
                };
                let (a, b) = (u32::from(from), u32::from(to));
                if b < a || (b - a) as usize >= MAX_SOURCE_ADDRS {
                    return Err(format!("{part}: expected a rising range of at most {MAX_SOURCE_ADDRS} addresses"));
                }
                out.extend((a..=b).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))));
            }
            None => out.push(parse(part)?),
        }
        if out.len() > MAX_SOURCE_ADDRS {
            return Err(format!("more than {MAX_SOURCE_ADDRS} addresses"));
        }
    }
    if out.is_empty() {
        return Err("no address".into());
    }
    for ip in &out {
        std::net::TcpListener::bind((*ip, 0)).map_err(|e| format!("{ip}: cannot be bound on this machine ({e})"))?;
    }
    Ok(out)
}

/// Connections one source address is given to one destination here (of ~28k ephemeral ports,
/// room left for the rest of the machine).
pub const PORTS_PER_SOURCE: u64 = 25_000;

/// As `auto_sources`, for a plan that sends to all of `targets` (a scenario's hosts): only when
/// every one is a loopback IPv4 address.
pub fn auto_sources_all(targets: &[SocketAddr], users: u64) -> Vec<std::net::IpAddr> {
    match targets.first() {
        Some(first) if targets.iter().all(|t| matches!(t, SocketAddr::V4(v4) if v4.ip().is_loopback())) => {
            auto_sources(*first, users)
        }
        _ => Vec::new(),
    }
}

/// Every address the plan's steps send to (redirects aside), each once.
pub fn step_addrs(plan: &Plan) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    plan.for_each_step(|step| {
        let addr = match step {
            Step::Request(request) => request.addr,
            Step::Call(call) => call.addr,
            Step::Sleep(_) => return,
        };
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    });
    addrs
}

/// More users than one source address has ports for, to a loopback IPv4 target: spread over
/// 127.0.0.2, 127.0.0.3, … (every 127.0.0.0/8 address is this machine's).
pub fn auto_sources(target: SocketAddr, users: u64) -> Vec<std::net::IpAddr> {
    let SocketAddr::V4(v4) = target else { return Vec::new() };
    if !v4.ip().is_loopback() || users <= PORTS_PER_SOURCE {
        return Vec::new();
    }
    let count = users.div_ceil(PORTS_PER_SOURCE).min(250) as u8;
    (0..count).map(|i| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2 + i))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_past_one_address_get_more_sources() {
        let target: SocketAddr = ([127, 0, 0, 1], 8080).into();
        assert!(auto_sources(target, 25_000).is_empty());
        let sources = auto_sources(target, 60_000);
        assert_eq!(sources, ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|s| s.parse::<std::net::IpAddr>().unwrap()));
        assert!(auto_sources(([10, 0, 0, 1], 80).into(), 60_000).is_empty());
        assert!(auto_sources("[::1]:80".parse().unwrap(), 60_000).is_empty());
        let other: SocketAddr = ([127, 0, 0, 9], 80).into();
        assert_eq!(auto_sources_all(&[target, other], 60_000).len(), 3, "a scenario's loopback hosts");
        assert!(auto_sources_all(&[target, ([10, 0, 0, 1], 80).into()], 60_000).is_empty(), "one host is not");
        assert!(auto_sources_all(&[], 60_000).is_empty());
        let url = Url::parse("http://127.0.0.1:8080/").unwrap();
        let plan = Plan::quick(&url, target, None, Duration::from_secs(1), 1, vec![None]);
        assert_eq!(step_addrs(&plan), [target], "the steps' addresses, each once");
        assert_eq!(parse_source_addrs("127.0.0.2-127.0.0.4, 127.0.0.9").unwrap().len(), 4);
        assert!(parse_source_addrs("127.0.0.5-127.0.0.2").is_err());
        assert!(parse_source_addrs("nope").is_err());
    }
}
