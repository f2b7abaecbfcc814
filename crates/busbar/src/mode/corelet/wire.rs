//! What a corelet request and its reply carry, between busbar's two sides of the channel.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::Outcome;
use crate::event::Event;
use crate::handler::HandlerError;
use crate::result::{ErrorKind, EventResult};

/// A request: run one attempt of this event.
///
/// The event travels in its compact form (`event::compact`), cheaper to encode and decode
/// than the public JSON object.
#[derive(Serialize)]
pub(super) struct Request<'a> {
    #[serde(serialize_with = "crate::event::compact::serialize")]
    pub(super) event: &'a Event,
    pub(super) attempt: u32,
    /// Time left until the attempt's deadline. The child runs on its own clock, so the parent
    /// sends a duration, not an instant; the parent enforces the real deadline by killing.
    pub(super) timeout_ms: u64,
}

/// A request as the child reads it.
#[derive(Deserialize)]
pub(super) struct OwnedRequest {
    #[serde(deserialize_with = "crate::event::compact::deserialize")]
    pub(super) event: Event,
    pub(super) attempt: u32,
    pub(super) timeout_ms: u64,
}

impl<'a> Request<'a> {
    /// A request to run attempt `attempt` of `event`, which must end by `deadline`.
    pub(super) fn new(event: &'a Event, attempt: u32, deadline: Instant) -> Self {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        Request { event, attempt, timeout_ms }
    }
}

impl OwnedRequest {
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// How an attempt ended in the child: the parts of [`Outcome`] that can happen there.
///
/// Externally tagged (`{"returned":{"success":true}}`, serde's default), which decodes in one
/// pass; internal tagging would buffer the whole result before decoding it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Returned(Returned),
    Error { message: String, permanent: bool },
    Panicked { message: String },
    TimedOut,
    Refused { kind: ErrorKind, message: String },
}

/// What a handler's [`EventResult`] says, as it crosses the channel: only what the handler
/// decides. The parent fills in the event id, the attempts and the duration
/// (`attempt::finish`), so they are not sent, nor are empty fields: every byte is encoded in
/// one process and decoded in the other on each round trip.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Returned {
    success: bool,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_kind: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    permanent: bool,
}

impl From<EventResult> for Returned {
    fn from(result: EventResult) -> Self {
        let EventResult { success, data, error_message, error_kind, permanent, .. } = result;
        Returned { success, data, error_message, error_kind, permanent }
    }
}

impl From<Returned> for EventResult {
    fn from(returned: Returned) -> Self {
        let Returned { success, data, error_message, error_kind, permanent } = returned;
        EventResult { success, data, error_message, error_kind, permanent, ..EventResult::success() }
    }
}

impl Reply {
    /// Encodes the outcome of an attempt that ran in this (child) process.
    pub(super) fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Returned(Ok(result)) => Reply::Returned(result.into()),
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

    /// Turns a child's reply into the outcome of the attempt.
    pub(super) fn into_outcome(self) -> Outcome {
        match self {
            Reply::Returned(returned) => Outcome::Returned(Ok(returned.into())),
            Reply::Error { message, permanent: true } => {
                Outcome::Returned(Err(HandlerError::permanent(message)))
            }
            Reply::Error { message, permanent: false } => Outcome::Returned(Err(HandlerError::new(message))),
            Reply::Panicked { message } => Outcome::Panicked(message),
            Reply::TimedOut => Outcome::TimedOut,
            Reply::Refused { kind, message } => Outcome::Refused { kind, message },
        }
    }
}
