//! The event: a typed message with data and execution settings.

mod compact;
mod wire;

pub(crate) use compact::{CompactEvent, CompactRef};

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::PayloadError;
use crate::mode::ExecutionMode;

/// The default priority of an event: 5. Higher priorities run first.
pub const DEFAULT_PRIORITY: i32 = 5;
/// The default timeout of one attempt: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of retries after a failed attempt: 0, so an event runs once.
pub const DEFAULT_RETRY_COUNT: u32 = 0;
/// The longest timeout an event may carry: one year. Longer ones are refused at publish.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The unique id of an event (a random UUID).
///
/// # Examples
///
/// ```
/// use busbar::Event;
///
/// let a = Event::new("a");
/// let b = Event::new("a");
/// assert_ne!(a.id(), b.id());
/// assert_eq!(a.id().to_string().len(), 36);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// Creates a new random id.
    pub fn new() -> Self {
        EventId(Uuid::new_v4())
    }

    /// The id that handler-built results carry until the bus fills in the real one.
    pub(crate) const fn nil() -> Self {
        EventId(Uuid::nil())
    }

    /// Returns the id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::nil()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An event: a type, a JSON payload and the settings that say how to run its handler.
///
/// Build one with [`Event::new`] and the `with_*` methods; the defaults are those of the
/// documentation busbar follows: [`ExecutionMode::Sync`], priority [`DEFAULT_PRIORITY`],
/// timeout [`DEFAULT_TIMEOUT`], [`DEFAULT_RETRY_COUNT`] retries.
///
/// Every event gets a unique [`id`](Self::id) and a creation time. Events published from inside
/// a handler inherit the [`correlation_id`](Self::correlation_id) of the chain and get their
/// parent's id as [`causation_id`](Self::causation_id).
///
/// Events are plain data: `Clone`, `Debug`, and serde `Serialize`/`Deserialize` (timeouts as
/// seconds, modes as their names), so they can cross process boundaries.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use busbar::{Event, ExecutionMode};
/// use serde_json::json;
///
/// let event = Event::new("critical.task")
///     .with_data(json!({"task_id": 456}))
///     .with_mode(ExecutionMode::Thread)
///     .with_priority(10)
///     .with_retry_count(3)
///     .with_timeout(Duration::from_secs(60))
///     .with_header("tenant", "acme");
///
/// assert_eq!(event.event_type(), "critical.task");
/// assert_eq!(event.data()["task_id"], 456);
/// assert_eq!(event.priority(), 10);
/// assert_eq!(event.header("tenant"), Some("acme"));
/// assert_eq!(event.correlation_id(), event.id()); // a root event correlates with itself
/// ```
// Serialized through `wire::EventRepr`: the in-memory layout keeps rarely used fields behind a
// pointer, the wire format is flat.
#[derive(Clone, Debug)]
pub struct Event {
    id: EventId,
    event_type: String,
    data: Value,
    mode: ExecutionMode,
    priority: i32,
    timeout: Duration,
    retry_count: u32,
    created_at: SystemTime,
    /// Chain ids and headers. Most events have none, and a million queued events may wait at
    /// once, so they cost one pointer until used.
    links: Option<Box<Links>>,
}

/// The optional parts of an event.
#[derive(Clone, Debug, Default)]
pub(crate) struct Links {
    pub(crate) correlation_id: Option<EventId>,
    pub(crate) causation_id: Option<EventId>,
    pub(crate) headers: BTreeMap<String, String>,
}

/// What `headers()` returns for an event without headers.
static NO_HEADERS: BTreeMap<String, String> = BTreeMap::new();

impl Event {
    /// Creates an event of the given type with null data and default settings.
    ///
    /// The type is checked when the event is published: an empty type is refused there with
    /// [`InvalidEventError`](crate::InvalidEventError).
    pub fn new(event_type: impl Into<String>) -> Self {
        Event {
            id: EventId::new(),
            event_type: event_type.into(),
            data: Value::Null,
            mode: ExecutionMode::Sync,
            priority: DEFAULT_PRIORITY,
            timeout: DEFAULT_TIMEOUT,
            retry_count: DEFAULT_RETRY_COUNT,
            created_at: SystemTime::now(),
            links: None,
        }
    }

