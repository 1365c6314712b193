//! Building a thread's runtime (engine workers and target threads): io_uring with `SINGLE_ISSUER | DEFER_TASKRUN` (the ring setup
//! that decides per-request CPU more than anything else in the loop, see DESIGN.md §3), plain
//! io_uring when the kernel refuses those flags, epoll when io_uring is unavailable or forced.

use std::cell::{Cell, RefCell};
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

pub mod timer;

/// Which IO driver a thread's runtime uses (`--io`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    /// io_uring when the kernel supports it, else epoll.
    Auto,
    Uring,
    Epoll,
}

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
            let _scope = RuntimeScope::enter(true);
            return Ok(rt.block_on(make(label)));
        }
        if io == Io::Uring {
            return Err(last_err.expect("at least one attempt"));
        }
    }
    let mut rt = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?;
    let _scope = RuntimeScope::enter(false);
    Ok(rt.block_on(make("epoll")))
}

/// How far short of a deadline the coarse timer is asked to wake (epoll runtimes, which have no
/// precise timer): its wheel has 1 ms ticks, rounds up, and the wake-up itself can take a tick more.
///
/// The yield loop after it must stay short and must not run back to back: monoio advances its
/// timers only when it parks, which it does only when no task is ready, so a task that always
/// yields starves every timer on its thread (timeouts, the worker's own clock).
const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// Sleeps for `pause` to within a few µs (the target's `/delay/D`).
pub async fn sleep_precisely(pause: Duration) {
    sleep_until_precisely(Instant::now() + pause).await;
}

