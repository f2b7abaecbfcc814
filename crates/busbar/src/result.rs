//! The outcome of an event: [`EventResult`] and its [`ErrorKind`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EventExecutionError;
use crate::event::EventId;

/// Why an event failed.
///
/// Set by the bus on every failed [`EventResult`]; `None` on success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The handler returned `Err` (the documentation's `EventExecutionError`).
    HandlerError,
    /// The handler returned a result with `success == false`.
    BusinessFailure,
    /// The handler panicked; the message is kept.
    Panic,
    /// The attempt ran past the event's timeout.
    Timeout,
    /// The corelet process running the handler died (signal, exit, abort).
    Crashed,
    /// The event was cancelled by [`EventBus::shutdown_now`](crate::EventBus::shutdown_now).
    Cancelled,
    /// A `Cmd` event's program exited with a non-zero code or was killed.
    CommandFailed,
    /// The event's data was not what its mode needs (for example a `Cmd` event without `executable`).
    InvalidInput,
    /// No handler was registered for the event's type when it was about to run.
    NoHandler,
    /// The result is not available where it was asked for: the handle of an event published
    /// from inside a corelet, whose result is delivered on the parent's bus.
    Unsupported,
    /// The bus lost track of the event; this is a bug in busbar.
    Internal,
}

impl ErrorKind {
    /// Returns the kind's snake_case name, as it serializes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HandlerError => "handler_error",
            Self::BusinessFailure => "business_failure",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Crashed => "crashed",
            Self::Cancelled => "cancelled",
            Self::CommandFailed => "command_failed",
            Self::InvalidInput => "invalid_input",
            Self::NoHandler => "no_handler",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of an event: what a handler returns, completed by the bus.
///
/// A handler builds one with [`EventResult::success`], [`EventResult::success_with`] or
/// [`EventResult::failure`]; the bus fills in [`event_id`](Self::event_id),
/// [`attempts`](Self::attempts), [`error_kind`](Self::error_kind) and
/// [`duration`](Self::duration) before handing it to the publisher.
///
/// # Examples
///
/// ```
/// use busbar::{ErrorKind, Event, EventBus, EventResult};
/// use serde_json::json;
///
/// let bus = EventBus::new();
/// bus.subscribe("price", |ctx: &busbar::EventContext| {
///     match ctx.event().data()["amount"].as_f64() {
///         Some(amount) => Ok(EventResult::success_with(json!({"net": amount / 1.2}))),
///         None => Ok(EventResult::failure("amount missing")),
///     }
/// });
///
/// let ok = bus.publish(Event::new("price").with_data(json!({"amount": 12.0})))?.wait();
/// assert!(ok.success);
/// assert_eq!(ok.data["net"], 10.0);
/// assert_eq!(ok.attempts, 1);
///
/// let bad = bus.publish(Event::new("price"))?.wait();
/// assert!(!bad.success);
/// assert_eq!(bad.error_kind, Some(ErrorKind::BusinessFailure));
/// assert_eq!(bad.error_message.as_deref(), Some("amount missing"));
/// # Ok::<(), busbar::PublishError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventResult {
    /// Whether the event succeeded.
    pub success: bool,
    /// The handler's output data (null if none).
    pub data: Value,
    /// What went wrong, if the event failed.
    pub error_message: Option<String>,
    /// Why the event failed, set by the bus; `None` on success.
    pub error_kind: Option<ErrorKind>,
    /// The id of the event this result belongs to, set by the bus.
    pub event_id: EventId,
    /// How many attempts ran, set by the bus.
    pub attempts: u32,
    /// Wall time from the first attempt's start to the final result, set by the bus.
    pub duration: Duration,
    /// A failure the handler marked as not worth retrying.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) permanent: bool,
}

impl EventResult {
    /// Creates a successful result without data.
    pub fn success() -> Self {
        Self::success_with(Value::Null)
    }

    /// Creates a successful result carrying `data`.
    pub fn success_with(data: Value) -> Self {
        EventResult {
            success: true,
            data,
            error_message: None,
            error_kind: None,
            event_id: EventId::nil(),
            attempts: 0,
            duration: Duration::ZERO,
            permanent: false,
        }
    }

    /// Creates a failed result (a *business failure*), which is retried if retries remain.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::failed(ErrorKind::BusinessFailure, message.into())
    }

    /// Creates a failed result of the given kind; the bus's own constructor.
    pub(crate) fn failed(kind: ErrorKind, message: String) -> Self {
        EventResult {
            success: false,
            error_message: Some(message),
            error_kind: Some(kind),
            ..Self::success()
        }
    }

    /// Adds data to a result, for example details to a failure.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Marks a failure as permanent: the bus does not retry it.
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::{Event, EventBus, EventResult};
    ///
    /// let bus = EventBus::new();
    /// bus.subscribe("charge", |_: &busbar::EventContext| {
    ///     Ok(EventResult::failure("card declined").permanent())
    /// });
    /// let result = bus.publish(Event::new("charge").with_retry_count(5))?.wait();
    /// assert_eq!(result.attempts, 1);
    /// # Ok::<(), busbar::PublishError>(())
    /// ```
    #[must_use]
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Returns `true` if this failure is not worth retrying: the handler marked it
    /// [permanent](Self::permanent) (or returned a [permanent error](crate::HandlerError::permanent)),
    /// or the bus refused to run it (no handler, invalid input) or cancelled it.
    ///
    /// A failure that used up its attempts is not permanent: another attempt might succeed.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Returns `true` if the event failed because an attempt ran past its timeout.
    pub fn is_timeout(&self) -> bool {
        self.error_kind == Some(ErrorKind::Timeout)
    }

    /// Returns `true` if the event was cancelled at shutdown.
    pub fn is_cancelled(&self) -> bool {
        self.error_kind == Some(ErrorKind::Cancelled)
    }

    /// Turns the result into a `Result`: the data on success, [`EventExecutionError`] on failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::{Event, EventBus, ErrorKind};
    ///
    /// let bus = EventBus::new();
    /// bus.subscribe("broken", |_: &busbar::EventContext| Err("something broke".into()));
    /// let err = bus.publish(Event::new("broken"))?.wait().into_result().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::HandlerError);
    /// assert_eq!(err.message(), "something broke");
    /// # Ok::<(), busbar::PublishError>(())
    /// ```
    pub fn into_result(self) -> Result<Value, EventExecutionError> {
        if self.success {
            Ok(self.data)
        } else {
            Err(EventExecutionError::from_result(self))
        }
    }
}

impl Default for EventResult {
    fn default() -> Self {
        Self::success()
    }
}
