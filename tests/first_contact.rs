//! A newcomer's first ten minutes, through the real binary: what a run says while it starts,
//! runs and stops, the inputs it refuses, and the cases that must not look like success.

mod common;

use std::time::{Duration, Instant};

use common::{closed_port, read, run, run_in_terminal, run_with_keys, silent_server, tempdir, Target, BIN};

/// The value after `label` on the first line that has it, up to the next space or comma.
fn number_after(text: &str, label: &str) -> u64 {
    let line = text.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.trim_start().split([' ', ',', ';']).next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn a_server_that_never_answers_is_not_a_success() {
    let addr = silent_server();
    let started = Instant::now();
    let (code, stdout, stderr) = run(&["-u", "10", "-r", "10", "-t", "2s", &format!("http://{addr}/")]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
    // What was in flight, for how long, and the timeout that did not fire.
    assert!(stderr.contains("no request completed in 2"), "{stderr}");
    assert!(stderr.contains("10 were still in flight"), "{stderr}");
    assert!(stderr.contains("the 30s timeout, --timeout, had not fired"), "{stderr}");
    assert!(stdout.contains("Cancelled: 10 requests"), "{stdout}");
    // With a timeout shorter than the run, the same server gives counted timeouts: exit 1.
    let (code, stdout, _) = run(&["-u", "2", "-t", "2s", "--timeout", "500ms", &format!("http://{addr}/")]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("timeout after 500ms"), "{stdout}");
}

#[test]
fn bad_ports_and_zero_values_are_refused_naming_the_flag() {
    let cases: [(&[&str], &str); 8] = [
        (&["-t", "1s", "http://127.0.0.1:99999/"], "port 99999 is out of range; expected 1 to 65535"),
        (&["-t", "1s", "http://127.0.0.1:65536/"], "port 65536 is out of range"),
        (&["-t", "1s", "http://127.0.0.1:0/"], "port 0 is out of range"),
        (&["-t", "0", "http://127.0.0.1:1/"], "'0' for '--run-time <RUN_TIME>': a run time of 0 runs nothing"),
        (&["--timeout", "0", "http://127.0.0.1:1/"], "'0' for '--timeout <TIMEOUT>'"),
        (&["-u", "-1", "http://127.0.0.1:1/"], "'-1' for '--users <USERS>'"),
        (&["-r", "-5", "http://127.0.0.1:1/"], "'-5' for '--spawn-rate <SPAWN_RATE>'"),
        (
            &["-f", "locustfile.py"],
            "swarmer reads TOML scenario files, not Python locustfiles; see scenarios/README.md",
        ),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn the_ramp_and_the_users_are_shown() {
    let target = Target::start();
    let url = format!("{}/", target.url);
    let (code, stdout, stderr) = run(&["-u", "6", "-r", "2", "-t", "4500ms", &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A start banner (what, users, threads, how long), Locust's two ramp lines.
    assert!(stderr.contains(&format!("swarmer: GET {url} with 6 users on ")), "{stderr}");
    assert!(stderr.contains("worker thread(s), 4.5s"), "{stderr}");
    assert!(stderr.contains("Ramping to 6 users at 2/s"), "{stderr}");
    assert!(stderr.contains("All 6 users started after 2.5s: QuickUser 6"), "{stderr}");
    // Every periodic table says how many users run: 5 of 6 at 2 s (users start at 0, 0.5, …,
    // 2.5 s), all 6 at 4 s.
    assert!(stdout.contains("Users: 5 of 6 (starting 2/s) · 2s of 4.5s"), "{stdout}");
    assert!(stdout.contains("Users: 6 · 4s of 4.5s"), "{stdout}");
}

#[test]
fn a_second_ctrl_c_stops_at_once_with_complete_reports() {
    let target = Target::start();
    let dir = tempdir("ctrl-c");
    let prefix = dir.join("run");
    let url = format!("{}/delay/9s", target.url);
    let args = ["-u", "4", "-r", "4", "-t", "20s", "-s", "15s", &url, "--csv", prefix.to_str().unwrap()];
    let started = Instant::now();
    let (code, screen) = run_in_terminal(
        &args,
        120,
        &[(Duration::from_millis(1500), libc::SIGINT), (Duration::from_millis(2500), libc::SIGINT)],
    );
    // The second Ctrl-C ends the 15 s grace at once.
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}\n{screen}", started.elapsed());
    assert!(
        screen.contains("stopping: waiting up to 15s for 4 users to finish their task (Ctrl-C again to stop now)"),
        "{screen}"
    );
    assert!(screen.contains("stopping now: requests still in flight are counted as cancelled"), "{screen}");
    // The final tables, the four requests in flight counted as cancelled, and nothing completed.
    assert!(screen.contains("Response time percentiles") && screen.contains("Cancelled: 4 requests"), "{screen}");
    assert_eq!(code, 3, "{screen}");
    let stats = read(&prefix.with_file_name("run_stats.csv"));
    assert!(stats.lines().any(|l| l.starts_with(",Aggregated,0,0,")), "{stats}");

    // One Ctrl-C within the grace: the users finish their task, nothing is cancelled.
    let url = format!("{}/delay/1s", target.url);
    let (code, screen) = run_in_terminal(
        &["-u", "2", "-r", "2", "-t", "20s", "-s", "5s", &url],
        120,
        &[(Duration::from_millis(1500), libc::SIGINT)],
    );
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("for 2 users to finish their task") && !screen.contains("Cancelled:"), "{screen}");
}

#[test]
fn a_refused_port_is_counted_not_hammered() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let (code, stdout, stderr) = run(&["-u", "2", "-r", "2", "-t", "3s", &url]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    // Reconnects back off from 1 ms to 1 s per user: a handful of attempts per second, not
    // tens of thousands.
    let failures = number_after(&stdout, "connection errors: connect");
    assert!((4..=60).contains(&failures), "{failures} connect failures\n{stdout}");
    // Said once as it first happened, counted apart from HTTP failures at the end.
    assert_eq!(stderr.matches("GET /: connect: connection refused (first seen").count(), 1, "{stderr}");
    assert!(stdout.contains("responses: HTTP status 0, malformed 0, check 0"), "{stdout}");
    assert!(stderr.contains("error: no request could connect"), "{stderr}");
}

#[test]
fn every_table_fits_an_80_column_terminal() {
    let target = Target::start();
    let dir = tempdir("narrow");
    let prefix = dir.join("run");
    let long = "/status/404?and=a&very=long&query=string&that=names&many=things&beside=the&status=1";
    let url = format!("{}{long}", target.url);
    let (code, screen) =
        run_in_terminal(&["-u", "2", "-t", "2500ms", &url, "--csv", prefix.to_str().unwrap()], 80, &[]);
    assert_eq!(code, 1, "{screen}");
    for line in screen.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line:?}\n{screen}", line.chars().count());
    }
    // The tables are all there, the long name cut with an ellipsis on screen only.
    for part in ["# reqs", "Response time percentiles", "Error report", "HTTP 404", "…"] {
        assert!(screen.contains(part), "{part}:\n{screen}");
    }
    let stats = read(&prefix.with_file_name("run_stats.csv"));
    assert!(stats.contains(&format!("GET,{long},")), "{stats}");
    // Not a terminal: Locust's own layout, 160-odd columns.
    let (_, stdout, _) = run(&["-u", "1", "-t", "1s", &url, "--only-summary"]);
    assert!(stdout.lines().any(|l| l.starts_with("Type     Name") && l.len() > 150), "{stdout}");
}

#[test]
fn the_last_line_has_the_users_at_the_end_and_at_most() {
    let target = Target::start();
    let url = format!("{}/delay/5ms", target.url);
    // 6 users, 16 after W at 0.7 s (the ticks at 1 s and 2 s see them), 6 again after S at 2.6 s.
    let (code, stdout, stderr, _) = run_with_keys(
        &["-u", "6", "-r", "100", "-t", "3500ms", "--only-summary", &url],
        &[(Duration::from_millis(700), "W"), (Duration::from_millis(2600), "S")],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(", 6 users at the end (16 at most) on "), "{stdout}");
    // --reset-stats says when it reset, and the last line both durations.
    let (code, stdout, stderr) = run(&["-u", "4", "-r", "2", "-t", "4s", "--reset-stats", "--only-summary", &url]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("Statistics reset at 2.0s, every user having started"), "{stderr}");
    assert!(stdout.contains("Statistics cover the last 2.0") && stdout.contains("s of the 4.0"), "{stdout}");
    assert!(stdout.contains("Run time 4.0"), "{stdout}");
}

#[test]
fn a_target_does_not_join_a_port_in_use_unless_asked() {
    let first = Target::start();
    let port = first.port().to_string();
    let (code, _, stderr) = run(&["target", "--port", &port]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("port {port} is in use")) && stderr.contains("--reuse-port"), "{stderr}");
    let second = Target::start_with(&["--port", &port, "--reuse-port"]);
    assert_eq!(second.port(), first.port());
}

#[test]
fn help_lists_exit_codes_endpoints_aliases_and_every_csv_file() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for part in ["Exit codes:", "99  a threshold was lost", "3   the run could not start", "_stats_service.csv"] {
        assert!(help.contains(part), "{part}: {help}");
    }
    assert!(help.contains("--locustfile") && help.contains("--show-task-ratio"), "{help}");
    let (_, target_help, _) = run(&["target", "--help"]);
    for part in ["Endpoints:", "/delay/D", "/status/C", "/api/", "--reuse-port"] {
        assert!(target_help.contains(part), "{part}: {target_help}");
    }
    // The version the help names is the binary's.
    let (_, version, _) = run(&["--version"]);
    assert!(version.starts_with("swarmer ") && !BIN.is_empty(), "{version}");
}
