//! The watchdog: resolves thread-mode attempts that run past their deadline and replaces the
//! stuck worker, so a waiter is released at the deadline and the pool keeps its capacity.
//!
//! It sleeps until the earliest deadline among running attempts. Workers tell it about a new
//! deadline only when it is earlier than the one it plans to wake at (`planned`), so in the
//! common case (equal timeouts, later deadlines) starting an attempt costs no wake-up.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::atomic::AtomicCell;

use crate::bus::Shared;

/// How often the watchdog looks while a closed bus drains, to notice it can exit.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// How soon after a deferred push (`JobQueue::push_deferred`) the watchdog sweeps the queue;
/// a corelet event that nobody waits for starts within two of these while workers sleep.
pub(crate) const DEFERRED_START: Duration = Duration::from_millis(1);

#[derive(Default)]
struct WatchState {
    /// A worker registered a deadline earlier than `planned` since the last scan.
    dirty: bool,
    stopped: bool,
}

pub(crate) struct Watchdog {
    state: Mutex<WatchState>,
    wake: Condvar,
    /// When the watchdog will next scan, if it plans to. While it scans, this is `None`, so
    /// that a worker registering during the scan always marks it dirty. (The worker's slot's
    /// lock orders its registration against the scan, which reads the slots under their
    /// locks.)
    ///
    /// An `AtomicCell` (a sequence lock for a value this size) rather than nanoseconds in an
    /// `AtomicU64`: workers read it for every attempt, and converting their `Instant` to
    /// nanoseconds cost more than the rest of the check.
    planned: AtomicCell<Option<Instant>>,
}

impl Watchdog {
    pub(crate) fn new() -> Self {
        Watchdog {
            state: Mutex::new(WatchState::default()),
            wake: Condvar::new(),
            planned: AtomicCell::new(None),
        }
    }

    /// Tells the watchdog an attempt must be looked at by `until`.
    ///
    /// The worker registered the attempt in its slot before calling this. If the watchdog is
    /// scanning (no plan), or plans to wake later than `until`, we mark it dirty and wake it:
    /// it rescans before sleeping. If it plans to wake earlier, it rescans by then anyway and
    /// sees this slot.
    pub(crate) fn watch(&self, until: Instant) {
        if self.planned.load().is_none_or(|planned| until < planned) {
            self.lock().dirty = true;
            self.wake.notify_one();
        }
    }

    /// Tells the watchdog that a job was pushed without waking a worker: it sweeps the queue
    /// within [`DEFERRED_START`]. While such pushes keep coming it sweeps at that period
    /// anyway, so this costs a wake-up only for the first of a series.
    pub(crate) fn expect_deferred(&self) {
        self.watch(Instant::now() + DEFERRED_START);
    }

    /// Stops the watchdog thread.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The watchdog thread's loop.
pub(crate) fn run(shared: &Arc<Shared>) {
    let pool = shared.pool();
    let watchdog = pool.watchdog();
    let mut state = watchdog.lock();
    loop {
        if state.stopped {
            return;
        }
        state.dirty = false;
        watchdog.planned.store(None);
        drop(state);

        let now = Instant::now();
        pool.expire_stuck(shared, now);
        let mut next = pool.earliest_watch();
        if pool.queue.sweep_deferred(now, DEFERRED_START) {
            let sweep = now + DEFERRED_START;
            next = Some(next.map_or(sweep, |next| next.min(sweep)));
        }
        if pool.is_closed() {
            if shared.in_flight() == 0 {
                return;
            }
            next = Some(next.map_or(now + DRAIN_POLL, |next| next.min(now + DRAIN_POLL)));
        }

        state = watchdog.lock();
        watchdog.planned.store(next);
        if state.dirty || state.stopped {
            continue;
        }
        state = match next {
            Some(next) => {
                let timeout = next.saturating_duration_since(Instant::now());
                watchdog.wake.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0
            }
            None => watchdog.wake.wait(state).unwrap_or_else(PoisonError::into_inner),
        };
    }
}
