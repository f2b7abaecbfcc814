//! A worker's slot: the job whose attempt the worker is running, where the watchdog and
//! `shutdown_now` can take it away.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::job::Started;

/// The job a worker is busy with.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) job: Started,
    /// The attempt number running (or, during a backoff pause, the attempts already made).
    pub(crate) attempt: u32,
    /// When the watchdog should step in; `None` during a backoff pause.
    pub(crate) watch_until: Option<Instant>,
    /// When the job's first attempt started (for the result's duration).
    pub(crate) started: Instant,
}

#[derive(Default)]
struct SlotState {
    running: Option<Running>,
    /// Set when the job was taken away from a stuck worker: the worker exits when its handler
    /// finally returns, because a replacement already took its place in the pool.
    retired: bool,
}

/// One worker's slot.
///
/// On cache lines of its own: the worker takes its lock twice per job, and an allocation of
/// the publisher's that happened to share its line made that a trip to the publisher's CPU.
#[derive(Default)]
pub(crate) struct WorkerSlot {
    state: CachePadded<Mutex<SlotState>>,
}

impl WorkerSlot {
    /// Parks the job here while its attempt (or backoff pause) runs.
    pub(crate) fn occupy(&self, running: Running) {
        self.lock().running = Some(running);
    }

    /// Takes the job back after the attempt; `None` if the watchdog or `shutdown_now` took it.
    pub(crate) fn vacate(&self) -> Option<Running> {
        self.lock().running.take()
    }

    /// Takes the job if its attempt ran past `now`, and retires the worker.
    pub(crate) fn expire(&self, now: Instant) -> Option<Running> {
        let mut state = self.lock();
        let expired = state.running.as_ref().and_then(|r| r.watch_until).is_some_and(|until| until <= now);
        if !expired {
            return None;
        }
        state.retired = true;
        state.running.take()
    }

    /// Takes the job whatever it is doing, and retires the worker (for `shutdown_now`).
    pub(crate) fn cancel(&self) -> Option<Running> {
        let mut state = self.lock();
        let running = state.running.take();
        if running.is_some() {
            state.retired = true;
        }
        running
    }

    /// Returns when the watchdog should look at this slot next.
    pub(crate) fn watch_until(&self) -> Option<Instant> {
        self.lock().running.as_ref().and_then(|r| r.watch_until)
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.lock().retired
    }

    // Only bus code runs under this lock; a poisoned lock still holds a consistent state.
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