/// Sleeps until `deadline` to within a few µs (the open model's start times, the target's
/// delays), where monoio's own timer wheel has 1 ms ticks and rounds up.
///
/// On io_uring, one timerfd per thread is armed (absolute, CLOCK_MONOTONIC, the clock `Instant`
/// reads) to the earliest deadline of the thread's sleepers, and a read of it is in flight on the
/// ring: the wake costs one completion, no spinning, whatever the number of sleepers. On epoll,
/// the coarse timer wakes it `COARSE_MARGIN` early and a short yield loop finishes the wait.
pub async fn sleep_until_precisely(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    match precise_timer() {
        Some(timer) => {
            let sleeper = timer.insert(deadline);
            std::future::poll_fn(|cx| {
                if sleeper.fired.get() {
                    return Poll::Ready(());
                }
                *sleeper.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
        None => {
            if let Some(coarse) = deadline.checked_sub(COARSE_MARGIN) {
                if coarse > Instant::now() {
                    monoio::time::sleep_until(monoio::time::Instant::from_std(coarse)).await;
                }
            }
            while Instant::now() < deadline {
                YieldNow(false).await;
            }
        }
    }
}

/// Whether `sleep_until_precisely` can be used for waits `spacing` apart, back to back: always
/// on io_uring (the timerfd costs no CPU while waiting); on epoll only when the yield loop has
/// room to let the coarse timer run between waits.
pub fn can_time_precisely(spacing: Duration) -> bool {
    URING.with(Cell::get) || spacing > 2 * COARSE_MARGIN
}

thread_local! {
    /// Whether this thread's runtime is io_uring (set for the life of `block_on`).
    static URING: Cell<bool> = const { Cell::new(false) };
    /// This thread's precise timer, made on first use and dropped with the runtime.
    static TIMER: RefCell<Option<Rc<PreciseTimer>>> = const { RefCell::new(None) };
}

/// Marks the thread's runtime for the length of a `block_on`, and forgets its timer after it
/// (the timer's fd is owned by a task of that runtime and closes with it).
struct RuntimeScope;

impl RuntimeScope {
    fn enter(uring: bool) -> RuntimeScope {
        URING.with(|u| u.set(uring));
        // The kernel may defer a sleeping thread's timer by its slack (50 µs by default) to batch
        // wake-ups; this thread's deadlines (start times, delays, timeouts) are measurements.
        // SAFETY: plain prctl on the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        RuntimeScope
    }
}

impl Drop for RuntimeScope {
    fn drop(&mut self) {
        URING.with(|u| u.set(false));
        TIMER.with(|t| t.borrow_mut().take());
        timer::reset();
    }
}

fn precise_timer() -> Option<Rc<PreciseTimer>> {
    if !URING.with(Cell::get) {
        return None;
    }
    TIMER.with(|slot| {
        if let Some(timer) = slot.borrow().as_ref() {
            return Some(timer.clone());
        }
        let timer = PreciseTimer::start().ok()?;
        *slot.borrow_mut() = Some(timer.clone());
        Some(timer)
    })
}

/// One sleeper: fired by the timer's task, which then wakes it.
#[derive(Default)]
struct Sleeper {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

struct Due {
    deadline: Instant,
    sleeper: Rc<Sleeper>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Reversed: BinaryHeap is a max-heap and the earliest deadline must come first.
    fn cmp(&self, other: &Due) -> std::cmp::Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

/// A thread's timerfd and its sleepers, earliest first.
struct PreciseTimer {
    fd: RawFd,
    due: RefCell<BinaryHeap<Due>>,
    /// The deadline the timerfd is armed for, if any.
    armed: Cell<Option<Instant>>,
    /// The timer task, parked while nobody sleeps.
    idle: RefCell<Option<Waker>>,
    /// `Instant` and CLOCK_MONOTONIC at one moment, to convert deadlines.
    base: (Instant, Duration),
}

impl PreciseTimer {
    fn start() -> io::Result<Rc<PreciseTimer>> {
        // SAFETY: plain syscall; the fd is checked and then owned by the monoio File below.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let file = monoio::fs::File::from_std(unsafe { std::fs::File::from_raw_fd(fd) })?;
        let timer = Rc::new(PreciseTimer {
            fd,
            due: RefCell::new(BinaryHeap::new()),
            armed: Cell::new(None),
            idle: RefCell::new(None),
            base: (Instant::now(), monotonic_now()),
        });
        monoio::spawn(run_timer(timer.clone(), file));
        Ok(timer)
    }

    fn insert(&self, deadline: Instant) -> Rc<Sleeper> {
        let sleeper = Rc::new(Sleeper::default());
        self.due.borrow_mut().push(Due { deadline, sleeper: sleeper.clone() });
        if self.armed.get().is_none_or(|armed| deadline < armed) {
            self.arm(deadline);
        }
        if let Some(waker) = self.idle.borrow_mut().take() {
            waker.wake();
        }
        sleeper
    }

    /// Sets the timerfd to go off at `deadline` (a pending read then completes at that time).
    fn arm(&self, deadline: Instant) {
        let at = self.base.1 + deadline.saturating_duration_since(self.base.0);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: at.as_secs() as libc::time_t,
                // Never zero, which would disarm.
                tv_nsec: at.subsec_nanos().max(1) as libc::c_long,
            },
        };
        // SAFETY: fd is this timer's open timerfd; spec is a valid itimerspec.
        unsafe { libc::timerfd_settime(self.fd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        self.armed.set(Some(deadline));
    }

    /// Wakes every sleeper whose deadline has passed; re-arms for the next one.
    fn fire_due(&self) {
        let now = Instant::now();
        let mut due = self.due.borrow_mut();
        while due.peek().is_some_and(|d| d.deadline <= now) {
            let Due { sleeper, .. } = due.pop().expect("peeked");
            sleeper.fired.set(true);
            let waker = sleeper.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        self.armed.set(None);
        if let Some(next) = due.peek().map(|d| d.deadline) {
            drop(due);
            self.arm(next);
        }
    }
}

/// The timer's task: reads the timerfd (completing when it goes off), fires what is due.
async fn run_timer(timer: Rc<PreciseTimer>, file: monoio::fs::File) {
    let mut buf = vec![0u8; 8];
    loop {
        if timer.due.borrow().is_empty() {
            std::future::poll_fn(|cx| {
                if timer.due.borrow().is_empty() {
                    *timer.idle.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            continue;
        }
        let (result, back) = file.read_at(buf, 0).await;
        buf = back;
        if result.is_err() {
            // Unexpected (EINTR, or the ring refusing the read): do not spin on it.
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        timer.fire_due();
    }
}

fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Lets the runtime run other tasks (and poll IO) once.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sleepers inserted out of order (each earlier one re-arms the timerfd) all wake after their
    /// deadlines, in deadline order, and none is lost; then the thread's next runtime gets a
    /// fresh timer (the old one's fd closed with its runtime).
    fn wakes_every_sleeper_in_order(io: Io) {
        for _ in 0..2 {
            let woke = block_on(io, true, 64, |_| async {
                let base = Instant::now() + Duration::from_millis(5);
                let order = Rc::new(RefCell::new(Vec::new()));
                let mut handles = Vec::new();
                // 200 ms, 190 ms, ... 10 ms after base: each new sleeper is the earliest so far
                // (without re-arming, the first would be woken ~190 ms late).
                for i in (1..=20u64).rev() {
                    let deadline = base + Duration::from_millis(10 * i);
                    let order = order.clone();
                    handles.push(monoio::spawn(async move {
                        sleep_until_precisely(deadline).await;
                        let late = Instant::now().saturating_duration_since(deadline);
                        assert!(Instant::now() >= deadline);
                        order.borrow_mut().push(i);
                        late
                    }));
                }
                let mut lateness = Vec::new();
                for handle in handles {
                    lateness.push(handle.await);
                }
                let order = order.borrow().clone();
                (order, lateness)
            })
            .unwrap();
            let (order, lateness) = woke;
            assert_eq!(order, (1..=20).collect::<Vec<_>>(), "woken in deadline order");
            // Generous: this is a correctness test on a shared machine, not a latency benchmark.
            assert!(lateness.iter().all(|l| *l < Duration::from_millis(50)), "{lateness:?}");
        }
    }

    #[test]
    fn precise_sleep_on_io_uring() {
        if uring_available() {
            wakes_every_sleeper_in_order(Io::Uring);
        }
    }

    #[test]
    fn precise_sleep_on_epoll() {
        wakes_every_sleeper_in_order(Io::Epoll);
    }

    #[test]
    fn io_uring_threads_use_the_timerfd() {
        if !uring_available() {
            return;
        }
        block_on(Io::Uring, true, 64, |_| async {
            sleep_precisely(Duration::from_millis(1)).await;
            assert!(TIMER.with(|t| t.borrow().is_some()), "the timerfd timer was made");
        })
        .unwrap();
        assert!(TIMER.with(|t| t.borrow().is_none()), "and forgotten with its runtime");
    }
}
