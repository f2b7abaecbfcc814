//! The scheduler: one `busbar-timer` thread per bus, started lazily, that sleeps until the
//! earliest entry of a heap and then fires timers and releases held jobs.
//!
//! Two kinds of entries share the heap:
//! - a timer's next firing (`Task::Tick`), tagged with the timer's generation so that a
//!   stopped timer's entry is simply dropped when it comes due;
//! - an accepted job held until an instant (`Task::Release`): a `publish_after` event, or a
//!   queued event whose rate-limit slot lies in the future.
//!
//! A stopped timer's entry stays in the heap until it comes due (stopping never searches the
//! heap), so a timer started and stopped over and over with a long interval leaves that many
//! stale entries behind for a while; they cost a few dozen bytes each.
//!
//! Held jobs are in flight (so `join` waits for them) and keep the pool's queue open during a
//! graceful shutdown: the bus closes the queue only once the scheduler holds nothing (see
//! [`Scheduler::close`]); otherwise the scheduler closes it after releasing the last job,
//! then exits. `shutdown_now` takes the held jobs away and cancels them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::ticker::{Next, Ticker};
use crate::bus::Shared;
use crate::pool::Job;

/// Why the scheduler did not take an entry.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The bus is shutting down.
    Closing,
    /// The `busbar-timer` thread could not be started.
    Spawn(io::Error),
    /// This is a corelet child, whose bus is private to it (see `Shared::not_in_a_corelet`).
    InCorelet(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Closing => f.write_str("the bus was shut down"),
            Refusal::Spawn(error) => write!(f, "could not start the bus's timer thread: {error}"),
            Refusal::InCorelet(reason) => f.write_str(reason),
        }
    }
}

enum Task {
    Tick {
        ticker: Arc<Ticker>,
        generation: u64,
    },
    /// `reserved`: the job already has its rate-limit slot (this is it); otherwise it reserves
    /// one when released.
    Release {
        job: Job,
        reserved: bool,
    },
}

struct Entry {
    at: Instant,
    /// Entries due at the same instant leave in the order they came.
    seq: u64,
    task: Task,
}

// `BinaryHeap` pops its greatest entry: the greatest here is the earliest (then oldest) one.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Jobs in the heap or being released by the thread right now. While any exist, the
    /// pool's queue stays open.
    held: usize,
    /// Timer entries in the heap (stale ones included), so that closing looks for them only
    /// when there are some.
    ticks: usize,
    /// Set by the bus's shutdown: timers stop, no new entries are taken (held jobs that must
    /// wait longer for their rate-limit slot still are), and the thread exits once it holds
    /// nothing.
    closing: bool,
    /// Set by `cancel_held` (`shutdown_now`): a job the thread is releasing must not be held
    /// again for a later rate-limit slot, where nothing would cancel it.
    cancelled: bool,
    /// The thread once started; taken by `stop_and_join`.
    thread: Option<JoinHandle<()>>,
    started: bool,
}

impl State {
    /// Adds an entry; returns `true` if it is now the earliest (the thread must re-plan).
    fn push(&mut self, at: Instant, task: Task) -> bool {
        if let Task::Tick { .. } = task {
            self.ticks += 1;
        }
        let earliest = self.heap.peek().is_none_or(|first| at < first.at);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, task });
        earliest
    }

    /// Removes and returns every entry due by `now`, earliest first.
    fn pop_due(&mut self, now: Instant) -> Vec<Entry> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|first| first.at <= now) {
            let Some(entry) = self.heap.pop() else { break };
            if let Task::Tick { .. } = entry.task {
                self.ticks -= 1;
            }
            due.push(entry);
        }
        due
    }

    /// Removes the timers' entries, keeping the held jobs.
    fn take_ticks(&mut self) -> Vec<(Arc<Ticker>, u64)> {
        if self.ticks == 0 {
            return Vec::new();
        }
        self.ticks = 0;
        let mut ticks = Vec::new();
        let mut kept = Vec::new();
        for entry in std::mem::take(&mut self.heap).into_vec() {
            match entry.task {
                Task::Tick { ticker, generation } => ticks.push((ticker, generation)),
                Task::Release { .. } => kept.push(entry),
            }
        }
        self.heap = BinaryHeap::from(kept);
        ticks
    }
}

/// The timer heap of one bus and its thread.
#[derive(Default)]
pub(crate) struct Scheduler {
    state: Mutex<State>,
    /// Signalled when an entry becomes the earliest, and at shutdown.
    wake: Condvar,
}

