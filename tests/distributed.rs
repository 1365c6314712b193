//! Distributed runs through the real binary: a master and workers on loopback (and, as root, in
//! network namespaces of their own), the exact merge, workers lost and masters lost, refusals,
//! `--processes`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{read, tempdir, BIN};
use swarmer::dist::wire::{self, Message};
use swarmer::stats::{EndpointStats, Snapshot};

/// A swarmer child whose output goes to files; killed (by its own PID) on drop.
struct Proc {
    child: Child,
    out: std::path::PathBuf,
}

impl Proc {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Proc {
        Proc::start_in(dir, name, &[BIN], args)
    }

    /// `prefix` then swarmer's arguments (`ip netns exec NS BIN …`).
    fn start_in(dir: &Path, name: &str, prefix: &[&str], args: &[&str]) -> Proc {
        let out = dir.join(format!("{name}.out"));
        let file = std::fs::File::create(&out).unwrap();
        let child = Command::new(prefix[0])
            .args(&prefix[1..])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start swarmer");
        Proc { child, out }
    }

    /// Waits at most `limit` for the exit code; kills it past that (and fails).
    fn wait(&mut self, limit: Duration) -> (i32, String) {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), read(&self.out));
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("still running after {limit:?}:\n{}", read(&self.out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        read(&self.out)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built-in target in this process, on a free loopback port: its `served()` is the exact
/// count of responses it wrote.
fn loopback_target() -> swarmer::target::Server {
    swarmer::target::start(([127, 0, 0, 1], 0).into(), 1, &[None]).unwrap()
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn aggregated_count(stats_csv: &str) -> u64 {
    let row = stats_csv.lines().find(|l| l.starts_with(",Aggregated,")).expect("aggregated row");
    row.split(',').nth(2).unwrap().parse().unwrap()
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap()
}

/// Waits until `text` appears in `proc`'s output.
fn wait_for(proc: &Proc, text: &str, limit: Duration) {
    let until = Instant::now() + limit;
    while !proc.output().contains(text) {
        assert!(Instant::now() < until, "no {text:?} within {limit:?}:\n{}", proc.output());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_merge_over_the_wire_is_exact() {
    // The same samples through one recorder, and split over two workers' snapshots that cross
    // the wire: every count and every percentile is the same.
    let max_us = 60_000_000;
    let mut one = EndpointStats::new(max_us);
    let mut parts = [Snapshot::new(0, 1, max_us), Snapshot::new(1, 1, max_us)];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..200_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Log-spread latencies from 1 µs to ~30 s, and a few failures.
        let us = 1 + (x % 1000) * 10u64.pow((x >> 20) as u32 % 5);
        one.record(us, i % 7);
        parts[(x >> 40) as usize % 2].endpoints[0].record(us, i % 7);
    }
    let mut merged = EndpointStats::new(max_us);
    for part in parts {
        let mut bytes = Vec::new();
        wire::write(&mut bytes, &Message::Stats(Box::new(part))).unwrap();
        let Some(Message::Stats(mut back)) = wire::read(&mut bytes.as_slice()).unwrap() else { panic!() };
        wire::fit(&mut back, 1, max_us).unwrap();
        merged.merge(&back.endpoints[0]);
    }
    assert_eq!((merged.count, merged.bytes, merged.sum_us), (one.count, one.bytes, one.sum_us));
    assert_eq!((merged.min_us, merged.max_us), (one.min_us, one.max_us));
    for q in (0..=10_000).map(|i| i as f64 / 10_000.0).chain([0.999, 0.9999, 0.99999]) {
        assert_eq!(merged.quantile_us(q), one.quantile_us(q), "quantile {q}");
    }
    assert!(merged.hist == one.hist, "the histograms are the same bucket by bucket");
}

/// A master on a free port and `workers` workers (1 thread each) against `url`; returns the
/// master's exit code and output with the workers' exit codes.
fn master_and_workers(dir: &Path, workers: usize, master_args: &[&str]) -> (i32, String, Vec<(i32, String)>) {
    let port = free_port().to_string();
    let expect = workers.to_string();
    let mut args =
        vec!["--master", "--master-bind-port", &port, "--expect-workers", &expect, "--expect-workers-max-wait", "20s"];
    args.extend_from_slice(master_args);
    let mut master = Proc::start(dir, "master", &args);
    let mut children: Vec<Proc> = (0..workers)
        .map(|i| Proc::start(dir, &format!("worker{i}"), &["--worker", "--master-port", &port, "--threads", "1"]))
        .collect();
    let (code, out) = master.wait(Duration::from_secs(60));
    let ends = children.iter_mut().map(|w| w.wait(Duration::from_secs(15))).collect();
    (code, out, ends)
}

#[test]
fn a_master_and_two_workers_count_exactly_what_the_target_served() {
    let server = loopback_target();
    let dir = tempdir("dist-exact");
    let prefix = dir.join("run");
    let json = dir.join("run.json");
    let url = format!("http://{}/", server.addr);
    let (code, out, workers) = master_and_workers(
        &dir,
        2,
        &[
            "-u",
            "8",
            "-r",
            "100",
            "-t",
            "3s",
            "-s",
            "5s",
            "--csv",
            prefix.to_str().unwrap(),
            "--json-file",
            json.to_str().unwrap(),
            &url,
        ],
    );
    assert_eq!(code, 0, "{out}");
    for (code, out) in &workers {
        assert_eq!(*code, 0, "{out}");
        assert!(out.contains("running partition(s)"), "{out}");
    }
    // Users finish their task within --stop-timeout: nothing was in flight at the end, so the
    // master's count is exactly what the target served.
    let stats = read(&dir.join("run_stats.csv"));
    let counted = aggregated_count(&stats);
    assert!(counted > 1000, "{stats}");
    assert_eq!(counted, server.served(), "{stats}");
    let s = summary(&json);
    assert_eq!(s["aggregated"]["cancelled"], 0);
    assert_eq!(s["aggregated"]["started"], s["aggregated"]["requests"]);
    assert_eq!(s["run"]["threads"], 2, "{s}");
    // Per worker: state, requests, and their sum.
    let table = read(&dir.join("run_workers.csv"));
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().all(|r| r[3] == "done" && r[5] == "1"), "{table}");
    let sum: u64 = rows.iter().map(|r| r[8].parse::<u64>().unwrap()).sum();
    assert_eq!(sum, counted, "{table}");
    // One history row per second, with every worker's users.
    let history = read(&dir.join("run_stats_history.csv"));
    assert!(history.lines().any(|l| l.split(',').nth(1) == Some("8")), "{history}");
}

#[test]
fn a_killed_worker_moves_its_users_and_nothing_is_dropped() {
    let server = loopback_target();
    let dir = tempdir("dist-kill-worker");
    let port = free_port().to_string();
    let (prefix, json) = (dir.join("run"), dir.join("run.json"));
    let url = format!("http://{}/delay/5ms", server.addr);
    let mut master = Proc::start(
        &dir,
        "master",
        &[
            "--master",
            "--master-bind-port",
            &port,
            "--expect-workers",
            "2",
            "-u",
            "10",
            "-r",
            "100",
            "-t",
            "6s",
            "--csv",
            prefix.to_str().unwrap(),
            "--json-file",
            json.to_str().unwrap(),
            &url,
        ],
    );
    let mut keep = Proc::start(&dir, "keep", &["--worker", "--master-port", &port, "--threads", "1"]);
    let mut doomed = Proc::start(&dir, "doomed", &["--worker", "--master-port", &port, "--threads", "1"]);
    wait_for(&master, "All 10 users started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1500));
    doomed.child.kill().unwrap(); // SIGKILL
    let (code, out) = master.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("lost at") && out.contains("(5 users) move to worker"), "{out}");
    assert_eq!(keep.wait(Duration::from_secs(10)).0, 0);
    // The survivor ran all 10 users after the loss.
    let history = read(&dir.join("run_stats_history.csv"));
    let users: Vec<&str> =
        history.lines().filter(|l| l.contains(",Aggregated,")).map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(users[users.len() - 2], "10", "{history}");
    // Every start ended somewhere: what the lost worker had in flight counts as cancelled.
    let s = summary(&json);
    let a = &s["aggregated"];
    let (started, requests, cancelled) =
        (a["started"].as_u64().unwrap(), a["requests"].as_u64().unwrap(), a["cancelled"].as_u64().unwrap());
    assert_eq!(started, requests + cancelled, "{a}");
    assert!(requests <= server.served(), "{requests} counted, {} served", server.served());
    assert!(read(&dir.join("run_workers.csv")).contains("missing"));
}

#[test]
fn a_killed_master_stops_every_worker_within_the_timeout() {
    let server = loopback_target();
    let dir = tempdir("dist-kill-master");
    let port = free_port().to_string();
    let url = format!("http://{}/delay/2ms", server.addr);
    let mut master = Proc::start(
        &dir,
        "master",
        &[
            "--master",
            "--master-bind-port",
            &port,
            "--expect-workers",
            "2",
            "-u",
            "6",
            "-t",
            "60s",
            "--heartbeat-timeout",
            "2s",
            &url,
        ],
    );
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::start(
                &dir,
                &format!("w{i}"),
                &["--worker", "--master-port", &port, "--threads", "1", "--heartbeat-timeout", "2s"],
            )
        })
        .collect();
    wait_for(&master, "All 6 users started", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    master.child.kill().unwrap();
    let killed = Instant::now();
    for worker in &mut workers {
        let (code, out) = worker.wait(Duration::from_secs(5));
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("lost the master; stopping the load"), "{out}");
    }
    assert!(killed.elapsed() < Duration::from_secs(3), "{:?}", killed.elapsed());
    // No orphaned load: the target sees nothing more.
    let served = server.served();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.served(), served);
}

