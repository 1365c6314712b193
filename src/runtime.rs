//! Building a thread's runtime (engine workers and target threads): io_uring with `SINGLE_ISSUER | DEFER_TASKRUN` (the ring setup
//! that decides per-request CPU more than anything else in the loop, see DESIGN.md §3), plain
//! io_uring when the kernel refuses those flags, epoll when io_uring is unavailable or forced.

use std::future::Future;
use std::io;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::Io;

/// Whether this kernel supports the io_uring ops monoio needs.
pub fn uring_available() -> bool {
    monoio::utils::detect_uring()
}

/// Runs `make(driver)`'s future to completion on a fresh runtime of the chosen kind; `driver`
/// names it (`io_uring (defer_taskrun)`, `io_uring`, `epoll`).
pub fn block_on<F, Fut>(io: Io, defer_taskrun: bool, entries: u32, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce(&'static str) -> Fut,
    Fut: Future,
{
    let use_uring = match io {
        Io::Epoll => false,
        Io::Uring => true,
        Io::Auto => uring_available(),
    };
    if use_uring {
        let mut attempts: Vec<(bool, &'static str)> = Vec::new();
        if defer_taskrun {
            attempts.push((true, "io_uring (defer_taskrun)"));
        }
        attempts.push((false, "io_uring"));
        let mut last_err = None;
        let mut built = None;
        for (defer, label) in attempts {
            let mut urb = io_uring::IoUring::builder();
            if defer {
                urb.setup_single_issuer().setup_defer_taskrun();
            }
            match RuntimeBuilder::<IoUringDriver>::new().with_entries(entries).uring_builder(urb).enable_timer().build()
            {
                Ok(rt) => {
                    built = Some((rt, label));
                    break;
                }
                Err(err) => last_err = Some(err),
            }
        }
        if let Some((mut rt, label)) = built {
            return Ok(rt.block_on(make(label)));
        }
        if io == Io::Uring {
            return Err(last_err.expect("at least one attempt"));
        }
    }
    let mut rt = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?;
    Ok(rt.block_on(make("epoll")))
}

/// How far short of a deadline the timer is asked to wake: its wheel has 1 ms ticks, rounds up,
/// and the wake-up itself can take a tick more.
///
/// The yield loop after it must stay short and must not run back to back: monoio advances its
/// timers only when it parks, which it does only when no task is ready, so a task that always
/// yields starves every timer on its thread (timeouts, the worker's own clock). Callers that
/// would spin continuously (starts closer together than twice this) must not use it.
pub const COARSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(2);

/// Sleeps for `pause` to within a few µs: the timer wheel has 1 ms ticks and rounds up, so it
/// sleeps to `COARSE_MARGIN` short of the deadline and yields until the deadline (the target's
/// `/delay/D`, the open model's start times).
pub async fn sleep_precisely(pause: std::time::Duration) {
    sleep_until_precisely(std::time::Instant::now() + pause).await;
}

/// As `sleep_precisely`, to an instant.
pub async fn sleep_until_precisely(deadline: std::time::Instant) {
    if let Some(coarse) = deadline.checked_sub(COARSE_MARGIN) {
        if coarse > std::time::Instant::now() {
            monoio::time::sleep_until(monoio::time::Instant::from_std(coarse)).await;
        }
    }
    while std::time::Instant::now() < deadline {
        YieldNow(false).await;
    }
}

/// Lets the runtime run other tasks (and poll IO) once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
