//! Capture and replay: recordings (a real Chromium session made by scripts/record-har.py, and
//! har2locust's exports) converted, checked and replayed through the binary against local
//! servers; odd and malformed recordings each get a conversion or a clear error, never a panic.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{api, csv_count, read, run, tempdir, Target};
use swarmer::har::{convert, Options, ThinkTime};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/har").join(name)
}

fn aggregated(stats: &str) -> (u64, u64) {
    let row = stats.lines().find(|l| l.starts_with(",Aggregated,")).unwrap();
    let f: Vec<&str> = row.split(',').collect();
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

#[test]
fn a_recorded_browser_flow_replays_with_fresh_ids_and_tokens() {
    // Recorded in Chromium against a target whose ids were past 100: replayed against a fresh
    // one, where every id and token is new.
    let target = Target::start();
    let dir = tempdir("har-flow");
    let prefix = dir.join("run");
    let (code, out, err) = run(&[
        "-f",
        fixture("flow.har").to_str().unwrap(),
        "-H",
        target.url.trim_end_matches('/'),
        "-u",
        "20",
        "-r",
        "20",
        "-t",
        "10s",
        "-s",
        "5s",
        "--only-summary",
        "--csv",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let stats = read(&dir.join("run_stats.csv"));
    let (requests, failures) = aggregated(&stats);
    assert_eq!(failures, 0, "{stats}");
    let posts = csv_count(&stats, "POST", "/api/posts");
    assert!(posts > 100, "{stats}");
    let stored = api(&target.url, "/api/stats");
    // Every comment landed on a post made with the same login's token, in that user's
    // iteration: fresh ids, not the recorded 101.
    assert_eq!(stored["posts"].as_u64().unwrap(), posts);
    assert_eq!(stored["comments"].as_u64().unwrap(), posts);
    assert_eq!(stored["comments_same_login"].as_u64().unwrap(), posts, "{stored}");
    // Every request that sends the token carried a valid one: /me, the post, the comment, its read.
    assert_eq!(stored["authorized"].as_u64().unwrap(), posts, "{stored}");
    assert_eq!(stored["bearer"].as_u64().unwrap(), 3 * posts, "{stored}");
    assert_eq!(stored["logins"].as_u64().unwrap(), csv_count(&stats, "POST", "/api/login"));
    assert_eq!(requests, 6 * posts, "six requests per iteration\n{stats}");
    assert!(stats.contains("/api/posts/[post_id]/comments") && stats.contains("/api/comments/[comment_id]"), "{stats}");
}

#[test]
fn the_converted_file_reads_like_a_hand_written_one() {
    let dir = tempdir("har-file");
    let out = dir.join("flow.toml");
    let (code, _, err) = run(&["har", fixture("flow.har").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = read(&out);
    for expected in [
        "capture = { token = { json = \"token\" } }",
        "\"Authorization\" = \"Bearer {{ token }}\"",
        "post = \"/api/posts/{{ post_id }}/comments\"",
        "name = \"/api/posts/[post_id]/comments\"",
        "# post_id: from this response's JSON field id (recorded \"101\")",
        "check = { status = 201, json = [{ path = \"id\", exists = true }] }",
        "1 static resources",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    // Browser-only headers are gone; the username the client typed is not a capture.
    assert!(!text.contains("sec-ch-ua") && !text.contains("username = {"), "{text}");
    let (code, stdout, stderr) = run(&["-f", out.to_str().unwrap(), "--check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// A server that answers every request with the status the recording gives its (method,
/// path) and keeps (method, path, body) of each.
/// (method, path, body) of each request a server saw.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

fn recording_server(statuses: Vec<(String, String, u16)>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen, statuses) = (kept.clone(), statuses.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let parts: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((n, v)) = header.split_once(':') {
                            if n.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let (method, path) = (parts[0].clone(), parts[1].clone());
                    let status = statuses.iter().find(|(m, p, _)| *m == method && *p == path).map_or(404, |s| s.2);
                    seen.lock().unwrap().push((method, path, String::from_utf8_lossy(&body).into_owned()));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
                    );
                    stream.write_all(reply.as_bytes()).unwrap();
                }
            });
        }
    });
    (port, seen)
}

/// (method, path, body) of each request the recording makes, in order.
fn recorded(path: &Path) -> Vec<(String, String, u16, String)> {
    let har: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
    har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let url = e["request"]["url"].as_str().unwrap();
            let path = format!("/{}", url.splitn(4, '/').nth(3).unwrap_or(""));
            let post = &e["request"]["postData"];
            let body = match (post["text"].as_str(), post["params"].as_array()) {
                (Some(text), _) => text.to_string(),
                (None, Some(params)) => params
                    .iter()
                    .map(|p| format!("{}={}", p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join("&"),
                _ => String::new(),
            };
            let method = e["request"]["method"].as_str().unwrap().to_string();
            (method, path, e["response"]["status"].as_u64().unwrap() as u16, body)
        })
        .collect()
}

#[test]
fn har2locusts_recordings_convert_check_and_replay_what_they_imply() {
    let dir = tempdir("har-shared");
    for name in ["reqres.in.har", "string-problematic-characters.har", "url-encoded-body-no-text-field.har"] {
        let out = dir.join(format!("{name}.toml"));
        let (code, _, err) =
            run(&["har", fixture(name).to_str().unwrap(), "-o", out.to_str().unwrap(), "--think-time", "none"]);
        assert_eq!(code, 0, "{name}: {err}");
        let expected = recorded(&fixture(name));
        let statuses = expected.iter().map(|(m, p, s, _)| (m.clone(), p.clone(), *s)).collect();
        let (port, seen) = recording_server(statuses);
        let host = format!("http://127.0.0.1:{port}");
        // The recorded host (reqres.in) is never looked up: -H replaces it.
        let (code, stdout, stderr) = run(&["-f", out.to_str().unwrap(), "-H", &host, "--check"]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}");
        let (code, stdout, stderr) =
            run(&["-f", out.to_str().unwrap(), "-H", &host, "-u", "1", "-i", "1", "-t", "20s", "--only-summary"]);
        assert_eq!(code, 0, "{name}: {stdout}{stderr}\n{}", read(&out));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), expected.len(), "{name}: {seen:?}");
        for ((method, path, body), (m, p, _, b)) in seen.iter().zip(&expected) {
            assert_eq!((method, path), (m, p), "{name}");
            // JSON bodies may be re-serialized (key order): compare as JSON when they are.
            match (serde_json::from_str::<serde_json::Value>(body), serde_json::from_str::<serde_json::Value>(b)) {
                (Ok(x), Ok(y)) => assert_eq!(x, y, "{name}"),
                _ => assert_eq!(body, b, "{name}"),
            }
        }
    }
}

fn options() -> Options {
    Options { think_time: ThinkTime::None, source: "test.har".into(), ..Options::default() }
}

/// A HAR with these entries (JSON text each).
fn har(entries: &[&str]) -> Vec<u8> {
    format!(r#"{{"log": {{"version": "1.2", "entries": [{}]}}}}"#, entries.join(",")).into_bytes()
}

fn entry(method: &str, url: &str, extra_request: &str, response: &str) -> String {
    format!(
        r#"{{"startedDateTime": "2024-05-01T01:13:51.000Z", "time": 5, "request": {{"method": "{method}", "url": "{url}", "headers": [] {extra_request}}} {response}}}"#
    )
}

const OK: &str =
    r#", "response": {"status": 200, "headers": [], "content": {"mimeType": "application/json", "text": "{}"}}"#;

/// The converted text compiles as a scenario (sandboxed: no DNS, no files).
fn compiles(text: &str) -> Result<(), String> {
    let overrides = swarmer::scenario::Overrides { sandbox: true, ..Default::default() };
    let base = swarmer::config::Plan::empty(vec![None], Duration::from_secs(1));
    swarmer::scenario::compile_str(text, Path::new("converted.toml"), &overrides, base)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn odd_and_malformed_recordings_convert_or_say_what_is_wrong() {
    let u = "http://127.0.0.1:9/api/x";
    let big = "x".repeat(10 << 20);
    let big_response = format!(
        r#", "response": {{"status": 200, "headers": [], "content": {{"mimeType": "text/plain", "text": "{big}"}}}}"#
    );
    let dup_headers =
        entry("GET", u, r#", "headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]"#, OK)
            .replace(r#""headers": [] , "headers""#, r#""headers""#);
    let pseudo = entry(
        "GET",
        u,
        r#", "headers": [{"name": ":authority", "value": "h"}, {"name": ":path", "value": "/api/x"}, {"name": "Accept", "value": "*/*"}]"#,
        OK,
    )
    .replace(r#""headers": [] , "headers""#, r#""headers""#);
    let binary = r#", "response": {"status": 200, "headers": [], "content": {"mimeType": "application/octet-stream", "encoding": "base64", "text": "/9j/4AAQ//8A"}}"#;
    let no_content = r#", "response": {"status": 204, "headers": []}"#;
    let cases: Vec<(&str, Vec<u8>, Result<&str, &str>)> = vec![
        ("truncated JSON", br#"{"log": {"entries": [{"request": "#.to_vec(), Err("ends early")),
        ("an empty file", Vec::new(), Err("1:0")),
        ("not JSON", b"<html>hi</html>".to_vec(), Err("1:1")),
        ("no log", br#"{"entries": []}"#.to_vec(), Err("missing field `log`")),
        ("log is a string", br#"{"log": "x"}"#.to_vec(), Err("invalid type")),
        ("entries is an object", br#"{"log": {"entries": {}}}"#.to_vec(), Err("invalid type")),
        ("no entries", br#"{"log": {"entries": []}}"#.to_vec(), Err("no entries")),
        (
            "an entry without a request",
            br#"{"log": {"entries": [{"response": {}}]}}"#.to_vec(),
            Err("missing field `request`"),
        ),
        ("non-UTF-8 bytes", b"{\"log\": {\"entries\": [\"\xff\xfe\"]}}".to_vec(), Err("1:")),
        ("only data: URLs", har(&[&entry("GET", "data:text/plain,hi", "", OK)]), Err("no request is left")),
        ("a relative URL", har(&[&entry("GET", "/api/x", "", OK)]), Err("no request is left")),
        ("an entry with no response", har(&[&entry("GET", u, "", "")]), Ok("no response")),
        (
            "status 0 (blocked)",
            har(&[&entry("GET", u, "", r#", "response": {"status": 0, "headers": []}"#)]),
            Ok("get = \"/api/x\""),
        ),
        ("a binary base64 body", har(&[&entry("GET", u, "", binary)]), Ok("check = { status = 200 }")),
        ("a 10 MB response", har(&[&entry("GET", u, "", &big_response)]), Ok("get = \"/api/x\"")),
        ("duplicate header names", har(&[&dup_headers]), Ok("\"X-A\" = \"1, 2\"")),
        ("HTTP/2 pseudo-headers", har(&[&pseudo]), Ok("\"Accept\" = \"*/*\"")),
        ("a lowercase method", har(&[&entry("post", u, "", OK)]), Ok("post = \"/api/x\"")),
        ("a WebDAV method", har(&[&entry("PROPFIND", u, "", OK)]), Err("1 other methods")),
        ("a response without content", har(&[&entry("DELETE", u, "", no_content)]), Ok("check = { status = 204 }")),
        (
            "a JSON body with a null",
            har(&[&entry("POST", u, r#", "postData": {"mimeType": "application/json", "text": "{\"a\": null}"}"#, OK)]),
            Ok(r#"body = '{"a":null}'"#),
        ),
        (
            "a body with literal braces",
            har(&[&entry("POST", u, r#", "postData": {"mimeType": "text/plain", "text": "{{x}}"}"#, OK)]),
            Err("cannot send literally"),
        ),
        (
            "form params out of order, repeated",
            har(&[&entry(
                "POST",
                u,
                r#", "postData": {"mimeType": "application/x-www-form-urlencoded", "params": [{"name": "b", "value": "1 2"}, {"name": "a", "value": "x"}, {"name": "a", "value": "y"}]}"#,
                OK,
            )]),
            Ok(r#"body = "b=1%202&a=x&a=y""#),
        ),
        (
            "a garbage date",
            har(&[&entry("GET", u, "", OK).replace("2024-05-01T01:13:51.000Z", "yesterday")]),
            Ok("get = "),
        ),
        (
            "a URL with a fragment and query",
            har(&[&entry("GET", "http://127.0.0.1:9/a?b=1#frag", "", OK)]),
            Ok("get = \"/a?b=1\""),
        ),
    ];
    assert!(cases.len() >= 20);
    for (what, bytes, expected) in cases {
        let result = convert(&bytes, &options());
        match (result, expected) {
            (Ok(conversion), Ok(text)) => {
                assert!(
                    conversion.text.contains(text),
                    "{what}: {text:?} in\n{}",
                    &conversion.text[..conversion.text.len().min(3000)]
                );
                compiles(&conversion.text).unwrap_or_else(|e| panic!("{what}: {e}\n{}", conversion.text));
            }
            (Err(error), Err(text)) => assert!(error.to_string().contains(text), "{what}: {text:?} in {error}"),
            (got, _) => panic!("{what}: unexpected {:?}", got.map(|c| c.text).map_err(|e| e.to_string())),
        }
    }
}

#[test]
fn a_bad_recording_is_a_usage_error_at_file_line_col() {
    let dir = tempdir("har-bad");
    let path = dir.join("bad.har");
    std::fs::write(&path, "{\n  \"log\": {\n    \"entries\": [\n      {\"request\": 5}\n    ]\n  }\n}\n").unwrap();
    let (code, _, err) = run(&["har", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{}:4:", path.display())) && err.contains("invalid type"), "{err}");
    let (code, _, err) = run(&["-f", path.to_str().unwrap(), "--check"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["har", path.to_str().unwrap(), "--think-time", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("--think-time soon"), "{err}");
}

#[test]
fn recorded_gaps_become_sleep_steps_and_hosts_and_statics_are_chosen() {
    let entries = [
        entry("GET", "http://127.0.0.1:9/page", "", OK)
            .replace(r#""time": 5"#, r#""time": 100, "_resourceType": "document""#),
        entry("GET", "http://127.0.0.1:9/logo.png", "", OK)
            .replace(r#""time": 5"#, r#""time": 5, "_resourceType": "image""#),
        entry("GET", "http://10.9.9.9/track", "", OK).replace(r#""time": 5"#, r#""time": 5, "_resourceType": "xhr""#),
        entry("GET", "http://127.0.0.1:9/api/next", "", OK)
            .replace("01:13:51.000Z", "01:13:53.600Z")
            .replace(r#""time": 5"#, r#""time": 5, "_resourceType": "fetch""#),
    ];
    let bytes = har(&entries.iter().map(String::as_str).collect::<Vec<_>>());
    let mut recorded = options();
    recorded.think_time = ThinkTime::Recorded;
    recorded.include_hosts = vec!["127.0.0.1:9".into()];
    let text = convert(&bytes, &recorded).unwrap().text;
    // 2.6 s after the page started, less its 100 ms.
    assert!(text.contains("sleep = \"2500ms\""), "{text}");
    assert!(text.contains("1 static resources, 1 requests to other hosts"), "{text}");
    compiles(&text).unwrap();
    let mut everything = options();
    everything.keep_static = true;
    everything.exclude = Some(regex::Regex::new("/track").unwrap());
    let text = convert(&bytes, &everything).unwrap().text;
    assert!(text.contains("get = \"/logo.png\"") && text.contains("1 excluded"), "{text}");
}

#[test]
fn a_hidden_form_input_becomes_a_capture_and_the_form_sends_it_back() {
    let page = r#", "response": {"status": 200, "headers": [{"name": "Set-Cookie", "value": "sid=s3ss10nid; Path=/"}], "content": {"mimeType": "text/html", "text": "<form><input type=\"hidden\" name=\"csrf\" value=\"tok3n-abc123\"><input name=\"q\"></form>"}}"#;
    let post = r#", "postData": {"mimeType": "application/x-www-form-urlencoded", "params": [{"name": "csrf", "value": "tok3n-abc123"}, {"name": "q", "value": "x"}]}"#;
    let with_header = r#", "headers": [{"name": "X-Session", "value": "s3ss10nid"}]"#;
    let entries = [
        entry("GET", "http://127.0.0.1:9/form", "", page),
        entry("POST", "http://127.0.0.1:9/submit", post, OK),
        entry("GET", "http://127.0.0.1:9/api/me", with_header, OK)
            .replace(r#""headers": [] , "headers""#, r#""headers""#),
    ];
    let text = convert(&har(&entries.iter().map(String::as_str).collect::<Vec<_>>()), &options()).unwrap().text;
    // Either attribute order, either quotes: the capture's regex has both alternatives.
    let capture = text.lines().find(|l| l.contains("csrf = { regex = ")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(capture.matches(r#"\bname\s*=\s*["']csrf["']"#).count(), 2, "{capture}");
    assert!(text.contains(r#"form = { "csrf" = "{{ csrf }}", "q" = "x" }"#), "{text}");
    // A cookie sent back in a header (not only by the jar) is captured from its Set-Cookie.
    assert!(text.contains(r#"sid = { cookie = "sid" }"#) && text.contains(r#""X-Session" = "{{ sid }}""#), "{text}");
    compiles(&text).unwrap();
}
