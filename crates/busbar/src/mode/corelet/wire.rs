//! What a corelet request and its reply carry, between busbar's two sides of the channel.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::Outcome;
use crate::corelet::json::{self, JsonText};
use crate::event::{CompactEvent, CompactRef, Event};
use crate::handler::HandlerError;
use crate::result::{ErrorKind, EventResult};

/// A request: run one attempt of this event.
///
/// The event travels in its compact form (`event::compact`).
#[derive(Serialize)]
pub(super) struct Request<'a> {
    pub(super) event: CompactRef<'a>,
    pub(super) attempt: u32,
    /// Time left until the attempt's deadline. The child runs on its own clock, so the parent
    /// sends a duration, not an instant; the parent enforces the real deadline by killing.
    pub(super) timeout_ms: u64,
}

/// A request as the child reads it.
#[derive(Deserialize)]
pub(super) struct OwnedRequest {
    pub(super) event: CompactEvent,
    pub(super) attempt: u32,
    pub(super) timeout_ms: u64,
}

impl<'a> Request<'a> {
    /// A request to run attempt `attempt` of `event`, which must end by `deadline`.
    pub(super) fn new(event: &'a Event, attempt: u32, deadline: Instant) -> Self {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        Request { event: CompactRef(event), attempt, timeout_ms }
    }
}

impl OwnedRequest {
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// How an attempt ended in the child: the parts of [`Outcome`] that can happen there. The child
/// sends a handler's result as a [`Returned`]; the parent reads it as a [`ReturnedOwned`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply<R> {
    Returned(R),
    Error { message: String, permanent: bool },
    Panicked { message: String },
    TimedOut,
    Refused { kind: ErrorKind, message: String },
}

/// What a handler's [`EventResult`] says, as it crosses the channel: only what the handler
/// decides. The parent fills in the event id, the attempts and the duration
/// (`attempt::finish`), so they are not sent.
#[derive(Debug, Serialize)]
pub(crate) struct Returned {
    success: bool,
    #[serde(serialize_with = "json::serialize")]
    data: Value,
    error_message: Option<String>,
    error_kind: Option<ErrorKind>,
    permanent: bool,
}

/// A [`Returned`] as the parent reads it, its data not yet checked.
#[derive(Debug, Deserialize)]
pub(crate) struct ReturnedOwned {
    success: bool,
    data: JsonText<Value>,
    error_message: Option<String>,
    error_kind: Option<ErrorKind>,
    permanent: bool,
}

impl From<EventResult> for Returned {
    fn from(result: EventResult) -> Self {
        let EventResult { success, data, error_message, error_kind, permanent, .. } = result;
        Returned { success, data, error_message, error_kind, permanent }
    }
}

impl ReturnedOwned {
    /// The handler's result, or why its data did not arrive as JSON (nested beyond serde_json's
    /// recursion limit, say).
    fn into_result(self) -> Result<EventResult, String> {
        let ReturnedOwned { success, data, error_message, error_kind, permanent } = self;
        let data = data.parsed("the handler's result data")?;
        Ok(EventResult { success, data, error_message, error_kind, permanent, ..EventResult::success() })
    }
}

impl Reply<Returned> {
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
}

impl Reply<ReturnedOwned> {
    /// Turns a child's reply into the outcome of the attempt.
    ///
    /// A result whose data the parent cannot parse is a permanent failure of the handler, as
    /// a result too large to send is: it would not arrive on another attempt either.
    pub(super) fn into_outcome(self) -> Outcome {
        match self {
            Reply::Returned(returned) => match returned.into_result() {
                Ok(result) => Outcome::Returned(Ok(result)),
                Err(message) => Outcome::Returned(Err(HandlerError::permanent(message))),
            },
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
