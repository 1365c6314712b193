//! Helpers the distributed runs' tests share: swarmer children writing to files, the built-in
//! target in the test process, a master with local workers, and reading what they wrote.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{read, BIN};

/// A swarmer child whose output goes to files; killed (by its own PID) on drop.
pub struct Proc {
    pub child: Child,
    pub out: std::path::PathBuf,
}

impl Proc {
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Proc {
        Proc::start_in(dir, name, &[BIN], args)
    }

    /// `prefix` then swarmer's arguments (`ip netns exec NS BIN …`).
    pub fn start_in(dir: &Path, name: &str, prefix: &[&str], args: &[&str]) -> Proc {
        let out = dir.join(format!("{name}.out"));
        let file = std::fs::File::create(&out).unwrap();
        let child = Command::new(prefix[0])
            .args(&prefix[1..])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start swarmer");
        Proc { child, out }
    }

    /// Waits at most `limit` for the exit code; kills it past that (and fails).
    pub fn wait(&mut self, limit: Duration) -> (i32, String) {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), read(&self.out));
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("still running after {limit:?}:\n{}", read(&self.out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        read(&self.out)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The built-in target in this process, on a free loopback port: its `served()` is the exact
/// count of responses it wrote.
pub fn loopback_target() -> swarmer::target::Server {
    swarmer::target::start(([127, 0, 0, 1], 0).into(), 1, &[None]).unwrap()
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn aggregated_count(stats_csv: &str) -> u64 {
    let row = stats_csv.lines().find(|l| l.starts_with(",Aggregated,")).expect("aggregated row");
    row.split(',').nth(2).unwrap().parse().unwrap()
}

pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap()
}

/// Waits until `text` appears in `proc`'s output.
pub fn wait_for(proc: &Proc, text: &str, limit: Duration) {
    let until = Instant::now() + limit;
    while !proc.output().contains(text) {
        assert!(Instant::now() < until, "no {text:?} within {limit:?}:\n{}", proc.output());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A master on a free port and `workers` workers (1 thread each) against `url`; returns the
/// master's exit code and output with the workers' exit codes.
pub fn master_and_workers(dir: &Path, workers: usize, master_args: &[&str]) -> (i32, String, Vec<(i32, String)>) {
    let port = free_port().to_string();
    let expect = workers.to_string();
    let mut args =
        vec!["--master", "--master-bind-port", &port, "--expect-workers", &expect, "--expect-workers-max-wait", "20s"];
    args.extend_from_slice(master_args);
    let mut master = Proc::start(dir, "master", &args);
    let mut children: Vec<Proc> = (0..workers)
        .map(|i| Proc::start(dir, &format!("worker{i}"), &["--worker", "--master-port", &port, "--threads", "1"]))
        .collect();
    let (code, out) = master.wait(Duration::from_secs(60));
    let ends = children.iter_mut().map(|w| w.wait(Duration::from_secs(15))).collect();
    (code, out, ends)
}
