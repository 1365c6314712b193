//! One master–worker connection: framed messages over TCP (or TLS, with rustls), a writer any
//! thread may use, reads that fail after the heartbeat timeout, and the handshake each side runs
//! first (versions, then the secret's challenge-response; see `auth`).
//!
//! Over TLS both directions share one rustls connection behind a lock: the reader holds it for
//! at most `TLS_POLL` at a time (the socket's read timeout), so a writer waits at most that long.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::{self, Role};
use super::wire::{self, Message, PROTOCOL};

/// swarmer's version, which master and workers must share.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a read ended when the peer sent nothing for the heartbeat timeout.
const SILENT: &str = "silent past the heartbeat timeout";

/// How long a TLS link's reader holds the connection while waiting for bytes.
const TLS_POLL: Duration = Duration::from_millis(20);

/// Both directions of a connection (plain TCP, or rustls over it).
trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

/// The writing side every sender of a link locks.
type Writer = Arc<Mutex<Box<dyn Duplex>>>;

/// Plain TCP, or TLS as the master (`--master-tls-cert/-key`) or a worker (`--master-ca-cert`).
#[derive(Clone, Default)]
pub enum Security {
    #[default]
    Plain,
    Server(Arc<rustls::ServerConfig>),
    Client(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>),
}

/// The sending half of a link, shared by the threads that write to it.
#[derive(Clone)]
pub struct Sender {
    stream: Writer,
    socket: Arc<TcpStream>,
}

impl Sender {
    pub fn send(&self, message: &Message) -> std::io::Result<()> {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        wire::write(&mut *stream, message)?;
        stream.flush()
    }

    /// `send`, retried through a TLS handshake that cannot finish yet (the master accepts only
    /// when its run starts) until `deadline`.
    pub fn send_until(&self, message: &Message, deadline: Instant) -> std::io::Result<()> {
        loop {
            match self.send(message) {
                Err(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) && Instant::now() < deadline =>
                {
                    std::thread::sleep(TLS_POLL);
                }
                other => return other,
            }
        }
    }

    /// Closes both directions: the peer reads the end, our reader wakes.
    pub fn close(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// A TLS link's reading side: takes the shared connection for one short read at a time.
struct Shared {
    inner: Writer,
    timeout: Duration,
}

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = Instant::now();
        loop {
            let result = self.inner.lock().unwrap_or_else(|e| e.into_inner()).read(buf);
            match result {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if start.elapsed() >= self.timeout {
                        return Err(e);
                    }
                    std::thread::yield_now();
                }
                other => return other,
            }
        }
    }
}

/// A connection's reading half and a sender for it.
pub struct Link {
    reader: Box<dyn Read + Send>,
    pub sender: Sender,
    pub peer: SocketAddr,
}

impl Link {
    /// Wraps `stream`; a read waits at most `timeout` (the heartbeat timeout) for a message.
    pub fn new(stream: TcpStream, timeout: Duration) -> std::io::Result<Link> {
        Link::secured(stream, timeout, &Security::Plain)
    }

    /// `new`, over TLS when `security` says so.
    pub fn secured(stream: TcpStream, timeout: Duration, security: &Security) -> std::io::Result<Link> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout.max(Duration::from_secs(1)) * 4))?;
        let peer = stream.peer_addr()?;
        let socket = Arc::new(stream.try_clone()?);
        let tls: Option<Box<dyn Duplex>> = match security {
            Security::Plain => None,
            Security::Server(config) => {
                let conn = rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
                Some(Box::new(rustls::StreamOwned::new(conn, stream.try_clone()?)))
            }
            Security::Client(config, name) => {
                let conn =
                    rustls::ClientConnection::new(config.clone(), name.clone()).map_err(std::io::Error::other)?;
                Some(Box::new(rustls::StreamOwned::new(conn, stream.try_clone()?)))
            }
        };
        let (reader, writer): (Box<dyn Read + Send>, Writer) = match tls {
            None => {
                stream.set_read_timeout(Some(timeout))?;
                let writer: Box<dyn Duplex> = Box::new(stream.try_clone()?);
                (Box::new(BufReader::new(stream)), Arc::new(Mutex::new(writer)))
            }
            Some(both) => {
                stream.set_read_timeout(Some(TLS_POLL))?;
                let shared = Arc::new(Mutex::new(both));
                (Box::new(Shared { inner: shared.clone(), timeout }), shared)
            }
        };
        Ok(Link { reader, sender: Sender { stream: writer, socket }, peer })
    }

    /// The next message; an error says why there is none (the end of the stream, silence past
    /// the timeout, or a malformed frame).
    pub fn recv(&mut self) -> Result<Message, String> {
        match wire::read(&mut self.reader) {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err("the connection was closed".into()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(SILENT.into()),
            Err(e) if e.kind() == ErrorKind::InvalidData => Err(format!("a malformed frame ({e})")),
            Err(e) => Err(format!("the connection failed ({e})")),
        }
    }

    /// `recv`, waiting through silence until `deadline` (a worker waiting for a master that has
    /// not started its run: nothing was read, so nothing is lost by reading again).
    pub fn recv_until(&mut self, deadline: Instant) -> Result<Message, String> {
        loop {
            match self.recv() {
                Err(reason) if reason == SILENT && Instant::now() < deadline => continue,
                other => return other,
            }
        }
    }

    pub fn send(&self, message: &Message) -> Result<(), String> {
        self.sender.send(message).map_err(|e| format!("cannot send to {} ({e})", self.peer))
    }
}

