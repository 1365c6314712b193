//! The wake-up floor: how late this machine's kernel wakes a thread sleeping to an absolute
//! deadline (clock_nanosleep, CLOCK_MONOTONIC, timer slack 1 ns), on a schedule of RATE starts
//! per second. No runtime, no IO: what is left of an open-model start lag once the generator's
//! own costs are gone. `scripts/bench.sh open` runs it beside `swarmer --rate` and reports both.
//!
//!   cargo bench --bench wake -- 200 20
//!
//! Prints "wake floor: N starts (R/s); lag p50 A us, p99 B us, max C us".

use std::time::Duration;

fn monotonic() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [rate, secs] = &args[..] else {
        eprintln!("usage: wake RATE SECONDS");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("RATE");
    let secs: f64 = secs.parse().expect("SECONDS");
    // SAFETY: plain prctl on this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let start = monotonic();
    let count = (rate * secs) as u64;
    let mut lags: Vec<u64> = Vec::with_capacity(count as usize);
    for k in 0..count {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        let spec =
            libc::timespec { tv_sec: due.as_secs() as libc::time_t, tv_nsec: due.subsec_nanos() as libc::c_long };
        // SAFETY: spec is a valid timespec; no remainder is asked for with TIMER_ABSTIME.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        lags.push(monotonic().saturating_sub(due).as_micros() as u64);
    }
    let elapsed = (monotonic() - start).as_secs_f64();
    lags.sort_unstable();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    println!(
        "wake floor: {count} starts ({:.2}/s); lag p50 {} us, p99 {} us, max {} us",
        count as f64 / elapsed,
        at(0.5),
        at(0.99),
        lags.last().copied().unwrap_or(0)
    );
}
