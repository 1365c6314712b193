//! Helpers the binary's end-to-end tests share: the built-in target as a child process, running
//! swarmer and collecting what it printed, a pseudo-terminal for what only a terminal shows,
//! servers that misbehave on purpose, temporary directories.
#![allow(dead_code)]

pub mod dist;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_swarmer");

/// A `swarmer target` child on a free port; killed (by its own PID) on drop.
pub struct Target {
    pub child: Child,
    pub url: String,
    // Kept open: the target must never see a closed stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Target {
    pub fn start() -> Target {
        Target::start_with(&["--port", "0"])
    }

    /// `swarmer target` with these arguments; waits for its listening line.
    pub fn start_with(args: &[&str]) -> Target {
        let mut child =
            Command::new(BIN).arg("target").args(args).stdout(Stdio::piped()).spawn().expect("start target");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http")).expect("listening line").to_string();
        Target { child, url, _stdout: stdout }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs swarmer to the end: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run swarmer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swarmer-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server that accepts connections and never answers (it reads and keeps them open), for
/// as long as the test process lives.
pub fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

/// A pseudo-terminal: (master, slave), the slave sized `cols` × 40.
fn pty(cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize { ws_row: 40, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty fills two descriptors we then own; the winsize is read only.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors from openpty, owned once each.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Whether the terminal behind `fd` is back in canonical mode with echo.
fn restored(fd: &OwnedFd) -> bool {
    // SAFETY: termios is a plain struct filled by tcgetattr on our own pty.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut termios) }, 0);
    termios.c_lflag & libc::ICANON != 0 && termios.c_lflag & libc::ECHO != 0
}

/// Runs swarmer with a pseudo-terminal as stdin (live control is on), typing `keys` at the given
/// times after the start; returns the exit code, stdout, stderr, and whether the terminal was
/// back in canonical mode with echo after the run.
pub fn run_with_keys(args: &[&str], keys: &[(Duration, &str)]) -> (i32, String, String, bool) {
    let (master, slave) = pty(80);
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run swarmer");
    let started = Instant::now();
    let mut typist = std::fs::File::from(master);
    for (at, text) in keys {
        std::thread::sleep(at.saturating_sub(started.elapsed()));
        std::io::Write::write_all(&mut typist, text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        restored(&slave),
    )
}

/// Runs swarmer in a terminal `cols` wide (stdin, stdout and stderr on one pseudo-terminal, as
/// in a shell), sending `signals` at the given times; returns the exit code and everything the
/// terminal showed.
pub fn run_in_terminal(args: &[&str], cols: u16, signals: &[(Duration, i32)]) -> (i32, String) {
    let (master, slave) = pty(cols);
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .expect("run swarmer");
    drop(slave);
    // The terminal's output must be drained while the child runs, or its writes block.
    let reader = std::thread::spawn(move || {
        let mut screen = Vec::new();
        let mut file = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the slave) is gone.
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&screen).replace("\r\n", "\n")
    });
    let started = Instant::now();
    for (at, signal) in signals {
        std::thread::sleep(at.saturating_sub(started.elapsed()));
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(child.id() as i32, *signal) };
    }
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

/// GET `path` from `base` (`http://127.0.0.1:PORT`) on a fresh connection; the JSON body.
pub fn api(base: &str, path: &str) -> serde_json::Value {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").expect("a response").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Writes scenario `text` (with `HOST` replaced by `host`) into `dir` as `name`; its path.
pub fn scenario(dir: &Path, name: &str, host: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text.replace("HOST", host.trim_end_matches('/'))).unwrap();
    path.to_str().unwrap().to_string()
}

/// The count column of `_stats.csv`'s row for (`method`, `name`), 0 when there is none.
pub fn csv_count(stats_csv: &str, method: &str, name: &str) -> u64 {
    let prefix = format!("{method},{name},");
    stats_csv
        .lines()
        .find(|l| l.starts_with(&prefix))
        .map_or(0, |l| l[prefix.len()..].split(',').next().unwrap().parse().unwrap())
}
