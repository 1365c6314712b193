//! One master merging many workers: WORKERS simulated workers (threads speaking the real
//! protocol over loopback: handshake, run, heartbeats, one snapshot a second of ENDPOINTS
//! endpoints with SAMPLES latencies each) feed a real master (`dist::master::run`, its reader
//! threads, coordinator and reporter). Measures the master's CPU per second in steady state
//! (its threads only, from /proc) and the bytes each worker sends per second.
//!
//!   cargo bench --bench merge -- 100 10        # WORKERS SECONDS
//!
//! Prints "merge: W workers × E endpoints: master CPU X% of one core; Y bytes per worker per
//! second (Z per snapshot)".

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use swarmer::config::{Endpoint, Plan};
use swarmer::dist::link::{self, Link};
use swarmer::dist::master;
use swarmer::dist::wire::Message;
use swarmer::stats::Snapshot;

const ENDPOINTS: usize = 10;
const SAMPLES: u64 = 5_000;

fn main() {
    let args: Vec<u64> =
        std::env::args().skip(1).filter(|a| a != "--bench").map(|a| a.parse().expect("a number")).collect();
    let (workers, seconds) = (args.first().copied().unwrap_or(100) as usize, args.get(1).copied().unwrap_or(10));
    // A quick plan's user type (the master's reports name it), with ten endpoints to merge.
    let url = swarmer::http::Url::parse("http://127.0.0.1:9/").unwrap();
    let mut plan = Plan::quick(&url, ([127, 0, 0, 1], 9).into(), None, Duration::from_secs(30), 1, vec![None]);
    plan.endpoints = (0..ENDPOINTS).map(|i| Endpoint { method: "GET".into(), name: format!("/e{i}") }).collect();
    plan.run_time = Some(Duration::from_secs(seconds));
    plan.output.only_summary = true;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = master::Options {
        listener,
        expect: workers,
        max_wait: Duration::from_secs(30),
        secret: None,
        heartbeat_timeout: Duration::from_secs(10),
        print_workers: false,
        watch_signals: false,
        security: Default::default(),
        board: None,
        stop: Default::default(),
        metrics: None,
    };
    let max_us = plan.histogram_max_us();
    let plan = Arc::new(plan);
    let master = std::thread::Builder::new()
        .name("swarmer-master-main".into())
        .spawn(move || master::run(plan, master::Bundle::default(), options))
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let snapshot_bytes = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..workers)
        .map(|i| {
            let (sent, snapshot_bytes) = (sent.clone(), snapshot_bytes.clone());
            std::thread::Builder::new()
                .name(format!("sim-worker-{i}"))
                .spawn(move || simulate(port, seconds, max_us, i as u64, &sent, &snapshot_bytes))
                .unwrap()
        })
        .collect();
    // Steady state: from the 2nd second to one before the end.
    std::thread::sleep(Duration::from_secs(2));
    let (t0, cpu0) = (Instant::now(), master_cpu_ticks());
    let sent0 = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(seconds.saturating_sub(3).max(1)));
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), master_cpu_ticks() - cpu0);
    let bytes = sent.load(Ordering::Relaxed) - sent0;
    for s in senders {
        s.join().unwrap();
    }
    let summary = master.join().unwrap().expect("the master's run");
    let ticks = ticks_per_second();
    println!(
        "merge: {workers} workers x {ENDPOINTS} endpoints x {SAMPLES} samples/s: master CPU {:.1}% of one core; \
         {:.0} bytes per worker per second ({} per snapshot); {} requests merged",
        cpu as f64 / ticks / wall * 100.0,
        bytes as f64 / wall / workers as f64,
        snapshot_bytes.load(Ordering::Relaxed) / workers as u64 / seconds.max(1),
        summary.requests
    );
}

/// One simulated worker: the real handshake, then a snapshot of its partition every second.
fn simulate(port: u16, seconds: u64, max_us: u64, seed: u64, sent: &AtomicU64, snapshot_bytes: &AtomicU64) {
    let mut link = Link::new(TcpStream::connect(("127.0.0.1", port)).unwrap(), Duration::from_secs(30)).unwrap();
    link::join(&mut link, None, 1, Instant::now() + Duration::from_secs(30)).unwrap();
    let Ok(Message::Bundle { .. }) = link.recv() else { panic!("no run") };
    link.send(&Message::Heartbeat { users: 0, cpu_permille: 0 }).unwrap();
    let partition = loop {
        match link.recv().unwrap() {
            Message::Take { partitions, .. } => break partitions[0] as usize,
            _ => continue,
        }
    };
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ seed;
    for seq in 0..seconds {
        let due = start + Duration::from_secs(seq + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut snapshot = Snapshot::new(partition, ENDPOINTS, max_us);
        snapshot.seq = seq;
        snapshot.users = 10;
        snapshot.last = seq + 1 == seconds;
        for e in &mut snapshot.endpoints {
            for _ in 0..SAMPLES {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // 50 µs to ~50 ms, log-spread.
                let us = 50 + (x % 1000) * 10u64.pow((x >> 32) as u32 % 3);
                e.started += 1;
                e.record(us, 100);
            }
        }
        let stats = Message::Stats(Box::new(snapshot));
        let beat = Message::Heartbeat { users: 10, cpu_permille: 500 };
        let (mut frame, mut beat_frame) = (Vec::new(), Vec::new());
        swarmer::dist::wire::write(&mut frame, &stats).unwrap();
        swarmer::dist::wire::write(&mut beat_frame, &beat).unwrap();
        snapshot_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        sent.fetch_add((frame.len() + beat_frame.len()) as u64, Ordering::Relaxed);
        link.send(&stats).unwrap();
        link.send(&beat).unwrap();
    }
    link.send(&Message::Done).unwrap();
}

/// CPU ticks (user + system) of this process's master-side threads: the coordinator, the link
/// readers, the acceptor and the reporter.
fn master_cpu_ticks() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        if !(name.starts_with("swarmer-master") || name.starts_with("swarmer-report")) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        total += fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    }
    total
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}
