//! Deadlines and sleeps for the load path: one timer per thread, shared by all its users.
//!
//! monoio's own `Timeout` and `Sleep` carry a timer-wheel entry of 640 bytes aligned to 128 (it
//! is cache-padded for a multi-threaded wheel this runtime never has). Every user's task holds one
//! for its request timeout, another inside for the connect timeout, and more for its waits, and
//! the alignment pads every future around them: they were a third of a user's memory, the larger
//! part of the memory per connection. Here a deadline is a `Key` (8 bytes) into the thread's
//! table of slots, and one task per thread (the sweeper) sleeps on a single monoio `Sleep` until
//! the earliest deadline, then marks what is due and wakes it.
//!
//! The earliest deadline comes from a binary heap. A request that completes does not search the
//! heap: it frees its slot (the generation moves on), and its entry is left behind as stale, to
//! be skipped when it surfaces, or dropped when the heap holds more than twice the live
//! deadlines (a rebuild, amortised over as many pushes). Nothing allocates once the slots and the
//! heap have grown to the thread's number of concurrent deadlines; timeouts keep monoio's
//! precision (its wheel's 1 ms ticks, rounding up).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A deadline passed before the future it bounded was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `future` until it is done or `limit` has passed from now.
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    timeout_at(after(limit), future)
}

/// Runs `future` until it is done or `deadline` has passed.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout { future, deadline, key: None }
}

/// Waits for `pause`.
pub fn sleep(pause: Duration) -> Sleep {
    sleep_until(after(pause))
}

/// Where a deadline too far to add to an `Instant` is held: 100 years, longer than any run.
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The instant `pause` from now; one that would not fit is held at `FAR` (std's `+` panics
/// there, and a `Duration` can be far longer than an `Instant` can reach).
fn after(pause: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(pause).unwrap_or_else(|| now + FAR)
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, key: None }
}

/// A slot in the thread's table and the generation it was taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    slot: u32,
    generation: u32,
}

pub struct Timeout<F> {
    future: F,
    deadline: Instant,
    key: Option<Key>,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is pinned with `self` and never moved out (not even by `Drop`); the
        // other fields are plain data.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above, a projection of the pinned field.
        if let Poll::Ready(output) = unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match wait(&mut this.key, this.deadline, cx) {
            true => Poll::Ready(Err(Elapsed)),
            false => Poll::Pending,
        }
    }
}

impl<F> Drop for Timeout<F> {
    fn drop(&mut self) {
        release(self.key.take());
    }
}

pub struct Sleep {
    deadline: Instant,
    key: Option<Key>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.key.is_none() && this.deadline <= Instant::now() {
            return Poll::Ready(());
        }
        match wait(&mut this.key, this.deadline, cx) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        release(self.key.take());
    }
}

/// Whether the deadline behind `key` has fired; registers it (first call) or refreshes its waker.
fn wait(key: &mut Option<Key>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    TIMER.with(|timer| {
        let mut timer = timer.borrow_mut();
        match *key {
            Some(k) => timer.poll(k, cx.waker()),
            None => {
                *key = Some(timer.insert(deadline, cx.waker()));
                false
            }
        }
    })
}

fn release(key: Option<Key>) {
    if let Some(key) = key {
        // At thread exit the table may be gone already; then there is nothing to free.
        let _ = TIMER.try_with(|timer| timer.borrow_mut().remove(key));
    }
}

thread_local! {
    static TIMER: RefCell<Table> = const { RefCell::new(Table::new()) };
}

/// Forgets every deadline of the thread (its runtime is ending): the sweeper goes with the
/// runtime, and keys still held by tasks being dropped no longer match any slot.
pub(crate) fn reset() {
    TIMER.with(|timer| timer.borrow_mut().reset());
}

#[derive(Default)]
struct Slot {
    generation: u32,
    fired: bool,
    waker: Option<Waker>,
}

