//! A pool worker: pops jobs and runs their attempts until the queue closes.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::job::{Job, Resume};
use super::slot::{Running, WorkerSlot};
use crate::attempt::{self, Outcome, Verdict};
use crate::bus::{self, Shared};
use crate::deadline;
use crate::factory::HandlerCache;
use crate::mode::{self, HandlerSource};

/// How long past a hard-timeout attempt's own deadline the watchdog waits before stepping in.
///
/// Corelet and cmd attempts kill their process at the deadline themselves; the watchdog is only
/// a backstop in case that machinery is itself stuck.
const HARD_TIMEOUT_BACKSTOP: Duration = Duration::from_secs(30);

/// Starts worker thread `busbar-worker-{index}`.
pub(crate) fn spawn(shared: &Arc<Shared>, index: usize) -> io::Result<(Arc<WorkerSlot>, JoinHandle<()>)> {
    let slot = Arc::new(WorkerSlot::default());
    let handle = thread::Builder::new().name(format!("busbar-worker-{index}")).spawn({
        let shared = Arc::clone(shared);
        let slot = Arc::clone(&slot);
        move || work(&shared, &slot)
    })?;
    Ok((slot, handle))
}

fn work(shared: &Arc<Shared>, slot: &WorkerSlot) {
    // A panic here (not in a handler: those are caught) would lose the job in hand and leave
    // `join()` waiting for it forever. Better to stop loudly, as rayon does.
    let abort = AbortIfPanic;
    let _worker = bus::enter_worker(shared);
    let mut handlers = HandlerCache::default();
    let queue = &shared.pool().queue;
    let mut next = queue.pop();
    while let Some(job) = next {
        run_job(shared, slot, &mut handlers, job);
        if slot.is_retired() {
            break;
        }
        next = queue.pop_after_work(|| handlers.let_go());
    }
    std::mem::forget(abort);
}

/// Runs the remaining attempts of `job`, unless the job is taken away mid-way.
fn run_job(shared: &Arc<Shared>, slot: &WorkerSlot, handlers: &mut HandlerCache, job: Job) {
    let mut job = job.start();
    let event = Arc::clone(&job.event);
    let registration = job.registration.as_ref().map(|registration| handlers.lend(registration));
    // One clock read serves as the start and as the first attempt's deadline base.
    let now = Instant::now();
    let (started, mut not_before) = match job.resume.take() {
        Some(resume) => (resume.started, resume.not_before),
        None => (now, None),
    };
    let mut attempt_start = Some(now);
    loop {
        if let Some(not_before) = not_before.take() {
            // Backoff: park the job where `shutdown_now` can cancel it while this thread sleeps.
            let pause = not_before.saturating_duration_since(Instant::now());
            if !pause.is_zero() {
                attempt_start = None;
                let attempt = job.attempts_made;
                slot.occupy(Running { job, attempt, watch_until: None, started });
                // `shutdown_now` may have emptied the slots between the verdict and the line
                // above; then nobody else will cancel this job, so do it here rather than
                // after the pause. (If it comes later, it finds the job in the slot.)
                if shared.is_killed() {
                    if let Some(running) = slot.vacate() {
                        shared.resolve(running.job.into_job(), attempt::cancelled(), Some(started));
                    }
                    return;
                }
                thread::sleep(pause);
                match slot.vacate() {
                    Some(running) => job = running.job,
                    None => return,
                }
            }
        }
        let attempt = job.attempts_made + 1;
        let deadline = match attempt_start.take() {
            Some(now) => deadline::deadline_from(now, event.timeout()),
            None => deadline::deadline_after(event.timeout()),
        };
        let watch_until =
            if event.mode().has_hard_timeout() { deadline + HARD_TIMEOUT_BACKSTOP } else { deadline };
        slot.occupy(Running { job, attempt, watch_until: Some(watch_until), started });
        shared.pool().watchdog().watch(watch_until);
        let (outcome, ended) = mode::run_attempt(
            shared,
            &mut HandlerSource::Worker(handlers),
            registration.as_deref().map(Arc::as_ref),
            &event,
            attempt,
            deadline,
        );
        let Some(running) = slot.vacate() else {
            // The watchdog resolved this attempt as timed out, or `shutdown_now` cancelled it.
            return;
        };
        job = running.job;
        job.attempts_made = attempt;
        match attempt::judge(shared, &event, attempt, job.max_attempts, outcome) {
            Verdict::Final(result) => {
                let registration = job.registration.take();
                shared.resolve_started_at(job, result, started, ended);
                if let Some(registration) = registration {
                    handlers.give_back(registration);
                }
                return;
            }
            Verdict::Retry(pause) => {
                if !pause.is_zero() {
                    // Saturating: an absurd backoff (`Duration::MAX`) must not overflow here,
                    // where a panic aborts the process.
                    not_before = Some(deadline::deadline_after(pause));
                }
            }
        }
    }
}

/// Runs the first attempt of `job` on the calling thread, a waiter that took its own job from
/// the queue (see `Shared::run_here_if_next`); a retry goes back to the pool, whose workers
/// pause for its backoff where `shutdown_now` can cancel it.
pub(crate) fn run_first_attempt_here(shared: &Arc<Shared>, job: Job) {
    // As on a worker: a panic here (a bug in busbar, not a handler's) would lose the job and
    // leave `join()` waiting for it forever.
    let abort = AbortIfPanic;
    let mut job = job;
    let started = Instant::now();
    let attempt = job.attempts_made + 1;
    let deadline = deadline::deadline_from(started, job.event().timeout());
    // Waiters run only corelet events (`bus::RunHere`), whose attempt reads the event where the
    // job holds it; an in-process one would need it shared.
    let outcome = if job.event().mode().runs_in_process() {
        let (shared_job, event) = job.share_event();
        job = shared_job;
        let registration = job.registration.clone();
        let handlers = &mut HandlerSource::Caller;
        mode::run_attempt(shared, handlers, registration.as_deref(), &event, attempt, deadline).0
    } else {
        mode::run_attempt_elsewhere(shared, job.event(), attempt, deadline)
    };
    job.attempts_made = attempt;
    match attempt::judge(shared, job.event(), attempt, job.max_attempts, outcome) {
        Verdict::Final(result) => {
            shared.resolve(job, result, Some(started));
            shared.give_back(None);
        }
        Verdict::Retry(pause) => {
            let not_before = (!pause.is_zero()).then(|| deadline::deadline_after(pause));
            job.resume = Some(Box::new(Resume { started, not_before }));
            shared.give_back(Some(job));
        }
    }
    std::mem::forget(abort);
}

/// Resolves a job the watchdog took from a stuck worker: a timed-out attempt.
///
/// Returns the job if it should run again (the caller requeues it).
pub(crate) fn time_out(shared: &Shared, running: Running) -> Option<Job> {
    let Running { job, attempt, started, .. } = running;
    let mut job = job.into_job();
    job.attempts_made = attempt;
    match attempt::judge(shared, job.event(), attempt, job.max_attempts, Outcome::TimedOut) {
        Verdict::Final(result) => {
            shared.resolve(job, result, Some(started));
            None
        }
        Verdict::Retry(pause) => {
            let not_before = (!pause.is_zero()).then(|| deadline::deadline_after(pause));
            job.resume = Some(Box::new(Resume { started, not_before }));
            Some(job)
        }
    }
}

/// Aborts the process if dropped while unwinding; forgotten on the normal path.
struct AbortIfPanic;

impl Drop for AbortIfPanic {
    fn drop(&mut self) {
        eprintln!("busbar: a panic outside a handler while running an event (a bug in busbar); aborting");
        std::process::abort();
    }
}
