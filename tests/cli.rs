//! The binary end to end: against the built-in target (a child process on port 0), checking the
//! four CSV files byte for byte against Locust's headers and against the final console table.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{read, run, run_with_keys, tempdir, Target, BIN};

// Locust's headers (shared/reference/locust-compat.md), CRLF-terminated.
const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n";
const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size\r\n";
const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen\r\n";
const EXCEPTIONS_HEADER: &str = "Count,Message,Traceback,Nodes\r\n";

/// (requests, failures) of the Aggregated line of the last request table printed.
fn console_aggregated(stdout: &str) -> (u64, u64) {
    let line =
        stdout.lines().rfind(|l| l.trim_start().starts_with("Aggregated") && l.contains('|')).expect("aggregated line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let requests = fields[1].parse().unwrap();
    let failures = fields[2].split('(').next().unwrap().parse().unwrap();
    (requests, failures)
}

/// The Aggregated row of `_stats.csv`: (requests, failures).
fn csv_aggregated(stats_csv: &str) -> (u64, u64) {
    let row = stats_csv.lines().find(|l| l.starts_with(",Aggregated,")).expect("Aggregated row");
    let fields: Vec<&str> = row.split(',').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

fn check_files(prefix: &Path) -> String {
    let stats = read(&prefix.with_file_name("run_stats.csv"));
    assert!(stats.starts_with(STATS_HEADER), "stats header:\n{stats}");
    let history = read(&prefix.with_file_name("run_stats_history.csv"));
    assert!(history.starts_with(HISTORY_HEADER), "history header:\n{history}");
    let failures = read(&prefix.with_file_name("run_failures.csv"));
    assert!(failures.starts_with(FAILURES_HEADER), "failures header:\n{failures}");
    let exceptions = read(&prefix.with_file_name("run_exceptions.csv"));
    assert_eq!(exceptions, EXCEPTIONS_HEADER);
    for text in [&stats, &history, &failures] {
        assert!(text.split_inclusive('\n').all(|l| l.ends_with("\r\n")), "every line ends in CRLF");
    }
    // The first history row: User Count 0, zeros and N/A.
    let first = history.lines().nth(1).unwrap();
    assert!(first.contains(",0,,Aggregated,0.000000,0.000000,N/A,"), "{first}");
    stats
}

#[test]
fn headless_run_writes_four_locust_csv_files_matching_the_console() {
    let target = Target::start();
    let dir = tempdir("headless");
    let prefix = dir.join("run");
    let url = format!("{}/", target.url);
    let (code, stdout, stderr) =
        run(&["--headless", "-u", "8", "-r", "100", "-t", "3s", &url, "--csv", prefix.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let stats = check_files(&prefix);
    let console = console_aggregated(&stdout);
    assert!(console.0 > 1000, "{stdout}");
    assert_eq!(csv_aggregated(&stats), console);
    assert!(stdout.contains("Response time percentiles (approximated)"));
    // A plain GET with no think time runs on the ring engine, and says so.
    assert!(stdout.contains("worker thread(s) (io_uring (defer_taskrun, ring))"), "the driver is named:\n{stdout}");
    // Periodic tables every 2 s plus the final one.
    assert!(stdout.matches("Aggregated").count() >= 3, "{stdout}");
    let history = read(&dir.join("run_stats_history.csv"));
    assert!(history.lines().count() >= 4, "one row per second:\n{history}");
    assert!(!history.contains(",GET,/,"), "endpoint rows only with --csv-full-history");
}

#[test]
fn full_history_adds_a_row_per_endpoint_per_second() {
    let target = Target::start();
    let dir = tempdir("full-history");
    let prefix = dir.join("run");
    let url = format!("{}/bytes/100", target.url);
    let (code, stdout, _) =
        run(&["-u", "2", "-r", "100", "-t", "2s", &url, "--csv", prefix.to_str().unwrap(), "--csv-full-history"]);
    assert_eq!(code, 0, "{stdout}");
    let history = read(&dir.join("run_stats_history.csv"));
    let endpoint_rows: Vec<&str> = history.lines().filter(|l| l.contains(",GET,/bytes/100,")).collect();
    let aggregated_rows = history.lines().filter(|l| l.contains(",Aggregated,")).count();
    // One endpoint row beside each Aggregated row except the first (written before any request).
    assert_eq!(endpoint_rows.len(), aggregated_rows - 1, "{history}");
    // Average content size is exact.
    assert!(endpoint_rows.iter().all(|r| r.ends_with(",100.00")), "{history}");
}

#[test]
fn failures_are_counted_reported_and_set_the_exit_code() {
    let target = Target::start();
    let dir = tempdir("failures");
    let prefix = dir.join("run");
    let url = format!("{}/status/503", target.url);
    let (code, stdout, _) = run(&[
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "2s",
        &url,
        "--csv",
        prefix.to_str().unwrap(),
        "--only-summary",
    ]);
    assert_eq!(code, 1);
    let (requests, failures) = console_aggregated(&stdout);
    assert!(requests > 0 && requests == failures, "{stdout}");
    assert!(
        stdout.contains("Error report") && stdout.contains("GET /status/503: HTTP 503 Service Unavailable"),
        "{stdout}"
    );
    let csv = read(&dir.join("run_failures.csv"));
    let row = csv.lines().nth(1).expect("failure row");
    assert!(row.starts_with(&format!("GET,/status/503,HTTP 503 Service Unavailable,{failures},")), "{row}");
    // --only-summary: exactly one request table (the final one).
    assert_eq!(stdout.matches("failures/s").count(), 1, "{stdout}");
    let (code, stdout, _) =
        run(&["-u", "1", "-t", "1s", &url, "--exit-code-on-error", "7", "--only-summary", "--io", "epoll"]);
    assert_eq!(code, 7);
    assert!(stdout.contains("worker thread(s) (epoll)"), "{stdout}");
}

#[test]
fn nothing_listening_exits_3_with_connection_refused() {
    // Bind then drop a listener so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    let (code, stdout, stderr) = run(&["-u", "1", "-t", "1s", &url, "--only-summary"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("connect: connection refused"), "{stdout}");
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let cases: [(&[&str], &str); 8] = [
        (&["-t", "10x", "http://127.0.0.1:1/"], "--run-time"),
        // Finite numbers past any clock: refused by name, not a panic.
        (&["-t", "1e300", "http://127.0.0.1:1/"], "is too long"),
        (&["--threshold", "p95<1e300", "http://127.0.0.1:1/"], "p95<1e300"),
        (&["-u", "abc", "http://127.0.0.1:1/"], "--users"),
        (&["ftp://127.0.0.1/"], "unsupported scheme"),
        (&["-t", "1s", "--ca-cert", "/nonexistent/ca.pem", "https://127.0.0.1:1/"], "/nonexistent/ca.pem"),
        (&[], "nothing to test"),
        (&["-u", "100000", "http://127.0.0.1:1/"], "open-file limit"),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn sigint_mid_run_leaves_complete_files_and_final_report() {
    let target = Target::start();
    let dir = tempdir("sigint");
    let prefix = dir.join("run");
    let url = format!("{}/", target.url);
    let mut child = Command::new(BIN)
        .args(["--headless", "-u", "4", "-r", "100", "-t", "60s", &url, "--csv", prefix.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Response time percentiles"), "{stdout}");
    let stats = check_files(&prefix);
    assert_eq!(csv_aggregated(&stats), console_aggregated(&stdout));
}

#[test]
fn scenario_check_list_and_a_failing_required_step() {
    let dir = tempdir("scenario");
    // --check on a good file: 0; on a broken one: 2 with file:line:col, and no traffic.
    let (code, stdout, _) = run(&["-f", "scenarios/blog.toml", "--check"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("scenarios/blog.toml: ok (2 user type(s)"), "{stdout}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[user]]\nname = \"U\"\nwieght = 2\n").unwrap();
    let (code, _, stderr) = run(&["-f", bad.to_str().unwrap(), "--check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("{}:3:1: unknown field `wieght`", bad.display())), "{stderr}");
    // A wait longer than any clock reaches (the scenario fuzz target's find): file:line:col.
    std::fs::write(
        &bad,
        format!("[[user]]\nname = \"U\"\nwait_time = {{ between = [\"50ms\", \"1{}ms\"] }}\n", "6".repeat(200)),
    )
    .unwrap();
    let (code, _, stderr) = run(&["-f", bad.to_str().unwrap(), "--check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("{}:3:13: wait_time: duration", bad.display())), "{stderr}");
    assert!(stderr.contains("is too long"), "{stderr}");
    // --list: Locust's --show-task-ratio.
    let (code, stdout, _) = run(&["-f", "scenarios/task_sets.toml", "--list"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(" - Browser (100.0% of the users beyond the fixed counts, weight 1)"), "{stdout}");
    assert!(stdout.contains("- interrupt (20.0%, weight 1)"), "{stdout}");

    // A required step fails: the rest of the task is skipped and the abort lands in the
    // exceptions table and CSV with its place; the exit code says failure.
    let target = Target::start();
    let file = dir.join("abort.toml");
    std::fs::write(
        &file,
        r#"[[user]]
name = "Shopper"
wait_time = { constant = "50ms" }
[[user.task]]
name = "buy"
[[user.task.steps]]
get = "/status/503"
name = "cart"
required = true
[[user.task.steps]]
get = "/"
name = "never reached"
"#,
    )
    .unwrap();
    let prefix = dir.join("run");
    let (code, stdout, stderr) = run(&[
        "-f",
        file.to_str().unwrap(),
        "-H",
        &target.url,
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "1s",
        "--only-summary",
        "--csv",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("Aborted tasks"), "{stdout}");
    assert!(stdout.contains("Shopper / buy / step 1: HTTP 503 Service Unavailable"), "{stdout}");
    assert!(!stdout.contains("never reached"), "{stdout}");
    let exceptions = read(&prefix.with_file_name("run_exceptions.csv"));
    let (requests, failures) = csv_aggregated(&read(&prefix.with_file_name("run_stats.csv")));
    assert_eq!(requests, failures);
    let row = exceptions.lines().nth(1).expect("an exception row");
    let count: u64 = row.split(',').next().unwrap().parse().unwrap();
    assert_eq!(count, requests, "{exceptions}");
    assert!(row.ends_with(",task aborted: HTTP 503 Service Unavailable,Shopper / buy / step 1,local"), "{exceptions}");
}

#[test]
fn thresholds_pass_fail_abort_and_exit_codes() {
    let target = Target::start();
    let url = format!("{}/", target.url.trim_end_matches('/'));
    let base = ["-u", "2", "-r", "100", "--only-summary"];
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        run(&args)
    };
    // Held: exit 0 and a PASS block.
    let (code, stdout, stderr) =
        with(&["-t", "1s", "--threshold", "p99<5s", "--threshold", "fail_ratio<1%", "--threshold", "rps>10", &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(" PASS  p99<5s"), "{stdout}");
    assert!(stdout.contains("Result: PASS (3 of 3 thresholds held)"), "{stdout}");
    // Lost (per endpoint, a bare number is ms): exit 99, whatever --exit-code-on-error says.
    let (code, stdout, _) = with(&["-t", "1s", "--threshold", "GET / max<0.001", "--threshold", "p50<5s", &url]);
    assert_eq!(code, 99, "{stdout}");
    assert!(stdout.contains(" FAIL  GET / max<0.001  measured "), "{stdout}");
    assert!(stdout.contains("Result: FAIL (1 of 2 thresholds lost)"), "{stdout}");
    // Failures with every threshold held: the usual failure exit code.
    let failing = format!("{}/status/500", target.url.trim_end_matches('/'));
    let (code, stdout, _) = with(&["-t", "1s", "--threshold", "p99<5s", &failing]);
    assert_eq!(code, 1, "{stdout}");
    // Lost for good during the run: --abort-on-threshold stops it long before -t.
    let started = Instant::now();
    let (code, stdout, stderr) = with(&["-t", "30s", "--threshold", "failures<5", "--abort-on-threshold", &failing]);
    assert_eq!(code, 99, "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(stderr.contains("Threshold lost: failures<5"), "a warning, on stderr: {stderr}");
    assert!(stdout.contains("FAIL  failures<5"), "{stdout}");
    // A threshold on an endpoint the run does not have: refused before the run.
    let (code, _, stderr) = with(&["-t", "1s", "--threshold", "GET /nope p99<1s", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no endpoint \"/nope\""), "{stderr}");
    let (code, _, stderr) = with(&["-t", "1s", "--threshold", "p99<soon", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--threshold \"p99<soon\""), "{stderr}");
}

#[test]
fn iterations_end_the_run_and_reset_stats_restarts_the_totals() {
    let target = Target::start();
    // 3 users × 5 tasks, then the run ends by itself, long before -t.
    let started = Instant::now();
    let (code, stdout, stderr) = run(&["-u", "3", "-r", "100", "-i", "5", "-t", "30s", "--only-summary", &target.url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(console_aggregated(&stdout), (15, 0), "{stdout}");
    assert!(stdout.contains("(io_uring (defer_taskrun, ring))"), "quick mode with -i runs on the ring: {stdout}");
    // The same on the task engine.
    let (code, stdout, _) =
        run(&["-u", "3", "-r", "100", "-i", "5", "-t", "30s", "--only-summary", "--no-ring", &target.url]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(console_aggregated(&stdout), (15, 0), "{stdout}");
    assert!(stdout.contains("(io_uring (defer_taskrun))"), "{stdout}");
    let (code, _, stderr) = run(&["-i", "0", &target.url]);
    assert_eq!(code, 2, "{stderr}");

    // 4 users at 2/s: the last starts at 1.5 s, so the totals restart at the 2 s tick.
    let dir = tempdir("reset");
    let prefix = dir.join("run");
    let url = format!("{}/delay/10ms", target.url.trim_end_matches('/'));
    let (code, stdout, stderr) =
        run(&["-u", "4", "-r", "2", "-t", "4s", "--reset-stats", "--csv", prefix.to_str().unwrap(), &url]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stderr.contains("Statistics reset at 2.0s, every user having started (--reset-stats)"), "{stderr}");
    assert!(stdout.contains("Statistics cover the "), "{stdout}");
    let history = read(&prefix.with_file_name("run_stats_history.csv"));
    // Total Request Count (column 18) grows, drops once at the reset, grows again.
    let totals: Vec<u64> = history.lines().skip(1).map(|l| l.split(',').nth(17).unwrap().parse().unwrap()).collect();
    let drops = totals.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(drops, 1, "{history}");
    // The final numbers are those after the reset, in the console, the stats file and the
    // last history row alike.
    let (requests, _) = csv_aggregated(&read(&prefix.with_file_name("run_stats.csv")));
    assert_eq!(requests, console_aggregated(&stdout).0);
    assert_eq!(requests, *totals.last().unwrap(), "{history}");
}

/// The User Count column of `_stats_history.csv`, one value per row.
fn history_users(prefix: &Path) -> Vec<u64> {
    let history = read(&prefix.with_file_name("run_stats_history.csv"));
    history.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect()
}

#[test]
fn users_follow_a_gaussian_shape_and_stages() {
    let target = Target::start();
    let url = format!("{}/delay/5ms", target.url.trim_end_matches('/'));
    let dir = tempdir("shape");
    let prefix = dir.join("run");
    // A bell over 6 s peaking at 40 users: n(t) = 40·exp(−(t−3)²/2), σ = 1 s.
    let (code, stdout, _) = run(&[
        "-u",
        "40",
        "--shape",
        "gaussian",
        "-t",
        "6s",
        "--only-summary",
        "--csv",
        prefix.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let users = history_users(&prefix);
    assert!(users.len() >= 6, "{users:?}");
    for (second, &seen) in users.iter().enumerate().take(6) {
        let t = second as f64;
        let curve = 40.0 * (-(t - 3.0).powi(2) / 2.0).exp();
        // Within 5 % of the peak at every second.
        assert!((seen as f64 - curve).abs() <= 2.0, "t={second}s: {seen} users, curve {curve:.1}: {users:?}");
    }
    assert_eq!(users[3], 40, "{users:?}");

    // Stages ramp up, hold, and ramp down (users stop at their next task boundary); they also
    // set the run time (3 s here).
    let started = Instant::now();
    let (code, stdout, _) =
        run(&["--stages", "1s:10,1s:10,1s:0", "--only-summary", "--csv", prefix.to_str().unwrap(), &url]);
    assert_eq!(code, 0, "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    let users = history_users(&prefix);
    assert_eq!(&users[..3], &[0, 10, 10], "{users:?}");
    assert!(users[3..].iter().all(|&u| u == 0), "{users:?}");
    let (code, _, stderr) = run(&["--shape", "gaussian", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--shape needs -t"), "{stderr}");
    let (code, _, stderr) = run(&["--stages", "1s", &url]);
    assert_eq!(code, 2, "{stderr}");
}

/// Requests completed in each second of the run: differences of `_stats_history.csv`'s
/// cumulative "Total Request Count" on the Aggregated rows (the first row is the run's start).
fn history_requests_per_second(prefix: &std::path::Path) -> Vec<u64> {
    let history = read(&prefix.with_file_name("run_stats_history.csv"));
    let mut lines = history.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let total = header.iter().position(|h| *h == "Total Request Count").expect("Total Request Count column");
    let totals: Vec<u64> = lines
        .filter(|l| l.split(',').nth(3) == Some("Aggregated"))
        .map(|l| l.split(',').nth(total).unwrap().parse().unwrap())
        .collect();
    totals.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn open_model_follows_rate_stages_and_a_rate_shape() {
    let target = Target::start();
    let url = format!("{}/delay/2ms", target.url.trim_end_matches('/'));
    let dir = tempdir("rate-stages");
    let prefix = dir.join("run");
    // 0 → 400/s over 1 s, 400/s for 2 s, down to 0 over 1 s: Λ = 200 + 800 + 200 = 1200 starts;
    // the stages set the run time (4 s).
    let (code, stdout, stderr) =
        run(&["--stages", "1s:400/s,2s:400/s,1s:0/s", "--only-summary", "--csv", prefix.to_str().unwrap(), &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Open model: the load shape's rate wanted (peak 400/s)"), "{stdout}");
    let (requests, failures) = csv_aggregated(&read(&prefix.with_file_name("run_stats.csv")));
    assert_eq!(failures, 0);
    assert!(requests.abs_diff(1200) <= 2, "{requests} requests, 1200 due");
    // Per second: 200, 400, 400, 200 (each within 5 %; a 2 ms request can cross a boundary).
    let per_second = history_requests_per_second(&prefix);
    for (second, expected) in [200u64, 400, 400, 200].into_iter().enumerate() {
        let seen = per_second[second];
        assert!(
            seen.abs_diff(expected) <= expected / 20,
            "second {second}: {seen}, expected {expected}: {per_second:?}"
        );
    }

    // A named shape over the rate: a bell of peak 300/s over 6 s (σ = 1 s): Λ ≈ 750.
    let (code, stdout, stderr) = run(&["--rate", "300", "--shape", "gaussian", "-t", "6s", "--only-summary", &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let began: u64 = stdout
        .lines()
        .find(|l| l.starts_with("Run time"))
        .and_then(|l| {
            l.split(' ').collect::<Vec<_>>().windows(2).find(|w| w[1] == "requests,").map(|w| w[0].parse().unwrap())
        })
        .expect("Run time line");
    assert!(began.abs_diff(750) <= 3, "{began} starts, 750 due: {stdout}");

    // Stages must say which they give; --rate with user stages is refused, as are both rates.
    let (code, _, stderr) = run(&["--rate", "100", "--stages", "1s:10", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("give the stages as rates"), "{stderr}");
    let (code, _, stderr) = run(&["--rate", "100", "--stages", "1s:10/s", &url]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(&["--stages", "1s:10,1s:10/s", &url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not both"), "{stderr}");
}

#[test]
fn open_model_writes_service_times_beside_the_stats() {
    let target = Target::start();
    let url = format!("{}/delay/5ms", target.url.trim_end_matches('/'));
    let dir = tempdir("open");
    let prefix = dir.join("run");
    let (code, stdout, stderr) =
        run(&["--rate", "100", "-t", "2s", "--only-summary", "--csv", prefix.to_str().unwrap(), &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Service time percentiles"), "{stdout}");
    assert!(stdout.contains("Open model: 100/s wanted; 200 starts came due (100.00/s)"), "{stdout}");
    let service = read(&prefix.with_file_name("run_stats_service.csv"));
    assert!(service.starts_with("Type,Name,Request Count,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n"));
    let row = service.lines().find(|l| l.starts_with(",Aggregated,")).expect("Aggregated row");
    let fields: Vec<&str> = row.split(',').collect();
    let (requests, _) = csv_aggregated(&read(&prefix.with_file_name("run_stats.csv")));
    assert_eq!(fields[2].parse::<u64>().unwrap(), requests);
    // The 5 ms the target takes, in ms.
    let median: f64 = fields[3].parse().unwrap();
    assert!((5.0..10.0).contains(&median), "{row}");
    // The open model takes no --users; --max-users needs --rate.
    let (code, _, stderr) = run(&["--rate", "10", "-u", "5", "-t", "1s", &url]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(&["--max-users", "5", "-t", "1s", &url]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn keys_add_and_remove_users_and_change_the_rate() {
    let target = Target::start();
    let url = format!("{}/delay/5ms", target.url.trim_end_matches('/'));
    let dir = tempdir("keys");
    let prefix = dir.join("run");
    let csv = prefix.to_str().unwrap();
    // Closed model: 5 users; W at 1.3 s (15 users), S and s at 2.5 s (4 users).
    let (code, stdout, stderr, restored) = run_with_keys(
        &["-u", "5", "-r", "100", "-t", "4s", "--only-summary", "--csv", csv, &url],
        &[(Duration::from_millis(1300), "W"), (Duration::from_millis(2500), "Ss")],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(restored, "the terminal is restored after the run");
    assert!(stderr.contains("Live control: keys: w/W add 1/10 users"), "{stderr}");
    assert!(stderr.contains("Users: 15") && stderr.contains("Users: 4"), "{stderr}");
    let users = history_users(&prefix);
    assert_eq!(&users[1..4], &[5, 15, 4], "users at 1 s, 2 s, 3 s: {users:?}");

    // Open model: 200/s; five w-steps of 10 % at 1.5 s make it 300/s.
    let (code, stdout, stderr, restored) = run_with_keys(
        &["--rate", "200", "-t", "4s", "--only-summary", "--csv", csv, &url],
        &[(Duration::from_millis(1500), "WWWWW")],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(restored);
    assert!(stderr.contains("Rate: 300.0/s (150% of --rate)"), "{stderr}");
    let per_second = history_requests_per_second(&prefix);
    // Second 0 at 200/s; seconds 2 and 3 at 300/s (within 5 %; the run's start offsets the
    // keys by the process start, so second 1 is mixed and not checked).
    assert!(per_second[0].abs_diff(200) <= 10, "{per_second:?}");
    assert!(per_second[2].abs_diff(300) <= 15 && per_second[3].abs_diff(300) <= 15, "{per_second:?}");

    // Down to 0 % at 0.5 s (ten S), back to 50 % at 1.5 s (five W): no starts while at 0, and
    // none made up afterwards (a burst would put ~150 in second 1).
    let (code, stdout, stderr, _) = run_with_keys(
        &["--rate", "200", "-t", "3s", "--only-summary", "--csv", csv, &url],
        &[(Duration::from_millis(500), "SSSSSSSSSS"), (Duration::from_millis(1500), "WWWWW")],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("Rate: 0.0/s (0% of --rate)") && stderr.contains("Rate: 100.0/s (50% of --rate)"));
    let per_second = history_requests_per_second(&prefix);
    assert!((30..=70).contains(&per_second[1]), "{per_second:?}");
    assert!(per_second[2].abs_diff(100) <= 10, "{per_second:?}");
}