    /// Sets the event's JSON data.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Sets the event's data by serializing a typed payload.
    ///
    /// # Errors
    ///
    /// Fails if `payload` cannot be represented as JSON (for example a map with non-string
    /// keys); the error names the event type.
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::Event;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, PartialEq, Debug)]
    /// struct Upload { path: String }
    ///
    /// let event = Event::new("file.upload").with_payload(&Upload { path: "/tmp/a".into() })?;
    /// assert_eq!(event.payload::<Upload>()?, Upload { path: "/tmp/a".into() });
    /// # Ok::<(), busbar::PayloadError>(())
    /// ```
    pub fn with_payload<T: Serialize + ?Sized>(mut self, payload: &T) -> Result<Self, PayloadError> {
        self.data = serde_json::to_value(payload)
            .map_err(|source| PayloadError::serialize(&self.event_type, source))?;
        Ok(self)
    }

    /// Sets the execution mode.
    #[must_use]
    pub fn with_mode(mut self, mode: ExecutionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the priority: higher runs first, events of equal priority run in publish order.
    #[must_use]
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the timeout of each attempt. Zero, or more than [`MAX_TIMEOUT`], is refused at publish.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times a failed attempt is retried: at most `1 + retry_count` attempts run.
    #[must_use]
    pub fn with_retry_count(mut self, retry_count: u32) -> Self {
        self.retry_count = retry_count;
        self
    }

    /// Sets the correlation id: the id shared by every event of one chain.
    ///
    /// Events published from a handler get this automatically.
    #[must_use]
    pub fn with_correlation_id(mut self, id: EventId) -> Self {
        self.links_mut().correlation_id = Some(id);
        self
    }

    /// Sets the causation id: the id of the event whose handler published this one.
    ///
    /// Events published from a handler get this automatically.
    #[must_use]
    pub fn with_causation_id(mut self, id: EventId) -> Self {
        self.links_mut().causation_id = Some(id);
        self
    }

    /// Adds a string header, replacing an earlier value for the same name.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.links_mut().headers.insert(name.into(), value.into());
        self
    }

    /// Returns a copy of this event with a new id and creation time, as timers publish it.
    #[must_use]
    pub fn fresh_copy(&self) -> Self {
        Event { id: EventId::new(), created_at: SystemTime::now(), ..self.clone() }
    }

    /// Returns the event's unique id.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Returns the event's type, which selects its handler.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// Returns the event's JSON data (null if none was set).
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// Deserializes the event's data into a typed payload.
    ///
    /// # Errors
    ///
    /// Fails if the data does not have the shape of `T`; the error names the event type and
    /// what serde expected.
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::Event;
    /// use serde_json::json;
    ///
    /// let event = Event::new("order.created").with_data(json!({"id": "not a number"}));
    /// #[derive(serde::Deserialize, Debug)]
    /// struct Order { id: u64 }
    /// let err = event.payload::<Order>().unwrap_err();
    /// assert!(err.to_string().contains("order.created"));
    /// ```
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        T::deserialize(&self.data).map_err(|source| PayloadError::deserialize(&self.event_type, source))
    }

    /// Returns the execution mode.
    pub fn mode(&self) -> ExecutionMode {
        self.mode
    }

    /// Returns the priority (higher runs first).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Returns the timeout of each attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Returns the number of retries after a failed attempt.
    pub fn retry_count(&self) -> u32 {
        self.retry_count
    }

    /// Returns the most attempts this event can take: `1 + retry_count`.
    pub fn max_attempts(&self) -> u32 {
        self.retry_count.saturating_add(1)
    }

    /// Returns when the event was created.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// Returns the correlation id: the root event's id for a chain, this event's own id otherwise.
    pub fn correlation_id(&self) -> EventId {
        self.links.as_ref().and_then(|links| links.correlation_id).unwrap_or(self.id)
    }

    /// Returns the id of the event whose handler published this one, if any.
    pub fn causation_id(&self) -> Option<EventId> {
        self.links.as_ref().and_then(|links| links.causation_id)
    }

    /// Returns the value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name).map(String::as_str)
    }

    /// Returns all headers, sorted by name.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        self.links.as_ref().map_or(&NO_HEADERS, |links| &links.headers)
    }

    fn links_mut(&mut self) -> &mut Links {
        self.links.get_or_insert_with(Box::default)
    }

    /// Returns why a bus would refuse to publish this event, if it would: an empty type, a
    /// zero timeout, or one longer than [`MAX_TIMEOUT`].
    ///
    /// `publish` makes this check itself; transports that carry events elsewhere (such as a
    /// broker) can make the same one before sending.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use busbar::Event;
    ///
    /// assert_eq!(Event::new("a").invalid_reason(), None);
    /// let reason = Event::new("a").with_timeout(Duration::ZERO).invalid_reason();
    /// assert_eq!(reason.as_deref(), Some("the timeout is zero; expected a positive duration"));
    /// ```
    // Inlined: this runs on every publish, and the common case is decided by `is_plainly_valid`
    // in a few instructions; only a doubtful event pays for the call that spells out why.
    #[inline]
    pub fn invalid_reason(&self) -> Option<String> {
        if self.is_plainly_valid() {
            return None;
        }
        self.why_invalid()
    }

    /// A quick check that accepts most valid events: a type that starts with a visible ASCII
    /// character (so it is not all whitespace) and a timeout in range. `false` only means
    /// "look closer" (`why_invalid`): a type that starts with a space may still be valid.
    #[inline]
    fn is_plainly_valid(&self) -> bool {
        let visible_start = self.event_type.as_bytes().first().is_some_and(u8::is_ascii_graphic);
        visible_start && !self.timeout.is_zero() && self.timeout <= MAX_TIMEOUT
    }

    /// [`invalid_reason`](Self::invalid_reason) for an event the quick check doubted.
    #[cold]
    fn why_invalid(&self) -> Option<String> {
        // Same test as `trim().is_empty()`, but it stops at the first non-blank character
        // instead of scanning from both ends.
        if self.event_type.chars().all(char::is_whitespace) {
            return Some("the event type is empty; expected a name such as `user.created`".to_owned());
        }
        if self.timeout.is_zero() {
            return Some("the timeout is zero; expected a positive duration".to_owned());
        }
        if self.timeout > MAX_TIMEOUT {
            let timeout = self.timeout;
            return Some(format!("the timeout of {timeout:?} is longer than the maximum of one year"));
        }
        None
    }

    /// Makes this event a child of `parent`: same correlation id, parent as causation.
    ///
    /// An explicitly set causation id is kept.
    pub(crate) fn inherit_from(&mut self, parent: ParentLink) {
        if self.causation_id().is_none() {
            let links = self.links_mut();
            links.causation_id = Some(parent.id);
            links.correlation_id.get_or_insert(parent.correlation_id);
        }
    }
}

