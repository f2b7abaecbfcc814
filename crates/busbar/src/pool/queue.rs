//! The bounded priority queue between publishers and workers.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::job::Job;

/// How a push treats a full queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Wait for room (`publish`).
    Block,
    /// Give the job back (`try_publish`).
    Try,
    /// Ignore the bound: retries and events published from pool workers, which must not wait
    /// for room that only the pool itself can make.
    Force,
}

/// Why a job was not queued; the job comes back.
#[derive(Debug)]
pub(crate) enum PushError {
    Full(Job),
    Closed(Job),
}

/// Higher priority first; among equals, lower sequence number (earlier publish) first.
struct Queued {
    priority: i32,
    seq: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

struct State {
    heap: BinaryHeap<Queued>,
    next_seq: u64,
    closed: bool,
    /// Workers blocked in `pop`: only then does a push need to wake one (saves a syscall).
    idle_workers: usize,
    /// Publishers blocked in `push`: only then does a pop need to wake one.
    waiting_publishers: usize,
}

/// A bounded, priority-ordered, closable queue of jobs.
///
/// The lock is held only to push or pop, never while a handler runs.
pub(crate) struct JobQueue {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

impl JobQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        JobQueue {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                next_seq: 0,
                closed: false,
                idle_workers: 0,
                waiting_publishers: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
        }
    }

    pub(crate) fn push(&self, job: Job, admission: Admission) -> Result<(), PushError> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(PushError::Closed(job));
            }
            if state.heap.len() < self.capacity || admission == Admission::Force {
                break;
            }
            if admission == Admission::Try {
                return Err(PushError::Full(job));
            }
            state.waiting_publishers += 1;
            state = self.not_full.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting_publishers -= 1;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.heap.push(Queued { priority: job.event.priority(), seq, job });
        if state.idle_workers > 0 {
            self.not_empty.notify_one();
        }
        Ok(())
    }

    /// Takes the most urgent job, waiting for one; `None` once the queue is closed and empty.
    pub(crate) fn pop(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(queued) = state.heap.pop() {
                if state.waiting_publishers > 0 {
                    self.not_full.notify_one();
                }
                return Some(queued.job);
            }
            if state.closed {
                return None;
            }
            state.idle_workers += 1;
            state = self.not_empty.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.idle_workers -= 1;
        }
    }

    /// Refuses further pushes (but `Force`d ones, see below) and wakes everyone waiting.
    ///
    /// Workers still drain what is queued; `pop` returns `None` once it is empty.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Requeues a retry even if the queue is closed: it was accepted before the close, and a
    /// graceful shutdown promises to finish it.
    pub(crate) fn requeue(&self, job: Job) {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.heap.push(Queued { priority: job.event.priority(), seq, job });
        self.not_empty.notify_one();
    }

    /// Removes and returns every queued job (for `shutdown_now`).
    pub(crate) fn drain(&self) -> Vec<Job> {
        let jobs: Vec<Job> = self.lock().heap.drain().map(|queued| queued.job).collect();
        self.not_full.notify_all();
        jobs
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().heap.len()
    }

    // No user code runs under this lock and every update leaves the state consistent, so a
    // poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
