//! Errors of the bus's operations. Each is named after its operation.

use std::fmt;

use crate::event::Event;
use crate::result::{ErrorKind, EventResult};
use crate::EventId;

/// The error of [`EventBus::publish`](crate::EventBus::publish) and
/// [`try_publish`](crate::EventBus::try_publish): the event was not accepted.
///
/// Every variant hands the refused event back through [`into_inner`](Self::into_inner).
/// `Debug` prints the variant without the event, so logs stay short.
///
/// # Examples
///
/// ```
/// use busbar::{Event, EventBus, PublishError};
///
/// let bus = EventBus::new();
/// let err = bus.publish(Event::new("unknown.event")).unwrap_err();
/// assert!(matches!(err, PublishError::NoHandlerAvailable(_)));
/// assert_eq!(err.to_string(), "no handler registered for event type `unknown.event`");
/// assert_eq!(err.into_inner().event_type(), "unknown.event");
/// ```
#[non_exhaustive]
pub enum PublishError {
    /// No handler is registered for the event's type (the documentation's
    /// `NoHandlerAvailableError`). `Cmd` events need none.
    NoHandlerAvailable(NoHandlerAvailableError),
    /// The event is malformed: empty type, zero or absurd timeout.
    InvalidEvent(InvalidEventError),
    /// The bus was shut down and accepts no more events.
    ShutDown(Box<Event>),
    /// The queue is full; only [`try_publish`](crate::EventBus::try_publish) returns this.
    Full(Box<Event>),
}

impl PublishError {
    /// Returns the event that was not accepted.
    pub fn into_inner(self) -> Event {
        match self {
            PublishError::NoHandlerAvailable(e) => *e.event,
            PublishError::InvalidEvent(e) => *e.event,
            PublishError::ShutDown(event) | PublishError::Full(event) => *event,
        }
    }

    /// Returns `true` if the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, PublishError::Full(_))
    }

    /// Returns `true` if the bus was shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, PublishError::ShutDown(_))
    }
}

impl fmt::Debug for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::NoHandlerAvailable(e) => f.debug_tuple("NoHandlerAvailable").field(e).finish(),
            PublishError::InvalidEvent(e) => f.debug_tuple("InvalidEvent").field(e).finish(),
            PublishError::ShutDown(_) => f.write_str("ShutDown(..)"),
            PublishError::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::NoHandlerAvailable(e) => e.fmt(f),
            PublishError::InvalidEvent(e) => e.fmt(f),
            PublishError::ShutDown(event) => {
                write!(f, "publishing event `{}` on a bus that was shut down", event.event_type())
            }
            PublishError::Full(event) => {
                write!(f, "publishing event `{}` on a full queue", event.event_type())
            }
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublishError::NoHandlerAvailable(e) => Some(e),
            PublishError::InvalidEvent(e) => Some(e),
            _ => None,
        }
    }
}

impl From<NoHandlerAvailableError> for PublishError {
    fn from(e: NoHandlerAvailableError) -> Self {
        PublishError::NoHandlerAvailable(e)
    }
}

impl From<InvalidEventError> for PublishError {
    fn from(e: InvalidEventError) -> Self {
        PublishError::InvalidEvent(e)
    }
}

/// No handler is registered for an event's type.
pub struct NoHandlerAvailableError {
    event: Box<Event>,
}

impl NoHandlerAvailableError {
    pub(crate) fn new(event: Event) -> Self {
        NoHandlerAvailableError { event: Box::new(event) }
    }

    /// Returns the event type that has no handler.
    pub fn event_type(&self) -> &str {
        self.event.event_type()
    }

    /// Returns the event that was not accepted.
    pub fn into_inner(self) -> Event {
        *self.event
    }
}

impl fmt::Debug for NoHandlerAvailableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoHandlerAvailableError").field("event_type", &self.event_type()).finish()
    }
}

impl fmt::Display for NoHandlerAvailableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no handler registered for event type `{}`", self.event_type())
    }
}

impl std::error::Error for NoHandlerAvailableError {}

/// An event that cannot be published as it is.
pub struct InvalidEventError {
    reason: String,
    event: Box<Event>,
}

impl InvalidEventError {
    pub(crate) fn new(reason: String, event: Event) -> Self {
        InvalidEventError { reason, event: Box::new(event) }
    }

    /// Returns what is wrong with the event and what was expected.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Returns the event that was not accepted.
    pub fn into_inner(self) -> Event {
        *self.event
    }
}

impl fmt::Debug for InvalidEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidEventError").field("reason", &self.reason).finish()
    }
}

impl fmt::Display for InvalidEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid event `{}`: {}", self.event.event_type(), self.reason)
    }
}

impl std::error::Error for InvalidEventError {}

/// A failed event, as [`EventResult::into_result`] reports it (the documentation's
/// `EventExecutionError`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventExecutionError {
    kind: ErrorKind,
    message: String,
    event_id: EventId,
    attempts: u32,
}

impl EventExecutionError {
    pub(crate) fn from_result(result: EventResult) -> Self {
        EventExecutionError {
            kind: result.error_kind.unwrap_or(ErrorKind::BusinessFailure),
            message: result.error_message.unwrap_or_else(|| "the event failed".to_owned()),
            event_id: result.event_id,
            attempts: result.attempts,
        }
    }

    /// Returns why the event failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Returns the failure's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Returns the id of the event that failed.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }

    /// Returns how many attempts ran.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Returns `true` if the event failed on a timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

impl fmt::Display for EventExecutionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "event {} failed after {} attempt{plural} ({}): {}",
            self.event_id, self.attempts, self.kind, self.message
        )
    }
}

impl std::error::Error for EventExecutionError {}

/// A string that is not an execution mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseModeError {
    input: String,
}

impl ParseModeError {
    pub(crate) fn new(input: &str) -> Self {
        ParseModeError { input: input.to_owned() }
    }
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown execution mode `{}`: expected one of `sync`, `thread`, `corelet`, `cmd`",
            self.input
        )
    }
}

impl std::error::Error for ParseModeError {}

/// Event data that could not be converted to or from a typed payload.
#[derive(Debug)]
pub struct PayloadError {
    event_type: String,
    direction: &'static str,
    source: serde_json::Error,
}

impl PayloadError {
    pub(crate) fn serialize(event_type: &str, source: serde_json::Error) -> Self {
        PayloadError { event_type: event_type.to_owned(), direction: "serializing", source }
    }

    pub(crate) fn deserialize(event_type: &str, source: serde_json::Error) -> Self {
        PayloadError { event_type: event_type.to_owned(), direction: "deserializing", source }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} the payload of event `{}`: {}", self.direction, self.event_type, self.source)
    }
}

impl std::error::Error for PayloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
