//! The floor: the least CPU per request a client can spend on this machine. A raw io_uring loop
//! (SINGLE_ISSUER | DEFER_TASKRUN, or plain), N keep-alive connections, each sending a fixed GET
//! and receiving a response of known length, nothing else: no parsing, no timers, no stats. It
//! is what `scripts/bench.sh drivers` compares swarmer and wrk against, so the gap between
//! swarmer and the floor (runtime overhead) is measured rather than guessed.
//!
//!   cargo bench --bench floor -- 127.0.0.1:8080 64 5 [defer|plain]
//!
//! Prints wrk's summary line ("N requests in S") and CPU per request from getrusage.

use io_uring::{opcode, types, IoUring};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const SEND: u64 = u64::MAX;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [addr, conns, secs, rest @ ..] = &args[..] else {
        eprintln!("usage: floor ADDR CONNECTIONS SECONDS [defer|plain]");
        std::process::exit(2);
    };
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let secs: u64 = secs.parse().expect("SECONDS");
    let defer = rest.first().is_none_or(|m| m != "plain");
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();

    // One probe request tells the response length (the server's answer is fixed).
    let mut probe = TcpStream::connect(addr.as_str()).expect("connect");
    probe.write_all(&request).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let response_len = probe.read(&mut [0u8; 4096]).unwrap();

    let streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(addr.as_str()).expect("connect");
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let mut builder = IoUring::builder();
    if defer {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    let mut ring: IoUring = builder.build(4 * conns as u32).unwrap();
    let mut bufs: Vec<Vec<u8>> = (0..conns).map(|_| vec![0u8; 4096]).collect();
    let mut received = vec![0usize; conns];

    let push = |ring: &mut IoUring, bufs: &mut [Vec<u8>], i: usize, send: bool| {
        let fd = types::Fd(streams[i].as_raw_fd());
        let recv = opcode::Recv::new(fd, bufs[i].as_mut_ptr(), bufs[i].len() as u32).build().user_data(i as u64);
        // SAFETY: the request and buffers outlive the ring's use of them (the loop below ends
        // before they drop, and every op is on a connection that stays open).
        unsafe {
            if send {
                let send = opcode::Send::new(fd, request.as_ptr(), request.len() as u32).build().user_data(SEND);
                ring.submission().push(&send).unwrap();
            }
            ring.submission().push(&recv).unwrap();
        }
    };
    for i in 0..conns {
        push(&mut ring, &mut bufs, i, true);
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut requests = 0u64;
    let mut ready = Vec::with_capacity(conns);
    while Instant::now() < end {
        ring.submit_and_wait(1).unwrap();
        ready.clear();
        for cqe in ring.completion() {
            if cqe.user_data() == SEND {
                assert!(cqe.result() > 0, "send: {}", cqe.result());
                continue;
            }
            let i = cqe.user_data() as usize;
            assert!(cqe.result() > 0, "recv: {}", cqe.result());
            received[i] += cqe.result() as usize;
            ready.push(i);
        }
        for &i in &ready {
            let complete = received[i] >= response_len;
            if complete {
                received[i] = 0;
                requests += 1;
            }
            push(&mut ring, &mut bufs, i, complete);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    println!("  {requests} requests in {elapsed:.2}s ({} ring)", if defer { "defer_taskrun" } else { "plain" });
    println!("CPU {cpu:.2}s, {:.2} us per request", cpu * 1e6 / requests as f64);
    // The ring goes before the buffers an unfinished op may still point into.
    drop(ring);
}
