//! Scenario files end to end: every example in `scenarios/` runs green against the built-in
//! target and does what it says (verified from the target's side), and weighted choices
//! converge. Broken files: `tests/malformed.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use swarmer::config::{Plan, DEFAULT_TIMEOUT};
use swarmer::scenario::{compile_str, Overrides};
use swarmer::{run_scenario_plan, Outcome, RunOptions};

/// The target's JSON API keeps one store per process: tests that read its counters take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn target() -> swarmer::target::Server {
    swarmer::target::start(([127, 0, 0, 1], 0).into(), 1, &[None]).unwrap()
}

/// GET `path` on the target with a fresh connection; the JSON body.
fn api(addr: SocketAddr, path: &str) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").expect("a response").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap()
}

/// Compiles `scenarios/NAME` with its port 8080 pointed at `addr`.
fn example(name: &str, addr: SocketAddr, overrides: &Overrides) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
    let text = std::fs::read_to_string(&path).unwrap().replace("127.0.0.1:8080", &addr.to_string());
    let base = Plan::empty(vec![None, None], DEFAULT_TIMEOUT);
    compile_str(&text, &path, overrides, base).unwrap_or_else(|e| panic!("{e}")).0
}

fn run(mut plan: Plan, users: u64, secs: u64) -> Outcome {
    plan.users = users;
    plan.spawn_rate = 1000.0;
    plan.run_time = Some(Duration::from_secs(secs));
    plan.stop_timeout = Duration::from_secs(5);
    plan.output.only_summary = true;
    run_scenario_plan(plan, RunOptions::default()).unwrap()
}

fn requests(outcome: &Outcome, plan: &Plan, method: &str, name: &str) -> u64 {
    let index = plan.endpoints.iter().position(|e| e.method == method && e.name == name).unwrap_or_else(|| {
        panic!("no endpoint {method} {name} in {:?}", plan.endpoints);
    });
    outcome.summary.endpoints[index].count
}

fn assert_green(outcome: &Outcome) {
    let errors: Vec<String> = outcome
        .summary
        .endpoints
        .iter()
        .flat_map(|e| e.errors.iter().map(|err| format!("{} × {}", err.count, err.failure)))
        .collect();
    assert_eq!(outcome.summary.failures, 0, "failures: {errors:?}");
    assert!(outcome.summary.aborts.is_empty(), "aborts: {:?}", outcome.summary.aborts);
    assert_eq!(outcome.exit_code, 0);
    assert!(outcome.summary.requests > 0);
}

#[test]
fn every_example_is_covered_here() {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(names, ["blog.toml", "data_and_forms.toml", "task_sets.toml"], "a new example needs a test below");
}

#[test]
fn blog_comments_land_on_the_posts_that_were_captured() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = target();
    let before = api(server.addr, "/api/stats");
    let plan = example("blog.toml", server.addr, &Overrides::default());
    let outcome = run(plan.clone(), 8, 2);
    assert_green(&outcome);
    let after = api(server.addr, "/api/stats");
    let delta = |name| counter(&after, name) - counter(&before, name);
    // Users 0 and 4 are Writers (weights 1:3 interleave as W R R R): each logged in once (on_start)
    // and out once (on_stop, within the stop timeout).
    assert_eq!((delta("logins"), delta("logouts")), (2, 2));
    let posts = requests(&outcome, &plan, "POST", "/api/posts");
    assert!(posts > 0);
    // One more post: the welcome post made by setup (not in the stats).
    assert_eq!(delta("posts"), posts + 1);
    // Every task's post got exactly one comment, on that post: the comment step used the
    // captured id.
    assert_eq!(delta("comments"), posts);
    let first = counter(&before, "posts") + 2;
    for id in first..first + posts {
        let comments = api(server.addr, &format!("/api/posts/{id}/comments"));
        assert_eq!(comments.as_array().map(Vec::len), Some(1), "post {id}: {comments}");
        assert_eq!(comments[0]["body"], "first!");
    }
    // "who am I" was authorized by the captured token (or the cookie), never refused.
    assert_eq!(delta("authorized"), requests(&outcome, &plan, "GET", "/api/me"));
    // Readers read posts picked from the pool the Writers filled.
    assert!(requests(&outcome, &plan, "GET", "/api/posts/[id]") > 0);
}

