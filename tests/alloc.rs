//! Proof that the hot path does not allocate: a counting global allocator counts allocations
//! made on worker threads only, over a steady-state window of ≥ 10k requests against the
//! built-in target (whose own threads are not counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use swarmer::config::Plan;
use swarmer::http::Url;
use swarmer::{run, RunOptions};

struct Counting;

static WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if IS_WORKER.with(Cell::get) {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if IS_WORKER.with(Cell::get) {
            WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mark_worker(_: usize) {
    IS_WORKER.with(|w| w.set(true));
}

/// (allocations on workers, responses served) over [from, to] of a run of `path`.
fn measure(path: &str, pipeline: usize) -> (u64, u64) {
    let server = swarmer::target::start(([127, 0, 0, 1], 0).into(), 1, &[None]).unwrap();
    let url = Url::parse(&format!("http://{}{path}", server.addr)).unwrap();
    let mut plan = Plan::quick(&url, server.addr, None, Duration::from_secs(5), pipeline, vec![None, None]);
    plan.users = 8;
    plan.spawn_rate = 1000.0;
    plan.run_time = Some(Duration::from_millis(3500));
    plan.output.only_summary = true;
    let runner =
        std::thread::spawn(move || run(plan, RunOptions { on_worker_start: Some(mark_worker), ..Default::default() }));
    // Steady state: users connected, the reporter handing spare snapshots back.
    std::thread::sleep(Duration::from_millis(1200));
    let (allocs_before, served_before) = (WORKER_ALLOCS.load(Ordering::Relaxed), server.served());
    std::thread::sleep(Duration::from_millis(1800));
    let (allocs_after, served_after) = (WORKER_ALLOCS.load(Ordering::Relaxed), server.served());
    let outcome = runner.join().unwrap().unwrap();
    assert_eq!(outcome.summary.failures, 0);
    (allocs_after - allocs_before, served_after - served_before)
}

#[test]
fn steady_state_requests_allocate_nothing() {
    for (path, pipeline) in [("/", 1), ("/chunked/3000", 1), ("/", 16)] {
        let (allocs, requests) = measure(path, pipeline);
        assert!(requests >= 10_000, "{path}: only {requests} requests in the window");
        assert_eq!(allocs, 0, "{path} x{pipeline}: {allocs} allocations over {requests} requests");
    }
    // The counter does count on workers: setup (runtime, users, buffers) allocates.
    assert!(WORKER_ALLOCS.load(Ordering::Relaxed) > 100);
}