/// A deadline in the heap (a max-heap, so reversed: earliest first); stale when its slot's
/// generation has moved on.
type Due = Reverse<(Instant, Key)>;

/// A heap this much larger than twice the live deadlines is rebuilt without its stale entries.
const HEAP_SLACK: usize = 64;

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    heap: BinaryHeap<Due>,
    /// Deadlines registered and not yet removed.
    live: usize,
    /// The deadline the sweeper sleeps until (or is about to); `None` while it is parked.
    armed: Option<Instant>,
    /// Wakes the sweeper: to re-arm for an earlier deadline, or to leave its park.
    sweeper: Option<Waker>,
    /// Whether this thread's runtime has a sweeper task.
    sweeping: bool,
}

impl Table {
    const fn new() -> Table {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            live: 0,
            armed: None,
            sweeper: None,
            sweeping: false,
        }
    }

    fn insert(&mut self, deadline: Instant, waker: &Waker) -> Key {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.fired = false;
        entry.waker = Some(waker.clone());
        let key = Key { slot, generation: entry.generation };
        self.live += 1;
        if self.heap.len() > 2 * self.live + HEAP_SLACK {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, key))| slots[key.slot as usize].generation == key.generation);
        }
        self.heap.push(Reverse((deadline, key)));
        if !self.sweeping {
            self.sweeping = true;
            monoio::spawn(sweep());
        }
        if self.armed.is_none_or(|armed| deadline < armed) {
            self.armed = Some(deadline);
            if let Some(sweeper) = self.sweeper.take() {
                // monoio only queues the task here; it runs after this borrow ends.
                sweeper.wake();
            }
        }
        key
    }

    /// Whether `key` has fired; if not, keeps the waker current.
    fn poll(&mut self, key: Key, waker: &Waker) -> bool {
        let Some(slot) = self.slots.get_mut(key.slot as usize).filter(|s| s.generation == key.generation) else {
            // Forgotten by `reset`: the runtime is going, and so is whoever waits.
            return true;
        };
        if slot.fired {
            return true;
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
        false
    }

    fn remove(&mut self, key: Key) {
        let Some(slot) = self.slots.get_mut(key.slot as usize).filter(|s| s.generation == key.generation) else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        slot.fired = false;
        slot.waker = None;
        self.free.push(key.slot);
        self.live -= 1;
    }

    /// Fires every live deadline at or before `now`, then returns the earliest one left.
    fn fire_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&Reverse((deadline, key))) = self.heap.peek() {
            let slot = &mut self.slots[key.slot as usize];
            if slot.generation != key.generation {
                self.heap.pop();
                continue;
            }
            if deadline > now {
                return Some(deadline);
            }
            slot.fired = true;
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
            self.heap.pop();
        }
        None
    }

    fn reset(&mut self) {
        for slot in &mut self.slots {
            slot.generation = slot.generation.wrapping_add(1);
            slot.fired = false;
            slot.waker = None;
        }
        self.free = (0..self.slots.len() as u32).rev().collect();
        self.heap.clear();
        self.live = 0;
        self.armed = None;
        self.sweeper = None;
        self.sweeping = false;
    }
}

