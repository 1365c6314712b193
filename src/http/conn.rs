//! One keep-alive HTTP/1.1 connection: connect, write finished request bytes, read responses
//! through one reusable buffer. The buffer is moved into each read op and handed back (monoio's
//! rent IO); a read future dropped by a timeout loses it, so after any failure the caller must
//! `close()` the connection, which restores a fresh buffer (cold path).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;

use super::read::{ReadBuf, Reading};
use crate::failure::Failure;

pub use super::read::{
    Exchange, Kept, INIT_BUFFER_BYTES, MAX_HEAD_BYTES, MAX_KEPT_BODY_BYTES, MAX_READ_BUFFER_BYTES,
    SHRINK_AFTER_RESPONSES,
};

/// Requests up to this size are written without waking the task when the write completes
/// (`Conn::write_quietly_and_receive`). The write goes to an empty send queue (a new connection,
/// or one whose previous response has arrived and with it the acknowledgement of the previous
/// request), and Linux gives a TCP socket 16 KiB of send buffer by default (`tcp_wmem`), so a
/// write of this much completes whole.
pub const QUIET_WRITE_BYTES: usize = 4096;

/// The first wait before connecting again after a failed connect; each further failure doubles
/// it, up to `MAX_RECONNECT_BACKOFF`, and a success resets it. A refused port then costs a few
/// attempts per second per user instead of tens of thousands (failures counted, not made).
pub const MIN_RECONNECT_BACKOFF: Duration = Duration::from_millis(1);
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// The wait before the next connect after a failed one that followed a wait of `previous`.
pub fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(MIN_RECONNECT_BACKOFF, MAX_RECONNECT_BACKOFF)
}

pub struct Conn {
    addr: SocketAddr,
    /// The address to connect from (`--source-addrs`); `None`: the kernel picks.
    pub source: Option<std::net::IpAddr>,
    /// HTTPS: the TLS configuration and server name; the session lives in `reader.tls`.
    tls: Option<crate::tls::Target>,
    reader: Reader,
    writer: Writer,
    /// Connections opened, for reports and tests.
    pub connects: u64,
    /// After a failed connect: how long the next attempt waits, and from when it may go.
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// The receiving side. Split from the sending side so a request's write and its response's
/// first read go to the kernel in the same submission.
struct Reader {
    half: Option<OwnedReadHalf<TcpStream>>,
    /// HTTPS: rustls and its ciphertext buffer; `rbuf` then holds decrypted bytes.
    /// Boxed: rustls's state is over 1 KB, and plain connections should not carry it.
    tls: Option<Box<crate::tls::Session<rustls::ClientConnection>>>,
    /// Received bytes and the response being read from them.
    buf: ReadBuf,
    /// When the last read completed: the moment the newest bytes arrived. A response is
    /// complete when its last byte arrived, so its latency ends here (one clock read per read
    /// syscall, however many pipelined responses it carried).
    received_at: Instant,
}

struct Writer {
    half: Option<OwnedWriteHalf<TcpStream>>,
    wbuf: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn::with_tls(addr, None)
    }

