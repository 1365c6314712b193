//! Live control from the keyboard in a headless run (Locust's keys): `w`/`W` add 1/10 users and
//! `s`/`S` remove 1/10 (closed model), or raise/lower the start rate by 1 %/10 % of `--rate`
//! (open model). On when stdin is a terminal; the terminal leaves canonical mode and echo for the
//! run (Ctrl-C still signals) and is restored when the run ends.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::engine::Run;

/// The key reader thread; `finish` restores the terminal.
pub struct Keys {
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Whether stdin is a terminal (live control is then offered).
pub fn stdin_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

impl Keys {
    pub fn start(run: Arc<Run>) -> std::io::Result<Keys> {
        let done = Arc::new(AtomicBool::new(false));
        let thread_done = done.clone();
        let plan = &run.plan;
        let help = match plan.rate {
            Some(_) => "keys: w/W raise the rate by 1 %/10 % of --rate, s/S lower it",
            None => "keys: w/W add 1/10 users, s/S remove 1/10",
        };
        eprintln!("Live control: {help}");
        let thread =
            std::thread::Builder::new().name("swarmer-keys".into()).spawn(move || read_keys(&run, &thread_done))?;
        Ok(Keys { done, thread })
    }

    pub fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn read_keys(run: &Run, done: &AtomicBool) {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is a plain struct filled by tcgetattr.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin; saved is a valid out-pointer.
    let raw = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if raw {
        let mut keys = saved;
        keys.c_lflag &= !(libc::ICANON | libc::ECHO);
        keys.c_cc[libc::VMIN] = 1;
        keys.c_cc[libc::VTIME] = 0;
        // SAFETY: a termios derived from the terminal's own.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &keys) };
    }
    let mut buf = [0u8; 32];
    while !done.load(Ordering::Relaxed) {
        let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; 100 ms so `done` is seen promptly.
        let ready = unsafe { libc::poll(&mut pollfd, 1, 100) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break; // EOF or error: no more keys, the run goes on.
        }
        for &key in &buf[..n as usize] {
            press(run, key);
        }
    }
    if raw {
        // SAFETY: restores what tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
}

/// The web UI's edit of a running test (Locust's `/swarm` while running): users and spawn rate
/// (closed model) or the start rate (open model). Returns what it did, or why it could not.
pub fn edit(run: &Run, users: Option<u64>, spawn_rate: Option<f64>, rate: Option<f64>) -> Result<String, String> {
    let plan = &run.plan;
    if !plan.live_control {
        return Err("this run cannot be changed while it runs (its load shape or --iterations decides)".into());
    }
    if let Some(base) = plan.rate {
        let Some(rate) = rate else {
            return Err("an open-model run changes by its rate (task starts per second)".into());
        };
        let permille = (rate / base * 1000.0).round().max(0.0) as u64;
        run.live.rate_permille.store(permille, Ordering::Relaxed);
        return Ok(format!("Rate: {rate}/s"));
    }
    if let Some(rate) = spawn_rate {
        run.live.spawn_rate_milli.store((rate * 1000.0).round().max(1.0) as u64, Ordering::Relaxed);
    }
    if let Some(users) = users {
        let cap = plan.users + plan.headroom;
        if users > cap {
            return Err(format!(
                "at most {cap} users this run (its sockets were counted when it started); stop it and start a new test for more"
            ));
        }
        run.live.users.store(users, Ordering::Relaxed);
    }
    Ok(format!("Users: {} at {}/s", run.live.users.load(Ordering::Relaxed), run.live.spawn_rate()))
}

/// Applies one key; unknown keys are ignored.
pub fn press(run: &Run, key: u8) {
    let step: i64 = match key {
        b'w' => 1,
        b'W' => 10,
        b's' => -1,
        b'S' => -10,
        _ => return,
    };
    let plan = &run.plan;
    let message = match plan.rate {
        Some(rate) => {
            // Steps of 1 % (10 ‰) of --rate; never below 0.
            let permille = (run.live.rate_permille.load(Ordering::Relaxed) as i64 + step * 10).max(0) as u64;
            run.live.rate_permille.store(permille, Ordering::Relaxed);
            format!("Rate: {:.1}/s ({}% of --rate)", rate * permille as f64 / 1000.0, permille as f64 / 10.0)
        }
        None => {
            let cap = plan.users + plan.headroom;
            let users = (run.live.users.load(Ordering::Relaxed) as i64 + step).clamp(0, cap as i64) as u64;
            run.live.users.store(users, Ordering::Relaxed);
            format!("Users: {users} (at most {cap} this run)")
        }
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{message}");
}
