//! Scenario semantics where swarmer follows Locust (or does better, as documented in
//! scenarios/README.md), through the binary against the built-in target: random values per run
//! and `--seed`, `on_stop` at the end of a run, `repeat` with waits, failure messages that say
//! what failed, skips, a failed `on_start`, templated hosts, one `Cookie` field, and the small
//! ones.

mod common;

use common::{api, csv_count, read, run, scenario, tempdir, Target};

/// The titles of the newest `n` posts on the target, newest first.
fn newest_titles(target: &Target, n: usize) -> Vec<String> {
    let posts = api(&target.url, "/api/posts");
    posts.as_array().unwrap().iter().take(n).map(|p| p["title"].as_str().unwrap().to_string()).collect()
}

const UUID_POSTER: &str = r#"
host = "HOST"
[[user]]
wait_time = { between = [0, 0.01] }
[[user.task]]
request = { post = "/api/posts", json = { title = "{{ uuid() }} {{ random_int(1, 1000000) }}" }, check = { status = 201 } }
"#;

#[test]
fn random_values_differ_per_run_and_a_seed_replays_them() {
    let target = Target::start();
    let dir = tempdir("seed");
    let file = scenario(&dir, "uuid.toml", &target.url, UUID_POSTER);
    let mut runs = Vec::new();
    for seed in [None, None, Some("7"), Some("7")] {
        let mut args = vec!["-f", &file, "-u", "1", "-i", "3", "--only-summary"];
        if let Some(seed) = seed {
            args.extend(["--seed", seed]);
        }
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let printed: u64 = stdout.rsplit("; seed ").next().unwrap().trim().parse().unwrap();
        runs.push((newest_titles(&target, 3), printed));
    }
    assert_ne!(runs[0].0, runs[1].0, "two unseeded runs made the same values");
    assert_ne!(runs[0].1, runs[1].1);
    assert_eq!(runs[2].0, runs[3].0, "--seed 7 replays the values");
    assert_eq!((runs[2].1, runs[3].1), (7, 7));
    // The seed an unseeded run printed replays it.
    let (code, _, _) = run(&["-f", &file, "-u", "1", "-i", "3", "--only-summary", "--seed", &runs[1].1.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(newest_titles(&target, 3), runs[1].0);
}

const LOGIN_LOGOUT: &str = r#"
host = "HOST"
[[user]]
wait_time = { constant = "100ms" }
on_start = [{ post = "/api/login", json = { username = "u{{ user_index }}", password = "p" }, check = { status = 200 } }]
on_stop = [{ post = "/api/logout", check = { status = 200 } }]
[[user.task]]
request = { get = "/api/me", check = { status = 200 } }
"#;

#[test]
fn on_stop_runs_at_the_end_of_a_run_without_a_stop_timeout() {
    let target = Target::start();
    let dir = tempdir("on-stop");
    let file = scenario(&dir, "login.toml", &target.url, LOGIN_LOGOUT);
    let prefix = dir.join("run");
    let (code, stdout, stderr) = run(&[
        "-f",
        &file,
        "-u",
        "5",
        "-r",
        "100",
        "-t",
        "1500ms",
        "--only-summary",
        "--csv",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Five users logged in and, with no --stop-timeout, all five logged out (Locust's guide).
    let stats = api(&target.url, "/api/stats");
    assert_eq!((stats["logins"].as_u64(), stats["logouts"].as_u64()), (Some(5), Some(5)), "{stats}");
    // The logouts are in the statistics.
    let csv = read(&prefix.with_file_name("run_stats.csv"));
    assert_eq!(csv_count(&csv, "POST", "/api/logout"), 5, "{csv}");
}

const SEQUENCE: &str = r#"
host = "HOST"
[[user]]
wait_time = { constant = "100ms" }
[[user.task]]
sequential = true
[[user.task.tasks]]
repeat = 3
request = { get = "/", name = "first" }
[[user.task.tasks]]
request = { get = "/", name = "second" }
"#;

#[test]
fn repeat_waits_after_each_run_as_locust_does() {
    let target = Target::start();
    let dir = tempdir("repeat");
    let file = scenario(&dir, "seq.toml", &target.url, SEQUENCE);
    let prefix = dir.join("run");
    let (code, stdout, _) =
        run(&["-f", &file, "-u", "2", "-r", "100", "-t", "2s", "--only-summary", "--csv", prefix.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    let csv = read(&prefix.with_file_name("run_stats.csv"));
    let (first, second) = (csv_count(&csv, "GET", "first"), csv_count(&csv, "GET", "second"));
    // 100 ms after every request: ~20 per user in 2 s, 3 firsts for each second.
    let total = first + second;
    assert!((30..=44).contains(&total), "{total} requests (back to back would be far more)\n{csv}");
    assert!(first.abs_diff(3 * second) <= 6, "first {first}, second {second}");
}

const PHOTOS: &str = r#"
host = "HOST"
[[user]]
[[user.task]]
request = { get = "/api/photos/{{ random_int(1, 1000) }}", name = "/api/photos/[id]", check = { json = [{ path = "albumId", not_multiple_of = 10 }], message = "album id cannot be {{ json.albumId }}" } }
[[user.task]]
request = { get = "/api/photos/1", name = "status", check = { status = 201 } }
"#;

#[test]
fn failure_messages_say_what_failed() {
    let target = Target::start();
    let dir = tempdir("messages");
    let file = scenario(&dir, "photos.toml", &target.url, PHOTOS);
    let prefix = dir.join("run");
    let (code, stdout, _) =
        run(&["-f", &file, "-u", "2", "-t", "1500ms", "--only-summary", "--csv", prefix.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let failures = read(&prefix.with_file_name("run_failures.csv"));
    // Albums 10 and 20 (photos 451–500 and 951–1000) fail, each with its own text.
    assert!(failures.contains("check failed: album id cannot be 10,"), "{failures}");
    assert!(failures.contains("check failed: album id cannot be 20,"), "{failures}");
    assert!(!failures.contains("album id cannot be 7,"), "{failures}");
    assert!(failures.contains("GET,status,\"status 200, expected 201\","), "{failures}");
}

const SHARED_POSTS: &str = r#"
host = "HOST"
[[user]]
name = "Reader"
weight = 3
wait_time = { constant = "20ms" }
[[user.task]]
request = { get = "/api/posts/{{ pool(\"posts\") }}", name = "/api/posts/[id]", needs = ["posts"] }

[[user]]
name = "Writer"
wait_time = { constant = "300ms" }
[[user.task]]
[[user.task.steps]]
post = "/api/posts"
json = { title = "t" }
capture = { id = { json = "id" } }
check = { json = [{ path = "id", lt = 0 }] }
[[user.task.steps]]
post = "/api/posts/{{ id }}/comments"
name = "/api/posts/[id]/comments"
json = { body = "b" }
push = { posts = "{{ id }}" }
"#;

#[test]
fn a_reader_skips_while_the_pool_is_empty_and_a_failed_check_does_not_end_the_task() {
    let target = Target::start();
    let dir = tempdir("skips");
    let file = scenario(&dir, "shared.toml", &target.url, SHARED_POSTS);
    let prefix = dir.join("run");
    // Writers start last (weights 3:1: users R R R W): readers find the pool empty first.
    let (code, stdout, _) =
        run(&["-f", &file, "-u", "4", "-r", "4", "-t", "2s", "--only-summary", "--csv", prefix.to_str().unwrap()]);
    // The writers' check fails on purpose (id < 0): counted failures, exit 1 …
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("Skipped tasks") && stdout.contains("Reader / GET /api/posts/[id]: pool \"posts\" is empty"),
        "{stdout}"
    );
    assert!(!stdout.contains("Aborted tasks"), "skips and failed checks are not aborts: {stdout}");
    let csv = read(&prefix.with_file_name("run_stats.csv"));
    // … but the task went on: every post got its comment, and readers read the pushed ids.
    let posts = csv_count(&csv, "POST", "/api/posts");
    assert!(posts > 0 && csv_count(&csv, "POST", "/api/posts/[id]/comments") == posts, "{csv}");
    assert!(csv_count(&csv, "GET", "/api/posts/[id]") > 0, "{csv}");
    let exceptions = read(&prefix.with_file_name("run_exceptions.csv"));
    assert_eq!(exceptions.lines().count(), 1, "{exceptions}");
}

const BAD_LOGIN: &str = r#"
host = "HOST"
[[user]]
on_start_retries = RETRIES
on_start = [{ post = "/api/login", json = { username = "u", password = "" }, check = { status = 200 }, required = true }]
[[user.task]]
request = { get = "/api/me", name = "me" }
"#;

#[test]
fn a_failed_on_start_stops_the_user_after_its_retries() {
    let target = Target::start();
    let dir = tempdir("on-start");
    for (retries, tries) in [(0, 1), (2, 3)] {
        let file = scenario(&dir, "bad.toml", &target.url, &BAD_LOGIN.replace("RETRIES", &retries.to_string()));
        let prefix = dir.join(format!("run{retries}"));
        let (code, stdout, _) = run(&[
            "-f",
            &file,
            "-u",
            "3",
            "-r",
            "100",
            "-t",
            "1s",
            "--only-summary",
            "--csv",
            prefix.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{stdout}");
        let csv = read(&prefix.with_file_name(format!("run{retries}_stats.csv")));
        // Each user tried on_start `tries` times, then stopped: no task ran.
        assert_eq!(csv_count(&csv, "POST", "/api/login"), 3 * tries, "{csv}");
        assert_eq!(csv_count(&csv, "GET", "me"), 0, "{csv}");
        assert!(stdout.contains("the user stopped (its on_start failed)"), "{stdout}");
    }
}

const OTHER_HOST: &str = r#"
host = "http://127.0.0.1:1"
[vars]
auth = "HOST"
[[user]]
[[user.task]]
[[user.task.steps]]
post = "{{ auth }}/api/login"
json = { username = "u", password = "p" }
capture = { token = { json = "token" } }
[[user.task.steps]]
get = "{{ env.SWARMER_TEST_ORIGIN }}/api/echo"
name = "echo"
headers = { Authorization = "Bearer {{ token }}", Cookie = "extra=1" }
check = { body_contains = "extra=1; session=", message = "cookie field: {{ json.headers.cookie }}" }
"#;

#[test]
fn hosts_from_vars_and_env_and_one_cookie_field() {
    let target = Target::start();
    let dir = tempdir("hosts");
    let file = scenario(&dir, "other.toml", &target.url, OTHER_HOST);
    let out = std::process::Command::new(common::BIN)
        .args(["-f", &file, "-u", "1", "-t", "1s", "--only-summary"])
        .env("SWARMER_TEST_ORIGIN", target.url.trim_end_matches('/'))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The login went to the [vars] host and the echo to the env host (the file's own host has
    // nothing listening), and the echo saw one Cookie field holding both cookies.
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("POST     /api/login") && stdout.contains("GET      echo"), "{stdout}");
    // A capture in the host is refused: it changes during the run.
    let bad =
        scenario(&dir, "bad.toml", &target.url, &OTHER_HOST.replace("{{ env.SWARMER_TEST_ORIGIN }}", "{{ token }}"));
    let (code, _, stderr) = run(&["-f", &bad, "--check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("can use only values known before the run"), "{stderr}");
}

#[test]
fn a_self_signed_certificate_is_named() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (cert, key) = (format!("{root}/tests/tls/selfsigned.pem"), format!("{root}/tests/tls/selfsigned.key"));
    let target = Target::start_with(&["--port", "0", "--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://localhost:{}/", target.port());
    let (code, stdout, _) = run(&["-t", "1s", "--only-summary", &url]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("tls: certificate: self-signed") && stdout.contains("use --insecure"), "{stdout}");
    let (code, stdout, _) = run(&["-t", "1s", "--only-summary", "--insecure", &url]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn bare_seconds_unnamed_users_one_type_ratios_and_one_history_row_per_second() {
    let target = Target::start();
    let dir = tempdir("small");
    let text =
        "host = \"HOST\"\n[[user]]\nwait_time = { between = [0, 0.02] }\n[[user.task]]\nrequest = { get = \"/\" }\n";
    let file = scenario(&dir, "small.toml", &target.url, text);
    let (code, stdout, stderr) = run(&["-f", &file, "--list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(" - User (100.0% of the users, weight 1)"), "{stdout}");
    let prefix = dir.join("run");
    let (code, stdout, _) = run(&["-f", &file, "-t", "2500ms", "--only-summary", "--csv", prefix.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    let history = read(&prefix.with_file_name("run_stats_history.csv"));
    let stamps: Vec<&str> = history.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let mut unique = stamps.clone();
    unique.dedup();
    assert_eq!(stamps, unique, "one row per Timestamp:\n{history}");
    assert!(stamps.len() >= 3, "{history}");
}
