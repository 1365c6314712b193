//! Distributed runs through the real binary: a master and workers on loopback (and, as root, in
//! network namespaces of their own), the exact merge, workers lost and masters lost, refusals,
//! `--processes`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dist::{aggregated_count, free_port, loopback_target, master_and_workers, summary, wait_for, Proc};
use common::{read, tempdir, BIN};
use swarmer::dist::wire::{self, Message};
use swarmer::stats::{EndpointStats, Snapshot};

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
