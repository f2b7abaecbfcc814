//! The attempt loop every mode shares: judge an attempt's outcome, retry or finish.
//!
//! A mode only decides *where* an attempt runs (`crate::mode::run_attempt`); what counts as a
//! failure, whether to retry, how long to pause and what the final [`EventResult`] says is
//! decided here, once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::{EventBus, Shared};
use crate::clock;
use crate::context::EventContext;
use crate::deadline::{deadline_after, Deadline};
use crate::event::Event;
use crate::factory::Registration;
use crate::handler::HandlerResult;
use crate::mode;
use crate::result::{ErrorKind, EventResult};

/// What happened in one attempt.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The handler returned in time.
    Returned(HandlerResult),
    /// The handler panicked; the message is kept.
    Panicked(String),
    /// The attempt ran past the event's timeout.
    TimedOut,
    /// The process running the attempt died; the text names the exit code or signal.
    Crashed(String),
    /// The attempt was stopped by `shutdown_now` (a killed corelet or command).
    Cancelled,
    /// The attempt could not run and never will (no handler, bad input, unsupported mode).
    Refused { kind: ErrorKind, message: String },
}

impl Outcome {
    pub(crate) fn refused(kind: ErrorKind, message: impl Into<String>) -> Self {
        Outcome::Refused { kind, message: message.into() }
    }
}

/// What to do after an attempt.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The event is finished with this result (attempts and duration not yet filled in).
    Final(EventResult),
    /// Run another attempt after this pause.
    Retry(Duration),
}

/// Judges attempt number `attempt` of `event`, which may take `max_attempts` attempts in all.
///
/// A failure is retried while attempts remain (`attempt < max_attempts`; that is
/// `1 + retry_count`, or just `attempt` for a job the caller retries itself), unless it is
/// permanent: marked so by the handler, a refusal, or a cancellation. A final failure that was
/// not retryable is marked [permanent](EventResult::is_permanent), so whoever counts attempts
/// outside the bus (`EventBus::publish_attempt`) can tell it from one that merely ran out.
// Inlined: a success, the common case, needs no judging, and then only moves the result.
#[inline]
pub(crate) fn judge(
    shared: &Shared,
    event: &Event,
    attempt: u32,
    max_attempts: u32,
    outcome: Outcome,
) -> Verdict {
    match outcome {
        Outcome::Returned(Ok(result)) if result.success => Verdict::Final(result),
        outcome => judge_failure(shared, event, attempt, max_attempts, outcome),
    }
}

/// [`judge`] for every outcome but a success.
fn judge_failure(
    shared: &Shared,
    event: &Event,
    attempt: u32,
    max_attempts: u32,
    outcome: Outcome,
) -> Verdict {
    let (mut result, retryable) = match outcome {
        Outcome::Returned(Ok(result)) if result.success => return Verdict::Final(result),
        Outcome::Returned(Ok(mut result)) => {
            result.error_kind.get_or_insert(ErrorKind::BusinessFailure);
            result.error_message.get_or_insert_with(|| "the handler reported a failure".to_owned());
            let retryable = !result.permanent;
            (result, retryable)
        }
        Outcome::Returned(Err(error)) => {
            let retryable = !error.is_permanent();
            (EventResult::failed(ErrorKind::HandlerError, error.to_string()), retryable)
        }
        Outcome::Panicked(message) => {
            (EventResult::failed(ErrorKind::Panic, format!("handler panicked: {message}")), true)
        }
        Outcome::TimedOut => {
            let message = format!("attempt {attempt} timed out after {:?}", event.timeout());
            (EventResult::failed(ErrorKind::Timeout, message), true)
        }
        Outcome::Crashed(description) => {
            (EventResult::failed(ErrorKind::Crashed, format!("corelet crashed: {description}")), true)
        }
        Outcome::Cancelled => (cancelled(), false),
        Outcome::Refused { kind, message } => (EventResult::failed(kind, message), false),
    };
    if retryable && attempt < max_attempts && !shared.is_killed() {
        tracing::debug!(
            id = %event.id(),
            attempt,
            error = result.error_message.as_deref().unwrap_or_default(),
            "attempt failed; retrying"
        );
        Verdict::Retry(shared.backoff().delay(attempt))
    } else {
        result.permanent |= !retryable;
        Verdict::Final(result)
    }
}