#[test]
fn task_sets_interrupt_and_sequences_repeat() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = target();
    let plan = example("task_sets.toml", server.addr, &Overrides::default());
    let outcome = run(plan.clone(), 6, 2);
    assert_green(&outcome);
    // The sequence: browse ×3 then pay, twice per checkout. A stop comes between two tasks of a
    // set (as in Locust), so each of the 5 browsers may leave up to 3 browses without their pay.
    let browse = requests(&outcome, &plan, "GET", "/api/photos/[id] (album 1)");
    let pay = requests(&outcome, &plan, "POST", "/api/echo (pay)");
    assert!(pay > 0 && (3 * pay..=3 * pay + 15).contains(&browse), "browse {browse}, pay {pay}");
    // One Admin (fixed_count) paced at 200 ms for 2 s: about 10 stats reads.
    let stats = requests(&outcome, &plan, "GET", "/api/stats");
    assert!((9..=12).contains(&stats), "{stats} stats reads");
    // The nested set ran both of its tasks.
    assert!(requests(&outcome, &plan, "GET", "/api/photos/1") > 0);
    assert!(requests(&outcome, &plan, "GET", "/api/photos/[id]") > 0);
}

#[test]
fn tags_select_and_exclude_tasks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = target();
    let shop_only = Overrides { tags: vec!["shop".into()], ..Overrides::default() };
    let plan = example("task_sets.toml", server.addr, &shop_only);
    let outcome = run(plan.clone(), 3, 1);
    assert_green(&outcome);
    // The Admin's untagged task is not selected, so the Admin type is gone; Browsers only shop.
    assert!(plan.user_types.iter().all(|u| u.name == "Browser"));
    assert!(requests(&outcome, &plan, "POST", "/api/echo (pay)") > 0);
    assert_eq!(requests(&outcome, &plan, "GET", "/api/photos/1"), 0);
    let no_photos = Overrides { exclude_tags: vec!["photos".into()], ..Overrides::default() };
    let plan = example("task_sets.toml", server.addr, &no_photos);
    assert_eq!(plan.user_types[1].tasks.len(), 1);
}

#[test]
fn data_files_forms_setup_and_redirects() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = target();
    let before = api(server.addr, "/api/stats");
    let plan = example("data_and_forms.toml", server.addr, &Overrides::default());
    let outcome = run(plan.clone(), 4, 2);
    assert_green(&outcome);
    let after = api(server.addr, "/api/stats");
    // setup created exactly one post (the fixture; teardown read it back, or the exit code
    // would not be 0); the JSON login ran once per user, the form login was refused (400,
    // accepted by its check) and logged nobody in.
    assert_eq!(counter(&after, "posts") - counter(&before, "posts"), 1);
    let fixture = api(server.addr, &format!("/api/posts/{}", counter(&after, "posts")));
    assert_eq!(fixture["title"], "fixture");
    assert_eq!(counter(&after, "logins") - counter(&before, "logins"), 4);
    // One data row per user: the four accounts logged in.
    let names: Vec<&str> = after["usernames"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for account in ["alice", "bob", "carol", "dave"] {
        assert!(names.contains(&account), "{account} did not log in: {names:?}");
    }
    // The redirect to /api/me was followed with the session cookie from the login.
    assert_eq!(
        counter(&after, "authorized") - counter(&before, "authorized"),
        requests(&outcome, &plan, "GET", "/api/redirect → /api/me")
    );
}

#[test]
fn weighted_choices_converge_to_the_weights() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = target();
    let text = format!(
        r#"
host = "http://{}"
[[user]]
name = "U"
[[user.task]]
weight = 1
request = {{ get = "/", name = "one" }}
[[user.task]]
weight = 2
request = {{ get = "/", name = "two" }}
[[user.task]]
weight = 7
request = {{ get = "/", name = "seven" }}
"#,
        server.addr
    );
    let base = Plan::empty(vec![None, None], DEFAULT_TIMEOUT);
    let plan = compile_str(&text, Path::new("weights.toml"), &Overrides::default(), base).unwrap().0;
    let outcome = run(plan.clone(), 8, 1);
    assert_green(&outcome);
    let total = outcome.summary.requests;
    assert!(total >= 10_000, "only {total} tasks");
    for (name, weight) in [("one", 1.0), ("two", 2.0), ("seven", 7.0)] {
        let share = requests(&outcome, &plan, "GET", name) as f64 / total as f64;
        let want = weight / 10.0;
        assert!((share - want).abs() <= 0.02 * want, "{name}: {share:.4} of tasks, weight share {want}");
    }
}
