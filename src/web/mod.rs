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

use crate::report::board::Board;

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

/// Binds `options.addr` (errors here, before any thread) and serves on a thread of its own.
pub fn start(options: WebOptions, board: Arc<Board>, commands: Sender<Command>) -> Result<WebServer> {
    let listener = std::net::TcpListener::bind(options.addr)
        .with_context(|| format!("--web-port: cannot listen on {}", options.addr))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let server = WebServer { addr, https: options.tls.is_some() };
    let context = Arc::new(routes::Context::new(options, board, commands));
    std::thread::Builder::new()
        .name("swarmer-web".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => {
                    if let Err(err) = runtime.block_on(routes::serve(listener, context)) {
                        crate::report::notice(&format!("web UI: {err:#}"));
                    }
                }
                Err(err) => crate::report::notice(&format!("web UI: cannot start its runtime: {err}")),
            }
        })
        .context("cannot start the web UI's thread")?;
    Ok(server)
}