/// Fills in what the bus knows and the handler does not.
pub(crate) fn finish(result: EventResult, event: &Event, attempts: u32, started: Instant) -> EventResult {
    finish_at(result, event, attempts, started, Instant::now())
}

/// [`finish`] for a caller that already read the clock when the event `ended`.
pub(crate) fn finish_at(
    result: EventResult,
    event: &Event,
    attempts: u32,
    started: Instant,
    ended: Instant,
) -> EventResult {
    finish_after(result, event, attempts, ended.saturating_duration_since(started))
}

/// [`finish`] for a caller that timed the event itself: it took `duration`.
pub(crate) fn finish_after(
    mut result: EventResult,
    event: &Event,
    attempts: u32,
    duration: Duration,
) -> EventResult {
    result.event_id = event.id();
    result.attempts = attempts;
    result.duration = duration;
    if result.success {
        // The kind is the bus's to set, and only on failures: a handler (or a corelet child)
        // that returned a success carrying one must not hand out a result that says both.
        result.error_kind = None;
        result.permanent = false;
    }
    result
}

/// The result of an event cancelled by `shutdown_now`.
pub(crate) fn cancelled() -> EventResult {
    EventResult::failed(ErrorKind::Cancelled, "cancelled: the bus was shut down".to_owned())
}

/// Runs every attempt of a sync-mode event on the calling thread and returns the result.
///
/// The event lives in one [`EventContext`] for all its attempts, and the attempt clock (see
/// [`clock`]) is read when each attempt starts and when it ends: the end's reading serves both
/// the timeout check and the result's duration. No OS clock is read unless the handler asks
/// for its deadline or the event is retried after a pause.
// Inlined into `Shared::publish`, its only caller: the event then moves into the context
// straight from the publisher's argument instead of through each call's copy.
#[inline]
pub(crate) fn run_inline(
    shared: &Arc<Shared>,
    registration: Option<&Registration>,
    event: Event,
) -> EventResult {
    let started = clock::now();
    let deadline = Deadline::after(started, event.timeout());
    // SAFETY: `ctx` is a local of this function, which borrows `shared` throughout, and
    // handlers only ever see `&ctx`: the lent handle is gone before `shared` can be.
    let bus = unsafe { EventBus::lent(shared) };
    let mut ctx = EventContext::owning(event, bus, 1, deadline);
    loop {
        let (outcome, ended) = mode::run_sync_attempt(shared, registration, &ctx);
        let attempt = ctx.attempt();
        match judge(shared, ctx.event(), attempt, ctx.event().max_attempts(), outcome) {
            Verdict::Final(result) => {
                return finish_after(result, ctx.event(), attempt, clock::elapsed(started, ended))
            }
            Verdict::Retry(pause) => {
                // Pause where `shutdown_now` wakes us (the rate limiter's sleep, which it
                // wakes for sync publishers already), and run no attempt after it: like a
                // thread event in its pause, the event is then cancelled.
                if !pause.is_zero() {
                    // `deadline_after` also keeps an absurd pause from overflowing `Instant`.
                    let until = deadline_after(pause);
                    if !shared.rate_limits().wait_until(until, || shared.is_killed()) {
                        let took = clock::elapsed(started, clock::now());
                        return finish_after(cancelled(), ctx.event(), attempt, took);
                    }
                }
                ctx.next_attempt(Deadline::after(clock::now(), ctx.event().timeout()));
            }
        }
    }
}
