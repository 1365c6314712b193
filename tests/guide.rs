//! The guide's examples (`scenarios/guide/`), each written from the docs alone, run through the
//! binary against a fresh built-in target: the request ratios, failure ratios and side effects
//! their Locust equivalents show (`scripts/locust_compare.py` runs both side by side; its
//! output is in scenarios/README.md).

mod common;

use common::{api, csv_count, read, run, tempdir, Target};

/// Runs `scenarios/guide/NAME.toml` for `secs` against `target` (and `auth`, for the example
/// that logs in elsewhere); (exit code, stdout, `_stats.csv`, `_failures.csv`).
fn guide(name: &str, target: &Target, auth: Option<&Target>, secs: &str) -> (i32, String, String, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut text = std::fs::read_to_string(format!("{root}/scenarios/guide/{name}.toml")).unwrap();
    text = text.replace("http://127.0.0.1:8080", target.url.trim_end_matches('/'));
    if let Some(auth) = auth {
        text = text.replace("http://127.0.0.1:8081", auth.url.trim_end_matches('/'));
    }
    let dir = tempdir(&format!("guide-{name}"));
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let prefix = dir.join("run");
    let (code, stdout, stderr) =
        run(&["-f", file.to_str().unwrap(), "-t", secs, "--only-summary", "--csv", prefix.to_str().unwrap()]);
    let stats = read(&prefix.with_file_name("run_stats.csv"));
    let failures = read(&prefix.with_file_name("run_failures.csv"));
    (code, format!("{stdout}{stderr}"), stats, failures)
}

fn aggregated(stats: &str) -> (u64, u64) {
    let row = stats.lines().find(|l| l.starts_with(",Aggregated,")).unwrap();
    let fields: Vec<&str> = row.split(',').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// `part` as a share of `whole`, in percent.
fn share(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

#[test]
fn blog_reads_home_twice_as_often() {
    let target = Target::start();
    let (code, out, stats, _) = guide("blog", &target, None, "3s");
    assert_eq!(code, 0, "{out}");
    let (total, _) = aggregated(&stats);
    let home = share(csv_count(&stats, "GET", "home"), total);
    assert!((62.0..=71.0).contains(&home), "home {home:.1}% (Locust 66.9%)\n{stats}");
}

#[test]
fn photos_fail_one_in_ten_saying_which_album() {
    let target = Target::start();
    let (code, out, stats, failures) = guide("photos", &target, None, "3s");
    assert_eq!(code, 1, "{out}");
    let (total, failed) = aggregated(&stats);
    let ratio = share(failed, total);
    assert!(total > 500 && (7.0..=13.0).contains(&ratio), "{ratio:.1}% failed of {total} (Locust 10.8%)");
    assert!(failures.contains("album id cannot be 10,") && failures.contains("album id cannot be 20,"), "{failures}");
}

#[test]
fn flow_puts_one_comment_on_each_post() {
    let target = Target::start();
    let (code, out, stats, _) = guide("flow", &target, None, "3s");
    assert_eq!(code, 0, "{out}");
    let stored = api(&target.url, "/api/stats");
    let (posts, comments) = (stored["posts"].as_u64().unwrap(), stored["comments"].as_u64().unwrap());
    // Every post got its comment but the ones a user was creating as the run ended.
    assert!(posts > 100 && posts - comments <= 10, "{posts} posts, {comments} comments");
    // A post in flight when the run ended reaches the server but is counted as cancelled, not as
    // a request: at most one per user (10).
    let counted = csv_count(&stats, "POST", "/api/posts");
    assert!(counted <= posts && posts - counted <= 10, "{posts} stored, {counted} counted\n{stats}");
    let reads = csv_count(&stats, "GET", "/api/comments/[id]");
    assert!(comments - reads <= 10, "{comments} comments, {reads} read back");
}

#[test]
fn shared_readers_skip_until_writers_have_posted() {
    let target = Target::start();
    let (code, out, stats, _) = guide("shared", &target, None, "3s");
    assert_eq!(code, 0, "{out}");
    let (total, failed) = aggregated(&stats);
    assert_eq!(failed, 0, "{stats}");
    let reads = share(csv_count(&stats, "GET", "/api/posts/[id]"), total);
    assert!(reads > 80.0, "reads {reads:.1}% (Locust 91.8%)\n{stats}");
    assert!(!out.contains("Aborted tasks"), "{out}");
}

#[test]
fn nested_set_shares_follow_the_weights_and_the_interrupt() {
    let target = Target::start();
    let (code, out, stats, _) = guide("nested", &target, None, "3s");
    assert_eq!(code, 0, "{out}");
    let (total, _) = aggregated(&stats);
    let (home, cover, photo) = (
        share(csv_count(&stats, "GET", "home"), total),
        share(csv_count(&stats, "GET", "cover"), total),
        share(csv_count(&stats, "GET", "photo"), total),
    );
    // Locust: home 20.2 %, cover 20.4 %, photo 59.3 %.
    assert!((16.0..=24.0).contains(&home) && (16.0..=24.0).contains(&cover), "{home:.1} {cover:.1}\n{stats}");
    assert!((54.0..=66.0).contains(&photo), "{photo:.1}\n{stats}");
}

#[test]
fn sequential_set_browses_three_times_then_pays_at_the_users_pace() {
    let target = Target::start();
    let (code, out, stats, _) = guide("sequential", &target, None, "3s");
    assert_eq!(code, 0, "{out}");
    let (browse, pay) = (csv_count(&stats, "GET", "browse"), csv_count(&stats, "POST", "pay"));
    assert!(browse >= 3 * pay && browse <= 3 * pay + 15, "browse {browse}, pay {pay}");
    // 5 users, a request each 100 ms for 3 s (Locust: 438 in 10 s, 75.3 % browse).
    let total = browse + pay;
    assert!((110..=160).contains(&total), "{total} requests\n{stats}");
}

#[test]
fn login_logs_every_user_out_at_the_end() {
    let target = Target::start();
    let (code, out, stats, _) = guide("login", &target, None, "2s");
    assert_eq!(code, 0, "{out}");
    let stored = api(&target.url, "/api/stats");
    assert_eq!((stored["logins"].as_u64(), stored["logouts"].as_u64()), (Some(5), Some(5)), "{stored}");
    assert_eq!(csv_count(&stats, "POST", "/api/logout"), 5, "{stats}");
    // A "who am I" in flight as the run ended was answered but counted as cancelled: at most
    // one per user (5).
    let (answered, counted) = (stored["authorized"].as_u64().unwrap(), csv_count(&stats, "GET", "/api/me"));
    assert!(counted <= answered && answered - counted <= 5, "{answered} answered, {counted} counted");
}

#[test]
fn auth_comes_from_another_host() {
    let (target, auth) = (Target::start(), Target::start());
    let (code, out, stats, _) = guide("auth", &target, Some(&auth), "2s");
    assert_eq!(code, 0, "{out}");
    // The logins went to the auth server only; every echo carried its user's token (checked).
    assert_eq!(api(&auth.url, "/api/stats")["logins"].as_u64(), Some(5));
    assert_eq!(api(&target.url, "/api/stats")["logins"].as_u64(), Some(0));
    assert!(csv_count(&stats, "GET", "echo") > 20, "{stats}");
}
