//! What a corelet request and its reply carry, between busbar's two sides of the channel.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize, Serializer};
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
    /// The time left until the attempt's deadline, in milliseconds (rounded down), as of when
    /// the request is encoded. The child runs on its own clock, so the parent sends a duration,
    /// not an instant; the parent enforces the real deadline by killing.
    pub(super) timeout_ms: TimeLeft,
}

/// A deadline that serializes as the whole milliseconds left until it.
///
/// Read when the request is encoded, which is after the pool found a child for it: an attempt
/// may wait there for a busy child or for a new one to start, for any part of its timeout.
/// Sending the event's timeout instead told the child it had all of it, so that a handler
/// pacing itself by `ctx.remaining()` was killed rather than finishing in time.
pub(super) enum TimeLeft {
    Until(Instant),
    /// A fixed number of milliseconds, for tests of the encoding.
    #[cfg(test)]
    Exactly(u64),
}

impl Serialize for TimeLeft {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ms = match self {
            TimeLeft::Until(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
            }
            #[cfg(test)]
            TimeLeft::Exactly(ms) => *ms,
        };
        serializer.serialize_u64(ms)
    }
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
        Request { event: CompactRef(event), attempt, timeout_ms: TimeLeft::Until(deadline) }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::corelet::{encode, ChildMessage, ParentMessage, PROTOCOL_VERSION};
    use crate::mode::ExecutionMode;

    /// The body of `message` as it crosses the channel.
    fn body(message: &impl Serialize) -> Vec<u8> {
        encode(message, 1 << 20).expect("encodes")[4..].to_vec()
    }

    /// postcard writes an enum as its variant's index, and the parent and child are not always
    /// one build (`CoreletConfig::program`): the order of every enum that crosses the channel
    /// is part of the protocol. `ErrorKind` is public and `#[non_exhaustive]`, so a variant
    /// added in the middle of it would be an ordinary change anywhere else. If this test has
    /// to change, so does `PROTOCOL_VERSION`.
    #[test]
    fn the_encoding_is_pinned_to_the_protocol_version() {
        assert_eq!(PROTOCOL_VERSION, 5, "the bytes below are protocol 5's");
        // An exhaustive match: a new kind must be given its index here.
        let index = |kind: ErrorKind| match kind {
            ErrorKind::HandlerError => 0,
            ErrorKind::BusinessFailure => 1,
            ErrorKind::Panic => 2,
            ErrorKind::Timeout => 3,
            ErrorKind::Crashed => 4,
            ErrorKind::Cancelled => 5,
            ErrorKind::CommandFailed => 6,
            ErrorKind::InvalidInput => 7,
            ErrorKind::NoHandler => 8,
            ErrorKind::Unsupported => 9,
            ErrorKind::Internal => 10,
        };
        let kinds = [
            ErrorKind::HandlerError,
            ErrorKind::BusinessFailure,
            ErrorKind::Panic,
            ErrorKind::Timeout,
            ErrorKind::Crashed,
            ErrorKind::Cancelled,
            ErrorKind::CommandFailed,
            ErrorKind::InvalidInput,
            ErrorKind::NoHandler,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
        ];
        for kind in kinds {
            assert_eq!(postcard::to_stdvec(&kind).unwrap(), [index(kind)], "{kind:?}");
        }
        let mode = |mode: ExecutionMode| match mode {
            ExecutionMode::Sync => 0,
            ExecutionMode::Thread => 1,
            ExecutionMode::Corelet => 2,
            ExecutionMode::Cmd => 3,
        };
        for m in [ExecutionMode::Sync, ExecutionMode::Thread, ExecutionMode::Corelet, ExecutionMode::Cmd] {
            assert_eq!(postcard::to_stdvec(&m).unwrap(), [mode(m)], "{m:?}");
        }

        // A request, every field set.
        let event: Event = serde_json::from_value(json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "event_type": "t",
            "data": {"a": 1},
            "mode": "thread",
            "priority": -1,
            "timeout": 1.5,
            "retry_count": 2,
            "created_at": {"secs_since_epoch": 1_700_000_000, "nanos_since_epoch": 5},
            "correlation_id": "00000000-0000-0000-0000-000000000002",
            "causation_id": "00000000-0000-0000-0000-000000000003",
            "headers": {"k": "v"}
        }))
        .expect("an event");
        let request = Request { event: CompactRef(&event), attempt: 3, timeout_ms: TimeLeft::Exactly(300) };
        let id = |n: u8| [&[16][..], &[0; 15], &[n]].concat();
        let expected = [
            &[0, 1][..], // execute, seq 1
            &id(1),
            &[1, b't'],
            &[7],
            br#"{"a":1}"#,
            &[1],                            // thread
            &[1],                            // priority -1, zigzag
            &[0x80, 0xde, 0xa0, 0xcb, 0x05], // 1.5 s in ns
            &[2],                            // retries
            &[0x80, 0xe2, 0xcf, 0xaa, 0x06], // created, s
            &[5],                            // created, ns
            &[1],
            &id(2),
            &[1],
            &id(3),
            &[1, 1, b'k', 1, b'v'], // headers
            &[3],                   // attempt
            &[0xac, 0x02],          // 300 ms
        ]
        .concat();
        assert_eq!(body(&ParentMessage::Execute { seq: 1, request }), expected);

        // Every reply, and the other child messages.
        let returned = Returned {
            success: false,
            data: Value::Null,
            error_message: Some("m".to_owned()),
            error_kind: Some(ErrorKind::BusinessFailure),
            permanent: true,
        };
        let reply = |reply: Reply<Returned>| body(&ChildMessage::<_, ()>::Reply { seq: 2, reply });
        assert_eq!(reply(Reply::Returned(returned)), [1, 2, 0, 0, 0, 1, 1, b'm', 1, 1, 1]);
        let error = Reply::Error { message: "m".to_owned(), permanent: true };
        assert_eq!(reply(error), [1, 2, 1, 1, b'm', 1]);
        assert_eq!(reply(Reply::Panicked { message: "m".to_owned() }), [1, 2, 2, 1, b'm']);
        assert_eq!(reply(Reply::TimedOut), [1, 2, 3]);
        let refused = Reply::Refused { kind: ErrorKind::InvalidInput, message: "m".to_owned() };
        assert_eq!(reply(refused), [1, 2, 4, 7, 1, b'm']);
        assert_eq!(body(&ChildMessage::<(), u8>::Publish { seq: 2, event: 9 }), [0, 2, 9]);
        let panic = crate::corelet::PanicInfo { message: "m".to_owned(), location: None, backtrace: None };
        assert_eq!(body(&ChildMessage::<(), ()>::Panic { seq: 2, panic }), [2, 2, 1, b'm', 0, 0]);
        assert_eq!(body(&ChildMessage::<(), ()>::TooLarge { seq: 2, len: 3, limit: 4 }), [3, 2, 3, 4]);
        assert_eq!(body(&ParentMessage::<()>::Shutdown), [1]);
    }
}
