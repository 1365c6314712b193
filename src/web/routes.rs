//! The routes: the page, Locust's HTTP API (`POST /swarm`, `/stop`, `/stats/reset`,
//! `/stats/requests`, the CSV downloads, `/stats/report`), and the page's event stream
//! (`/events`, Server-Sent Events once a second; `/stats/board` for polling), and `/metrics`
//! (OpenMetrics), which `--metrics-port` serves alone.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use anyhow::Result;
use bytes::Bytes;
use crossbeam_channel::Sender;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::{guard, Command, Swarm, WebOptions};
use crate::report::board::{Board, BoardState};
use crate::report::metrics::{self, Metrics};

/// The largest form the server reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// What every request handler needs.
pub struct Context {
    options: WebOptions,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    commands: Sender<Command>,
    /// The page's token for state-changing requests (see `guard`).
    token: String,
}

impl Context {
    pub fn new(options: WebOptions, board: Arc<Board>, metrics: Arc<Metrics>, commands: Sender<Command>) -> Context {
        let token = format!("{:032x}", rand::random::<u128>());
        Context { options, board, metrics, commands, token }
    }
}

/// A server's request handler: a request and its context to the reply.
pub type Handler<C> = fn(Request<Incoming>, Arc<C>) -> Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Accepts connections until the process ends, each served on a task of this thread.
pub async fn serve<C: Send + Sync + 'static>(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    context: Arc<C>,
    handler: Handler<C>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let (context, acceptor) = (context.clone(), acceptor.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let context = context.clone();
                async move { Ok::<_, Infallible>(handler(request, context).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = http.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

/// The web UI's handler.
pub fn ui(request: Request<Incoming>, context: Arc<Context>) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
    Box::pin(async move { handle(request, &context).await })
}

/// `--metrics-port`'s handler: `/metrics` alone.
pub fn metrics_only(request: Request<Incoming>, metrics: Arc<Metrics>) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
    let reply = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => metrics_reply(&request, &metrics),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found; the metrics are at /metrics".into()),
    };
    Box::pin(async move { reply })
}

/// `/metrics`: OpenMetrics when the scraper asks for it (Prometheus does), else the 0.0.4 text.
fn metrics_reply(request: &Request<Incoming>, metrics: &Metrics) -> Reply {
    let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
    let openmetrics = metrics::wants_openmetrics(accept);
    let content_type = if openmetrics { metrics::OPENMETRICS_TYPE } else { metrics::PROMETHEUS_TYPE };
    text(StatusCode::OK, content_type, metrics.render(openmetrics))
}

async fn handle(request: Request<Incoming>, context: &Context) -> Reply {
    if !guard::authorized(request.headers(), context.options.auth.as_deref()) {
        let mut reply = text(StatusCode::UNAUTHORIZED, "text/plain", "authentication required".into());
        reply.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"swarmer\""));
        return reply;
    }
    let changing = matches!(request.uri().path(), "/swarm" | "/stop" | "/stats/reset");
    if changing {
        if let Err(why) = guard::same_origin(request.headers(), &context.token, context.options.tls.is_some()) {
            return json_reply(StatusCode::FORBIDDEN, json!({"success": false, "message": why}));
        }
    }
    let download = request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "download=1"));
    match (request.method().clone(), request.uri().path()) {
        (Method::GET, "/") => text(StatusCode::OK, "text/html; charset=utf-8", page(context)),
        (Method::GET, "/events") => events(context),
        (Method::GET, "/metrics") => metrics_reply(&request, &context.metrics),
        (Method::GET, "/stats/board") => {
            json_reply(StatusCode::OK, serde_json::to_value(context.board.read()).unwrap_or_default())
        }
        (Method::GET, "/stats/requests") => json_reply(StatusCode::OK, locust_stats(&context.board.read())),
        (Method::GET, "/exceptions") => json_reply(StatusCode::OK, locust_exceptions(&context.board.read())),
        (Method::GET, "/stats/requests/csv") => csv(context.board.read().csv.stats, "requests"),
        (Method::GET, "/stats/requests_full_history/csv") => {
            csv(context.board.read().history_csv(), "requests_full_history")
        }
        (Method::GET, "/stats/failures/csv") => csv(context.board.read().csv.failures, "failures"),
        (Method::GET, "/exceptions/csv") => csv(context.board.read().csv.exceptions, "exceptions"),
        (Method::GET, "/stats/report") => report(context, download),
        (Method::POST, "/swarm") => swarm(request, context).await,
        (Method::GET | Method::POST, "/stop") => {
            let _ = context.commands.send(Command::Stop);
            json_reply(StatusCode::OK, json!({"success": true, "message": "Test stopped"}))
        }
        (Method::GET | Method::POST, "/stats/reset") => {
            context.board.reset_requested.store(true, Ordering::Relaxed);
            text(StatusCode::OK, "text/plain", "ok".into())
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    }
}

fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    Full::new(body.into()).boxed()
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(full(body));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

fn json_reply(status: StatusCode, value: Value) -> Reply {
    text(status, "application/json", value.to_string())
}

fn attachment(mut reply: Reply, name: &str) -> Reply {
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        reply.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    reply
}

fn csv(body: String, what: &str) -> Reply {
    attachment(text(StatusCode::OK, "text/csv", body), &format!("swarmer_{what}.csv"))
}

fn report(context: &Context, download: bool) -> Reply {
    let html = crate::report::html_report(&context.board.read());
    let reply = text(StatusCode::OK, "text/html; charset=utf-8", html);
    if download {
        attachment(reply, "swarmer_report.html")
    } else {
        reply
    }
}

