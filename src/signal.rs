//! SIGINT/SIGTERM: the first one asks the run to stop gracefully (users finish their task within
//! `--stop-timeout`; the final tables and CSV are still written), the second stops it at once.
//! The handler only counts; the main thread polls the count.

use std::sync::atomic::{AtomicUsize, Ordering};

static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int);
    // SAFETY: the handler is async-signal-safe (one atomic add).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// How many stop signals have arrived.
pub fn received() -> usize {
    RECEIVED.load(Ordering::SeqCst)
}