/// The thread's sweeper: sleeps on one monoio timer until the earliest deadline, fires what is
/// due, re-arms; parks while there is no deadline. Woken early when an earlier one is inserted.
async fn sweep() {
    let far = || monoio::time::Instant::now() + Duration::from_secs(86_400);
    let mut sleep = std::pin::pin!(monoio::time::sleep_until(far()));
    std::future::poll_fn(|cx| loop {
        let next = TIMER.with(|timer| {
            let mut timer = timer.borrow_mut();
            let next = timer.fire_due(Instant::now());
            timer.armed = next;
            if !timer.sweeper.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                timer.sweeper = Some(cx.waker().clone());
            }
            next
        });
        let Some(next) = next else {
            return Poll::<()>::Pending;
        };
        let at = monoio::time::Instant::from_std(next);
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::runtime::{block_on, Io};

    fn run<F: Future>(io: Io, future: F) -> F::Output {
        block_on(io, true, 64, |_| future).unwrap()
    }

    fn ios() -> Vec<Io> {
        match crate::runtime::uring_available() {
            true => vec![Io::Uring, Io::Epoll],
            false => vec![Io::Epoll],
        }
    }

    /// A bounded future that finishes in time gives its output; one that does not is cut off at
    /// (not before) its deadline, and the heap does not keep what completed.
    #[test]
    fn timeouts_fire_at_their_deadline_and_not_before() {
        for io in ios() {
            run(io, async {
                for _ in 0..1000 {
                    assert_eq!(timeout(Duration::from_secs(60), async { 7 }).await, Ok(7));
                    let quick = timeout(Duration::from_secs(60), monoio::time::sleep(Duration::ZERO)).await;
                    assert_eq!(quick, Ok(()));
                }
                // Limits longer than an Instant can reach bound nothing, without a panic; a
                // sleep that long stays pending alongside an ordinary one.
                assert_eq!(timeout(Duration::MAX, async { 8 }).await, Ok(8));
                let mut endless = Box::pin(sleep(Duration::MAX));
                assert!(futures_poll(endless.as_mut()).is_pending());
                let started = Instant::now();
                let slow = timeout(Duration::from_millis(30), std::future::pending::<()>()).await;
                let took = started.elapsed();
                assert_eq!(slow, Err(Elapsed));
                assert!(took >= Duration::from_millis(30), "fired early: {took:?}");
                assert!(took < Duration::from_millis(500), "fired late: {took:?}");
                assert!(futures_poll(endless.as_mut()).is_pending());
                drop(endless);
                TIMER.with(|t| {
                    let t = t.borrow();
                    assert_eq!(t.live, 0, "every deadline released");
                    assert!(t.heap.len() <= HEAP_SLACK + 2, "stale entries pruned: {}", t.heap.len());
                });
            });
        }
    }

    /// Sleeps of many lengths, inserted latest first (each new one is the earliest and must
    /// re-arm the sweeper), all wake after their deadlines and in order; a sleep dropped before
    /// its deadline frees its slot at once.
    #[test]
    fn sleeps_wake_in_order_and_dropped_ones_are_freed() {
        for io in ios() {
            let order = run(io, async {
                let mut early = Box::pin(sleep(Duration::from_millis(10)));
                assert!(futures_poll(early.as_mut()).is_pending());
                TIMER.with(|t| assert_eq!(t.borrow().live, 1));
                drop(early);
                TIMER.with(|t| assert_eq!(t.borrow().live, 0));
                let order = Rc::new(RefCell::new(Vec::new()));
                let mut handles = Vec::new();
                let base = Instant::now() + Duration::from_millis(5);
                for i in (1..=20u64).rev() {
                    let order = order.clone();
                    let at = base + Duration::from_millis(5 * i);
                    handles.push(monoio::spawn(async move {
                        sleep_until(at).await;
                        assert!(Instant::now() >= at);
                        order.borrow_mut().push(i);
                    }));
                }
                for handle in handles {
                    handle.await;
                }
                let order = order.borrow().clone();
                order
            });
            assert_eq!(order, (1..=20).collect::<Vec<_>>());
        }
    }

    fn futures_poll<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        future.poll(&mut cx)
    }

    /// The next runtime on the same thread starts with a clean table and its own sweeper.
    #[test]
    fn each_runtime_gets_its_own_sweeper() {
        for io in ios() {
            for _ in 0..3 {
                run(io, async {
                    let started = Instant::now();
                    sleep(Duration::from_millis(3)).await;
                    assert!(started.elapsed() >= Duration::from_millis(3));
                });
                TIMER.with(|t| assert!(!t.borrow().sweeping, "forgotten with the runtime"));
            }
        }
    }
}