/// The page, its form pre-filled, its token in place.
fn page(context: &Context) -> String {
    const PAGE: &str = include_str!("../ui/index.html");
    const STYLE: &str = include_str!("../ui/style.css");
    let form = &context.options.form;
    let attribute = |value: String| value.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    PAGE.replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", &crate::report::UI_SCRIPT.join("\n"))
        .replace("{{TOKEN}}", &context.token)
        .replace("{{USERS}}", &form.users.to_string())
        .replace("{{SPAWN_RATE}}", &form.spawn_rate.to_string())
        .replace("{{RATE}}", &form.rate.map(|r| r.to_string()).unwrap_or_default())
        .replace("{{HOST}}", &attribute(form.host.clone()))
        .replace("{{RUN_TIME}}", &form.run_time.map(|t| crate::units::HumanDuration(t).to_string()).unwrap_or_default())
}

/// Locust's `/stats/requests`: the rows, the errors, the totals, the state.
fn locust_stats(board: &BoardState) -> Value {
    let total = board.stats.last();
    let number = |field: fn(&crate::report::board::StatsRow) -> f64| total.map_or(0.0, field);
    let latest = board.history.back();
    let mut value = json!({
        "stats": board.stats,
        "errors": board.errors,
        "total_rps": number(|t| t.total_rps),
        "total_fail_per_sec": number(|t| t.total_fail_per_sec),
        "fail_ratio": total.map_or(0.0, |t| if t.num_requests == 0 { 0.0 } else { t.num_failures as f64 / t.num_requests as f64 }),
        "current_rps": number(|t| t.current_rps),
        "current_fail_per_sec": number(|t| t.current_fail_per_sec),
        "current_response_time_percentiles": {
            "response_time_percentile_0.5": latest.map_or(0.0, |p| p.p50),
            "response_time_percentile_0.95": latest.map_or(0.0, |p| p.p95),
        },
        "state": board.state,
        "user_count": board.user_count,
    });
    // Locust's master adds its workers; a single process has none.
    if !board.workers.is_empty() {
        value["workers"] = json!(board.workers);
    }
    value
}

fn locust_exceptions(board: &BoardState) -> Value {
    json!({ "exceptions": board.exceptions })
}

/// `POST /swarm`: a start, or an edit of the running test.
async fn swarm(request: Request<Incoming>, context: &Context) -> Reply {
    let body = match Limited::new(request.into_body(), MAX_FORM_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return refuse("the form is larger than 64 KiB"),
    };
    let form = match parse_swarm(&body) {
        Ok(form) => form,
        Err(message) => return refuse(&message),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if context.commands.send(Command::Swarm(form, reply)).is_err() {
        return refuse("the process is stopping");
    }
    match answer.await {
        Ok(Ok(message)) => json_reply(StatusCode::OK, json!({"success": true, "message": message})),
        Ok(Err(message)) => refuse(&message),
        Err(_) => refuse("the process is stopping"),
    }
}

fn refuse(message: &str) -> Reply {
    json_reply(StatusCode::BAD_REQUEST, json!({"success": false, "message": message}))
}

/// The form's fields (`user_count`, `spawn_rate`, `rate`, `host`, `run_time`), checked.
pub fn parse_swarm(body: &[u8]) -> Result<Swarm, String> {
    let mut swarm = Swarm::default();
    for (key, value) in form_pairs(body) {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "user_count" => match value.parse::<u64>() {
                Ok(n) if n >= 1 => swarm.users = Some(n),
                _ => return Err(format!("Number of users {value:?}: expected a whole number of at least 1")),
            },
            "spawn_rate" => match value.parse::<f64>() {
                Ok(r) if r > 0.0 && r.is_finite() => swarm.spawn_rate = Some(r),
                _ => return Err(format!("Spawn rate {value:?}: expected users per second above 0")),
            },
            "rate" => match crate::units::parse_rate(value) {
                Ok(r) => swarm.rate = Some(r),
                Err(e) => return Err(format!("Rate: {e}")),
            },
            "run_time" => match crate::units::parse_duration(value) {
                Ok(t) if !t.is_zero() => swarm.run_time = Some(t),
                Ok(_) => return Err("Run time 0: leave it empty to run until stopped".into()),
                Err(e) => return Err(format!("Run time: {e}")),
            },
            "host" => swarm.host = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(swarm)
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    crate::http::url::form_pairs(&String::from_utf8_lossy(body))
}

/// `/events`: the board once a second when it changed (all of it at first, then only the new
/// chart points each time).
fn events(context: &Context) -> Reply {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = Events { board: context.board.clone(), seen: None, version: None, ticker };
    let mut reply = Response::new(body.boxed());
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    reply.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// The event stream's body: a frame per change of the board, at most one a second.
struct Events {
    board: Arc<Board>,
    /// The newest chart point sent, and the board's version then.
    seen: Option<u64>,
    version: Option<(u64, u64)>,
    ticker: tokio::time::Interval,
}

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        loop {
            ready!(self.ticker.poll_tick(cx));
            let (version, epoch) = (self.board.version(), self.board.epoch());
            if self.version.is_some_and(|(v, _)| v == version) {
                continue;
            }
            // A new run starts its charts afresh.
            let since = if self.version.is_some_and(|(_, e)| e == epoch) { self.seen } else { None };
            let (json, newest) = self.board.update_since(since);
            self.seen = newest;
            self.version = Some((version, epoch));
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!("data: {json}\n\n"))))));
        }
    }
}
