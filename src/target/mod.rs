//! The built-in target server (`swarmer target`): canned endpoints on a fast io_uring server,
//! for demos, tests and measuring the generator's ceiling. Each thread owns a monoio runtime and
//! an `SO_REUSEPORT` listener; each connection parses every complete request in its buffer and
//! answers them with one write (pipelined batches cost one syscall).
//!
//! Endpoints (any method; HEAD gets the head only):
//! `/` a 13-byte body · `/bytes/N` N bytes · `/chunked/N` N bytes in chunks (with an extension
//! and a trailer) · `/delay/D` answers after D (`50ms`, `1s`) · `/status/C` status C ·
//! `/close` answers with `Connection: close` and closes · anything else 404.

mod api;
mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::runtime::Io;
use routes::Action;

/// Request heads longer than this get 431 and a close.
const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
const BUFFER_BYTES: usize = 8192;

/// One counter per server thread, on its own cache line: only its thread writes it.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

/// A running target. Its threads live until the process exits.
pub struct Server {
    pub addr: SocketAddr,
    served: Arc<Vec<Counter>>,
    handshakes: Arc<Handshakes>,
}

/// TLS handshakes completed: full and resumed, and how many carried SNI and agreed on ALPN
/// `http/1.1`.
#[derive(Default)]
struct Handshakes {
    full: AtomicU64,
    resumed: AtomicU64,
    sni: AtomicU64,
    alpn_http11: AtomicU64,
}

/// A snapshot of the target's TLS handshake counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCounts {
    pub full: u64,
    pub resumed: u64,
    pub sni: u64,
    pub alpn_http11: u64,
}

impl Server {
    /// Responses sent so far, over all threads.
    pub fn served(&self) -> u64 {
        self.served.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// TLS handshakes so far.
    pub fn handshakes(&self) -> TlsCounts {
        let h = &self.handshakes;
        TlsCounts {
            full: h.full.load(Ordering::Relaxed),
            resumed: h.resumed.load(Ordering::Relaxed),
            sni: h.sni.load(Ordering::Relaxed),
            alpn_http11: h.alpn_http11.load(Ordering::Relaxed),
        }
    }
}

/// The target's default certificate and key for `--tls`: a test certificate for localhost,
/// 127.0.0.1 and ::1, signed by the test CA in `tests/tls/ca.pem` (trust it with
/// `--ca-cert tests/tls/ca.pem`, or use `--insecure`).
pub const TEST_CERT_PEM: &[u8] = include_bytes!("../../tests/tls/server.pem");
pub const TEST_KEY_PEM: &[u8] = include_bytes!("../../tests/tls/server.key");

/// Binds `threads` listeners on `addr` (port 0 picks one) and serves on pinned threads.
pub fn start(addr: SocketAddr, threads: usize, cpus: &[Option<usize>]) -> Result<Server> {
    start_with(addr, threads, cpus, None, false)
}

/// The port is taken by another server and sharing it was not asked for.
#[derive(Debug)]
pub struct PortInUse(pub SocketAddr);

impl std::fmt::Display for PortInUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "port {} is in use: another server listens on {}; choose another --port (0 picks a free one), \
             or --reuse-port to share it (the kernel then splits connections between the servers)",
            self.0.port(),
            self.0
        )
    }
}

impl std::error::Error for PortInUse {}

/// As `start`, serving HTTPS when `tls` is given. A port another server holds is refused
/// (`PortInUse`) unless `share_port`: the listeners use SO_REUSEPORT among themselves, which
/// would otherwise let them join that server's port silently.
pub fn start_with(
    addr: SocketAddr,
    threads: usize,
    cpus: &[Option<usize>],
    tls: Option<Arc<rustls::ServerConfig>>,
    share_port: bool,
) -> Result<Server> {
    if !share_port && addr.port() != 0 {
        // A plain bind (no SO_REUSEPORT) fails when any socket already holds the port.
        if let Err(err) = std::net::TcpListener::bind(addr) {
            if err.kind() == std::io::ErrorKind::AddrInUse {
                return Err(PortInUse(addr).into());
            }
        }
    }
    let first = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr).with_context(|| format!("cannot listen on {addr}"))?);
    }
    let served: Arc<Vec<Counter>> = Arc::new((0..threads).map(|_| Counter::default()).collect());
    let handshakes = Arc::new(Handshakes::default());
    for (index, listener) in listeners.into_iter().enumerate() {
        let core = cpus.get(index).copied().flatten();
        let served = served.clone();
        let shared = Shared { served, handshakes: handshakes.clone(), tls: tls.clone() };
        std::thread::Builder::new()
            .name(format!("swarmer-target-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
                }
                let result = crate::runtime::block_on(Io::Auto, true, 4096, |_| accept_loop(listener, shared, index));
                if let Err(err) = result.map_err(anyhow::Error::from).and_then(|r| r) {
                    eprintln!("swarmer target: thread {index}: {err:#}");
                }
            })
            .context("cannot start a target thread")?;
    }
    Ok(Server { addr, served, handshakes })
}

