//! Sync and Thread modes: the handler runs in this process, on the calling thread or a worker.

use std::sync::Arc;
use std::time::Instant;

use crate::attempt::Outcome;
use crate::bus::{EventBus, Shared};
use crate::context::{self, EventContext};
use crate::deadline::Deadline;
use crate::event::Event;
use crate::factory::{HandlerCache, Registration};
use crate::handler::{HandlerError, HandlerResult};
use crate::result::ErrorKind;
use crate::unwind;

/// Where an in-process attempt finds its handler instance.
pub(crate) enum HandlerSource<'a> {
    /// A pool worker's own instances: one per event type per worker thread.
    Worker(&'a mut HandlerCache),
    /// A thread outside the pool (a sync-mode publisher): the registration's shared instance.
    Caller,
}

/// Runs one attempt of `event`'s handler on the current thread.
///
/// Building the handler and running it are both inside the panic boundary: a constructor that
/// panics fails the attempt like a handler that panics. A handler that returns after its
/// deadline has timed out; its result is discarded (timeouts are cooperative, see
/// [`EventContext`]). Once the bus is killed (`shutdown_now`), the attempt is cancelled
/// without running the handler. Also returns when the attempt ended.
pub(crate) fn run(
    shared: &Arc<Shared>,
    handlers: &mut HandlerSource<'_>,
    registration: Option<&Registration>,
    event: &Arc<Event>,
    attempt: u32,
    deadline: Instant,
) -> (Outcome, Instant) {
    let Some(registration) = registration else {
        return (no_handler(event), Instant::now());
    };
    // SAFETY: `ctx` is a local of this function, which borrows `shared` and `event`
    // throughout, and handlers only ever see `&ctx`: it is gone before either can be.
    let ctx =
        unsafe { EventContext::lending(event, EventBus::lent(shared), attempt, Deadline::At(deadline)) };
    let ran = run_in_context(shared, handlers, registration, &ctx);
    let ended = Instant::now();
    (ran.judged(ended >= deadline), ended)
}

/// [`run`] for a caller that owns `event` and has no use for it afterwards (a corelet child):
/// the attempt's context takes it instead of a shared copy.
pub(crate) fn run_owned(
    shared: &Arc<Shared>,
    handlers: &mut HandlerSource<'_>,
    registration: Option<&Registration>,
    event: Event,
    attempt: u32,
    deadline: Instant,
) -> Outcome {
    let Some(registration) = registration else {
        return no_handler(&event);
    };
    // SAFETY: `ctx` is a local of this function, which borrows `shared` throughout, and
    // handlers only ever see `&ctx`: the lent handle is gone before `shared` can be.
    let ctx = EventContext::owning(event, unsafe { EventBus::lent(shared) }, attempt, Deadline::At(deadline));
    run_in_context(shared, handlers, registration, &ctx).judged(Instant::now() >= deadline)
}

/// How an in-process handler call went, before its timing is judged.
pub(crate) enum Ran {
    /// The bus was killed first: the handler did not run.
    Cancelled,
    /// The handler returned this.
    Returned(HandlerResult),
    /// The handler (or its constructor) panicked; the message is kept.
    Panicked(String),
}

impl Ran {
    /// The attempt's outcome, given whether it `overran` its deadline: a handler that returned
    /// after it has timed out, and its result is discarded (timeouts are cooperative, see
    /// [`EventContext`]).
    // Inlined with `run_in_context`, for the same reason.
    #[inline(always)]
    pub(crate) fn judged(self, overran: bool) -> Outcome {
        match self {
            Ran::Cancelled => Outcome::Cancelled,
            Ran::Returned(_) if overran => Outcome::TimedOut,
            Ran::Returned(result) => Outcome::Returned(result),
            Ran::Panicked(message) => Outcome::Panicked(message),
        }
    }
}

/// Runs one attempt's handler with a context the caller built (a sync publisher builds one
/// context for all attempts of its event, holding the event itself rather than a shared copy
/// of it).
///
/// The caller reads its clock when this returns and judges the timing (`Ran::judged`): a pool
/// worker reads the OS clock, whose instant the watchdog also has, and a sync publisher its
/// cheaper attempt clock.
// Inlined into the sync path's single caller chain: the outcome, which holds the handler's
// whole result, is then built once instead of copied out of each call. `always`: with two
// callers (this and `run`), a plain `#[inline]` left it out of line, a call and a copy of the
// outcome per sync event (callgrind: 14 instructions per event fewer with both this and
// `unwind::catch` inlined).
#[inline(always)]
pub(crate) fn run_in_context(
    shared: &Shared,
    handlers: &mut HandlerSource<'_>,
    registration: &Registration,
    ctx: &EventContext,
) -> Ran {
    // The last moment to honour `shutdown_now`: a worker may have taken the job from the queue
    // just before the bus was killed (too late for `shutdown_now` to find it), and a sync
    // publisher may have been accepted just before. Once the bus is killed, no handler starts.
    if shared.is_killed() {
        return Ran::Cancelled;
    }
    let event = ctx.event();
    let _running = context::enter_handler(event, shared.address());
    let returned = unwind::catch(|| {
        let returned = match handlers {
            HandlerSource::Worker(cache) => cache.get(event.event_type(), registration).execute(ctx),
            HandlerSource::Caller => registration.shared_instance().execute(ctx),
        };
        // An error's `Display` and `Drop` are the handler's code too: run them in here, where
        // a panic fails the attempt, not on a worker (which would abort) or a sync publisher.
        returned.map_err(HandlerError::settled)
    });
    match returned {
        Ok(result) => Ran::Returned(result),
        Err(message) => Ran::Panicked(message),
    }
}

/// The outcome of an in-process attempt whose type has no handler (any more).
pub(crate) fn no_handler(event: &Event) -> Outcome {
    let message = format!("no handler registered for event type `{}`", event.event_type());
    Outcome::refused(ErrorKind::NoHandler, message)
}
