//! The built-in target's small JSON API, so every scenario example runs out of the box: posts,
//! comments, photos with album ids, a login that sets a cookie and returns a token, logout, an
//! echo of the request, a redirect, and counters tests read to verify traffic from the server's
//! side. One store behind a mutex for all server threads: the API is for behaviour, not for
//! measuring the generator's ceiling (the canned routes are).
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/login` `{"username", "password"}` | 200 `{"token", "username"}`, `Set-Cookie: session=…` |
//! | `POST /api/logout` | 200, clears the cookie (401 without a session) |
//! | `GET /api/me` | 200 `{"username"}` with the session cookie or `Authorization: Bearer TOKEN`, else 401 |
//! | `POST /api/posts` `{"title", "body", "userId"}` | 201 the post with its `id` |
//! | `GET /api/posts/ID` | 200 the post, 404 when there is none |
//! | `POST /api/posts/ID/comments` `{"body"}` | 201 the comment with `id` and `postId` (404: no post) |
//! | `GET /api/posts/ID/comments` | 200 the post's comments |
//! | `GET /api/comments/ID` | 200 the comment |
//! | `GET /api/photos/ID` | 200 `{"id", "albumId", "title"}`, `albumId` = ⌈ID / 50⌉, IDs 1–5000 |
//! | `GET /api/redirect?to=PATH` | 302 to PATH |
//! | `GET /api/echo?…` (any method) | 200 the method, path, query, headers and body as JSON |
//! | `GET /api/stats` | 200 counters: posts, comments, logins, logouts, authorized (`/api/me` answered), bearer (posts, comments and comment reads with a valid `Authorization: Bearer TOKEN`), comments_same_login (comments made with the token their post was made with), and the usernames that logged in |
//!
//! `GET /app/flow` (outside the API) is a small page that runs login → post → comment →
//! read through these routes, for recording a browser session.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

/// What the API answers: status, JSON body, extra headers.
pub struct ApiResponse {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Default)]
struct Store {
    posts: Vec<Value>,
    comments: Vec<Value>,
    /// Session id → username; token → username.
    sessions: HashMap<String, String>,
    tokens: HashMap<String, String>,
    next_session: u64,
    logins: u64,
    logouts: u64,
    authorized: u64,
    /// Posts, comments and comment reads that carried a valid bearer token.
    bearer: u64,
    /// The token each post was created with; comments made with the token of their post.
    post_tokens: Vec<Option<String>>,
    comments_same_login: u64,
    /// Every username that logged in.
    usernames: std::collections::BTreeSet<String>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);

/// A request as the API sees it.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl ApiRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.header("cookie")?
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.body).ok()
    }
}

fn reply(status: u16, body: Value) -> ApiResponse {
    ApiResponse { status, body: body.to_string(), headers: Vec::new() }
}

fn not_found() -> ApiResponse {
    reply(404, json!({"error": "not found"}))
}

/// Answers a request with the store, the path's `:id` segments as `ids`.
type Handler = fn(&ApiRequest, &mut Store, &[&str]) -> ApiResponse;

/// The routes: method (`None`: any), path segments after `/api/` (`:id` matches one segment and
/// is handed over, `**` matches the rest), handler. The first match answers.
const ROUTES: &[(Option<&str>, &[&str], Handler)] = &[
    (None, &["echo", "**"], echo),
    (Some("GET"), &["stats"], stats),
    (Some("POST"), &["login"], login),
    (Some("POST"), &["logout"], logout),
    (Some("GET"), &["me"], me),
    (Some("POST"), &["posts"], create_post),
    (Some("GET"), &["posts"], recent_posts),
    (Some("GET"), &["posts", ":id"], get_post),
    (Some("POST"), &["posts", ":id", "comments"], create_comment),
    (Some("GET"), &["posts", ":id", "comments"], post_comments),
    (Some("GET"), &["comments", ":id"], get_comment),
    (Some("GET"), &["photos", ":id"], get_photo),
    (Some("GET"), &["redirect"], redirect),
];

/// Answers one API request (`path` starts with `/api/`).
pub fn handle(request: &ApiRequest) -> ApiResponse {
    let mut guard = STORE.lock().unwrap_or_else(|e| e.into_inner());
    let store = guard.get_or_insert_with(Store::default);
    let parts: Vec<&str> = request.path.trim_start_matches("/api/").split('/').collect();
    for (method, pattern, handler) in ROUTES {
        if method.is_some_and(|m| m != request.method) {
            continue;
        }
        if let Some(ids) = matches(pattern, &parts) {
            return handler(request, store, &ids);
        }
    }
    not_found()
}

/// The `:id` segments of `parts` when they match `pattern`.
fn matches<'a>(pattern: &[&str], parts: &[&'a str]) -> Option<Vec<&'a str>> {
    let mut ids = Vec::new();
    for (index, segment) in pattern.iter().enumerate() {
        match *segment {
            "**" => return Some(ids),
            ":id" => ids.push(*parts.get(index)?),
            literal if parts.get(index) == Some(&literal) => {}
            _ => return None,
        }
    }
    (parts.len() == pattern.len()).then_some(ids)
}

fn id(text: &str) -> Option<usize> {
    text.parse().ok()
}

fn echo(request: &ApiRequest, _: &mut Store, _: &[&str]) -> ApiResponse {
    let headers: serde_json::Map<String, Value> =
        request.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), Value::from(*v))).collect();
    reply(
        200,
        json!({
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": headers,
            "body": String::from_utf8_lossy(request.body),
        }),
    )
}

fn stats(_: &ApiRequest, store: &mut Store, _: &[&str]) -> ApiResponse {
    reply(
        200,
        json!({
            "posts": store.posts.len(),
            "comments": store.comments.len(),
            "logins": store.logins,
            "logouts": store.logouts,
            "authorized": store.authorized,
            "bearer": store.bearer,
            "comments_same_login": store.comments_same_login,
            "usernames": store.usernames.iter().collect::<Vec<_>>(),
        }),
    )
}

fn login(request: &ApiRequest, store: &mut Store, _: &[&str]) -> ApiResponse {
    let body = request.json().unwrap_or(Value::Null);
    let Some(username) = body.get("username").and_then(Value::as_str) else {
        return reply(400, json!({"error": "expected {\"username\": …, \"password\": …}"}));
    };
    if body.get("password").and_then(Value::as_str).is_none_or(str::is_empty) {
        return reply(401, json!({"error": "password required"}));
    }
    store.next_session += 1;
    store.logins += 1;
    let session = format!("s{}", store.next_session);
    let token = format!("t{}-{username}", store.next_session);
    store.sessions.insert(session.clone(), username.to_string());
    store.usernames.insert(username.to_string());
    store.tokens.insert(token.clone(), username.to_string());
    let mut response = reply(200, json!({"token": token, "username": username}));
    response.headers.push(("Set-Cookie", format!("session={session}; Path=/; HttpOnly")));
    response
}

fn logout(request: &ApiRequest, store: &mut Store, _: &[&str]) -> ApiResponse {
    match request.cookie("session").and_then(|s| store.sessions.remove(s)) {
        Some(username) => {
            store.logouts += 1;
            let mut response = reply(200, json!({"ok": true, "username": username}));
            response.headers.push(("Set-Cookie", "session=; Path=/; Max-Age=0".into()));
            response
        }
        None => reply(401, json!({"error": "no session"})),
    }
}

/// The request's valid bearer token, counted.
fn bearer(request: &ApiRequest, store: &mut Store) -> Option<String> {
    let token = request.header("authorization")?.strip_prefix("Bearer ")?.trim().to_string();
    store.tokens.contains_key(&token).then(|| {
        store.bearer += 1;
        token
    })
}

fn me(request: &ApiRequest, store: &mut Store, _: &[&str]) -> ApiResponse {
    let by_cookie = request.cookie("session").and_then(|s| store.sessions.get(s));
    let by_token = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| store.tokens.get(t.trim()));
    match by_cookie.or(by_token).cloned() {
        Some(username) => {
            store.authorized += 1;
            reply(200, json!({"username": username}))
        }
        None => reply(401, json!({"error": "log in first"})),
    }
}

fn create_post(request: &ApiRequest, store: &mut Store, _: &[&str]) -> ApiResponse {
    let body = request.json().unwrap_or(Value::Null);
    let token = bearer(request, store);
    store.post_tokens.push(token);
    let post = json!({
        "id": store.posts.len() + 1,
        "title": body.get("title").cloned().unwrap_or(Value::Null),
        "body": body.get("body").cloned().unwrap_or(Value::Null),
        "userId": body.get("userId").cloned().unwrap_or(Value::Null),
    });
    store.posts.push(post.clone());
    reply(201, post)
}

fn recent_posts(_: &ApiRequest, store: &mut Store, _: &[&str]) -> ApiResponse {
    reply(200, Value::Array(store.posts.iter().rev().take(20).cloned().collect()))
}

fn get_post(_: &ApiRequest, store: &mut Store, ids: &[&str]) -> ApiResponse {
    found(id(ids[0]).and_then(|i| store.posts.get(i.wrapping_sub(1))))
}

fn create_comment(request: &ApiRequest, store: &mut Store, ids: &[&str]) -> ApiResponse {
    let Some(post_id) = id(ids[0]).filter(|i| *i >= 1 && *i <= store.posts.len()) else {
        return not_found();
    };
    let body = request.json().unwrap_or(Value::Null);
    let token = bearer(request, store);
    if token.is_some() && store.post_tokens.get(post_id - 1) == Some(&token) {
        store.comments_same_login += 1;
    }
    let comment = json!({
        "id": store.comments.len() + 1,
        "postId": post_id,
        "body": body.get("body").cloned().unwrap_or(Value::Null),
    });
    store.comments.push(comment.clone());
    reply(201, comment)
}

fn post_comments(_: &ApiRequest, store: &mut Store, ids: &[&str]) -> ApiResponse {
    let post_id = id(ids[0]).unwrap_or(0) as u64;
    let list = store.comments.iter().filter(|c| c["postId"].as_u64() == Some(post_id)).cloned().collect();
    reply(200, Value::Array(list))
}

fn get_comment(request: &ApiRequest, store: &mut Store, ids: &[&str]) -> ApiResponse {
    bearer(request, store);
    found(id(ids[0]).and_then(|i| store.comments.get(i.wrapping_sub(1))))
}

fn get_photo(_: &ApiRequest, _: &mut Store, ids: &[&str]) -> ApiResponse {
    match id(ids[0]).filter(|i| (1..=5000).contains(i)) {
        Some(i) => reply(200, json!({"id": i, "albumId": i.div_ceil(50), "title": format!("photo {i}")})),
        None => not_found(),
    }
}

fn redirect(request: &ApiRequest, _: &mut Store, _: &[&str]) -> ApiResponse {
    let to = request.query.split('&').find_map(|p| p.strip_prefix("to=")).unwrap_or("/");
    let mut response = reply(302, json!({"location": to}));
    response.headers.push(("Location", to.to_string()));
    response
}

/// 200 with `value`, or 404.
fn found(value: Option<&Value>) -> ApiResponse {
    match value {
        Some(value) => reply(200, value.clone()),
        None => not_found(),
    }
}