/// What every connection of the target shares.
#[derive(Clone)]
struct Shared {
    served: Arc<Vec<Counter>>,
    handshakes: Arc<Handshakes>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

async fn accept_loop(listener: std::net::TcpListener, shared: Shared, index: usize) -> Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(stream, shared.clone(), index));
            }
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A TLS connection's session and its sealed-output buffer.
type TlsState = (crate::tls::Session<rustls::ServerConnection>, Vec<u8>);

/// Serves one connection until the peer closes it or a response closes it.
async fn serve(mut stream: TcpStream, shared: Shared, index: usize) {
    let mut tls: Option<TlsState> = None;
    if let Some(config) = &shared.tls {
        match handshake(&mut stream, config, &shared.handshakes).await {
            Some(session) => tls = Some((session, Vec::with_capacity(BUFFER_BYTES))),
            None => return,
        }
    }
    let mut rbuf: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    let mut wbuf: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    let counter = &shared.served[index].0;
    loop {
        if !read_more(&mut stream, &mut rbuf, &mut tls).await {
            return;
        }
        let Some((pos, close)) = answer(&mut stream, &rbuf, &mut wbuf, &mut tls, counter).await else { return };
        rbuf.drain(..pos);
        if !flush(&mut stream, &mut wbuf, &mut tls).await || close {
            return;
        }
    }
}

/// The server side of a TLS handshake, counted (full or resumed, SNI, ALPN); `None` when it
/// failed.
async fn handshake(
    stream: &mut TcpStream,
    config: &Arc<rustls::ServerConfig>,
    handshakes: &Handshakes,
) -> Option<crate::tls::Session<rustls::ServerConnection>> {
    let conn = rustls::ServerConnection::new(config.clone()).ok()?;
    let mut session = crate::tls::Session::new(conn);
    session.handshake(stream).await.ok()?;
    let counter = match session.conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => &handshakes.resumed,
        _ => &handshakes.full,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if session.conn.server_name().is_some() {
        handshakes.sni.fetch_add(1, Ordering::Relaxed);
    }
    if session.conn.alpn_protocol() == Some(b"http/1.1") {
        handshakes.alpn_http11.fetch_add(1, Ordering::Relaxed);
    }
    Some(session)
}

/// Reads more request bytes after those in `rbuf`; false at the end of the stream or on an error.
async fn read_more(stream: &mut TcpStream, rbuf: &mut Vec<u8>, tls: &mut Option<TlsState>) -> bool {
    if rbuf.len() == rbuf.capacity() {
        rbuf.reserve(BUFFER_BYTES);
    }
    let len = rbuf.len();
    let read = match tls.as_mut() {
        Some((session, _)) => session.fill(stream, rbuf).await.ok(),
        None => {
            let (result, slice) = stream.read(monoio::buf::IoBufMut::slice_mut(std::mem::take(rbuf), len..)).await;
            *rbuf = slice.into_inner();
            result.ok()
        }
    };
    matches!(read, Some(n) if n > 0)
}

/// Answers every complete request in `rbuf` into `wbuf` (a delayed one flushes what came before
/// it, then waits). Returns the bytes used and whether a response closes the connection; `None`
/// when the peer went away during a delay.
async fn answer(
    stream: &mut TcpStream,
    rbuf: &[u8],
    wbuf: &mut Vec<u8>,
    tls: &mut Option<TlsState>,
    counter: &AtomicU64,
) -> Option<(usize, bool)> {
    let mut pos = 0;
    let mut close = false;
    while pos < rbuf.len() && !close {
        let (consumed, action) = match routes::parse(&rbuf[pos..]) {
            routes::Parsed::Partial if rbuf.len() - pos > MAX_REQUEST_HEAD_BYTES => {
                (rbuf.len() - pos, Action::Reply(routes::status_response(431, true, false)))
            }
            routes::Parsed::Partial => break,
            routes::Parsed::Complete(consumed, action) => (consumed, action),
        };
        pos += consumed;
        let response = match action {
            Action::Reply(response) => response,
            Action::Delay(pause, response) => {
                if !flush(stream, wbuf, tls).await {
                    return None;
                }
                crate::runtime::sleep_precisely(pause).await;
                response
            }
        };
        close |= response.close;
        response.write_into(wbuf);
        // Only this thread writes its counter: a plain store, no locked add.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
    Some((pos, close))
}

/// Writes and clears `wbuf` (sealed into TLS records first, for HTTPS); false when the peer is
/// gone.
async fn flush(stream: &mut TcpStream, wbuf: &mut Vec<u8>, tls: &mut Option<TlsState>) -> bool {
    if wbuf.is_empty() {
        return true;
    }
    let out = match tls.as_mut() {
        Some((session, sealed)) => {
            sealed.clear();
            if session.seal(wbuf, sealed).is_err() {
                return false;
            }
            wbuf.clear();
            sealed
        }
        None => wbuf,
    };
    let (result, mut buf) = stream.write_all(std::mem::take(out)).await;
    buf.clear();
    *out = buf;
    result.is_ok()
}