    /// A connection to `addr`, over TLS when `tls` is given.
    pub fn with_tls(addr: SocketAddr, tls: Option<crate::tls::Target>) -> Conn {
        Conn {
            addr,
            source: None,
            tls,
            reader: Reader { half: None, tls: None, buf: ReadBuf::default(), received_at: Instant::now() },
            writer: Writer { half: None, wbuf: Vec::new() },
            connects: 0,
            backoff: Duration::ZERO,
            retry_at: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS target this connection speaks to, if HTTPS.
    pub fn tls(&self) -> Option<&crate::tls::Target> {
        self.tls.as_ref()
    }

    pub fn is_connected(&self) -> bool {
        self.reader.half.is_some()
    }

    /// Opens the TCP connection with `TCP_NODELAY`, and runs the TLS handshake for HTTPS (the
    /// timeout covers both).
    pub async fn connect(&mut self, timeout: Duration) -> Result<(), Failure> {
        self.close();
        let connecting = async {
            let stream = match self.source {
                Some(source) => connect_from(source, self.addr).await,
                None => TcpStream::connect_addr(self.addr).await,
            };
            let mut stream = stream.map_err(|err| Failure::from_io(&err, Failure::Connect))?;
            stream.set_nodelay(true).map_err(|err| Failure::from_io(&err, Failure::Connect))?;
            let session = match &self.tls {
                Some(target) => {
                    let conn = rustls::ClientConnection::new(target.config.clone(), target.name.clone())
                        .map_err(|e| tls_failure(&crate::tls::TlsError::Tls(e), Failure::Connect))?;
                    // Both boxed: rustls's state and the handshake's are large, and only HTTPS
                    // connections need them; inline, every user's task would carry them for life.
                    let mut session = Box::new(crate::tls::Session::new(conn));
                    Box::pin(session.handshake(&mut stream))
                        .await
                        .map_err(|err| tls_failure(&err, Failure::Connect))?;
                    Some(session)
                }
                None => None,
            };
            Ok::<_, Failure>((stream, session))
        };
        let connected = match crate::runtime::timer::timeout(timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Failure::connect_timeout(timeout)),
        };
        let (stream, session) = match connected {
            Ok(connected) => connected,
            Err(failure) => {
                // The next attempt waits: twice as long after each failure, from 1 ms to 1 s.
                self.backoff = next_backoff(self.backoff);
                self.retry_at = Some(Instant::now() + self.backoff);
                return Err(failure);
            }
        };
        self.backoff = Duration::ZERO;
        self.retry_at = None;
        self.reader.tls = session;
        let (read, write) = stream.into_split();
        self.reader.half = Some(read);
        self.writer.half = Some(write);
        self.connects += 1;
        Ok(())
    }

    /// When a new connection may be tried, after failed ones (see `MIN_RECONNECT_BACKOFF`):
    /// `None` when connected or free to try now. Callers wait before they start a request, so
    /// the wait is not part of any request's time.
    #[inline]
    pub fn reconnect_after(&self) -> Option<Instant> {
        self.retry_at.filter(|at| !self.is_connected() && *at > Instant::now())
    }

    /// Drops the TCP connection and any buffered bytes; restores buffers lost to a cancelled op.
    pub fn close(&mut self) {
        self.reader.half = None;
        self.reader.tls = None;
        self.writer.half = None;
        self.reader.buf.reset();
    }

    /// Writes `copies` back-to-back copies of `request` (pipelining when > 1) in one write.
    pub async fn send(&mut self, request: &[u8], copies: usize) -> Result<(), Failure> {
        self.prepare_send(request, copies)?;
        self.writer.write().await
    }

    /// Writes the request (as `send`) and reads the first response (as `receive`), with the
    /// write and the first read submitted together: one trip through the kernel fewer per
    /// request than writing, waiting, then reading.
    pub async fn send_and_receive(
        &mut self,
        request: &[u8],
        copies: usize,
        head_request: bool,
    ) -> Result<Exchange, Failure> {
        self.prepare_send(request, copies)?;
        let (exchange, keep_alive) = if self.reader.tls.is_none() && self.writer.wbuf.len() <= QUIET_WRITE_BYTES {
            self.write_quietly_and_receive(head_request).await?
        } else {
            // The first error ends both: a failed write must not leave the read waiting for a
            // response that will never come (the caller closes the connection after any failure).
            let ((), received) = monoio::try_join!(self.writer.write(), self.reader.receive(head_request))?;
            received
        };
        if !keep_alive {
            self.close();
        }
        Ok(exchange)
    }

    /// A small plain request: its write is submitted with the first read, but its completion
    /// does not wake the task (the write is polled the first time without the task's waker, and
    /// again only once the response is in). The task then runs once per request instead of
    /// twice: once for the send's completion, which only said the request went out. Only for
    /// requests of at most `QUIET_WRITE_BYTES` (see there why such a send completes whole), so it
    /// cannot stop half way and leave the server waiting for the rest; a connection the peer
    /// resets or closes fails the read as it would the write.
    async fn write_quietly_and_receive(&mut self, head_request: bool) -> Result<(Exchange, bool), Failure> {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut write = std::pin::pin!(self.writer.write());
        let written = match write.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => {
                result?;
                true
            }
            Poll::Pending => false,
        };
        let received = self.reader.receive(head_request).await?;
        if !written {
            write.await?;
        }
        Ok(received)
    }

    /// Fills the write buffer with the request bytes (sealed into TLS records for HTTPS).
    fn prepare_send(&mut self, request: &[u8], copies: usize) -> Result<(), Failure> {
        let wbuf = &mut self.writer.wbuf;
        wbuf.clear();
        match self.reader.tls.as_mut() {
            Some(session) => {
                for _ in 0..copies {
                    session.seal(request, wbuf).map_err(|err| tls_failure(&err, Failure::Write))?;
                }
            }
            None => {
                for _ in 0..copies {
                    wbuf.extend_from_slice(request);
                }
            }
        }
        self.reader.buf.sent();
        Ok(())
    }

