//! Corelet mode: the attempt runs in a reusable, isolated child process.
//!
//! The process mechanics (channel, frames, spawning, killing, the pool) live in
//! `crate::corelet` and move any serde types; this module is busbar's side on top: it sends the
//! event, maps the child's reply or death to an [`Outcome`], forwards events the handler
//! publishes in the child, and serves requests in the child ([`corelet_main`]).

mod child;
mod seeds;
mod wire;

use std::sync::Arc;
use std::time::Instant;

pub use child::corelet_main;
pub(crate) use child::forward_from_child;
use wire::{Reply, Request, ReturnedOwned};

use crate::attempt::Outcome;
use crate::bus::Shared;
use crate::corelet::{CoreletError, Payload};
use crate::event::{CompactEvent, Event, ParentLink};
use crate::handler::HandlerError;
use crate::mode::ExecutionMode;
use crate::pool::Admission;
use crate::result::ErrorKind;

/// Runs one attempt of a corelet event in a child of the bus's corelet pool.
///
/// The deadline is hard: the pool kills the child's process group when it passes.
pub(crate) fn run_attempt(shared: &Arc<Shared>, event: &Event, attempt: u32, deadline: Instant) -> Outcome {
    let pool = match shared.corelets() {
        Ok(pool) => pool,
        Err(message) => return Outcome::Crashed(message.to_owned()),
    };
    let request = Request::new(event, attempt, deadline);
    let parent = ParentLink::of(event);
    let mut on_publish = |published: CompactEvent| publish_for_child(shared, parent, published);
    outcome_of_answer(pool.execute::<_, Reply<ReturnedOwned>, CompactEvent>(
        &request,
        Some(deadline),
        &mut on_publish,
    ))
}

/// Maps what the pool brought back, a child's reply or why there is none, to the outcome.
pub(crate) fn outcome_of_answer(answer: Result<Reply<ReturnedOwned>, CoreletError>) -> Outcome {
    match answer {
        Ok(reply) => reply.into_outcome(),
        Err(error) => outcome_of(error),
    }
}

/// A child's message as the parent decodes it (for the fuzz targets, `crate::__fuzz`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) type ChildAnswer = crate::corelet::ChildMessage<Reply<ReturnedOwned>, CompactEvent>;

/// A request as a corelet child reads it: the event, the attempt number and its timeout, or
/// why it is refused (which the child answers, serving on).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) type DecodedRequest = Result<(Event, u32, std::time::Duration), String>;

/// Reads a frame body from the parent as a corelet child does: `None` for `Shutdown`, or the
/// request's number and payload; an error is a message the child exits on. For the fuzz
/// targets (`crate::__fuzz`); `corelet_main` reads requests the same way.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_request(
    body: &[u8],
) -> Result<Option<(u64, DecodedRequest)>, crate::corelet::DecodeError> {
    let Some((seq, request)) = crate::corelet::decode_request::<wire::OwnedRequest>(body)? else {
        return Ok(None);
    };
    Ok(Some((seq, child::checked(request))))
}

/// Maps why the pool returned no reply to the attempt's outcome.
fn outcome_of(error: CoreletError) -> Outcome {
    match error {
        CoreletError::Timeout | CoreletError::Saturated { .. } => Outcome::TimedOut,
        CoreletError::Crashed { description } => Outcome::Crashed(description),
        CoreletError::Panicked(panic) => Outcome::Panicked(panic.to_string()),
        CoreletError::Cancelled | CoreletError::ShutDown => Outcome::Cancelled,
        error @ CoreletError::TooLarge { what: Payload::Request, .. } => {
            Outcome::refused(ErrorKind::InvalidInput, error.to_string())
        }
        error @ CoreletError::TooLarge { what: Payload::Reply, .. } => {
            Outcome::Returned(Err(HandlerError::permanent(error.to_string())))
        }
        CoreletError::Start(start) if start.is_version_mismatch() => {
            Outcome::refused(ErrorKind::Crashed, start.to_string())
        }
        error @ (CoreletError::Protocol(_) | CoreletError::Start(_)) => Outcome::Crashed(error.to_string()),
    }
}

/// Publishes, on the parent's bus, an event a handler published in the child.
///
/// The child already linked it to its parent event; linking again here covers a child that
/// did not (another worker program). A refusal cannot reach the child any more (its publish
/// returned when the frame was sent), so it is logged. (Something that is not an event does
/// not get here: the pool kills a child that sends one, for breaking the protocol. An event
/// whose data is not JSON text or whose times are impossible does, and is logged and dropped:
/// busbar's child refuses data too deep to parse at its publish, so only a foreign child sends
/// one.)
///
/// A `Sync` event runs on a pool thread, as a `Thread` event: the thread it would run on here
/// is the one that guards the child's deadline, and while a handler ran on it nothing would
/// kill the child at its deadline (a child could publish its way past its own timeout). Its
/// publisher, in the child, has its handle already and cannot tell the difference.
fn publish_for_child(shared: &Arc<Shared>, parent: ParentLink, published: CompactEvent) {
    let mut event = match published.into_event() {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(%reason, "busbar: an event published by a corelet handler was refused");
            return;
        }
    };
    event.inherit_from(parent);
    if event.mode() == ExecutionMode::Sync {
        event = event.with_mode(ExecutionMode::Thread);
    }
    // `Force`: waiting for room in the queue would stop this thread from guarding the child's
    // deadline (a pool worker would force anyway); what a child publishes is bounded by what it
    // can send.
    if let Err(error) = shared.publish(event, Admission::Force) {
        tracing::warn!(%error, "busbar: an event published by a corelet handler was refused");
    }
}
