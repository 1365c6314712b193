//! The web UI's server through the binary, as scripts and dashboards written for Locust use it:
//! `/stats/requests` with Locust's keys (compared with a real Locust 2.47 answer kept in
//! `tests/web/locust_stats_requests.json`) and numbers equal to the CSV's, `POST /swarm` with
//! good and bad input, an edit of the running test, reset, stop, the event stream, HTTP Basic
//! credentials, cross-site requests refused, and `/metrics` across a reset. The page itself is driven by a real browser
//! in `tests/browser.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{closed_port, Target, BIN};
use serde_json::Value;

/// `swarmer` serving its web UI on a free port; killed (by PID) on drop.
struct Ui {
    child: Child,
    port: u16,
}

impl Ui {
    fn start(args: &[&str]) -> Ui {
        let port = closed_port();
        let mut all = vec!["-P".to_string(), port.to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let child = Command::new(BIN).args(&all).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let ui = Ui { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "the web UI did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        ui
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request to the UI: (status, body). `headers` are whole lines (`Name: value`).
fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(&format!("{header}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    stream.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

fn stats(ui: &Ui) -> Value {
    serde_json::from_str(&request(ui.port, "GET", "/stats/requests", &[], "").1).unwrap()
}

/// Waits until `ready` holds for `/stats/requests` (at most 15 s).
fn wait_for(ui: &Ui, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let value = stats(ui);
        if ready(&value) {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "waited for {what}: {value}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn aggregated(value: &Value) -> &Value {
    value["stats"].as_array().unwrap().last().unwrap()
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn locust_api_start_edit_reset_stop_and_the_csv_agree() {
    let target = Target::start();
    let scenario = format!("{}/scenarios/guide/blog.toml", env!("CARGO_MANIFEST_DIR"));
    let ui = Ui::start(&["-f", &scenario, "-H", target.url.trim_end_matches('/')]);
    assert_eq!(stats(&ui)["state"], "ready");
    // Bad input changes nothing and says why.
    for (form, expected) in [
        ("user_count=-1&spawn_rate=1", "Number of users \"-1\""),
        ("user_count=5&spawn_rate=0", "Spawn rate \"0\""),
        ("user_count=5&spawn_rate=5&host=not-a-url", "missing scheme"),
        ("user_count=5&spawn_rate=5&run_time=soon", "Run time"),
    ] {
        let (status, body) = request(ui.port, "POST", "/swarm", &[], form);
        assert_eq!(status, 400, "{form}: {body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["success"], false, "{form}: {body}");
        assert!(reply["message"].as_str().unwrap().contains(expected), "{form}: {body}");
    }
    assert_eq!(stats(&ui)["state"], "ready");
    let (status, body) = request(ui.port, "POST", "/swarm", &[], "user_count=4&spawn_rate=100");
    assert_eq!((status, body.contains("\"success\":true")), (200, true), "{body}");
    let running =
        wait_for(&ui, "traffic", |v| v["state"] == "running" && aggregated(v)["num_requests"].as_u64() > Some(50));
    // Locust's keys: the same top level, every key of a row and of an error.
    let locust: Value = serde_json::from_str(include_str!("web/locust_stats_requests.json")).unwrap();
    assert_eq!(keys(&running), keys(&locust));
    let row_keys = keys(&running["stats"][0]);
    for key in keys(&locust["stats"][0]) {
        assert!(row_keys.contains(&key), "row key {key} missing: {row_keys:?}");
    }
    // Edit the running test: 8 users.
    let (status, body) = request(ui.port, "POST", "/swarm", &[], "user_count=8&spawn_rate=100");
    assert_eq!(status, 200, "{body}");
    wait_for(&ui, "8 users", |v| v["user_count"] == 8);
    // Reset: the counts start again.
    let before = aggregated(&stats(&ui))["num_requests"].as_u64().unwrap();
    assert_eq!(request(ui.port, "POST", "/stats/reset", &[], "").0, 200);
    wait_for(&ui, "a reset", |v| aggregated(v)["num_requests"].as_u64().unwrap() < before);
    // The UI's /metrics: its counters do not go back with the reset (Prometheus counters).
    let (status, metrics) = request(ui.port, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "{metrics}");
    let total: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("swarmer_requests_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(total >= before, "{total} < {before}: {metrics}");
    // Stop; then the JSON's numbers are the CSV's.
    assert_eq!(request(ui.port, "POST", "/stop", &[], "").0, 200);
    let stopped = wait_for(&ui, "the stop", |v| v["state"] == "stopped");
    let csv = request(ui.port, "GET", "/stats/requests/csv", &[], "").1;
    let row = csv.lines().find(|l| l.starts_with(",Aggregated,")).unwrap();
    let fields: Vec<&str> = row.split(',').collect();
    assert_eq!(fields[2].parse::<u64>().unwrap(), aggregated(&stopped)["num_requests"].as_u64().unwrap());
    assert_eq!(fields[3].parse::<u64>().unwrap(), aggregated(&stopped)["num_failures"].as_u64().unwrap());
    // A second test after the first.
    let (status, _) = request(ui.port, "POST", "/swarm", &[], "user_count=2&spawn_rate=100&run_time=1s");
    assert_eq!(status, 200);
    wait_for(&ui, "the second run", |v| v["state"] == "stopped" && aggregated(v)["num_requests"].as_u64() > Some(0));
}

#[test]
fn credentials_and_cross_site_requests() {
    let target = Target::start();
    let url = format!("{}/", target.url);
    let ui = Ui::start(&["--web", &url, "--web-auth", "ann:s3cret"]);
    let basic = |credentials: &str| {
        use base64::Engine;
        format!("Authorization: Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
    };
    assert_eq!(request(ui.port, "GET", "/", &[], "").0, 401);
    assert_eq!(request(ui.port, "GET", "/stats/requests", &[&basic("ann:wrong")], "").0, 401);
    let right = basic("ann:s3cret");
    let (status, page) = request(ui.port, "GET", "/", &[&right], "");
    assert!(status == 200 && page.contains("Start a new load test"), "{status}");
    // Another site's page, in the user's browser, cannot start a test.
    for headers in [
        vec![right.as_str(), "Origin: http://evil.example", "Sec-Fetch-Site: cross-site"],
        vec![right.as_str(), "Sec-Fetch-Site: same-site", "Origin: http://127.0.0.1:1"],
        vec![right.as_str(), "Referer: http://evil.example/attack.html"],
    ] {
        let (status, body) = request(ui.port, "POST", "/swarm", &headers, "user_count=1&spawn_rate=1");
        assert_eq!(status, 403, "{headers:?}: {body}");
    }
    let state = request(ui.port, "GET", "/stats/requests", &[&right], "").1;
    assert!(state.contains("\"state\":\"ready\""), "{state}");
    // The event stream sends the whole board first.
    let mut stream = TcpStream::connect(("127.0.0.1", ui.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: x\r\n{right}\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 65536];
    let mut seen = String::new();
    while !seen.contains("\"full\":true") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream") && seen.contains("data: {"), "{seen}");
}

#[test]
fn the_ui_over_https() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (cert, key, ca) = (
        format!("{root}/tests/tls/server.pem"),
        format!("{root}/tests/tls/server.key"),
        format!("{root}/tests/tls/ca.pem"),
    );
    let target = Target::start();
    let url = format!("{}/", target.url);
    let ui = Ui::start(&["--web", &url, "--web-tls-cert", &cert, "--web-tls-key", &key]);
    // swarmer's own HTTPS client, verifying the certificate against the test CA.
    let api = format!("https://localhost:{}/stats/requests", ui.port);
    let (code, out, err) = common::run(&["-u", "1", "-t", "1s", "--only-summary", "--ca-cert", &ca, &api]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("GET      /stats/requests"), "{out}");
    // Plain HTTP to the HTTPS port gets nothing useful.
    assert_ne!(request(ui.port, "GET", "/stats/requests", &[], "").0, 200);
}

#[test]
fn an_html_report_that_refers_to_nothing_outside() {
    let target = Target::start();
    let dir = common::tempdir("html");
    let report = dir.join("report.html");
    // A name that would end a script element if it were not escaped.
    let text = "[[user]]\n[[user.task]]\nrequest = { get = \"/status/503\", name = \"</script><b>x\" }\n";
    let file = common::scenario(&dir, "html.toml", &target.url, &format!("host = \"HOST\"\n{text}"));
    let (code, out, err) =
        common::run(&["-f", &file, "-u", "2", "-t", "2s", "--only-summary", "--html", report.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let html = std::fs::read_to_string(&report).unwrap();
    // Everything is inline; the only URLs are the run's own (in its data), and the name with a
    // script in it cannot end the data's script element.
    let data_line = html.lines().find(|l| l.starts_with("<script>window.SWARMER_REPORT")).unwrap();
    let rest = html.replace(data_line, "");
    assert!(!rest.contains("http://") && !rest.contains("https://"), "a URL outside the data");
    assert!(!html.contains("<link") && !html.contains(" src="), "an outside resource");
    assert!(!data_line.contains("</script><b>") && data_line.contains("<\\/script><b>x"), "{data_line}");
    assert!(data_line.contains("HTTP 503 Service Unavailable") && data_line.contains("\"heat\""));
}
