//! The outputs that outlive a run, read back through the binary against the built-in target:
//! the `--json-file` summary against the CSV files, Locust's `--json` against a real Locust
//! run's keys, the `--hdr-log` intervals summed against the whole run, `/metrics` during a
//! live run through prometheus_client's parsers, `swarmer compare` as a regression gate, the
//! config file and `SWARMER_*` variables case by case, and `--logfile`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;

use common::{closed_port, read, run, scenario, tempdir, Target, BIN};

/// Three endpoints, one of them failing, with a little think time (a bounded load).
const MIXED: &str = r#"
host = "HOST"
[[user]]
wait_time = { between = [0.001, 0.003] }
[[user.task]]
weight = 3
request = { get = "/" }
[[user.task]]
request = { get = "/status/503" }
[[user.task]]
request = { get = "/bytes/2000" }
"#;

/// `_stats.csv` as (Type Name) → its fields by column title.
fn stats_csv(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| header.iter().zip(line.split(',')).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

fn json_file(path: &std::path::Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

#[test]
fn the_json_summary_says_what_the_csv_files_say() {
    let target = Target::start();
    let dir = tempdir("json-summary");
    let file = scenario(&dir, "mixed.toml", &target.url, MIXED);
    let (prefix, summary) = (dir.join("run"), dir.join("run.json"));
    let (code, stdout, stderr) = run(&[
        "-f",
        &file,
        "-u",
        "4",
        "-t",
        "2s",
        "--csv",
        prefix.to_str().unwrap(),
        "--json-file",
        summary.to_str().unwrap(),
        "--threshold",
        "p99<10s",
        "--threshold",
        "fail_ratio<1%",
        "--only-summary",
    ]);
    assert_eq!(code, 99, "a failing endpoint loses fail_ratio<1%: {stdout}{stderr}");
    let json = json_file(&summary);
    assert_eq!(json["schema"], "swarmer-summary");
    assert_eq!(json["schema_version"], 1);
    // The top-level keys, in the file's order.
    let text = read(&summary);
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_by_key(|k| text.find(&format!("\n  \"{k}\": ")).unwrap());
    assert_eq!(
        keys,
        [
            "schema",
            "schema_version",
            "run",
            "aggregated",
            "endpoints",
            "errors",
            "aborted_tasks",
            "skipped_tasks",
            "thresholds",
            "open_model"
        ],
        "stable key order"
    );
    let run_info = &json["run"];
    for key in ["swarmer_version", "hostname", "kernel", "cpu_model", "io", "started_utc", "ended_utc"] {
        assert!(run_info[key].as_str().is_some_and(|s| !s.is_empty()), "run.{key}: {run_info}");
    }
    assert_eq!(run_info["threads"].as_u64(), Some(run_info["worker_cpus"].as_array().unwrap().len() as u64));
    assert!(run_info["command_line"].as_array().unwrap().iter().any(|a| a == "--json-file"));
    assert!(run_info["started_utc"].as_str().unwrap().ends_with('Z'));
    assert_eq!(run_info["model"], "closed");
    // Every row of _stats.csv, number for number.
    let csv = stats_csv(&read(&dir.join("run_stats.csv")));
    assert_eq!(csv.len(), 4, "three endpoints and Aggregated");
    let rows: Vec<&Value> = json["endpoints"].as_array().unwrap().iter().chain([&json["aggregated"]]).collect();
    let ms = |v: &Value| format!("{:.3}", v.as_u64().unwrap() as f64 / 1000.0);
    for (row, entry) in csv.iter().zip(&rows) {
        assert_eq!(row["Name"], entry["name"].as_str().unwrap());
        assert_eq!(row["Type"], entry["method"].as_str().unwrap());
        assert_eq!(row["Request Count"], entry["requests"].to_string());
        assert_eq!(row["Failure Count"], entry["failures"].to_string());
        let latency = &entry["latency_us"];
        for (column, key) in [
            ("Median Response Time", "p50"),
            ("Min Response Time", "min"),
            ("Max Response Time", "max"),
            ("50%", "p50"),
            ("66%", "p66"),
            ("90%", "p90"),
            ("95%", "p95"),
            ("99%", "p99"),
            ("99.9%", "p99_9"),
            ("99.99%", "p99_99"),
            ("100%", "max"),
        ] {
            assert_eq!(row[column], ms(&latency[key]), "{} {column}", row["Name"]);
        }
        assert_eq!(row["Average Response Time"], format!("{:.3}", latency["mean"].as_f64().unwrap() / 1000.0));
        let rps: f64 = row["Requests/s"].parse().unwrap();
        assert!((rps - entry["requests_per_second"].as_f64().unwrap()).abs() < 0.01, "{rps} {entry}");
    }
    // The failures, as _failures.csv has them.
    let failures = read(&dir.join("run_failures.csv"));
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), failures.lines().count() - 1);
    let error = &errors[0];
    assert_eq!((error["name"].as_str(), error["kind"].as_str()), (Some("/status/503"), Some("status")));
    assert!(failures.contains(&format!(
        "GET,/status/503,{},{}",
        error["error"].as_str().unwrap(),
        error["occurrences"]
    )));
    // The thresholds, judged.
    let thresholds = json["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 2);
    assert_eq!((thresholds[0]["threshold"].as_str(), thresholds[0]["pass"].as_bool()), (Some("p99<10s"), Some(true)));
    assert_eq!(thresholds[1]["pass"], false);
    assert!(thresholds[1]["measured"].as_f64().unwrap() > 0.05);
    assert!(json["open_model"].is_null());
}

#[test]
fn json_prints_locusts_json_and_nothing_else_on_stdout() {
    let target = Target::start();
    let dir = tempdir("locust-json");
    let file = scenario(&dir, "mixed.toml", &target.url, MIXED);
    let prefix = dir.join("run");
    let (code, stdout, stderr) =
        run(&["-f", &file, "-u", "2", "-t", "2s", "--json", "--csv", prefix.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let entries: Vec<Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(stderr.contains("Aggregated") && stderr.contains("Response time percentiles"), "tables on stderr");
    // Locust's own --json output (locust 2.47, tests/outputs/locust_json.json): the same keys in
    // the same order.
    let locust: Vec<Value> =
        serde_json::from_str(&read(std::path::Path::new("tests/outputs/locust_json.json"))).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let csv = read(&dir.join("run_stats.csv"));
    assert_eq!(entries.len(), 3);
    for entry in &entries {
        assert_eq!(keys(entry), keys(&locust[0]));
        let (method, name) = (entry["method"].as_str().unwrap(), entry["name"].as_str().unwrap());
        let requests = entry["num_requests"].as_u64().unwrap();
        assert_eq!(requests, common::csv_count(&csv, method, name), "{name}");
        let sum = |key: &str| entry[key].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("response_times"), requests, "{name}");
        assert_eq!(sum("num_reqs_per_sec"), requests, "{name}");
        assert_eq!(sum("num_fail_per_sec"), entry["num_failures"].as_u64().unwrap(), "{name}");
        assert!(entry["min_response_time"].as_f64().unwrap() <= entry["max_response_time"].as_f64().unwrap());
        assert!(entry["start_time"].as_f64().unwrap() <= entry["last_request_timestamp"].as_f64().unwrap());
    }
    let failing = entries.iter().find(|e| e["name"] == "/status/503").unwrap();
    assert_eq!(failing["num_failures"], failing["num_requests"]);
}

/// An interval of a log: its tag ("" for untagged), start (s from BaseTime), histogram.
type Interval = (String, f64, Histogram<u64>);

/// The intervals of an interval log, decoded, and its BaseTime.
fn intervals(path: &std::path::Path) -> (Vec<Interval>, Option<Duration>) {
    let text = std::fs::read(path).unwrap();
    let (mut out, mut base) = (Vec::new(), None);
    for entry in IntervalLogIterator::new(&text) {
        match entry.unwrap_or_else(|e| panic!("{}: {e:?}", path.display())) {
            LogEntry::BaseTime(t) => base = Some(t),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(i) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
                let hist: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                let tag = i.tag().map_or(String::new(), |t| t.as_str().to_string());
                out.push((tag, i.start_timestamp().as_secs_f64(), hist));
            }
        }
    }
    (out, base)
}

fn summed(intervals: &[Interval], tag: &str) -> Histogram<u64> {
    let mut sum = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    for (_, _, hist) in intervals.iter().filter(|(t, _, _)| t == tag) {
        sum.add(hist).unwrap();
    }
    sum
}

/// The summary's percentiles as the histogram gives them (capped at the exact min and max, as
/// the summary's are).
fn assert_same_percentiles(hist: &Histogram<u64>, latency: &Value, what: &str) {
    let (min, max) = (latency["min"].as_u64().unwrap(), latency["max"].as_u64().unwrap());
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99_9", 0.999)] {
        let value = hist.value_at_quantile(q).min(max).max(min);
        assert_eq!(value, latency[key].as_u64().unwrap(), "{what} {key}");
    }
}

