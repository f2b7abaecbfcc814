//! How the floors wait: they watch for a moment before they sleep, as busbar does.
//!
//! busbar's workers, waiters and corelet channels watch for what they wait for during 50 µs,
//! yielding the CPU, before they sleep (on a VM, a thread asleep on an idle vCPU wakes
//! tens of microseconds late). A floor that slept at once would pay those wake-ups where
//! busbar does not, and the ratio would measure how each side sleeps instead of what busbar
//! adds. So the round-trip floors wait the same way; this is the same loop, written here so
//! that no floor runs busbar code.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::thread;
use std::time::{Duration, Instant};

/// How long a floor watches before it sleeps: busbar's own window.
const WATCH_FOR: Duration = Duration::from_micros(50);

/// Calls `ready` until it returns `true` or [`WATCH_FOR`] has passed, yielding in between.
pub(in crate::bench) fn watch_briefly(mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if started.elapsed() >= WATCH_FOR {
            return false;
        }
        thread::yield_now();
    }
}

/// Watches a channel for a value with `try_recv` until one comes, the channel reports
/// something other than `is_empty`, or [`WATCH_FOR`] has passed; `None` unless a value came
/// (the caller's blocking receive then waits, or says what is wrong).
pub(in crate::bench) fn watch_for<T, E>(
    mut try_recv: impl FnMut() -> Result<T, E>,
    is_empty: impl Fn(&E) -> bool,
) -> Option<T> {
    let mut received = None;
    watch_briefly(|| match try_recv() {
        Ok(value) => {
            received = Some(value);
            true
        }
        Err(error) => !is_empty(&error),
    });
    received
}

/// Watches `fd` until it is readable or [`WATCH_FOR`] has passed; a blocking read after this
/// then returns at once or sleeps.
pub(in crate::bench) fn watch_readable(fd: BorrowedFd<'_>) {
    watch_briefly(|| {
        let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: `fds` is one valid pollfd for the call's duration, and the descriptor is
        // open while `fd` borrows it. A timeout of 0 only checks.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        // An error (EINTR, say) counts as readable: the blocking read that follows reports
        // whatever is wrong.
        ready != 0
    });
}
