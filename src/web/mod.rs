//! The web UI's server: Locust's page and HTTP API on port 8089, on a thread of its own (a tokio
//! current-thread runtime serving hyper), never on a worker core. It reads the reporter's board
//! (`report::board`) and asks the composition root (`lib.rs`) to start, edit or stop runs through
//! a channel of `Command`s; it knows nothing of the engine.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the server thread, its options, the commands it sends |
//! | `routes.rs` | the routes: the page, Locust's API, the event stream, downloads |
//! | `guard.rs` | HTTP Basic credentials, and refusing state changes from other sites |

mod guard;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::Sender;

use crate::log::Level;
use crate::report::board::Board;
use crate::report::metrics::Metrics;

/// How the server is reached and who may use it.
#[derive(Clone)]
pub struct WebOptions {
    pub addr: SocketAddr,
    /// `user:password` for HTTP Basic (`--web-auth`).
    pub auth: Option<String>,
    /// Serve HTTPS (`--web-tls-cert/--web-tls-key`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the start form shows before anything was typed.
    pub form: FormDefaults,
}

/// The start form's pre-filled values (from the flags and the scenario file).
#[derive(Clone, Debug, Default)]
pub struct FormDefaults {
    pub users: u64,
    pub spawn_rate: f64,
    pub rate: Option<f64>,
    pub host: String,
    pub run_time: Option<Duration>,
}

/// A start (or an edit of the running test, Locust's `/swarm` while running): the form's
/// fields, each left out when empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Swarm {
    pub users: Option<u64>,
    pub spawn_rate: Option<f64>,
    /// Open model: task starts per second.
    pub rate: Option<f64>,
    pub host: Option<String>,
    pub run_time: Option<Duration>,
}

/// What the UI asks of the process. The reply says what happened (or why nothing did).
pub enum Command {
    Swarm(Swarm, tokio::sync::oneshot::Sender<Result<String, String>>),
    Stop,
}

/// The running server; it lives as long as the process.
pub struct WebServer {
    pub addr: SocketAddr,
    pub https: bool,
}

impl WebServer {
    /// The page's address, as a person types it.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.addr)
    }
}

/// Binds `options.addr` (errors here, before any thread) and serves the UI, and `metrics` at
/// `/metrics`, on a thread of its own.
pub fn start(
    options: WebOptions,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    commands: Sender<Command>,
) -> Result<WebServer> {
    let listener = bind(options.addr, "--web-port")?;
    let addr = listener.local_addr()?;
    let server = WebServer { addr, https: options.tls.is_some() };
    let tls = options.tls.clone();
    let context = Arc::new(routes::Context::new(options, board, metrics, commands));
    spawn("swarmer-web", "web UI", listener, tls, context, routes::ui)?;
    Ok(server)
}

/// `--metrics-port`: serves `metrics` at `http://addr/metrics` on a thread of its own.
pub fn start_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = bind(addr, "--metrics-port")?;
    let addr = listener.local_addr()?;
    spawn("swarmer-metrics", "metrics", listener, None, metrics, routes::metrics_only)?;
    Ok(addr)
}

fn bind(addr: SocketAddr, flag: &str) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("{flag}: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A server thread: a tokio current-thread runtime serving `listener` with `handler`.
fn spawn<C: Send + Sync + 'static>(
    thread: &str,
    what: &'static str,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    context: Arc<C>,
    handler: routes::Handler<C>,
) -> Result<()> {
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => {
                    if let Err(err) = runtime.block_on(routes::serve(listener, tls, context, handler)) {
                        crate::report::notice(Level::Error, &format!("{what}: {err:#}"));
                    }
                }
                Err(err) => crate::report::notice(Level::Error, &format!("{what}: cannot start its runtime: {err}")),
            }
        })
        .with_context(|| format!("cannot start the {what} server's thread"))?;
    Ok(())
}
