//! The bounded priority queue between publishers and workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::job::Job;
use super::lanes::Lanes;
use super::prefetch::{self, WritePrefetch};
use crate::watch;

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

/// What the lock guards.
///
/// `#[repr(C)]` with `lanes` first: a `Mutex` keeps its data after its lock (data that may be
/// unsized must come last), and on Linux that lock is a futex word held inline, so the lock
/// word and what a push or pop of a job changes share the queue's first cache line (see
/// [`Lanes`]; a test checks the layout on the platforms busbar is measured on).
#[repr(C)]
struct State {
    lanes: Lanes,
    closed: bool,
    /// Workers blocked in `pop`: only then does a push need to wake one (saves a syscall).
    idle_workers: usize,
    /// Wake-ups sent to idle workers that have not woken yet. A push wakes a worker only while
    /// `idle_workers > wakeups_pending`: a worker already woken drains the queue before it
    /// sleeps again, so waking it again (a futex syscall per push) would do nothing.
    wakeups_pending: usize,
    /// Publishers blocked in `push`: only then does a pop need to wake one.
    waiting_publishers: usize,
    /// A job was pushed without waking a worker ([`push_deferred`](JobQueue::push_deferred))
    /// since the watchdog's last [`sweep_deferred`](JobQueue::sweep_deferred).
    deferred: bool,
    /// The watchdog sweeps within a period: from a deferred push that scheduled a sweep until a
    /// sweep finds no reason to sweep again. A deferred push meanwhile schedules nothing (see
    /// [`push_deferred`](JobQueue::push_deferred)).
    sweeping: bool,
    /// When the last sweep counted.
    last_sweep: Option<Instant>,
    /// Jobs that a waiter took to run itself ([`take_if_next`](JobQueue::take_if_next)) and
    /// has not given back yet. Each may come back for a retry, so a closed queue keeps its
    /// workers until none is out: otherwise a retry given back after they left would wait
    /// forever (and `shutdown()` with it).
    lent_out: usize,
}

/// What the workers tell each other without the lock.
#[derive(Default)]
struct Taken {
    /// Jobs taken out in all (see `JobQueue::pushed`).
    total: AtomicUsize,
    /// Where the next job to take most likely lies, for the next worker that sees one pushed
    /// to fetch before it locks (see `super::prefetch`); 0 if not known.
    next_slot: AtomicUsize,
}

/// A bounded, priority-ordered, closable queue of jobs.
///
/// The lock is held only to push or pop, never while a handler runs.
pub(crate) struct JobQueue {
    /// Aligned to a cache line, so that its first line holds the lock word and the fields a
    /// push and a pop change (see [`State`]).
    state: CachePadded<Mutex<State>>,
    /// Jobs pushed in all, and taken out in all, as of recent changes: read without the lock
    /// by a worker watching for work (see [`pop_after_work`](Self::pop_after_work)), which
    /// takes the lock once `pushed` is ahead of `taken`.
    ///
    /// Two totals rather than one length, each on its own cache line and written only by its
    /// own side: with one length, the worker's store after each pop took the line back from
    /// the publisher, and its next locked instruction waited for that (x86 drains its store
    /// buffer there). Now a worker's stores stay in its own cache.
    ///
    /// A push stores its total after unlocking, so racing pushes may store theirs out of
    /// order, and a watcher may take the lock in vain or see a job only when its watch ends;
    /// `pop` puts both totals right before it sleeps.
    pushed: CachePadded<AtomicUsize>,
    taken: CachePadded<Taken>,
    /// Where the next push will most likely write its job: the slot after the last push's, for
    /// the next publisher to fetch early (see [`prepare_push`](Self::prepare_push)); 0 if not
    /// known. On a line of its own, which only publishers write.
    next_push: CachePadded<AtomicUsize>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    write_prefetch: WritePrefetch,
}

