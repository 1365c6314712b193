//! The client against scripted raw servers on port 0: exact request bytes in, exact (split,
//! delayed, truncated) response bytes out. No HTTP mocks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use swarmer::failure::{Failure, ParseError};
use swarmer::http::{encode_request, Conn, Exchange};
use swarmer::runtime::Io;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `script` on a listener bound to 127.0.0.1:0 in a thread; returns the address.
fn scripted(script: impl FnOnce(TcpListener) + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || script(listener));
    addr
}

/// Reads one request head (up to CRLF CRLF) from `stream`.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => break,
        }
    }
    request
}

fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    swarmer::runtime::block_on(Io::Auto, true, 256, |_| fut).unwrap()
}

fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
    encode_request("GET", path, &addr.to_string(), &[], b"")
}

async fn exchange(conn: &mut Conn, request: &[u8]) -> Result<Exchange, Failure> {
    if !conn.is_connected() {
        conn.connect(TIMEOUT).await?;
    }
    conn.send(request, 1).await?;
    conn.receive(false).await
}

#[test]
fn keep_alive_reuses_one_connection_and_sends_exact_bytes() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (second_tx, second_rx) = std::sync::mpsc::channel();
    let addr = scripted(move |listener| {
        let (mut stream, _) = listener.accept().unwrap();
        for body in ["first", "second"] {
            tx.send(read_request(&mut stream)).unwrap();
            let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            // Split the response across writes with pauses: the parser must wait for the rest.
            let (a, b) = response.as_bytes().split_at(20);
            stream.write_all(a).unwrap();
            thread::sleep(Duration::from_millis(20));
            stream.write_all(b).unwrap();
        }
        // A second connection would be a bug: report whether one arrives (an assertion here,
        // on the server's thread, could not fail the test).
        listener.set_nonblocking(true).unwrap();
        thread::sleep(Duration::from_millis(200));
        second_tx.send(listener.accept().is_ok()).unwrap();
    });
    let request = get(addr, "/ka");
    let (first, second, connects) = block_on(async {
        let mut conn = Conn::new(addr);
        let first = exchange(&mut conn, &request).await;
        let second = exchange(&mut conn, &request).await;
        (first, second, conn.connects)
    });
    assert_eq!(first, Ok(Exchange { status: 200, payload: 5 }));
    assert_eq!(second, Ok(Exchange { status: 200, payload: 6 }));
    assert_eq!(connects, 1);
    assert_eq!(rx.recv().unwrap(), request);
    assert_eq!(rx.recv().unwrap(), request);
    assert!(!second_rx.recv().unwrap(), "client opened a second connection");
}

#[test]
fn connection_close_reconnects() {
    let addr = scripted(|listener| {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            read_request(&mut stream);
            stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok").unwrap();
        }
    });
    let request = get(addr, "/");
    let (results, connects) = block_on(async {
        let mut conn = Conn::new(addr);
        let a = exchange(&mut conn, &request).await;
        let b = exchange(&mut conn, &request).await;
        (vec![a, b], conn.connects)
    });
    assert!(results.iter().all(|r| r == &Ok(Exchange { status: 200, payload: 2 })), "{results:?}");
    assert_eq!(connects, 2);
}

#[test]
fn body_until_close_and_chunked_with_trailers() {
    let addr = scripted(|listener| {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        for piece in ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nab", "cd\r\n0\r\nT: 1\r\n\r\n"] {
            stream.write_all(piece.as_bytes()).unwrap();
            thread::sleep(Duration::from_millis(10));
        }
        read_request(&mut stream);
        stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").unwrap();
    });
    let request = get(addr, "/");
    let (chunked, until_close, connected) = block_on(async {
        let mut conn = Conn::new(addr);
        let a = exchange(&mut conn, &request).await;
        let b = exchange(&mut conn, &request).await;
        (a, b, conn.is_connected())
    });
    assert_eq!(chunked, Ok(Exchange { status: 200, payload: 4 }));
    assert_eq!(until_close, Ok(Exchange { status: 200, payload: 13 }));
    assert!(!connected, "an until-close body ends the connection");
}

