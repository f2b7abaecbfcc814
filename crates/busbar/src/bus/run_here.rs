//! A waiter that runs its own event: the fast path of a corelet round trip.
//!
//! A corelet attempt is mostly waiting on a child process, so the thread that runs it matters
//! only for latency. Handing the job to a pool worker and the result back costs two thread
//! wake-ups, each of which lands on another CPU; the child's answer over its pipe wakes the
//! waiting thread directly. So a thread about to block on the handle of a corelet event that
//! no worker has started yet takes the job and runs the attempt itself.
//!
//! Only the job a worker would take next is taken, so priority order holds; the job is the
//! same `Job` a worker would run, resolved through the same `Shared::resolve`, so "exactly one
//! result" holds; a retry goes back to the pool. Publishing such an event wakes no worker
//! (`JobQueue::push_deferred`): one that nobody waits for is started by the watchdog's sweep.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Shared;
use crate::attempt;
use crate::event::EventId;
use crate::pool::{self, Job};

/// Time allowed, beyond the kill grace, for killing and reaping a corelet that overran.
const REAP_MARGIN: Duration = Duration::from_secs(1);

/// The right of an event's handle to run the event's first attempt on the waiting thread.
///
/// Holds the bus weakly: a handle does not keep a dropped bus alive.
pub(crate) struct RunHere(Weak<Shared>);

impl RunHere {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        RunHere(Arc::downgrade(shared))
    }

    /// Runs the first attempt of event `id` on this thread if its job is still queued and is
    /// the next one the pool would start, and returns `true`; otherwise does nothing.
    ///
    /// A caller that waits only until `wait_until` runs it only if the attempt is sure to end
    /// by then: the attempt's hard timeout, the grace its process gets when killed, and a
    /// margin for reaping it. Otherwise the caller could not return at its own deadline.
    pub(crate) fn run_if_next(&self, id: EventId, wait_until: Option<Instant>) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let ends_in_time = |job: &Job| match wait_until {
            None => true,
            // Checked throughout: a timeout near the maximum must mean "not in time", not a
            // panic (the grace is bounded by `CoreletConfig`'s checks, but need not be here).
            Some(wait_until) => job
                .event()
                .timeout()
                .checked_add(shared.corelet_kill_grace())
                .and_then(|bound| bound.checked_add(REAP_MARGIN))
                .and_then(|bound| Instant::now().checked_add(bound))
                .is_some_and(|latest_end| latest_end <= wait_until),
        };
        let is_fresh_job = |job: &Job| job.event().id() == id && job.resume.is_none() && ends_in_time(job);
        match shared.pool().queue.take_if_next(is_fresh_job) {
            Some(job) => {
                pool::run_first_attempt_here(&shared, job);
                true
            }
            None => {
                // Its job is behind others, or running. Queued corelet jobs wake no worker
                // (see `JobQueue::push_deferred`): make sure one is on them rather than wait
                // for the watchdog's sweep.
                shared.pool().queue.wake_for_waiter();
                false
            }
        }
    }
}

impl Shared {
    /// Gives back a job whose first attempt ran outside the pool: `Some` for its retry, `None`
    /// once it has its result (see `JobQueue::give_back`).
    pub(crate) fn give_back(&self, retry: Option<Job>) {
        let requeued = retry.is_some();
        self.pool().queue.give_back(retry);
        if !requeued {
            return;
        }
        // `shutdown_now` may have drained the queue between the verdict and the requeue, and
        // the workers may be gone: then nobody else would resolve the job.
        if self.is_killed() {
            for job in self.pool().queue.drain() {
                self.resolve(job, attempt::cancelled(), None);
            }
        }
    }
}