impl JobQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        JobQueue {
            state: CachePadded::new(Mutex::new(State {
                lanes: Lanes::default(),
                closed: false,
                idle_workers: 0,
                wakeups_pending: 0,
                waiting_publishers: 0,
                deferred: false,
                sweeping: false,
                last_sweep: None,
                lent_out: 0,
            })),
            pushed: CachePadded::default(),
            taken: CachePadded::default(),
            next_push: CachePadded::default(),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            write_prefetch: WritePrefetch::detect(),
        }
    }

    /// Asks the CPU for the cache lines a push is about to write, the lock's and the slot's
    /// its job most likely goes to, so that they are this thread's by the time it pushes: for
    /// a publisher to call as a publish begins, before the work that comes ahead of the push,
    /// which the fetches then overlap (see `super::prefetch`). Only a hint: nothing changes
    /// but timing, and a publish that is refused or waits has wasted a fetch.
    pub(crate) fn prepare_push(&self) {
        let lock = &*self.state as *const Mutex<State> as usize;
        prefetch::lines_to_write(self.write_prefetch, lock, self.next_push.load(Ordering::Relaxed));
    }

    /// How many jobs the queue holds before `Block` waits and `Try` is refused.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    // A refused job comes back whole, event inline (see `Job`); boxing it for this rare path
    // would cost an allocation, not save one.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&self, job: Job, admission: Admission) -> Result<(), PushError> {
        self.push_waking(job, admission, true).map(drop)
    }

    /// [`push`](Self::push) without waking a sleeping worker: for a job that the thread about to
    /// wait for it will most likely take and run itself (a corelet event, see `bus::RunHere`).
    /// Waking a worker for it cost a futex wake-up per event, and the woken thread competed
    /// with the corelet child for a vCPU. A job nobody takes is started by the watchdog's next
    /// [`sweep_deferred`](Self::sweep_deferred).
    ///
    /// Returns `true` if the caller must have the watchdog sweep soon (see
    /// `Watchdog::expect_deferred`); `false` while sweeps are under way already, which saves
    /// each push in a series a clock read and a look at the watchdog's plan.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push_deferred(&self, job: Job, admission: Admission) -> Result<bool, PushError> {
        self.push_waking(job, admission, false)
    }

    /// Returns whether a sweep must be scheduled (only ever for a deferred push).
    #[allow(clippy::result_large_err)]
    fn push_waking(&self, job: Job, admission: Admission, may_wake: bool) -> Result<bool, PushError> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(PushError::Closed(job));
            }
            if state.lanes.len() < self.capacity || admission == Admission::Force {
                break;
            }
            if admission == Admission::Try {
                return Err(PushError::Full(job));
            }
            state.waiting_publishers += 1;
            state = self.not_full.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting_publishers -= 1;
        }
        let next_push = state.lanes.push(job);
        // Under the lock, so that of racing publishers the last to push leaves its hint.
        self.next_push.store(next_push, Ordering::Relaxed);
        let pushed = state.lanes.pushed();
        // Flags written only when they change: they lie on another cache line than the lanes',
        // which a worker reads for every job.
        let schedule_sweep = !may_wake && !state.sweeping;
        if schedule_sweep {
            state.sweeping = true;
        }
        if !may_wake && !state.deferred {
            state.deferred = true;
        }
        let wake = claim_sleepers(&mut state, usize::from(may_wake));
        drop(state);
        // Told after unlocking: a worker watching `pushed` takes the lock as soon as it sees the
        // job, and taking it while we still held it made both sides wait for the lock's cache
        // line. (See `pushed` for what stale totals cost.)
        self.pushed.store(pushed, Ordering::Relaxed);
        // Notified after unlocking, so that the woken worker does not block at once on the
        // lock we still hold (a second futex wait and wake per event).
        self.wake(wake);
        Ok(schedule_sweep)
    }

    /// Wakes `count` workers claimed with [`claim_sleepers`], after the lock is released.
    fn wake(&self, count: usize) {
        for _ in 0..count {
            self.not_empty.notify_one();
        }
    }

    /// Takes the most urgent job, waiting for one; `None` once the queue is closed, empty,
    /// and no job lent to a waiter can come back.
    pub(crate) fn pop(&self) -> Option<Job> {
        self.pop_or_sleep(None::<fn()>)
    }

    /// [`pop`](Self::pop), calling `before_sleep` (once, without the lock) before the first
    /// time it would sleep for want of a job.
    fn pop_or_sleep(&self, mut before_sleep: Option<impl FnOnce()>) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some((job, next_slot)) = state.lanes.pop_hinting() {
                self.taken.total.store(state.lanes.taken(), Ordering::Relaxed);
                self.taken.next_slot.store(next_slot, Ordering::Relaxed);
                if state.waiting_publishers > 0 {
                    self.not_full.notify_one();
                }
                return Some(job);
            }
            if state.closed && state.lent_out == 0 {
                // Other workers may sleep here, kept by a lent job that has come back and run
                // since: they leave too.
                drop(state);
                self.not_empty.notify_all();
                return None;
            }
            if let Some(before_sleep) = before_sleep.take() {
                // Without the lock: it may drop user values (see `pop_after_work`). A job may
                // come meanwhile, so look again.
                drop(state);
                before_sleep();
                state = self.lock();
                continue;
            }
            // A push's total, stored after its lock, may have been overtaken by another's: put
            // both right for the watchers before sleeping.
            self.count(&state);
            state.idle_workers += 1;
            state = self.not_empty.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.idle_workers -= 1;
            // Ours or spurious, this wake-up settles one pending: if it was another sleeper's,
            // that sleeper counts as not woken and the next push wakes it.
            state.wakeups_pending = state.wakeups_pending.saturating_sub(1);
            if state.lanes.len() == 0 && !state.closed {
                // Woken for a job that is gone already: a waiter took its own corelet event
                // (`take_if_next`), or another worker was quicker. Such a waiter publishes its
                // next event within microseconds, so watch for it as after a job rather than
                // sleep at once: asleep, this worker had to be woken again for every event,
                // a system call on the publisher's side and a thread taking the vCPU the
                // corelet child needs (`busbar bench --scenario corelet`: see the corelet
                // README's "Costs").
                drop(state);
                watch::watch_briefly(|| self.may_hold_jobs());
                state = self.lock();
            }
        }
    }

    /// [`pop`](Self::pop) for a worker that has just finished a job: the next job often
    /// follows at once (a publisher that waits for each result publishes again as soon as it
    /// has one), so the worker watches for it before it sleeps (see [`crate::watch`]). A
    /// watching worker is not counted idle: a push meanwhile wakes only a worker that sleeps,
    /// if there is one.
    ///
    /// Unlike other waiting parties, a worker keeps no [`WatchHabit`](crate::watch::WatchHabit)
    /// and watches after every job: one that had stopped watching slept through the corelet
    /// events whose waiters run them, and each had to wake it (pinned to one vCPU, corelet round
    /// trips took 6.8-7.5 µs with a habit here, 6.2-6.6 µs without).
    ///
    /// `before_sleep` runs if the worker is about to sleep: it lets go of what it held for
    /// the jobs it ran (`HandlerCache::let_go`), which may drop a handler registration and the
    /// user's values its constructor captured.
    pub(crate) fn pop_after_work(&self, before_sleep: impl FnOnce()) -> Option<Job> {
        if watch::watch_briefly(|| self.may_hold_jobs()) {
            prefetch::slot_to_read(self.taken.next_slot.load(Ordering::Relaxed));
        }
        self.pop_or_sleep(Some(before_sleep))
    }

    /// Wakes sleeping workers for jobs that were queued at the last sweep already and still
    /// are, as jobs pushed with [`push_deferred`](Self::push_deferred) and not taken by their
    /// waiters are: one worker per such job, as many as sleep. Returns whether to sweep again
    /// soon: a deferred push came since the last sweep, or jobs wait while workers sleep.
    ///
    /// Not any queued job: while a waiter runs its events one after another, a sweep often
    /// finds one between its push and the waiter taking it, and waking a worker for it would
    /// put back the competition for the CPU that deferring avoids. So an event nobody waits
    /// for starts within two sweep periods. A sweep sooner than half a period after the last
    /// (the watchdog rescans when told of a new deadline) counts nothing: a job seen by both
    /// would not have waited a period.
    pub(crate) fn sweep_deferred(&self, now: Instant, period: Duration) -> bool {
        let mut state = self.lock();
        let sleeping = state.idle_workers.saturating_sub(state.wakeups_pending);
        let too_soon = state.last_sweep.is_some_and(|at| now < at + period / 2);
        if too_soon {
            let again = state.deferred || (state.lanes.len() > 0 && sleeping > 0);
            // Under the lock: a deferred push after this sees `false` and schedules a sweep.
            state.sweeping = again;
            return again;
        }
        let deferred = std::mem::take(&mut state.deferred);
        // The jobs queued at the last sweep already and still queued, counted per lane: not
        // `len` less the pushes since, which a waiter's steady round trips (pushes taken back at
        // once) kept at zero while an older job waited behind them with workers asleep.
        let stale = state.lanes.age();
        state.last_sweep = Some(now);
        let wake = claim_sleepers(&mut state, stale);
        let again = deferred || (state.lanes.len() > 0 && sleeping > wake);
        state.sweeping = again;
        drop(state);
        self.wake(wake);
        again
    }

    /// Wakes a sleeping worker if jobs are queued: for a waiter that could not take its own
    /// job (another is ahead of it), so that it does not wait for the watchdog's sweep.
    pub(crate) fn wake_for_waiter(&self) {
        let mut state = self.lock();
        let queued = state.lanes.len();
        let wake = claim_sleepers(&mut state, queued.min(1));
        drop(state);
        self.wake(wake);
    }

    /// Takes the next job, the one a worker would take now, if `is_wanted` says it is the
    /// caller's; never a job behind others, so taking it reorders nothing.
    pub(crate) fn take_if_next(&self, is_wanted: impl FnOnce(&Job) -> bool) -> Option<Job> {
        let mut state = self.lock();
        if !state.lanes.peek().is_some_and(is_wanted) {
            return None;
        }
        let job = state.lanes.pop();
        self.count(&state);
        state.lent_out += 1;
        if state.waiting_publishers > 0 {
            self.not_full.notify_one();
        }
        job
    }

    /// Takes back a job lent by [`take_if_next`](Self::take_if_next): `retry` is the job if it
    /// is to run again, `None` once it has its result.
    pub(crate) fn give_back(&self, retry: Option<Job>) {
        let mut state = self.lock();
        state.lent_out -= 1;
        let Some(job) = retry else {
            // The last one out of a closed, empty queue: the workers that stayed for it leave.
            let release = state.closed && state.lent_out == 0 && state.lanes.len() == 0;
            drop(state);
            if release {
                self.not_empty.notify_all();
            }
            return;
        };
        self.push_waking_one(state, job);
    }

    /// Pushes a job that must not wait for room (a retry) and wakes a sleeping worker,
    /// counting the wake-up as pending like `push` does, so that a sweep does not take that
    /// worker for one still asleep.
    fn push_waking_one(&self, mut state: MutexGuard<'_, State>, job: Job) {
        state.lanes.push(job);
        self.count(&state);
        claim_sleepers(&mut state, 1);
        drop(state);
        // Notified even if every sleeper has a wake-up pending, as before the count.
        self.not_empty.notify_one();
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
        let state = self.lock();
        self.push_waking_one(state, job);
    }

    /// Removes and returns every queued job (for `shutdown_now`).
    pub(crate) fn drain(&self) -> Vec<Job> {
        let mut state = self.lock();
        let jobs = state.lanes.drain();
        self.count(&state);
        drop(state);
        self.not_full.notify_all();
        // Workers asleep on a closed queue re-check: with it empty they may leave now.
        self.not_empty.notify_all();
        jobs
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().lanes.len()
    }

    /// Publishes the queue's totals to [`pop_after_work`](Self::pop_after_work)'s watchers.
    // Relaxed: a watcher only learns that it is worth taking the lock; the lock orders the rest.
    fn count(&self, state: &State) {
        self.pushed.store(state.lanes.pushed(), Ordering::Relaxed);
        self.taken.total.store(state.lanes.taken(), Ordering::Relaxed);
    }

    /// Whether the totals say that jobs are queued (see `pushed` for how far to trust them).
    fn may_hold_jobs(&self) -> bool {
        let pushed = self.pushed.load(Ordering::Relaxed);
        let taken = self.taken.total.load(Ordering::Relaxed);
        // As a signed difference: a stale `pushed` may lag behind `taken`.
        (pushed.wrapping_sub(taken) as isize) > 0
    }

    // No user code runs under this lock and every update leaves the state consistent, so a
    // poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts up to `wanted` sleeping workers (idle in `pop`, with no wake-up pending) as woken,