#[test]
fn the_hdr_log_sums_to_the_whole_run() {
    let target = Target::start();
    let dir = tempdir("hdr-log");
    let file = scenario(&dir, "mixed.toml", &target.url, MIXED);
    let (log, summary) = (dir.join("run.hlog"), dir.join("run.json"));
    let args = ["-f", &file, "-u", "4", "-t", "3s", "--only-summary"];
    let outputs = ["--hdr-log", log.to_str().unwrap(), "--json-file", summary.to_str().unwrap()];
    let (code, _, stderr) = run(&[&args[..], &outputs[..]].concat());
    assert_eq!(code, 1, "{stderr}");
    let header = read(&log);
    assert!(header.starts_with("#[swarmer "), "{header}");
    assert!(header.contains("#[Histogram log format version 1.3]\n#[StartTime: "));
    assert!(header
        .contains("\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"));
    let (intervals, base) = intervals(&log);
    let json = json_file(&summary);
    let started = json["run"]["started_unix"].as_f64().unwrap();
    assert!((base.unwrap().as_secs_f64() - started).abs() < 0.002, "BaseTime is the run's start");
    // One untagged interval per second, in order, from 0 (and the sliver the run ended in).
    let starts: Vec<f64> = intervals.iter().filter(|(t, _, _)| t.is_empty()).map(|(_, s, _)| *s).collect();
    assert!(starts.len() == 3 || starts.len() == 4, "{starts:?}");
    assert!(starts.iter().enumerate().all(|(i, s)| (s - i as f64).abs() < 1e-6), "{starts:?}");
    let all = summed(&intervals, "");
    assert_eq!(all.len(), json["aggregated"]["requests"].as_u64().unwrap());
    assert_same_percentiles(&all, &json["aggregated"]["latency_us"], "aggregated");
    for endpoint in json["endpoints"].as_array().unwrap() {
        let tag = format!("GET:{}", endpoint["name"].as_str().unwrap());
        let hist = summed(&intervals, &tag);
        assert_eq!(hist.len(), endpoint["requests"].as_u64().unwrap(), "{tag}");
        assert_same_percentiles(&hist, &endpoint["latency_us"], &tag);
    }
}

