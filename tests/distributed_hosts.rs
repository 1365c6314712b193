//! Distributed runs through the real binary, continued: a master and workers on hosts of their
//! own (network namespaces, as root), the link over TLS, a distributed run from the web UI, and
//! the open model's schedule split across workers.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::dist::{aggregated_count, free_port, loopback_target, summary, wait_for, Proc};
use common::{read, tempdir, BIN};

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