impl Scheduler {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Holds an accepted job until `at`, then releases it to the pool (through its rate limit
    /// unless `reserved`). On refusal the job comes back.
    // The refused job comes back whole, event inline (see `Job`), on a rare path.
    #[allow(clippy::result_large_err)]
    pub(crate) fn hold(
        &self,
        shared: &Arc<Shared>,
        job: Job,
        at: Instant,
        reserved: bool,
    ) -> Result<(), (Job, Refusal)> {
        let mut state = self.lock();
        if let Err(refusal) = self.admit(&mut state, shared) {
            return Err((job, refusal));
        }
        state.held += 1;
        self.push(&mut state, at, Task::Release { job, reserved });
        Ok(())
    }

    /// Holds a job again, until its rate-limit slot (called by the scheduler thread itself
    /// while releasing it). Refused only once [`cancel_held`](Self::cancel_held) has run: the
    /// job comes back, for the caller to cancel. Otherwise the job was accepted, and while it
    /// is held the thread keeps running and the queue stays open.
    pub(crate) fn hold_again(&self, job: Job, slot: Instant) -> Option<Job> {
        let mut state = self.lock();
        if state.cancelled {
            return Some(job);
        }
        state.held += 1;
        self.push(&mut state, slot, Task::Release { job, reserved: true });
        None
    }

    /// Schedules `ticker`'s firing of `generation` at `at`.
    pub(crate) fn add_timer(
        &self,
        shared: &Arc<Shared>,
        ticker: Arc<Ticker>,
        generation: u64,
        at: Instant,
    ) -> Result<(), Refusal> {
        let mut state = self.lock();
        self.admit(&mut state, shared)?;
        self.push(&mut state, at, Task::Tick { ticker, generation });
        Ok(())
    }

    /// Starts closing: timers stop, and the thread exits once it holds no job. Returns `true`
    /// if it holds none now, so the caller may close the pool's queue; otherwise the
    /// scheduler closes it after releasing the last held job.
    pub(crate) fn close(&self) -> bool {
        let mut state = self.lock();
        state.closing = true;
        self.wake.notify_one();
        state.held == 0
    }

    /// Takes every held job away (for `shutdown_now`; call [`close`](Self::close) first).
    ///
    /// A job the thread is releasing at this moment is not among them: it reaches the closed
    /// queue, or the pool's own cancellation, and is resolved there.
    pub(crate) fn cancel_held(&self) -> Vec<Job> {
        let mut state = self.lock();
        state.cancelled = true;
        let mut jobs = Vec::new();
        let mut kept = Vec::new();
        for entry in std::mem::take(&mut state.heap).into_vec() {
            match entry.task {
                Task::Release { job, .. } => jobs.push(job),
                Task::Tick { .. } => kept.push(entry),
            }
        }
        // `held` also counts a job the thread may be releasing right now; that one it
        // subtracts itself.
        state.heap = BinaryHeap::from(kept);
        state.held -= jobs.len();
        self.wake.notify_one();
        jobs
    }

    /// Waits for the thread to exit (after [`close`](Self::close), once nothing is held).
    pub(crate) fn stop_and_join(&self) {
        let thread = self.lock().thread.take();
        if let Some(thread) = thread {
            if thread.thread().id() != thread::current().id() {
                // The thread aborts rather than unwind, so there is no panic to report.
                let _ = thread.join();
            }
        }
    }

    /// Returns `true` once the scheduler's thread was started (for tests).
    #[cfg(test)]
    pub(crate) fn is_started(&self) -> bool {
        self.lock().started
    }

    /// Refuses entries once closing; starts the thread on the first entry.
    fn admit(&self, state: &mut State, shared: &Arc<Shared>) -> Result<(), Refusal> {
        if state.closing {
            return Err(Refusal::Closing);
        }
        if let Some(reason) = shared.not_in_a_corelet("a timer") {
            return Err(Refusal::InCorelet(reason));
        }
        if !state.started {
            let thread = thread::Builder::new().name("busbar-timer".to_owned()).spawn({
                let shared = Arc::clone(shared);
                move || run(&shared)
            });
            state.thread = Some(thread.map_err(Refusal::Spawn)?);
            state.started = true;
        }
        Ok(())
    }

    fn push(&self, state: &mut State, at: Instant, task: Task) {
        if state.push(at, task) {
            self.wake.notify_one();
        }
    }

    // No user code runs under this lock and every update leaves the state consistent, so a
    // poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `busbar-timer` thread's loop.
fn run(shared: &Arc<Shared>) {
    // A panic here would lose held jobs and leave `join` waiting for them forever.
    let abort = AbortIfPanic;
    let scheduler = shared.scheduler();
    let mut state = scheduler.lock();
    loop {
        if state.closing {
            let ticks = state.take_ticks();
            if !ticks.is_empty() {
                drop(state);
                stop_for_shutdown(ticks);
                state = scheduler.lock();
                continue;
            }
            if state.held == 0 {
                break;
            }
        }
        let now = Instant::now();
        let due = state.pop_due(now);
        if due.is_empty() {
            state = match state.heap.peek() {
                Some(first) => {
                    let timeout = first.at.saturating_duration_since(now);
                    scheduler.wake.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0
                }
                None => scheduler.wake.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
            continue;
        }
        // Fire and release without the lock: publishing takes other locks, and timers'
        // `start` takes this one inside theirs.
        drop(state);
        let mut released = 0;
        let mut again = Vec::new();
        for Entry { at, task, .. } in due {
            match task {
                Task::Tick { ticker, generation } => {
                    if let Next::At(next) = ticker.fire(shared, generation, at) {
                        again.push((next, Task::Tick { ticker, generation }));
                    }
                }
                Task::Release { job, reserved } => {
                    shared.release(job, reserved);
                    released += 1;
                }
            }
        }
        state = scheduler.lock();
        // Only now: a job being released still counts as held, so the queue stays open for it.
        state.held -= released;
        for (at, task) in again {
            state.push(at, task);
        }
    }
    drop(state);
    // Nothing is held any more: the pool may drain its queue and stop.
    shared.pool().queue.close();
    std::mem::forget(abort);
}

/// Stops the timers whose entries were in the heap when the bus shut down.
fn stop_for_shutdown(ticks: Vec<(Arc<Ticker>, u64)>) {
    let stopped = ticks.iter().filter(|(ticker, generation)| ticker.stop_for_shutdown(*generation)).count();
    if stopped > 0 {
        tracing::info!(stopped, "busbar: the bus was shut down; its timers stopped");
    }
}

/// Aborts the process if dropped while unwinding; forgotten on the normal path.
struct AbortIfPanic;

impl Drop for AbortIfPanic {
    fn drop(&mut self) {
        eprintln!("busbar: the timer thread panicked; aborting");
        std::process::abort();
    }
}
