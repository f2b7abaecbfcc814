//! A queued event and the sender of its result.

use std::sync::Arc;
use std::time::Instant;

use crate::event::Event;
use crate::factory::Registration;
use crate::handle::ResultSender;

/// An accepted event on its way through the pool.
///
/// Whoever holds the `Job` is the only one who may resolve it: the queue while it waits, the
/// worker's slot while an attempt runs, the watchdog or `shutdown_now` once they took it from
/// the slot. Moving the job is what makes "exactly one result per event" hold.
///
/// A million jobs may wait in the queue, so the job is kept small (the two attempt counters
/// share one word): what only a requeued retry needs lives behind a pointer.
#[derive(Debug)]
pub(crate) struct Job {
    event: JobEvent,
    pub(crate) reply: ResultSender,
    /// The handler registered for the event's type when it was published (`None` for modes
    /// that need none); the one that runs, even if the type is registered anew meanwhile.
    pub(crate) registration: Option<Arc<Registration>>,
    /// Attempts that already ran (and failed).
    pub(crate) attempts_made: u32,
    /// The last attempt the pool may run: `1 + retry_count`, or the one attempt of a job
    /// published with `EventBus::publish_attempt`, whose caller does its own retrying.
    pub(crate) max_attempts: u32,
    /// Set when the watchdog requeues a timed-out attempt for a retry.
    pub(crate) resume: Option<Box<Resume>>,
}

/// A job's event: in the job until an attempt starts, then shared.
///
/// Queued events are held inline rather than in an `Arc` made by the publisher: a worker
/// frees whatever the job owns, and every allocation made on one thread and freed on another
/// takes the allocator's lock on both sides (glibc's arena lock), which three busy threads
/// contend for. The worker makes the `Arc` itself, on its own heap.
#[derive(Debug)]
enum JobEvent {
    Owned(Event),
    /// Shared with the running handler's context, so the watchdog can requeue a timed-out
    /// attempt while the handler still holds the event.
    Shared(Arc<Event>),
}

/// A job whose attempt is under way: its event shared with the attempt, everything else as in
/// the [`Job`]. What a worker's slot holds while the attempt runs.
///
/// A `Job` is as large as its event (it holds it inline, see there), and a worker moves what
/// it runs several times per attempt: into its slot and out, to the verdict, to the result.
/// Moving a `Job` copied the event each time, some 15 calls of `memcpy` per job in all
/// (callgrind on `busbar bench --scenario thread-round-trip --quick`); this is a few words.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) event: Arc<Event>,
    pub(crate) reply: ResultSender,
    pub(crate) registration: Option<Arc<Registration>>,
    pub(crate) attempts_made: u32,
    pub(crate) max_attempts: u32,
    pub(crate) resume: Option<Box<Resume>>,
}

impl Started {
    /// The job again, its event still shared: for a retry to requeue, or a job taken away.
    pub(crate) fn into_job(self) -> Job {
        let Started { event, reply, registration, attempts_made, max_attempts, resume } = self;
        Job { event: JobEvent::Shared(event), reply, registration, attempts_made, max_attempts, resume }
    }
}

/// Where a requeued job's retry picks up.
#[derive(Debug)]
pub(crate) struct Resume {
    /// When the first attempt started (for the result's duration).
    pub(crate) started: Instant,
    /// The retry waits until then (backoff).
    pub(crate) not_before: Option<Instant>,
}

impl Job {
    pub(crate) fn new(event: Event, registration: Option<Arc<Registration>>, reply: ResultSender) -> Self {
        let max_attempts = event.max_attempts();
        let event = JobEvent::Owned(event);
        Job { event, reply, registration, attempts_made: 0, max_attempts, resume: None }
    }

    /// Creates a job that runs only attempt number `attempt` of its event (at least 1).
    pub(crate) fn single_attempt(
        event: Event,
        registration: Option<Arc<Registration>>,
        reply: ResultSender,
        attempt: u32,
    ) -> Self {
        let attempt = attempt.max(1);
        Job { attempts_made: attempt - 1, max_attempts: attempt, ..Job::new(event, registration, reply) }
    }

    pub(crate) fn event(&self) -> &Event {
        match &self.event {
            JobEvent::Owned(event) => event,
            JobEvent::Shared(event) => event,
        }
    }

    /// Returns the job with its event shared, and the event, for an attempt to hold.
    pub(crate) fn share_event(self) -> (Job, Arc<Event>) {
        let started = self.start();
        let event = Arc::clone(&started.event);
        (started.into_job(), event)
    }

    /// Shares the event, for an attempt to start: on the worker's thread, which makes the
    /// `Arc` on its own heap (see [`JobEvent`]).
    pub(crate) fn start(self) -> Started {
        let Job { event, reply, registration, attempts_made, max_attempts, resume } = self;
        let event = match event {
            JobEvent::Owned(event) => Arc::new(event),
            JobEvent::Shared(event) => event,
        };
        Started { event, reply, registration, attempts_made, max_attempts, resume }
    }

    /// Takes the event back (from a job that was refused, so nobody shares it: no clone).
    pub(crate) fn into_event(self) -> Event {
        match self.event {
            JobEvent::Owned(event) => event,
            JobEvent::Shared(event) => Arc::unwrap_or_clone(event),
        }
    }
}