#[test]
fn interim_100_continue_is_skipped() {
    let addr = scripted(|listener| {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx").unwrap();
    });
    let request = get(addr, "/");
    let result = block_on(async { exchange(&mut Conn::new(addr), &request).await });
    assert_eq!(result, Ok(Exchange { status: 201, payload: 1 }));
}

#[test]
fn reset_mid_response_is_a_read_failure() {
    let addr = scripted(|listener| {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial").unwrap();
        thread::sleep(Duration::from_millis(20));
        // SO_LINGER 0: close sends RST.
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
    });
    let request = get(addr, "/");
    let result = block_on(async { exchange(&mut Conn::new(addr), &request).await });
    assert!(matches!(result, Err(Failure::Read(libc::ECONNRESET)) | Err(Failure::Closed)), "{result:?}");
}

#[test]
fn close_before_complete_body_is_closed() {
    let addr = scripted(|listener| {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").unwrap();
    });
    let request = get(addr, "/");
    let result = block_on(async { exchange(&mut Conn::new(addr), &request).await });
    assert_eq!(result, Err(Failure::Closed));
}

#[test]
fn malformed_and_oversized_heads_are_parse_failures() {
    let addr = scripted(|listener| {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(b"HTTP/1.1 OK 200\r\n\r\n").unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n", "a".repeat(swarmer::http::conn::MAX_HEAD_BYTES));
        let _ = stream.write_all(huge.as_bytes());
    });
    let request = get(addr, "/");
    let (bad, huge) = block_on(async {
        let mut conn = Conn::new(addr);
        let bad = exchange(&mut conn, &request).await;
        conn.close();
        let huge = exchange(&mut conn, &request).await;
        (bad, huge)
    });
    assert_eq!(bad, Err(Failure::Parse(ParseError::Head)));
    assert_eq!(huge, Err(Failure::Parse(ParseError::HeadTooLarge)));
}

#[test]
fn refused_is_a_connect_failure() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let result = block_on(async { Conn::new(addr).connect(TIMEOUT).await });
    assert_eq!(result, Err(Failure::Connect(libc::ECONNREFUSED)));
}

#[test]
fn idle_close_of_a_reused_connection_may_be_retried() {
    let addr = scripted(|listener| {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        // Closes the idle keep-alive connection without saying so.
        thread::sleep(Duration::from_millis(50));
        drop(stream);
        thread::sleep(Duration::from_millis(500));
    });
    let request = get(addr, "/");
    let (second, may_retry) = block_on(async {
        let mut conn = Conn::new(addr);
        exchange(&mut conn, &request).await.unwrap();
        monoio::time::sleep(Duration::from_millis(150)).await;
        let second = exchange(&mut conn, &request).await;
        let may_retry = second.err().is_some_and(|f| conn.may_retry(f));
        (second, may_retry)
    });
    assert!(second.is_err());
    assert!(may_retry, "{second:?}");
}