/// What a child event inherits from the event whose handler published it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParentLink {
    /// The parent's id, which becomes the child's causation id.
    pub(crate) id: EventId,
    /// The chain's correlation id.
    pub(crate) correlation_id: EventId,
}

impl ParentLink {
    pub(crate) fn of(event: &Event) -> Self {
        ParentLink { id: event.id(), correlation_id: event.correlation_id() }
    }
}

/// Converts a timeout given in seconds (from a config file or a serialized event) into a
/// [`Duration`], refusing values that are not a usable timeout.
pub(crate) fn timeout_from_secs(seconds: f64) -> Result<Duration, String> {
    if !seconds.is_finite() {
        return Err(format!("timeout must be a finite number of seconds, found {seconds}"));
    }
    if seconds <= 0.0 {
        return Err(format!("timeout must be greater than zero seconds, found {seconds}"));
    }
    if seconds > MAX_TIMEOUT.as_secs_f64() {
        return Err(format!(
            "timeout must be at most {} seconds (one year), found {seconds}",
            MAX_TIMEOUT.as_secs()
        ));
    }
    let timeout = Duration::from_secs_f64(seconds);
    // A positive number of seconds below one nanosecond would become a zero `Duration`,
    // which no event may carry.
    if timeout.is_zero() {
        return Err(format!("timeout must be at least one nanosecond (1e-9 seconds), found {seconds}"));
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick check and the full one must agree: whatever the quick one doubts, the full
    /// one decides.
    #[test]
    fn invalid_reason_agrees_with_the_full_check_on_edge_cases() {
        let valid = |event_type: &str, timeout: Duration| {
            Event::new(event_type).with_timeout(timeout).invalid_reason().is_none()
        };
        assert!(valid("a", DEFAULT_TIMEOUT));
        assert!(valid(" padded", DEFAULT_TIMEOUT), "a leading space is not an empty type");
        assert!(valid("\u{e9}t\u{e9}", DEFAULT_TIMEOUT), "a non-ASCII start is looked at closer");
        assert!(valid("a", MAX_TIMEOUT));
        assert!(valid("a", Duration::from_nanos(1)));
        assert!(!valid("", DEFAULT_TIMEOUT));
        assert!(!valid(" \t\n", DEFAULT_TIMEOUT));
        assert!(!valid("\u{2003}", DEFAULT_TIMEOUT), "a Unicode space is whitespace too");
        assert!(!valid("a", Duration::ZERO));
        assert!(!valid("a", MAX_TIMEOUT + Duration::from_nanos(1)));
    }

    /// Found by fuzzing: a timeout far below a nanosecond passed the "greater than zero"
    /// check and became a zero `Duration`, so an event was read that no check accepts.
    #[test]
    fn a_timeout_below_a_nanosecond_is_refused_where_it_is_read() {
        let error = timeout_from_secs(4e-15).expect_err("rounds to zero");
        assert!(error.contains("at least one nanosecond"), "{error}");
        assert_eq!(timeout_from_secs(1e-9), Ok(Duration::from_nanos(1)));
        let input = r#"{"event_type":"ud","timeout":0.0000000000000040}"#;
        let error = serde_json::from_str::<Event>(input).expect_err("refused");
        assert!(error.to_string().contains("at least one nanosecond"), "{error}");
    }
}
