//! Errors: [`BrokerError`] when talking to Redis fails, [`PublishError`] when an event is refused.

use std::fmt;
use std::time::Duration;

use busbar::Event;

/// Talking to Redis failed, or a setting cannot work.
///
/// [`is_unavailable`](Self::is_unavailable) tells a Redis that cannot be reached (refused,
/// unreachable, silent past the I/O timeout, connection dropped) from one that answered with
/// an error. `source()` chains to the `redis` crate's error.
pub struct BrokerError {
    kind: Kind,
    /// The request may have been carried out: the connection broke or timed out after it was
    /// sent.
    ambiguous: bool,
}

enum Kind {
    /// The URL does not parse.
    InvalidUrl { url: String, source: redis::RedisError },
    /// A setting is out of range, or something cannot be done (a reason, complete).
    Invalid(String),
    /// Redis cannot be reached, or stopped answering.
    Unavailable { address: String, timeout: Option<Duration>, source: redis::RedisError },
    /// Redis answered with an error.
    Redis { address: String, source: redis::RedisError },
    /// Something that was asked for is not there.
    NotFound(String),
}

impl BrokerError {
    pub(crate) fn invalid_url(url: &str, source: redis::RedisError) -> Self {
        BrokerError { kind: Kind::InvalidUrl { url: url.to_owned(), source }, ambiguous: false }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        BrokerError { kind: Kind::Invalid(reason.into()), ambiguous: false }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        BrokerError { kind: Kind::NotFound(what.into()), ambiguous: false }
    }

    /// Classifies an error of the `redis` crate: the connection's fault, or Redis's answer.
    pub(crate) fn from_redis(address: &str, io_timeout: Duration, source: redis::RedisError) -> Self {
        let address = address.to_owned();
        let ambiguous = source.is_timeout() || source.is_connection_dropped();
        let kind = if breaks_connection(&source) {
            let timeout = source.is_timeout().then_some(io_timeout);
            Kind::Unavailable { address, timeout, source }
        } else {
            Kind::Redis { address, source }
        };
        BrokerError { kind, ambiguous }
    }

    /// Marks the error as following a request that may have been carried out.
    pub(crate) fn into_ambiguous(mut self) -> Self {
        self.ambiguous = true;
        self
    }

    /// Returns `true` if the request may have been carried out all the same: the connection
    /// broke or timed out after the request was sent (typically while Redis was shutting
    /// down). A publish that fails this way may have stored the event.
    pub fn is_ambiguous(&self) -> bool {
        self.ambiguous
    }

    /// Returns `true` if Redis could not be reached or stopped answering; retrying later may
    /// succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, Kind::Unavailable { .. })
    }

    /// Returns `true` if what was asked for (a dead letter) is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, Kind::NotFound(_))
    }
}

/// Returns `true` if `error` leaves the connection unusable, or Redis unusable for now: the
/// connection is dropped and opened anew. A script missing from Redis's cache counts too:
/// scripts are loaded on connecting.
pub(crate) fn breaks_connection(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_unrecoverable_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.kind() == redis::ErrorKind::NoScriptError
        // Redis is reading its append-only file after a restart: not there yet.
        || error.kind() == redis::ErrorKind::BusyLoadingError
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::InvalidUrl { url, source } => write!(f, "invalid redis url `{url}`: {source}"),
            Kind::Invalid(reason) => f.write_str(reason),
            Kind::Unavailable { address, timeout: Some(timeout), .. } => {
                write!(f, "redis at {address} is unavailable: no answer within {timeout:?}")
            }
            Kind::Unavailable { address, source, .. } => {
                write!(f, "redis at {address} is unavailable: {source}")
            }
            Kind::Redis { address, source } => {
                write!(f, "redis at {address} answered with an error: {source}")
            }
            Kind::NotFound(what) => f.write_str(what),
        }
    }
}

impl fmt::Debug for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BrokerError").field(&self.to_string()).finish()
    }
}

impl std::error::Error for BrokerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::InvalidUrl { source, .. }
            | Kind::Unavailable { source, .. }
            | Kind::Redis { source, .. } => Some(source),
            Kind::Invalid(_) | Kind::NotFound(_) => None,
        }
    }
}

/// The error of [`Publisher::publish`](crate::Publisher::publish) and its family: the event
/// was not accepted, and is handed back by [`into_inner`](Self::into_inner).
///
/// `Debug` prints the reason without the event, so logs stay short.
pub struct PublishError {
    event: Box<Event>,
    kind: PublishKind,
}

enum PublishKind {
    /// The event is malformed (empty type, unusable timeout, a delay over a year...).
    Invalid(String),
    /// Redis did not take it.
    Broker(BrokerError),
    /// The publisher was closed.
    Closed,
}

impl PublishError {
    pub(crate) fn invalid(reason: impl Into<String>, event: Event) -> Self {
        PublishError { event: Box::new(event), kind: PublishKind::Invalid(reason.into()) }
    }

    pub(crate) fn broker(error: BrokerError, event: Event) -> Self {
        PublishError { event: Box::new(event), kind: PublishKind::Broker(error) }
    }

    pub(crate) fn closed(event: Event) -> Self {
        PublishError { event: Box::new(event), kind: PublishKind::Closed }
    }

    /// Returns the event that was not accepted.
    pub fn into_inner(self) -> Event {
        *self.event
    }

    /// Returns `true` if the event itself is malformed; publishing it again cannot succeed.
    pub fn is_invalid(&self) -> bool {
        matches!(self.kind, PublishKind::Invalid(_))
    }

    /// Returns `true` if Redis could not be reached or stopped answering; publishing again
    /// later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(&self.kind, PublishKind::Broker(error) if error.is_unavailable())
    }

    /// Returns `true` if Redis may have stored the event despite the error: the connection
    /// broke or timed out after the event was sent. The event then runs, and publishing it
    /// again runs it twice (with one result reaching the new handle); delivery is at least
    /// once.
    pub fn is_ambiguous(&self) -> bool {
        matches!(&self.kind, PublishKind::Broker(error) if error.is_ambiguous())
    }

    /// Returns `true` if the publisher was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, PublishKind::Closed)
    }

    /// Returns the Redis error behind the refusal, if there was one.
    pub fn broker_error(&self) -> Option<&BrokerError> {
        match &self.kind {
            PublishKind::Broker(error) => Some(error),
            PublishKind::Invalid(_) | PublishKind::Closed => None,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event_type = self.event.event_type();
        match &self.kind {
            PublishKind::Invalid(reason) => write!(f, "invalid event `{event_type}`: {reason}"),
            PublishKind::Broker(error) => write!(f, "publishing event `{event_type}` failed: {error}"),
            PublishKind::Closed => write!(f, "publishing event `{event_type}` on a closed publisher"),
        }
    }
}

impl fmt::Debug for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PublishKind::Invalid(reason) => f.debug_tuple("Invalid").field(reason).finish(),
            PublishKind::Broker(error) => f.debug_tuple("Broker").field(error).finish(),
            PublishKind::Closed => f.write_str("Closed(..)"),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            PublishKind::Broker(error) => Some(error),
            PublishKind::Invalid(_) | PublishKind::Closed => None,
        }
    }
}
