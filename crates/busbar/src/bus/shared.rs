//! The state every handle of one bus shares, and the operations behind `EventBus`'s methods.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use crate::attempt;
use crate::backoff::RetryBackoff;
use crate::context;
use crate::error::{InvalidEventError, NoHandlerAvailableError, PublishError};
use crate::event::{Event, MAX_TIMEOUT};
use crate::factory::EventFactory;
use crate::handle::EventHandle;
use crate::pool::{Admission, Job, Pool, PushError};
use crate::result::{ErrorKind, EventResult};
use crate::stats::{BusStats, Counters};

pub(crate) struct Shared {
    factory: EventFactory,
    pool: Pool,
    backoff: RetryBackoff,
    /// Set by any shutdown: publishing is refused from then on.
    closed: AtomicBool,
    /// Set by `shutdown_now`: contexts report cancellation, no more retries.
    killed: AtomicBool,
    /// Accepted events without a result yet. `join` waits for it to reach zero.
    in_flight: AtomicUsize,
    idle_lock: Mutex<()>,
    idle: Condvar,
    counters: Counters,
    /// Serialises graceful shutdowns: a second caller waits for the first to finish.
    shutdown_lock: Mutex<()>,
}

thread_local! {
    /// The bus whose pool this thread works for (its `Shared` address), or 0.
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as a worker of `shared` for as long as the guard lives.
pub(crate) fn enter_worker(shared: &Arc<Shared>) -> WorkerGuard {
    WORKER_OF.with(|worker_of| worker_of.set(Arc::as_ptr(shared) as usize));
    WorkerGuard
}

pub(crate) struct WorkerGuard;

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER_OF.with(|worker_of| worker_of.set(0));
    }
}

impl Shared {
    pub(super) fn new(
        factory: EventFactory,
        threads: usize,
        queue_capacity: usize,
        backoff: RetryBackoff,
    ) -> Self {
        Shared {
            factory,
            pool: Pool::new(threads, queue_capacity),
            backoff,
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
            counters: Counters::default(),
            shutdown_lock: Mutex::new(()),
        }
    }

    pub(crate) fn factory(&self) -> &EventFactory {
        &self.factory
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn backoff(&self) -> &RetryBackoff {
        &self.backoff
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Returns `true` if the current thread is one of this bus's pool workers.
    fn is_own_worker(self: &Arc<Self>) -> bool {
        WORKER_OF.with(Cell::get) == Arc::as_ptr(self) as usize
    }

    pub(crate) fn publish(
        self: &Arc<Self>,
        mut event: Event,
        admission: Admission,
    ) -> Result<EventHandle, PublishError> {
        if let Some(reason) = invalid_reason(&event) {
            return Err(InvalidEventError::new(reason, event).into());
        }
        if event.mode().needs_handler() && !self.factory.is_handler_available(event.event_type()) {
            return Err(NoHandlerAvailableError::new(event).into());
        }
        if let Some(parent) = context::current_parent() {
            event.inherit_from(parent);
        }
        if self.is_closed() {
            return Err(PublishError::ShutDown(Box::new(event)));
        }
        // Counted before it can run, so `join` never misses it.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if !event.mode().is_queued() {
            self.counters.record_published();
            let event = Arc::new(event);
            let result = attempt::run_inline(self, &event);
            self.finished(&result);
            return Ok(EventHandle::ready(result));
        }
        self.enqueue(event, admission)
    }

    fn enqueue(
        self: &Arc<Self>,
        event: Event,
        mut admission: Admission,
    ) -> Result<EventHandle, PublishError> {
        // A worker waiting for room that only workers can make would deadlock the pool.
        if self.is_own_worker() {
            admission = Admission::Force;
        }
        let (handle, reply) = EventHandle::pending(event.id());
        let job = Job::new(Arc::new(event), reply);
        if let Err(error) = self.pool.ensure_started(self) {
            // Accepted, but nothing can run it: resolve it at once with the reason.
            self.counters.record_published();
            let message = format!("could not start the bus's worker threads: {error}");
            self.resolve(job, EventResult::failed(ErrorKind::Internal, message));
            return Ok(handle);
        }
        match self.pool.queue.push(job, admission) {
            Ok(()) => {
                self.counters.record_published();
                Ok(handle)
            }
            Err(refused) => {
                self.not_accepted();
                let (was_full, job) = match refused {
                    PushError::Full(job) => (true, job),
                    PushError::Closed(job) => (false, job),
                };
                // Nobody else holds the event yet, so this does not clone.
                let event = Box::new(Arc::unwrap_or_clone(job.event));
                Err(if was_full { PublishError::Full(event) } else { PublishError::ShutDown(event) })
            }
        }
    }

    /// Delivers the final result of a queued job.
    pub(crate) fn resolve(&self, job: Job, result: EventResult) {
        let started = job.started.unwrap_or_else(Instant::now);
        let result = attempt::finish(result, &job.event, job.attempts_made, started);
        self.finished(&result);
        // The receiver may be gone (handle dropped): the event still counted as finished.
        let _ = job.reply.send(result);
    }

    fn finished(&self, result: &EventResult) {
        self.counters.record_result(result);
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Take the lock so a joiner between its check and its wait cannot miss this.
            let _guard = self.idle_lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    fn not_accepted(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits until no accepted event is without a result.
    pub(crate) fn join(self: &Arc<Self>) {
        if self.is_own_worker() {
            tracing::warn!("busbar: join() called from one of the bus's own handlers returns at once: it would wait for itself");
            return;
        }
        let mut guard = self.idle_lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.in_flight() > 0 {
            guard = self.idle.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Refuses new events; queued ones still run. Does not wait.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pool.queue.close();
    }

    pub(crate) fn shutdown(self: &Arc<Self>) {
        self.close();
        if self.is_own_worker() {
            tracing::warn!(
                "busbar: shutdown() called from one of the bus's own handlers does not wait for the pool"
            );
            return;
        }
        let _serialised = self.shutdown_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.join();
        self.pool.stop_and_join();
    }

    pub(crate) fn shutdown_now(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.close();
        // The watchdog may be requeueing a timed-out attempt right now: stop it before draining.
        self.pool.stop_watchdog();
        for job in self.pool.cancel_all() {
            self.resolve(job, attempt::cancelled());
        }
    }

    pub(crate) fn stats(&self) -> BusStats {
        BusStats {
            in_flight: self.in_flight() as u64,
            queued: self.pool.queue.len() as u64,
            workers: self.pool.live_workers() as u64,
            replaced_workers: self.pool.replaced_workers(),
            ..self.counters.snapshot()
        }
    }
}

/// Returns why `event` cannot be published, if it cannot.
fn invalid_reason(event: &Event) -> Option<String> {
    if event.event_type().trim().is_empty() {
        return Some("the event type is empty; expected a name such as `user.created`".to_owned());
    }
    let timeout = event.timeout();
    if timeout.is_zero() {
        return Some("the timeout is zero; expected a positive duration".to_owned());
    }
    if timeout > MAX_TIMEOUT {
        return Some(format!("the timeout of {timeout:?} is longer than the maximum of one year"));
    }
    None
}