/// and returns how many: the caller wakes that many once it has released the lock.
fn claim_sleepers(state: &mut State, wanted: usize) -> usize {
    let claimed = wanted.min(state.idle_workers.saturating_sub(state.wakeups_pending));
    // Written only if it changes: while workers keep up, none sleeps, and a write would take
    // the cache line from the worker that reads it next.
    if claimed > 0 {
        state.wakeups_pending += claimed;
    }
    claimed
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::{Admission, Job, JobQueue, Lanes, State};
    use crate::event::Event;
    use crate::handle::EventHandle;

    /// Waits until `count` workers sleep in `pop`: a condition, not a delay.
    fn wait_for_sleepers(queue: &JobQueue, count: usize) {
        while queue.lock().idle_workers < count {
            std::thread::yield_now();
        }
    }

    fn job(priority: i32) -> Job {
        let event = Event::new("t").with_priority(priority);
        let (_handle, reply) = EventHandle::pending(event.id());
        Job::new(event, None, reply)
    }

    /// The layout `State` is built for: a push or pop at the front changes only the cache line
    /// that holds the lock word. (Where `CachePadded` aligns to less than a 64-byte line, or
    /// std's mutex is not a word held inline, the layout is only slower, not wrong.)
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    #[test]
    fn the_lock_word_and_the_front_of_the_queue_share_a_cache_line() {
        let queue = JobQueue::new(1);
        let mutex = std::ptr::from_ref::<Mutex<State>>(&queue.state).addr();
        let state = queue.lock();
        let lanes = std::ptr::from_ref::<Lanes>(&state.lanes).addr();
        assert_eq!(mutex % 64, 0, "the lock starts a cache line");
        let end = lanes - mutex + Lanes::HOT_BYTES;
        assert!(end <= 64, "the lock word's line ends at 64 bytes; the front's fields at {end}");
    }

    /// The watchdog's sweep period in these tests; sweeps are given their times explicitly.
    const PERIOD: std::time::Duration = std::time::Duration::from_millis(1);

    /// Whether workers emptied the queue within a generous bound; if not, closes it, so that
    /// sleeping workers leave and the test fails instead of hanging.
    fn drained(queue: &JobQueue) -> bool {
        let since = std::time::Instant::now();
        while queue.len() > 0 {
            if since.elapsed() > std::time::Duration::from_secs(20) {
                queue.close();
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// `sweep_deferred` at `n` periods after `start`.
    fn sweep_at(queue: &JobQueue, start: std::time::Instant, n: u32) -> bool {
        queue.sweep_deferred(start + PERIOD * n, PERIOD)
    }

    /// Only the first deferred push of a series has the watchdog scheduled: the sweeps go on
    /// while deferred pushes come, and the first push after they stop schedules again.
    #[test]
    fn a_deferred_push_schedules_a_sweep_only_when_none_is_under_way() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        assert!(queue.push_deferred(job(0), Admission::Block).expect("room"), "the first schedules");
        assert!(!queue.push_deferred(job(0), Admission::Block).expect("room"), "sweeps are due");
        assert!(sweep_at(&queue, start, 0), "deferred pushes came: sweep again");
        assert!(!queue.push_deferred(job(0), Admission::Block).expect("room"), "still under way");
        assert!(queue.push(job(0), Admission::Block).is_ok());
        drop(queue.drain());
        assert!(sweep_at(&queue, start, 1), "a deferred push came since the last sweep");
        assert!(!sweep_at(&queue, start, 2), "nothing queued, nothing pushed: the sweeps stop");
        assert!(queue.push_deferred(job(0), Admission::Block).expect("room"), "so this schedules");
        assert!(sweep_at(&queue, start, 3), "the push above");
        drop(queue.drain());
        // A rescan too soon to count (the watchdog was told of a deadline) that finds no reason
        // to sweep again stops them too.
        assert!(!sweep_at(&queue, start, 3));
        assert!(queue.push_deferred(job(0), Admission::Block).expect("room"));
    }

    #[test]
    fn a_deferred_job_wakes_no_worker_until_it_outlasts_a_sweep() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| queue.pop().map(|job| job.event().id()));
            wait_for_sleepers(&queue, 1);
            let deferred = job(5);
            let id = deferred.event().id();
            queue.push_deferred(deferred, Admission::Block).expect("room");
            assert_eq!(queue.lock().wakeups_pending, 0, "the push woke nobody");
            // The first sweep may find the job just before its waiter takes it: no wake.
            assert!(sweep_at(&queue, start, 0), "a deferred push since the last sweep");
            assert_eq!(queue.lock().wakeups_pending, 0);
            // A rescan right after (the watchdog told of a deadline) counts nothing either.
            sweep_at(&queue, start, 0);
            assert_eq!(queue.lock().wakeups_pending, 0, "too soon to call it stale");
            // A period later it is still there: a worker gets it.
            assert!(!sweep_at(&queue, start, 1), "nothing left to sweep for");
            assert_eq!(worker.join().expect("no panic"), Some(id), "the sweep woke the worker");
        });
    }

    /// A waiter takes the head between two sweeps: the job behind it, which nobody waits for,
    /// is not stranded (the second sweep sees it older than the first, or sweeps again).
    #[test]
    fn a_job_behind_a_taken_head_still_gets_a_worker() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| queue.pop().map(|job| job.event().id()));
            wait_for_sleepers(&queue, 1);
            let (x, y) = (job(0), job(0));
            let (x_id, y_id) = (x.event().id(), y.event().id());
            queue.push_deferred(x, Admission::Block).expect("room");
            queue.push_deferred(y, Admission::Block).expect("room");
            sweep_at(&queue, start, 0);
            let taken = queue.take_if_next(|job: &Job| job.event().id() == x_id).expect("X is next");
            drop(taken);
            queue.give_back(None);
            sweep_at(&queue, start, 1);
            assert!(drained(&queue), "Y was stranded");
            assert_eq!(worker.join().expect("no panic"), Some(y_id), "Y got the sleeping worker");
        });
    }

    /// Two jobs nobody takes and two sleeping workers: both workers are woken, not one after
    /// the other's job.
    #[test]
    fn stale_jobs_wake_as_many_sleepers() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let first = scope.spawn(|| queue.pop().is_some());
            let second = scope.spawn(|| queue.pop().is_some());
            wait_for_sleepers(&queue, 2);
            queue.push_deferred(job(0), Admission::Block).expect("room");
            queue.push_deferred(job(0), Admission::Block).expect("room");
            sweep_at(&queue, start, 0);
            sweep_at(&queue, start, 1);
            // Each worker takes one job and leaves: one woken worker would leave a job behind.
            assert!(drained(&queue), "a job waited for the other's worker");
            assert!(first.join().expect("no panic") && second.join().expect("no panic"));
        });
    }

    /// Whether the one worker sleeping in `pop` has been woken (or has left `pop`).
    fn woken(queue: &JobQueue) -> bool {
        let state = queue.lock();
        state.wakeups_pending > 0 || state.idle_workers == 0
    }

    /// A job nobody waits for, behind a waiter's steady round trips of more urgent corelet
    /// events, gets the sleeping worker. (Counting `len` less the pushes since the last sweep
    /// called nothing stale here: each sweep saw a push since the last one. Found by review.)
    #[test]
    fn a_job_below_a_waiters_urgent_round_trips_still_gets_a_worker() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| queue.pop().map(|job| job.event().id()));
            wait_for_sleepers(&queue, 1);
            let low = job(0);
            let low_id = low.event().id();
            queue.push_deferred(low, Admission::Block).expect("room");
            let mut woke = false;
            for n in 0..20 {
                // One round trip per period: publish, take it back, resolve it.
                let urgent = job(5);
                let id = urgent.event().id();
                queue.push_deferred(urgent, Admission::Block).expect("room");
                let taken = queue.take_if_next(|job: &Job| job.event().id() == id).expect("urgent is next");
                drop(taken);
                queue.give_back(None);
                assert!(sweep_at(&queue, start, n), "the watchdog keeps sweeping");
                // Once woken, the worker may take any job: stop here, the low job alone queued.
                if woken(&queue) {
                    woke = true;
                    break;
                }
            }
            // Release the worker either way, so that the test fails rather than hangs.
            queue.close();
            assert_eq!(worker.join().expect("no panic"), Some(low_id));
            assert!(woke, "20 periods with a job queued and a worker asleep, and no wake-up");
        });
    }

    /// The same with the urgent events published by nobody who waits, run by a busy
    /// worker that takes them as they come (here: popped by the test thread).
    #[test]
    fn a_job_below_a_stream_a_busy_worker_takes_still_gets_a_sleeper() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let sleeper = scope.spawn(|| queue.pop().map(|job| job.event().priority()));
            wait_for_sleepers(&queue, 1);
            queue.push_deferred(job(0), Admission::Block).expect("room");
            let mut woke = false;
            for n in 0..20 {
                queue.push_deferred(job(5), Admission::Block).expect("room");
                assert_eq!(queue.pop().map(|job| job.event().priority()), Some(5), "the busy worker");
                sweep_at(&queue, start, n);
                // Once woken, the worker may take any job: stop here, the low job alone queued.
                if woken(&queue) {
                    woke = true;
                    break;
                }
            }
            queue.close();
            assert_eq!(sleeper.join().expect("no panic"), Some(0));
            assert!(woke, "the low job waited 20 periods beside a sleeping worker");
        });
    }

    /// Steady round trips at the same priority, sweeps falling before and after the take:
    /// no wake-up at all.
    #[test]
    fn steady_round_trips_wake_nobody() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2).map(|_| scope.spawn(|| queue.pop().is_none())).collect();
            wait_for_sleepers(&queue, 2);
            for n in 0..40 {
                let mine = job(0);
                let id = mine.event().id();
                queue.push_deferred(mine, Admission::Block).expect("room");
                // Every other round trip, a sweep finds the job before its waiter takes it.
                if n % 2 == 0 {
                    sweep_at(&queue, start, n);
                }
                let taken = queue.take_if_next(|job: &Job| job.event().id() == id).expect("mine is next");
                drop(taken);
                queue.give_back(None);
                if n % 2 == 1 {
                    sweep_at(&queue, start, n);
                }
                // Rescans in between count nothing.
                queue.sweep_deferred(start + PERIOD * n + PERIOD / 4, PERIOD);
                assert_eq!(queue.lock().wakeups_pending, 0, "round trip {n} woke a worker");
            }
            assert!(!sweep_at(&queue, start, 40) && !sweep_at(&queue, start, 41), "sweeping stops");
            assert_eq!(queue.lock().wakeups_pending, 0);
            queue.close();
            assert!(workers.into_iter().all(|worker| worker.join().expect("no panic")));
        });
    }

    /// Counting across a drain: drained jobs are not counted stale, the fresh one is not either
    /// until it outlasts a sweep, then it wakes exactly one worker.
    #[test]
    fn sweep_counts_across_a_drain() {
        let queue = JobQueue::new(10);
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> =
                (0..3).map(|_| scope.spawn(|| std::iter::from_fn(|| queue.pop()).count())).collect();
            wait_for_sleepers(&queue, 3);
            queue.push_deferred(job(0), Admission::Block).expect("room");
            queue.push_deferred(job(0), Admission::Block).expect("room");
            sweep_at(&queue, start, 0);
            assert_eq!(queue.drain().len(), 2);
            queue.push_deferred(job(0), Admission::Block).expect("room");
            // Fresh since the last sweep: not stale.
            assert!(sweep_at(&queue, start, 1));
            assert_eq!(queue.lock().wakeups_pending, 0, "a job drained is not counted, nor a fresh one");
            sweep_at(&queue, start, 2);
            // Now stale: one worker woken, exactly one.
            assert!(drained(&queue), "the stale job got a worker");
            queue.close();
            assert_eq!(workers.into_iter().map(|w| w.join().expect("no panic")).sum::<usize>(), 1);
        });
        let state = queue.lock();
        assert_eq!((state.idle_workers, state.wakeups_pending), (0, 0));
    }

    #[test]
    fn take_if_next_takes_only_the_job_a_worker_would_take() {
        let queue = JobQueue::new(10);
        let (low, first_high, second_high) = (job(1), job(9), job(9));
        let ids = [low.event().id(), first_high.event().id(), second_high.event().id()];
        for job in [low, first_high, second_high] {
            queue.push(job, Admission::Block).expect("room");
        }
        let take = |id| queue.take_if_next(|job: &Job| job.event().id() == id).map(|job| job.event().id());
        // Behind a more urgent job, and behind an equal one published earlier: not taken.
        assert_eq!(take(ids[0]), None);
        assert_eq!(take(ids[2]), None);
        assert_eq!(take(ids[1]), Some(ids[1]));
        assert_eq!(take(ids[2]), Some(ids[2]));
        assert_eq!(take(ids[0]), Some(ids[0]));
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_worker_back_from_a_job_takes_what_came_and_sleeps_when_nothing_does() {
        let queue = JobQueue::new(10);
        queue.push(job(3), Admission::Block).expect("room");
        assert_eq!(queue.pop_after_work(|| {}).map(|job| job.event().priority()), Some(3));
        assert!(!queue.may_hold_jobs(), "the watchers' totals follow the queue");
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| queue.pop_after_work(|| {}).map(|job| job.event().priority()));
            // Nothing came while it watched: it went to sleep, where a push must wake it.
            wait_for_sleepers(&queue, 1);
            queue.push(job(4), Admission::Block).expect("room");
            assert_eq!(worker.join().expect("the worker returns"), Some(4));
        });
        queue.close();
        assert!(queue.pop_after_work(|| {}).is_none(), "closed and empty: no job, no hang");
    }

    #[test]
    fn a_closed_queue_keeps_its_workers_while_a_job_lent_to_a_waiter_may_come_back() {
        let queue = JobQueue::new(10);
        queue.push(job(5), Admission::Block).expect("room");
        let lent = queue.take_if_next(|_| true).expect("the next job");
        queue.close();
        std::thread::scope(|scope| {
            // Closed and empty, but the lent job may come back for a retry: the worker waits.
            let worker = scope.spawn(|| queue.pop().map(|job| job.event().priority()));
            wait_for_sleepers(&queue, 1);
            queue.give_back(Some(lent));
            assert_eq!(worker.join().expect("the worker returns"), Some(5), "it runs the retry");
        });
        // Lent again and resolved this time: the worker that stayed for it leaves.
        queue.requeue(job(6));
        let lent = queue.take_if_next(|_| true).expect("the next job");
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| queue.pop().is_none());
            wait_for_sleepers(&queue, 1);
            drop(lent);
            queue.give_back(None);
            assert!(worker.join().expect("the worker returns"), "closed, empty, nothing out");
        });
    }

    #[test]
    fn every_worker_leaves_a_closed_queue_once_a_lent_job_came_back_and_ran() {
        let queue = JobQueue::new(10);
        queue.push(job(5), Admission::Block).expect("room");
        let lent = queue.take_if_next(|_| true).expect("the next job");
        queue.close();
        std::thread::scope(|scope| {
            let workers: Vec<_> =
                (0..2).map(|_| scope.spawn(|| std::iter::from_fn(|| queue.pop()).count())).collect();
            wait_for_sleepers(&queue, 2);
            // One worker is woken for the retry and runs it; the other must leave as well.
            queue.give_back(Some(lent));
            let ran: usize = workers.into_iter().map(|worker| worker.join().expect("a worker returns")).sum();
            assert_eq!(ran, 1);
        });
    }

    #[test]
    fn every_sleeping_worker_is_woken_when_jobs_arrive_together() {
        let queue = JobQueue::new(10);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2).map(|_| scope.spawn(|| queue.pop().is_some())).collect();
            // Both asleep before anything is pushed: a condition, not a delay.
            wait_for_sleepers(&queue, 2);
            // The first push wakes one sleeper; the second must wake the other, not count
            // the first one's pending wake-up as covering it.
            queue.push(job(0), Admission::Block).expect("room");
            queue.push(job(0), Admission::Block).expect("room");
            for worker in workers {
                assert!(worker.join().expect("worker thread"));
            }
        });
        let state = queue.lock();
        assert_eq!((state.idle_workers, state.wakeups_pending), (0, 0));
    }

    #[test]
    fn a_backlog_spanning_chunks_keeps_fifo_order_and_one_spare_chunk() {
        use crate::pool::lanes::CHUNK;
        let queue = JobQueue::new(usize::MAX);
        let jobs = 3 * CHUNK + 1;
        let mut ids = Vec::with_capacity(jobs);
        for index in 0..jobs {
            // A more urgent job now and then, so that lanes come and go in between.
            let urgent = index % 100 == 0;
            let job = job(if urgent { 5 } else { 0 });
            if !urgent {
                ids.push(job.event().id());
            }
            queue.push(job, Admission::Block).expect("room");
            if urgent {
                assert_eq!(queue.pop().map(|job| job.event().priority()), Some(5));
            }
        }
        let popped: Vec<_> = (0..ids.len()).map(|_| queue.pop().expect("queued").event().id()).collect();
        assert_eq!(popped, ids);
        let state = queue.lock();
        assert_eq!(state.lanes.shape(), [(0, 1)], "the front lane keeps its first chunk, and nothing else");
        let spare = state.lanes.spare_capacity();
        assert!((1..2 * CHUNK).contains(&spare), "one chunk kept, not the backlog: {spare}");
    }
}