/// What a worker said about itself.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub host: String,
    pub cores: usize,
}

/// The master's side of the handshake: the worker's version must be ours, and it must prove
/// the secret. A refused worker is told why; the error says it too.
pub fn admit(link: &mut Link, secret: Option<&str>) -> Result<WorkerInfo, String> {
    let (protocol, version, host, cores, their_nonce) = match link.recv()? {
        Message::Hello { protocol, version, host, cores, nonce } => (protocol, version, host, cores, nonce),
        other => return Err(format!("expected a hello, got {}", name(&other))),
    };
    if protocol != PROTOCOL || version != VERSION {
        let reason = format!("worker version {version} (protocol {protocol}), master version {VERSION} (protocol {PROTOCOL}): run the same swarmer on both");
        let _ = link.send(&Message::Refused { reason: reason.clone() });
        return Err(reason);
    }
    let nonce = auth::nonce();
    link.send(&Message::Challenge { nonce: nonce.clone(), proof: auth::answer(secret, Role::Master, &their_nonce) })?;
    let proof = match link.recv()? {
        Message::Proof { proof } => proof,
        Message::Refused { reason } => return Err(format!("the worker refused the master: {reason}")),
        other => return Err(format!("expected a proof, got {}", name(&other))),
    };
    if !auth::verify(secret, Role::Worker, &nonce, &proof) {
        let reason = match (secret, proof.is_empty()) {
            (Some(_), true) => "the master needs a secret (--secret or SWARMER_SECRET) and the worker gave none",
            (None, false) => "the worker has a secret and the master has none",
            _ => "the secret does not match the master's",
        };
        let _ = link.send(&Message::Refused { reason: reason.into() });
        return Err(reason.into());
    }
    Ok(WorkerInfo { host, cores: cores.clamp(1, 4096) as usize })
}

/// The worker's side of the handshake: say who we are, check the master's proof, give ours.
/// The master may answer only when its run starts (a web UI's form): silence is waited out
/// until `deadline`.
pub fn join(link: &mut Link, secret: Option<&str>, cores: usize, deadline: Instant) -> Result<(), String> {
    let nonce = auth::nonce();
    let host = hostname();
    let hello =
        Message::Hello { protocol: PROTOCOL, version: VERSION.into(), host, cores: cores as u64, nonce: nonce.clone() };
    link.sender.send_until(&hello, deadline).map_err(|e| format!("cannot send to {} ({e})", link.peer))?;
    let (their_nonce, proof) = match link.recv_until(deadline)? {
        Message::Challenge { nonce, proof } => (nonce, proof),
        Message::Refused { reason } => return Err(format!("the master refused this worker: {reason}")),
        other => return Err(format!("expected a challenge, got {}", name(&other))),
    };
    if !auth::verify(secret, Role::Master, &nonce, &proof) {
        let reason = match secret {
            Some(_) => "the master does not hold this worker's secret",
            None => "the master has a secret and this worker has none (--secret or SWARMER_SECRET)",
        };
        let _ = link.send(&Message::Refused { reason: reason.into() });
        return Err(reason.into());
    }
    link.send(&Message::Proof { proof: auth::answer(secret, Role::Worker, &their_nonce) })?;
    Ok(())
}

/// The message's name, for errors.
pub fn name(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "hello",
        Message::Challenge { .. } => "challenge",
        Message::Proof { .. } => "proof",
        Message::Refused { .. } => "refusal",
        Message::Bundle { .. } => "run",
        Message::Take { .. } => "take",
        Message::Release { .. } => "release",
        Message::Stop { .. } => "stop",
        Message::Heartbeat { .. } => "heartbeat",
        Message::Stats(_) => "stats",
        Message::Done => "done",
        Message::Failed { .. } => "failure",
    }
}

/// This machine's name and our process id, as a worker introduces itself.
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", name.trim(), std::process::id())
}