/// A raw client: sends `frame` bytes, returns what the master answered (a refusal's reason).
fn raw_client(port: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(bytes).unwrap();
    match wire::read(&mut stream) {
        Ok(Some(Message::Refused { reason })) => reason,
        Ok(Some(other)) => format!("{other:?}"),
        Ok(None) => "closed".into(),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn wrong_secrets_versions_and_garbage_are_refused_and_the_run_goes_on() {
    let server = loopback_target();
    let dir = tempdir("dist-refuse");
    let port = free_port().to_string();
    let url = format!("http://{}/", server.addr);
    let mut master = Proc::start(
        &dir,
        "master",
        &["--master", "--master-bind-port", &port, "--secret", "right", "-u", "2", "-t", "1s", &url],
    );
    wait_for(&master, "listening on", Duration::from_secs(10));
    // Another version: refused, naming both.
    let mut hello = Vec::new();
    let fake = Message::Hello {
        protocol: wire::PROTOCOL,
        version: "0.0.0-test".into(),
        host: "t".into(),
        cores: 1,
        nonce: vec![1; 32],
    };
    wire::write(&mut hello, &fake).unwrap();
    let reason = raw_client(&port, &hello);
    assert!(reason.contains("worker version 0.0.0-test") && reason.contains(env!("CARGO_PKG_VERSION")), "{reason}");
    // Garbage: the link closes, the master stays up.
    let garbage: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    assert_eq!(raw_client(&port, &[&[20, 0, 0, 0], &garbage[..20]].concat()), "closed");
    assert!(raw_client(&port, &[0xff, 0xff, 0xff, 0x7f]).contains("closed"));
    // The wrong secret: refused on both sides, exit 2.
    let mut wrong = Proc::start(&dir, "wrong", &["--worker", "--master-port", &port, "--secret", "wrong"]);
    let (code, out) = wrong.wait(Duration::from_secs(10));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("the master does not hold this worker's secret"), "{out}");
    let mut none = Proc::start(&dir, "none", &["--worker", "--master-port", &port]);
    let (code, out) = none.wait(Duration::from_secs(10));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("the master has a secret and this worker has none"), "{out}");
    // The right one (through the environment, as a Kubernetes Secret gives it) runs.
    let right = dir.join("right.out");
    let mut worker = Command::new(BIN)
        .args(["--worker", "--master-port", &port, "--threads", "1"])
        .env("SWARMER_SECRET", "right")
        .stdout(std::fs::File::create(&right).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, out) = master.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
    assert!(worker.wait().unwrap().success(), "{}", read(&right));
    assert!(out.contains("refused") && out.contains("0.0.0-test"), "{out}");
    assert!(out.contains("a malformed frame") || out.contains("expected a hello"), "{out}");
    assert!(out.contains("the worker refused the master: the master does not hold this worker's secret"), "{out}");
    assert!(server.served() > 0);
}