#[test]
fn read_buffer_stays_small_for_small_responses_grows_for_large_bodies_and_shrinks_back() {
    use swarmer::http::conn::{INIT_BUFFER_BYTES, MAX_READ_BUFFER_BYTES, SHRINK_AFTER_RESPONSES};
    let window = usize::from(SHRINK_AFTER_RESPONSES);
    let after = 3 * window;
    let addr = scripted(move |listener| {
        let (mut stream, _) = listener.accept().unwrap();
        for _ in 0..20 {
            read_request(&mut stream);
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!").unwrap();
        }
        read_request(&mut stream);
        let body = vec![b'x'; 1 << 20];
        stream.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        for _ in 0..after {
            read_request(&mut stream);
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!").unwrap();
        }
    });
    let request = get(addr, "/");
    let (small, large, payload, sizes, kept) = block_on(async {
        let mut conn = Conn::new(addr);
        // Keeping bodies (as scenario checks do): the kept body's buffer shrinks back too.
        conn.keep(true, true);
        for _ in 0..20 {
            exchange(&mut conn, &request).await.unwrap();
        }
        let small = conn.buffer_capacity();
        let big = exchange(&mut conn, &request).await.unwrap();
        let large = conn.buffer_capacity();
        let mut sizes = Vec::new();
        let mut kept = vec![conn.kept().unwrap().body.capacity()];
        for _ in 0..after {
            exchange(&mut conn, &request).await.unwrap();
            sizes.push(conn.buffer_capacity());
            kept.push(conn.kept().unwrap().body.capacity());
        }
        (small, large, big.payload, sizes, kept)
    });
    assert!(kept[0] >= 1 << 20, "the large body was kept: {}", kept[0]);
    assert_eq!(kept.last(), Some(&INIT_BUFFER_BYTES), "{kept:?}");
    assert_eq!(small, INIT_BUFFER_BYTES);
    assert_eq!(payload, 1 << 20);
    assert!((MAX_READ_BUFFER_BYTES..2 * MAX_READ_BUFFER_BYTES).contains(&large), "grew to {large}");
    // Kept for at least a window of small responses, then shrunk at once (one reallocation, not
    // a step per response), and kept small.
    assert!(sizes[..window - 1].iter().all(|&s| s == large), "{sizes:?}");
    let shrunk = sizes.iter().position(|&s| s != large).expect("shrunk");
    assert!(sizes[shrunk..].iter().all(|&s| s == INIT_BUFFER_BYTES), "{sizes:?}");
    assert!(shrunk <= 2 * window, "shrunk after {shrunk} small responses");
}

/// `send_and_receive` with requests on both sides of `QUIET_WRITE_BYTES` (a small one whose
/// write completion does not wake the task, and a 256 KiB one that fills the socket and must be
/// written on while the server is slow to read): the server gets every byte before it answers,
/// and the response comes back on the same connection.
#[test]
fn small_and_large_requests_are_written_whole_before_the_response() {
    use swarmer::http::conn::QUIET_WRITE_BYTES;
    let sizes = [10, QUIET_WRITE_BYTES - 200, 256 * 1024];
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = scripted(move |listener| {
        let (mut stream, _) = listener.accept().unwrap();
        for _ in sizes {
            let head = read_request(&mut stream);
            let text = String::from_utf8_lossy(&head).to_lowercase();
            let length: usize =
                text.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            // Slow to read: a large body fills the socket's buffers meanwhile.
            thread::sleep(Duration::from_millis(50));
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).unwrap();
            tx.send((head.len() + body.len(), body.iter().all(|&b| b == b'x'))).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        }
    });
    let requests: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| {
            let head = encode_request("POST", "/", &addr.to_string(), &[], &[]).len();
            encode_request("POST", "/", &addr.to_string(), &[], &vec![b'x'; n.saturating_sub(head + 8)])
        })
        .collect();
    let (results, connects) = block_on(async {
        let mut conn = Conn::new(addr);
        conn.connect(TIMEOUT).await.unwrap();
        let mut results = Vec::new();
        for request in &requests {
            let sent = swarmer::runtime::timer::timeout(TIMEOUT, conn.send_and_receive(request, 1, false)).await;
            results.push(sent.unwrap_or(Err(Failure::Timeout(5000))));
        }
        (results, conn.connects)
    });
    for (request, result) in requests.iter().zip(&results) {
        assert_eq!(*result, Ok(Exchange { status: 200, payload: 2 }), "{} bytes", request.len());
        let (read, intact) = rx.recv_timeout(TIMEOUT).unwrap();
        assert_eq!(read, request.len());
        assert!(intact);
    }
    assert!(requests[0].len() <= QUIET_WRITE_BYTES && requests[1].len() <= QUIET_WRITE_BYTES);
    assert!(requests[2].len() > QUIET_WRITE_BYTES);
    assert_eq!(connects, 1);
}
