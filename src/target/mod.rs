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

use crate::config::Io;
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
}

impl Server {
    /// Responses sent so far, over all threads.
    pub fn served(&self) -> u64 {
        self.served.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// Binds `threads` listeners on `addr` (port 0 picks one) and serves on pinned threads.
pub fn start(addr: SocketAddr, threads: usize, cpus: &[Option<usize>]) -> Result<Server> {
    let first = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr).with_context(|| format!("cannot listen on {addr}"))?);
    }
    let served: Arc<Vec<Counter>> = Arc::new((0..threads).map(|_| Counter::default()).collect());
    for (index, listener) in listeners.into_iter().enumerate() {
        let core = cpus.get(index).copied().flatten();
        let served = served.clone();
        std::thread::Builder::new()
            .name(format!("swarmer-target-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: core });
                }
                let result = crate::runtime::block_on(Io::Auto, true, 4096, |_| accept_loop(listener, served, index));
                if let Err(err) = result.map_err(anyhow::Error::from).and_then(|r| r) {
                    eprintln!("swarmer target: thread {index}: {err:#}");
                }
            })
            .context("cannot start a target thread")?;
    }
    Ok(Server { addr, served })
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

async fn accept_loop(listener: std::net::TcpListener, served: Arc<Vec<Counter>>, index: usize) -> Result<()> {
    let listener = TcpListener::from_std(listener)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(serve(stream, served.clone(), index));
            }
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve(mut stream: TcpStream, served: Arc<Vec<Counter>>, index: usize) {
    let mut rbuf: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    let mut wbuf: Vec<u8> = Vec::with_capacity(BUFFER_BYTES);
    let counter = &served[index].0;
    loop {
        if rbuf.len() == rbuf.capacity() {
            rbuf.reserve(BUFFER_BYTES);
        }
        let len = rbuf.len();
        let (result, slice) = stream.read(monoio::buf::IoBufMut::slice_mut(rbuf, len..)).await;
        rbuf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut pos = 0;
        let mut close = false;
        while pos < rbuf.len() {
            let (consumed, action) = match routes::parse(&rbuf[pos..]) {
                routes::Parsed::Partial if rbuf.len() - pos > MAX_REQUEST_HEAD_BYTES => {
                    (rbuf.len() - pos, Action::Reply(routes::status_response(431, true, false)))
                }
                routes::Parsed::Partial => break,
                routes::Parsed::Complete(consumed, action) => (consumed, action),
            };
            pos += consumed;
            match action {
                Action::Reply(response) => {
                    close |= response.close;
                    response.write_into(&mut wbuf);
                }
                Action::Delay(pause, response) => {
                    if !flush(&mut stream, &mut wbuf).await {
                        return;
                    }
                    crate::runtime::sleep_precisely(pause).await;
                    close |= response.close;
                    response.write_into(&mut wbuf);
                }
            }
            // Only this thread writes its counter: a plain store, no locked add.
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            if close {
                break;
            }
        }
        rbuf.drain(..pos);
        if !flush(&mut stream, &mut wbuf).await || close {
            return;
        }
    }
}

/// Writes and clears `wbuf`; false when the peer is gone.
async fn flush(stream: &mut TcpStream, wbuf: &mut Vec<u8>) -> bool {
    if wbuf.is_empty() {
        return true;
    }
    let (result, mut buf) = stream.write_all(std::mem::take(wbuf)).await;
    buf.clear();
    *wbuf = buf;
    result.is_ok()
}
