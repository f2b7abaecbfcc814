//! What a corelet request and its reply carry, between busbar's two sides of the channel.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::Outcome;
use crate::event::Event;
use crate::handler::HandlerError;
use crate::result::{ErrorKind, EventResult};

/// A request: run one attempt of this event.
#[derive(Serialize)]
pub(super) struct Request<'a> {
    pub(super) event: &'a Event,
    pub(super) attempt: u32,
    /// Time left until the attempt's deadline. The child runs on its own clock, so the parent
    /// sends a duration, not an instant; the parent enforces the real deadline by killing.
    pub(super) timeout_ms: u64,
}

/// A request as the child reads it.
#[derive(Deserialize)]
pub(super) struct OwnedRequest {
    pub(super) event: Event,
    pub(super) attempt: u32,
    pub(super) timeout_ms: u64,
}

impl Request<'_> {
    pub(super) fn encode(event: &Event, attempt: u32, deadline: Instant) -> Result<Value, serde_json::Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        serde_json::to_value(Request { event, attempt, timeout_ms })
    }
}

impl OwnedRequest {
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// How an attempt ended in the child: the parts of [`Outcome`] that can happen there.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(super) enum Reply {
    Returned { result: EventResult },
    Error { message: String, permanent: bool },
    Panicked { message: String },
    TimedOut,
    Refused { kind: ErrorKind, message: String },
}

impl Reply {
    /// Encodes the outcome of an attempt that ran in this (child) process.
    pub(super) fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Returned(Ok(result)) => Reply::Returned { result },
            Outcome::Returned(Err(error)) => {
                Reply::Error { message: error.to_string(), permanent: error.is_permanent() }
            }
            Outcome::Panicked(message) => Reply::Panicked { message },
            Outcome::TimedOut => Reply::TimedOut,
            Outcome::Refused { kind, message } => Reply::Refused { kind, message },
            // In-process attempts neither crash nor get cancelled; keep the text if one did.
            Outcome::Crashed(message) => Reply::Error { message, permanent: false },
            Outcome::Cancelled => Reply::Refused {
                kind: ErrorKind::Cancelled,
                message: "cancelled inside the corelet".to_owned(),
            },
        }
    }

    /// Decodes a child's reply into the outcome of the attempt.
    ///
    /// A reply that is not one of ours means the child runs other code than this parent
    /// expects (a different busbar, or a worker program that is not a busbar corelet).
    pub(super) fn into_outcome(reply: Value) -> Outcome {
        match serde_json::from_value(reply) {
            Ok(Reply::Returned { result }) => Outcome::Returned(Ok(result)),
            Ok(Reply::Error { message, permanent: true }) => Outcome::Returned(Err(HandlerError::permanent(message))),
            Ok(Reply::Error { message, permanent: false }) => Outcome::Returned(Err(HandlerError::new(message))),
            Ok(Reply::Panicked { message }) => Outcome::Panicked(message),
            Ok(Reply::TimedOut) => Outcome::TimedOut,
            Ok(Reply::Refused { kind, message }) => Outcome::Refused { kind, message },
            Err(error) => Outcome::Crashed(format!(
                "the corelet's reply is not a busbar result ({error}); is the worker program a busbar corelet?"
            )),
        }
    }
}