#[test]
fn processes_runs_a_master_and_local_workers_in_one_command() {
    let server = loopback_target();
    let dir = tempdir("dist-processes");
    let prefix = dir.join("run");
    let url = format!("http://{}/", server.addr);
    let (code, stdout, stderr) = common::run(&[
        "--processes",
        "2",
        "-u",
        "6",
        "-r",
        "100",
        "-t",
        "2s",
        "-s",
        "5s",
        "--csv",
        prefix.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(aggregated_count(&read(&dir.join("run_stats.csv"))), server.served());
    let table = read(&dir.join("run_workers.csv"));
    assert_eq!(table.lines().filter(|l| l.contains(",done,")).count(), 2, "{table}");
}

#[test]
fn a_worker_that_joins_late_takes_a_share() {
    let server = loopback_target();
    let dir = tempdir("dist-late");
    let port = free_port().to_string();
    let prefix = dir.join("run");
    let url = format!("http://{}/delay/5ms", server.addr);
    let mut master = Proc::start(
        &dir,
        "master",
        &[
            "--master",
            "--master-bind-port",
            &port,
            "-u",
            "8",
            "-r",
            "100",
            "-t",
            "5s",
            "--csv",
            prefix.to_str().unwrap(),
            &url,
        ],
    );
    let mut first = Proc::start(&dir, "first", &["--worker", "--master-port", &port, "--threads", "2"]);
    wait_for(&master, "All 8 users started", Duration::from_secs(20));
    let mut late = Proc::start(&dir, "late", &["--worker", "--master-port", &port, "--threads", "1"]);
    let (code, out) = master.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("joined at") && out.contains("takes partition(s) [1]"), "{out}");
    assert_eq!(first.wait(Duration::from_secs(10)).0, 0);
    let (code, late_out) = late.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{late_out}");
    assert!(late_out.contains("running partition(s) [1] of 2 (4 users)"), "{late_out}");
    let table = read(&dir.join("run_workers.csv"));
    let requests: Vec<u64> = table.lines().skip(1).map(|l| l.split(',').nth(8).unwrap().parse().unwrap()).collect();
    assert!(requests.len() == 2 && requests.iter().all(|&r| r > 50), "{table}");
}

/// Network namespaces joined by veth pairs through a bridge in a namespace of its own; all
/// removed on drop (also when the test fails).
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn ip(args: &[&str]) -> bool {
        Command::new("ip").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    /// Namespaces `prefix` + each of `roles`, at 10.233.0.1, .2, … in role order; `None` where
    /// namespaces cannot be made (not root, no `ip`).
    fn create(prefix: &str, roles: &[&str]) -> Option<Namespaces> {
        let bridge = format!("{prefix}br");
        let mut made = Namespaces { names: Vec::new() };
        if !Namespaces::ip(&["netns", "add", &bridge]) {
            return None;
        }
        made.names.push(bridge.clone());
        let ok = Namespaces::ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])
            && Namespaces::ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        assert!(ok, "cannot make the bridge");
        for (i, role) in roles.iter().enumerate() {
            let ns = format!("{prefix}{role}");
            let (inner, outer) = (format!("{ns}a"), format!("{ns}b"));
            let addr = format!("10.233.0.{}/24", i + 1);
            assert!(Namespaces::ip(&["netns", "add", &ns]), "netns add {ns}");
            made.names.push(ns.clone());
            for args in [
                vec!["link", "add", &inner, "type", "veth", "peer", "name", &outer],
                vec!["link", "set", &inner, "netns", &ns],
                vec!["link", "set", &outer, "netns", &bridge],
                vec!["-n", &ns, "addr", "add", &addr, "dev", &inner],
                vec!["-n", &ns, "link", "set", &inner, "up"],
                vec!["-n", &ns, "link", "set", "lo", "up"],
                vec!["-n", &bridge, "link", "set", &outer, "master", "br0"],
                vec!["-n", &bridge, "link", "set", &outer, "up"],
            ] {
                assert!(Namespaces::ip(&args), "ip {args:?}");
            }
        }
        Some(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            Namespaces::ip(&["netns", "del", name]);
        }
    }
}