#[test]
fn open_model_logs_keep_service_times_apart() {
    let target = Target::start();
    let dir = tempdir("hdr-open");
    let (log, summary) = (dir.join("open.hlog"), dir.join("open.json"));
    let url = format!("{}/delay/2ms", target.url.trim_end_matches('/'));
    let (code, _, stderr) = run(&[
        &url,
        "--rate",
        "200",
        "-t",
        "2s",
        "--only-summary",
        "--hdr-log",
        log.to_str().unwrap(),
        "--json-file",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (intervals, _) = intervals(&log);
    let json = json_file(&summary);
    let service = summed(&intervals, "service");
    assert_eq!(service.len(), json["aggregated"]["requests"].as_u64().unwrap());
    assert!(service.value_at_quantile(0.5) >= 2000, "service times include the 2 ms delay");
    assert_eq!(summed(&intervals, "service:GET:/delay/2ms").len(), service.len());
    let open = &json["open_model"];
    assert_eq!(open["rate"], 200.0);
    assert!(open["due"].as_u64().unwrap() >= 300, "{open}");
    assert_eq!(open["started"].as_u64().unwrap() + open["dropped"].as_u64().unwrap(), open["due"].as_u64().unwrap());
    assert!(open["lag_us"]["p50"].as_u64().is_some(), "{open}");
    assert!(json["aggregated"]["service_time_us"]["p50"].as_u64().unwrap() >= 2000);
}

/// GET `/metrics` with `accept`: (content type, body).
fn scrape(port: u16, accept: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head.lines().find_map(|l| l.strip_prefix("content-type: ")).unwrap_or_default();
    (content_type.to_string(), body.to_string())
}

/// The families prometheus_client's parser reads from `text`.
fn parse_metrics(text: &str, openmetrics: bool) -> Value {
    let mut child = Command::new("python3")
        .arg("tests/outputs/parse_metrics.py")
        .arg(if openmetrics { "openmetrics" } else { "prometheus" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus_client: pip install prometheus_client)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the parser refused the text: {stderr}\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` with these labels.
fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families[family]["samples"].as_array()?.iter().find_map(|s| {
        let matches = s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v);
        matches.then(|| s[2].as_f64().unwrap())
    })
}

#[test]
fn metrics_are_served_while_the_run_goes_on() {
    let target = Target::start();
    let dir = tempdir("metrics");
    let file = scenario(&dir, "mixed.toml", &target.url, MIXED);
    let prefix = dir.join("run");
    let mut child = Command::new(BIN)
        .args(["-f", &file, "-u", "3", "-t", "4s", "--metrics-port", "0", "--csv", prefix.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let port: u16 = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no metrics line");
        if let Some(rest) = line.strip_prefix("swarmer: metrics on http://127.0.0.1:") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    let drain = std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let (content_type, first) = scrape(port, "application/openmetrics-text; version=1.0.0");
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"), "{content_type}");
    std::thread::sleep(Duration::from_millis(1100));
    let (_, second) = scrape(port, "application/openmetrics-text; version=1.0.0");
    let (plain_type, plain) = scrape(port, "*/*");
    assert!(started.elapsed() < Duration::from_secs(4), "scraped while the run went on");
    assert!(plain_type.starts_with("text/plain; version=0.0.4"), "{plain_type}");
    let (a, b) = (parse_metrics(&first, true), parse_metrics(&second, true));
    let plain = parse_metrics(&plain, false);
    let home = [("method", "GET"), ("name", "/")];
    let count = |f: &Value| sample(f, "swarmer_requests", "swarmer_requests_total", &home).unwrap();
    assert!(count(&a) > 0.0 && count(&b) > count(&a), "the counter grows: {} then {}", count(&a), count(&b));
    assert!(sample(&plain, "swarmer_requests", "swarmer_requests_total", &home).unwrap() >= count(&b));
    assert_eq!(b["swarmer_requests"]["type"], "counter");
    assert_eq!(b["swarmer_response_time_seconds"]["type"], "histogram");
    assert_eq!(b["swarmer_response_time_seconds"]["unit"], "seconds");
    assert_eq!(b["swarmer_response_time_window_seconds"]["type"], "summary");
    let inf = [("method", "GET"), ("name", "/"), ("le", "+Inf")];
    assert_eq!(
        sample(&b, "swarmer_response_time_seconds", "swarmer_response_time_seconds_bucket", &inf),
        Some(count(&b))
    );
    let failing = [("method", "GET"), ("name", "/status/503"), ("kind", "status")];
    let failures = sample(&b, "swarmer_failures", "swarmer_failures_total", &failing).unwrap();
    let failing_requests =
        sample(&b, "swarmer_requests", "swarmer_requests_total", &[("method", "GET"), ("name", "/status/503")]);
    assert_eq!(Some(failures), failing_requests, "every /status/503 fails");
    assert!(sample(&b, "swarmer_users", "swarmer_users", &[]).unwrap() >= 1.0);
    assert!(sample(&b, "swarmer_current_rps", "swarmer_current_rps", &[]).unwrap() > 0.0);
    let p99 = [("method", "GET"), ("name", "/"), ("quantile", "0.99")];
    assert!(
        sample(&b, "swarmer_response_time_window_seconds", "swarmer_response_time_window_seconds", &p99).unwrap() > 0.0
    );
    assert_eq!(child.wait().unwrap().code(), Some(1));
    drain.join().unwrap().unwrap();
    let csv = read(&dir.join("run_stats.csv"));
    assert!(common::csv_count(&csv, "GET", "/") as f64 >= count(&b), "the final count covers the scrapes'");
}

/// A scenario whose one request is named "/work" whatever it asks for.
const NAMED: &str = r#"
host = "HOST"
[[user]]
[[user.task]]
request = { get = "{{ env.SWARMER_TEST_WORK }}", name = "/work" }
"#;

/// Runs the NAMED scenario against `path` and writes its summary to `out`.
fn summary_of(file: &str, target: &Target, path: &str, out: &std::path::Path) {
    let (code, stdout, stderr) = {
        let output = Command::new(BIN)
            .args(["-f", file, "-u", "4", "-t", "2s", "--only-summary", "--json-file", out.to_str().unwrap()])
            .env("SWARMER_TEST_WORK", format!("{}{path}", target.url.trim_end_matches('/')))
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn compare_passes_the_same_run_and_flags_a_slower_one() {
    let target = Target::start();
    let dir = tempdir("compare");
    let file = scenario(&dir, "named.toml", &target.url, NAMED);
    let (a, b, slow) = (dir.join("a.json"), dir.join("b.json"), dir.join("slow.json"));
    summary_of(&file, &target, "/delay/10ms", &a);
    summary_of(&file, &target, "/delay/10ms", &b);
    summary_of(&file, &target, "/delay/30ms", &slow);
    let paths =
        |x: &std::path::Path, y: &std::path::Path| [x.to_str().unwrap().to_string(), y.to_str().unwrap().to_string()];
    let [pa, pb] = paths(&a, &b);
    // The same command twice: its tail on a shared CI machine is noise (p99 doubles now and then),
    // its rate and median are not; a gate on those passes.
    let (code, stdout, stderr) = run(&["compare", &pa, &pb, "--metric", "rps,fail_ratio,p50", "--tolerance", "25%"]);
    assert_eq!(code, 0, "the same command twice is within 25 %: {stdout}{stderr}");
    assert!(stdout.contains("within tolerance (25.0%)"), "{stdout}");
    assert!(stdout.contains("GET /work") && stdout.contains("p50 ms"), "{stdout}");
    let (_, stdout, _) = run(&["compare", &pa, &pb]);
    assert!(stdout.contains("p99 ms"), "the default metrics include p99: {stdout}");
    let [pa, ps] = paths(&a, &slow);
    let (code, stdout, _) = run(&["compare", &pa, &ps]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("worse beyond tolerance (10.0%): GET /work req/s"), "{stdout}");
    assert!(stdout.contains("GET /work p50 ms"), "{stdout}");
    // Reversed, the slower run is the baseline: the candidate is better, which passes.
    let (code, stdout, _) = run(&["compare", &ps, &pa]);
    assert_eq!(code, 0, "{stdout}");
    // A generous tolerance lets it through; a file that is not a summary is a usage error.
    let (code, stdout, _) = run(&["compare", &pa, &ps, "--tolerance", "300%"]);
    assert_eq!(code, 0, "{stdout}");
    let (code, _, stderr) = run(&["compare", &pa, &file]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not JSON"), "{stderr}");
}

/// Runs swarmer in `dir` with `env`; (code, stdout, stderr).
fn run_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).current_dir(dir).envs(env.iter().copied()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The users the banner announces.
fn banner_users(stderr: &str) -> u64 {
    let line = stderr.lines().find(|l| l.starts_with("swarmer: ")).unwrap_or_else(|| panic!("no banner: {stderr}"));
    let before = line.split(" user").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn settings_come_from_the_command_line_then_environment_then_file_then_scenario() {
    let target = Target::start();
    let dir = tempdir("conf");
    let text = "host = \"HOST\"\nusers = 5\nspawn_rate = 100\n[[user]]\n[[user.task]]\nrequest = { get = \"/\" }\n";
    scenario(&dir, "s.toml", &target.url, text);
    let base = ["-f", "s.toml", "-t", "1s", "--headless", "--only-summary"];
    // (swarmer.conf, environment, command line) → users.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], u64);
    let cases: [Case; 5] = [
        ("", &[], &[], 5),
        ("users = 4\n", &[], &[], 4),
        ("users = 4\n", &[("SWARMER_USERS", "3")], &[], 3),
        ("users = 4\n", &[("SWARMER_USERS", "3")], &["-u", "2"], 2),
        ("", &[("SWARMER_USERS", "3")], &["--users=2"], 2),
    ];
    for (conf, env, cli, users) in cases {
        std::fs::write(dir.join("swarmer.conf"), conf).unwrap();
        let (code, stdout, stderr) = run_in(&dir, env, &[&base[..], cli].concat());
        assert_eq!(code, 0, "{conf:?} {env:?} {cli:?}: {stdout}{stderr}");
        assert_eq!(banner_users(&stderr), users, "{conf:?} {env:?} {cli:?}: {stderr}");
    }
    // --config names another file; switches and lists; the file's run time ends the run.
    std::fs::write(dir.join("swarmer.conf"), "").unwrap();
    std::fs::write(dir.join("other.conf"), "locustfile = s.toml\nrun-time = 1s\nheadless = true\nonly_summary = yes\ncsv = out\nthreshold = [p99<10s, 'fail_ratio<50%']\n").unwrap();
    let (code, stdout, stderr) = run_in(&dir, &[], &["--config", "other.conf"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("PASS  p99<10s") && stdout.contains("PASS  fail_ratio<50%"), "{stdout}");
    assert!(dir.join("out_stats.csv").exists());
    // Mistakes name the file, line and key, or the variable; exit 2 before any traffic.
    std::fs::write(dir.join("swarmer.conf"), "users = 2\nspawn-rate = fast\n").unwrap();
    let (code, _, stderr) = run_in(&dir, &[], &base);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: swarmer.conf:2: spawn-rate = fast: "), "{stderr}");
    std::fs::write(dir.join("swarmer.conf"), "\nuser = 2\n").unwrap();
    let (code, _, stderr) = run_in(&dir, &[], &base);
    assert_eq!(code, 2);
    assert!(stderr.contains("swarmer.conf:2: user: no such flag"), "{stderr}");
    std::fs::write(dir.join("swarmer.conf"), "").unwrap();
    let (code, _, stderr) = run_in(&dir, &[("SWARMER_RUN_TIME", "soon")], &base[..2]);
    assert_eq!(code, 2);
    assert!(stderr.contains("SWARMER_RUN_TIME: run-time = soon"), "{stderr}");
    let (code, _, stderr) = run_in(&dir, &[], &["--config", "missing.conf"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--config missing.conf"), "{stderr}");
    // A conflict between the file and the command line says where the other flag came from.
    std::fs::write(dir.join("swarmer.conf"), "headless = true\n").unwrap();
    let (code, _, stderr) = run_in(&dir, &[], &["-f", "s.toml", "--web"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--headless from swarmer.conf:1"), "{stderr}");
}

#[test]
fn the_logfile_keeps_warnings_with_timestamps_and_does_not_grow_with_requests() {
    let dir = tempdir("logfile");
    let log = dir.join("swarmer.log");
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let (code, stdout, stderr) = run(&[
        &url,
        "-u",
        "4",
        "-t",
        "2s",
        "--threshold",
        "failures<1",
        "--logfile",
        log.to_str().unwrap(),
        "--only-summary",
    ]);
    assert_eq!(code, 3, "nothing could connect: {stdout}{stderr}");
    let text = read(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() < 12, "one line per event, not per request: {text}");
    let refused = lines.iter().find(|l| l.contains("/WARNING/swarmer: [") && l.contains("refused")).expect(&text);
    // [2026-12-02 18:54:00,123] host/WARNING/swarmer: …
    let stamp = &refused[..25];
    assert!(stamp.starts_with("[20") && stamp.as_bytes()[11] == b' ' && stamp.as_bytes()[20] == b',', "{refused}");
    assert!(lines.iter().any(|l| l.contains("/INFO/swarmer: swarmer: GET ")), "the banner: {text}");
    assert!(lines.iter().any(|l| l.contains("/WARNING/swarmer: threshold lost: failures<1")), "{text}");
    assert!(lines.iter().any(|l| l.contains("/ERROR/swarmer: error: no request could connect")), "{text}");
    assert!(!stderr.contains("refused"), "the messages went to the file: {stderr}");
    // --loglevel ERROR keeps only errors.
    let quiet = dir.join("quiet.log");
    let (code, _, stderr) =
        run(&[&url, "-t", "1s", "-L", "error", "--logfile", quiet.to_str().unwrap(), "--only-summary"]);
    assert_eq!(code, 3, "{stderr}");
    let text = read(&quiet);
    assert!(text.lines().count() >= 1 && text.lines().all(|l| l.contains("/ERROR/")), "{text}");
    // Without --logfile, --loglevel WARNING drops the banner from stderr and keeps warnings.
    let (_, _, stderr) = run(&[&url, "-t", "1s", "--loglevel", "WARNING", "--only-summary"]);
    assert!(!stderr.contains("swarmer: GET") && stderr.contains("refused"), "{stderr}");
}