    /// Reads one complete response: skips interim 1xx heads, parses the final head, consumes the
    /// body. Closes the connection afterwards when the response says so.
    pub async fn receive(&mut self, head_request: bool) -> Result<Exchange, Failure> {
        let (exchange, keep_alive) = self.reader.receive(head_request).await?;
        if !keep_alive {
            self.close();
        }
        Ok(exchange)
    }

    /// Keeps a copy of each following response's head (and body, when `body`; see `kept`), or
    /// stops keeping them.
    pub fn keep(&mut self, head: bool, body: bool) {
        let kept = &mut self.reader.buf.kept;
        match (head, kept.as_mut()) {
            (true, Some(existing)) => existing.want_body = body,
            (true, None) => *kept = Some(Kept::new(body)),
            (false, _) => *kept = None,
        }
    }

    /// The last response's head and body, when `keep(true)` was asked for.
    pub fn kept(&self) -> Option<&Kept> {
        self.reader.buf.kept.as_ref()
    }

    /// The read buffer's current size (it adapts to the responses; see `INIT_BUFFER_BYTES`).
    pub fn buffer_capacity(&self) -> usize {
        self.reader.buf.bytes.capacity()
    }

    /// When the bytes that completed the last response arrived.
    pub fn received_at(&self) -> Instant {
        self.reader.received_at
    }

    /// Whether `failure` may be retried once on a new connection: the request went out on a
    /// reused keep-alive connection and the server closed it without sending a byte, so it
    /// cannot have been processed (the idle-close race, RFC 9112 §9.3.1).
    pub fn may_retry(&self, failure: Failure) -> bool {
        self.reader.buf.may_retry(failure)
    }
}

impl Writer {
    async fn write(&mut self) -> Result<(), Failure> {
        let Some(half) = self.half.as_mut() else {
            return Err(Failure::Write(libc::ENOTCONN));
        };
        let (result, wbuf) = half.write_all(std::mem::take(&mut self.wbuf)).await;
        self.wbuf = wbuf;
        result.map(|_| ()).map_err(|err| Failure::from_io(&err, Failure::Write))
    }
}

impl Reader {
    /// One complete response and whether the connection may be reused after it.
    async fn receive(&mut self, head_request: bool) -> Result<(Exchange, bool), Failure> {
        let mut reading = Reading::default();
        loop {
            if let Some(done) = self.buf.advance(&mut reading, head_request)? {
                return Ok(done);
            }
            if self.fill().await? == 0 {
                return self.buf.at_end(&mut reading);
            }
        }
    }

    /// Reads more bytes after the unconsumed ones; returns how many (0 at end of stream).
    async fn fill(&mut self) -> Result<usize, Failure> {
        self.buf.spare();
        let Some(half) = self.half.as_mut() else {
            return Ok(0);
        };
        let bytes = &mut self.buf.bytes;
        let n = match self.tls.as_mut() {
            Some(session) => session.fill(half, bytes).await.map_err(|err| tls_failure(&err, Failure::Read))?,
            None => {
                let len = bytes.len();
                let (result, slice) = half.read(std::mem::take(bytes).slice_mut(len..)).await;
                *bytes = slice.into_inner();
                result.map_err(|err| Failure::from_io(&err, Failure::Read))?
            }
        };
        self.received_at = Instant::now();
        self.buf.filled(n);
        Ok(n)
    }
}

/// A TLS error: socket errors keep their errno (connect, read or write side), the others their
/// cause.
fn tls_failure(err: &crate::tls::TlsError, io: fn(i32) -> Failure) -> Failure {
    match err {
        crate::tls::TlsError::Io(err) => Failure::from_io(err, io),
        other => Failure::Tls(crate::tls::describe(other)),
    }
}

/// A non-blocking TCP socket for connecting to `addr`, bound to `source` when given (any port:
/// IP_BIND_ADDRESS_NO_PORT leaves the port to the connect, so each source address has its own
/// ~28k ports per destination). Both engines make their sockets here.
pub fn socket_for(addr: SocketAddr, source: Option<std::net::IpAddr>) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
    let Some(source) = source else { return Ok(socket) };
    let yes: libc::c_int = 1;
    // SAFETY: a plain int option on a socket we own; failure only means the kernel may pick a
    // port at bind time (still correct, fewer ports).
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &yes as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket.bind(&SocketAddr::new(source, 0).into())?;
    Ok(socket)
}

/// Connects to `addr` from `source` (any port: IP_BIND_ADDRESS_NO_PORT leaves the port to the
/// connect, so each source address has its own ~28k ports per destination).
async fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket_for(addr, Some(source))?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    stream.writable(false).await?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR into an int we own.
    unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut error as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        );
    }
    match error {
        0 => Ok(stream),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}