const POSTS: &str = r#"
host = "http://10.233.0.4:8080"
users = 6
spawn_rate = 100

[[user]]
name = "Writer"
wait_time = { constant = 0.005 }

[[user.task]]
name = "post"

[[user.task.steps]]
post = "/api/posts"
json = { title = "hello", userId = "{{ user_index }}" }
check = { status = 201 }
"#;

#[test]
fn a_master_and_two_workers_on_hosts_of_their_own() {
    let prefix = format!("sw{}", std::process::id() % 100_000);
    let Some(_spaces) = Namespaces::create(&prefix, &["m", "w1", "w2", "t"]) else {
        eprintln!("skipped: network namespaces need root and iproute2 (CI has both)");
        return;
    };
    let dir = tempdir("dist-netns");
    let scenario = dir.join("posts.toml");
    std::fs::write(&scenario, POSTS).unwrap();
    let csv = dir.join("run");
    let netns = |role: &str| -> Vec<String> {
        ["ip", "netns", "exec", &format!("{prefix}{role}"), BIN].iter().map(|s| s.to_string()).collect()
    };
    let t = netns("t");
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let target = Proc::start_in(&dir, "target", &t, &["target", "--bind", "10.233.0.4", "--port", "8080"]);
    wait_for(&target, "listening", Duration::from_secs(10));
    let m = netns("m");
    let m: Vec<&str> = m.iter().map(String::as_str).collect();
    let mut master = Proc::start_in(
        &dir,
        "master",
        &m,
        &[
            "-f",
            scenario.to_str().unwrap(),
            "--master",
            "--master-bind-host",
            "10.233.0.1",
            "--secret",
            "ns-secret",
            "--expect-workers",
            "2",
            "--headless",
            "-t",
            "3s",
            "-s",
            "5s",
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    let mut workers: Vec<Proc> = ["w1", "w2"]
        .iter()
        .map(|role| {
            let w = netns(role);
            let w: Vec<&str> = w.iter().map(String::as_str).collect();
            Proc::start_in(
                &dir,
                role,
                &w,
                &["--worker", "--master-host", "10.233.0.1", "--secret", "ns-secret", "--threads", "1"],
            )
        })
        .collect();
    let (code, out) = master.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{out}");
    for worker in &mut workers {
        let (code, out) = worker.wait(Duration::from_secs(10));
        assert_eq!(code, 0, "{out}");
    }
    // Every post the target stored was counted once, and only those (users finished their task
    // within the stop timeout: nothing was in flight at the end).
    let get =
        "import urllib.request; print(urllib.request.urlopen('http://10.233.0.4:8080/api/stats').read().decode())";
    let stats =
        Command::new("ip").args(["netns", "exec", &format!("{prefix}t"), "python3", "-c", get]).output().unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("the target's /api/stats");
    let table = read(&dir.join("run_stats.csv"));
    let counted = common::csv_count(&table, "POST", "/api/posts");
    assert!(counted > 200, "{table}");
    assert_eq!(stored["posts"].as_u64().unwrap(), counted, "{table}");
    // The two workers came from their own addresses.
    let workers_csv = read(&dir.join("run_workers.csv"));
    assert!(workers_csv.contains("10.233.0.2:") && workers_csv.contains("10.233.0.3:"), "{workers_csv}");
}

#[test]
fn the_link_runs_over_tls_and_a_plain_worker_is_refused() {
    let server = loopback_target();
    let dir = tempdir("dist-tls");
    let port = free_port().to_string();
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let (cert, key, ca) = (tls.join("server.pem"), tls.join("server.key"), tls.join("ca.pem"));
    let prefix = dir.join("run");
    let url = format!("http://{}/", server.addr);
    let mut master = Proc::start(
        &dir,
        "master",
        &[
            "--master",
            "--master-bind-port",
            &port,
            "--master-tls-cert",
            cert.to_str().unwrap(),
            "--master-tls-key",
            key.to_str().unwrap(),
            "--secret",
            "over-tls",
            "-u",
            "4",
            "-r",
            "100",
            "-t",
            "2s",
            "-s",
            "5s",
            "--csv",
            prefix.to_str().unwrap(),
            &url,
        ],
    );
    wait_for(&master, "listening on", Duration::from_secs(10));
    // A worker speaking plain TCP to a TLS master: refused, and the master says why.
    let mut plain = Proc::start(
        &dir,
        "plain",
        &["--worker", "--master-port", &port, "--secret", "over-tls", "--heartbeat-timeout", "2s"],
    );
    let (code, out) = plain.wait(Duration::from_secs(15));
    assert_ne!(code, 0, "{out}");
    wait_for(&master, "start the worker with --master-ca-cert", Duration::from_secs(10));
    // The same worker over TLS, checking the master's certificate for "localhost".
    let mut worker = Proc::start(
        &dir,
        "tls",
        &[
            "--worker",
            "--master-host",
            "localhost",
            "--master-port",
            &port,
            "--master-ca-cert",
            ca.to_str().unwrap(),
            "--secret",
            "over-tls",
            "--threads",
            "1",
        ],
    );
    let (code, out) = master.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
    assert_eq!(worker.wait(Duration::from_secs(10)).0, 0, "{}", worker.output());
    assert_eq!(aggregated_count(&read(&dir.join("run_stats.csv"))), server.served());
}

/// A POST of a form to `port`; (status, body).
fn post_form(port: u16, path: &str, form: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    stream.write_all(format!("{head}{form}").as_bytes()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[test]
fn the_web_ui_starts_a_distributed_run_and_shows_its_workers() {
    let server = loopback_target();
    let dir = tempdir("dist-ui");
    let (port, web) = (free_port().to_string(), free_port());
    let url = format!("http://{}/", server.addr);
    let mut master = Proc::start(
        &dir,
        "master",
        &[
            "--master",
            "--master-bind-port",
            &port,
            "--expect-workers",
            "2",
            "--web",
            "-P",
            &web.to_string(),
            "--autoquit",
            "2s",
            &url,
        ],
    );
    wait_for(&master, "web UI on", Duration::from_secs(10));
    // Workers that start before the form is sent wait for it.
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| Proc::start(&dir, &format!("w{i}"), &["--worker", "--master-port", &port, "--threads", "1"]))
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = post_form(web, "/swarm", "user_count=6&spawn_rate=100&run_time=3s");
    assert_eq!(status, 200, "{body}");
    wait_for(&master, "All 6 users started", Duration::from_secs(20));
    let stats = common::api(&format!("http://127.0.0.1:{web}"), "/stats/requests");
    let rows = stats["workers"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{stats}");
    assert!(rows.iter().all(|w| w["state"] == "running" && w["partitions"] == 1), "{stats}");
    // Editing a distributed run is refused, and says so.
    let (status, body) = post_form(web, "/swarm", "user_count=10&spawn_rate=100");
    assert_ne!(status, 200, "{body}");
    assert!(body.contains("cannot be edited"), "{body}");
    let (code, out) = master.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
    for worker in &mut workers {
        assert_eq!(worker.wait(Duration::from_secs(10)).0, 0);
    }
    assert!(server.served() > 0);
}

#[test]
fn the_open_model_splits_its_schedule_across_workers_exactly() {
    let server = loopback_target();
    let dir = tempdir("dist-open");
    let json = dir.join("run.json");
    let url = format!("http://{}/delay/5ms", server.addr);
    let (code, stdout, stderr) = common::run(&[
        "--processes",
        "2",
        "--rate",
        "200",
        "-t",
        "3s",
        "--only-summary",
        "--json-file",
        json.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // 200/s for 3 s: every partition's share of one schedule, 600 starts in all.
    assert!(stdout.contains("600 starts came due"), "{stdout}");
    let s = summary(&json);
    let a = &s["aggregated"];
    assert_eq!(a["requests"].as_u64().unwrap() + a["cancelled"].as_u64().unwrap(), 600, "{a}");
}
