//! The worker pool behind every queued mode: a bounded priority queue, named worker threads,
//! and a watchdog for attempts that overrun their deadline.

mod job;
mod lanes;
mod prefetch;
mod queue;
mod slot;
mod watchdog;
mod worker;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

pub(crate) use job::{Job, Started};
pub(crate) use queue::{Admission, PushError};
pub(crate) use worker::run_first_attempt_here;

use queue::JobQueue;
use slot::WorkerSlot;
use watchdog::Watchdog;

use crate::bus::Shared;

/// A live worker: its slot and its thread.
struct Worker {
    slot: Arc<WorkerSlot>,
    handle: JoinHandle<()>,
}

#[derive(Default)]
struct Threads {
    started: bool,
    /// Workers that are part of the pool; stuck ones leave this list when retired.
    live: Vec<Worker>,
    watchdog: Option<JoinHandle<()>>,
}

/// The pool: queue, workers and watchdog. Threads start on the first queued event.
pub(crate) struct Pool {
    pub(crate) queue: JobQueue,
    threads: usize,
    workers: Mutex<Threads>,
    watchdog: Watchdog,
    next_index: AtomicUsize,
    replaced: AtomicU64,
    /// Mirrors `Threads::started` for a lock-free check on every publish.
    started: AtomicBool,
}

impl Pool {
    pub(crate) fn new(threads: usize, queue_capacity: usize) -> Self {
        Pool {
            queue: JobQueue::new(queue_capacity),
            threads,
            workers: Mutex::new(Threads::default()),
            watchdog: Watchdog::new(),
            next_index: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            started: AtomicBool::new(false),
        }
    }

    pub(crate) fn watchdog(&self) -> &Watchdog {
        &self.watchdog
    }

    /// Starts the workers and the watchdog unless they run already.
    ///
    /// # Errors
    ///
    /// Fails if not a single worker thread could be started; fewer than asked is logged.
    pub(crate) fn ensure_started(&self, shared: &Arc<Shared>) -> io::Result<()> {
        // ORDERING: Acquire pairs with the Release store below, so a publisher that sees
        // `true` also sees the started threads (it only needs the queue, which has its own
        // lock; the flag just skips the pool lock on the hot path).
        if self.started.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut threads = self.lock();
        if threads.started {
            return Ok(());
        }
        // The watchdog first: if it cannot start, nothing else has (a failure after the workers
        // started would leave them running, and the next publish would start a second set).
        // Kept if the workers then fail: the next attempt reuses it.
        if threads.watchdog.is_none() {
            let watchdog = thread::Builder::new().name("busbar-watchdog".to_owned()).spawn({
                let shared = Arc::clone(shared);
                move || watchdog::run(&shared)
            })?;
            threads.watchdog = Some(watchdog);
        }
        let mut first_error = None;
        for _ in 0..self.threads {
            match self.spawn_worker(shared) {
                Ok(worker) => threads.live.push(worker),
                Err(error) => {
                    // The system refuses threads now; asking for the rest would fail alike.
                    let started = threads.live.len();
                    tracing::error!(%error, started, "busbar: could not start a worker thread; the pool runs with those started");
                    first_error = Some(error);
                    break;
                }
            }
        }
        if threads.live.is_empty() {
            return Err(first_error.unwrap_or_else(|| io::Error::other("no worker threads")));
        }
        threads.started = true;
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    fn spawn_worker(&self, shared: &Arc<Shared>) -> io::Result<Worker> {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let (slot, handle) = worker::spawn(shared, index)?;
        Ok(Worker { slot, handle })
    }

    /// Takes attempts that ran past their deadline from their workers, resolves or requeues
    /// them, and replaces each stuck worker with a fresh one.
    fn expire_stuck(&self, shared: &Arc<Shared>, now: Instant) {
        let mut threads = self.lock();
        let mut index = 0;
        while index < threads.live.len() {
            let Some(running) = threads.live[index].slot.expire(now) else {
                index += 1;
                continue;
            };
            // Detach the stuck thread: it exits when its handler returns.
            drop(threads.live.swap_remove(index));
            tracing::warn!(
                id = %running.job.event.id(),
                r#type = running.job.event.event_type(),
                attempt = running.attempt,
                "busbar: a handler ran past its deadline; its worker is replaced"
            );
            // Requeue before starting the replacement, so that a replacement on a closed,
            // empty queue cannot exit before the retry arrives.
            if let Some(retry) = worker::time_out(shared, running) {
                self.queue.requeue(retry);
            }
            match self.spawn_worker(shared) {
                Ok(worker) => {
                    threads.live.push(worker);
                    self.replaced.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::error!(%error, "busbar: could not replace a stuck worker"),
            }
        }
    }

    fn earliest_watch(&self) -> Option<Instant> {
        self.lock().live.iter().filter_map(|worker| worker.slot.watch_until()).min()
    }

    fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Takes every job from the queue and from the workers (for `shutdown_now`).
    /// Each comes with when its first attempt started, if it did.
    pub(crate) fn cancel_all(&self) -> Vec<(Job, Option<Instant>)> {
        let mut jobs: Vec<_> = self.queue.drain().into_iter().map(|job| (job, None)).collect();
        let mut threads = self.lock();
        let mut index = 0;
        while index < threads.live.len() {
            match threads.live[index].slot.cancel() {
                Some(running) => {
                    let mut job = running.job.into_job();
                    // The attempt in progress (or, in a backoff pause, the last one) counts.
                    job.attempts_made = running.attempt;
                    jobs.push((job, Some(running.started)));
                    // Its handler may still run; it exits afterwards (the slot is retired).
                    drop(threads.live.swap_remove(index));
                }
                None => index += 1,
            }
        }
        jobs
    }

    /// Stops the watchdog and joins every live worker and the watchdog.
    ///
    /// Call only once the queue is closed (workers exit when it is empty). Workers retired
    /// because their handler overran are detached, not joined.
    pub(crate) fn stop_and_join(&self) {
        self.watchdog.stop();
        let (workers, watchdog) = {
            let mut threads = self.lock();
            (std::mem::take(&mut threads.live), threads.watchdog.take())
        };
        for worker in workers {
            // A worker never unwinds (it aborts instead), so join only fails if it was
            // already reported; nothing is left to clean up either way.
            let _ = worker.handle.join();
        }
        if let Some(watchdog) = watchdog {
            let _ = watchdog.join();
        }
    }

    /// Stops the watchdog and waits for it, without waiting for workers.
    pub(crate) fn stop_watchdog(&self) {
        self.watchdog.stop();
        let watchdog = self.lock().watchdog.take();
        if let Some(watchdog) = watchdog {
            if watchdog.thread().id() != thread::current().id() {
                let _ = watchdog.join();
            }
        }
    }

    pub(crate) fn live_workers(&self) -> usize {
        self.lock().live.len()
    }

    pub(crate) fn replaced_workers(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Threads> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
