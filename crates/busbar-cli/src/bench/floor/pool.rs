//! Floor of thread mode: a bare `Mutex<BinaryHeap>` + `Condvar` pool.
//!
//! Priority-ordered like busbar's queue (higher first, FIFO among equals), unbounded, with a
//! count of unfinished jobs for `join`. A worker takes its next job in the same lock
//! acquisition in which it counts the last one finished; nothing else.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use busbar::Event;

use super::Handler;

/// The pool: workers sharing one heap.
pub(in crate::bench) struct FloorPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled for every submitted job and at close.
    work: Condvar,
    /// Signalled when the last unfinished job finishes.
    idle: Condvar,
    handler: Handler,
}

struct State {
    heap: BinaryHeap<Job>,
    next_seq: u64,
    /// Submitted jobs not finished yet (queued or running).
    unfinished: usize,
    closed: bool,
}

/// A queued event, ordered by priority, then by submission.
struct Job {
    priority: i32,
    seq: u64,
    event: Event,
}

impl FloorPool {
    /// Starts `workers` threads running `handler`.
    pub(in crate::bench) fn new(workers: usize, handler: Handler) -> io::Result<FloorPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { heap: BinaryHeap::new(), next_seq: 0, unfinished: 0, closed: false }),
            work: Condvar::new(),
            idle: Condvar::new(),
            handler,
        });
        let mut pool = FloorPool { shared, workers: Vec::with_capacity(workers) };
        for index in 0..workers {
            let shared = Arc::clone(&pool.shared);
            let worker =
                thread::Builder::new().name(format!("floor-worker-{index}")).spawn(move || work(&shared))?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// Queues `event` for a worker.
    pub(in crate::bench) fn submit(&self, event: Event) {
        let mut state = self.shared.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.unfinished += 1;
        state.heap.push(Job { priority: event.priority(), seq, event });
        drop(state);
        self.shared.work.notify_one();
    }

    /// Waits until every submitted job has finished.
    pub(in crate::bench) fn join(&self) {
        let mut state = self.shared.lock();
        while state.unfinished > 0 {
            state = self.shared.idle.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for FloorPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(shared: &Shared) {
    let mut finished_one = false;
    let mut state = shared.lock();
    loop {
        if finished_one {
            finished_one = false;
            state.unfinished -= 1;
            if state.unfinished == 0 {
                shared.idle.notify_all();
            }
        }
        if let Some(job) = state.heap.pop() {
            drop(state);
            let _ = std::hint::black_box((shared.handler)(&job.event));
            drop(job);
            finished_one = true;
            state = shared.lock();
            continue;
        }
        if state.closed {
            return;
        }
        state = shared.work.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ord for Job {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: the higher priority wins, then the earlier submission.
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Job {}
