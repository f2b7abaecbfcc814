//! An event's serde form: flat, timeouts as seconds, modes as names, optional parts omitted.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Event, EventId, Links, DEFAULT_PRIORITY, DEFAULT_TIMEOUT};
use crate::mode::ExecutionMode;

/// An event as it is written: borrowed, so serializing never clones data.
#[derive(Serialize)]
struct EventRef<'a> {
    id: EventId,
    event_type: &'a str,
    data: &'a Value,
    mode: ExecutionMode,
    priority: i32,
    #[serde(serialize_with = "timeout_seconds")]
    timeout: Duration,
    retry_count: u32,
    created_at: SystemTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<EventId>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: &'a BTreeMap<String, String>,
}

/// An event as it is read: every field but the type has the documented default.
#[derive(Deserialize)]
struct EventRepr {
    #[serde(default = "EventId::new")]
    id: EventId,
    event_type: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    mode: ExecutionMode,
    #[serde(default = "default_priority")]
    priority: i32,
    #[serde(default = "default_timeout", deserialize_with = "seconds_timeout")]
    timeout: Duration,
    #[serde(default)]
    retry_count: u32,
    #[serde(default = "SystemTime::now")]
    created_at: SystemTime,
    #[serde(default)]
    correlation_id: Option<EventId>,
    #[serde(default)]
    causation_id: Option<EventId>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EventRef {
            id: self.id,
            event_type: &self.event_type,
            data: &self.data,
            mode: self.mode,
            priority: self.priority,
            timeout: self.timeout,
            retry_count: self.retry_count,
            created_at: self.created_at,
            correlation_id: self.links.as_ref().and_then(|links| links.correlation_id),
            causation_id: self.causation_id(),
            headers: self.headers(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = EventRepr::deserialize(deserializer)?;
        let has_links =
            repr.correlation_id.is_some() || repr.causation_id.is_some() || !repr.headers.is_empty();
        let links = has_links.then(|| {
            Box::new(Links {
                correlation_id: repr.correlation_id,
                causation_id: repr.causation_id,
                headers: repr.headers,
            })
        });
        Ok(Event {
            id: repr.id,
            event_type: repr.event_type,
            data: repr.data,
            mode: repr.mode,
            priority: repr.priority,
            timeout: repr.timeout,
            retry_count: repr.retry_count,
            created_at: repr.created_at,
            links,
        })
    }
}

fn default_priority() -> i32 {
    DEFAULT_PRIORITY
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Timeouts travel as (fractional) seconds, as in the documentation.
fn timeout_seconds<S: Serializer>(timeout: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(timeout.as_secs_f64())
}

/// Reads a timeout in seconds, refusing values that are not a usable timeout with a message
/// that says what was expected.
fn seconds_timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = f64::deserialize(deserializer)?;
    super::timeout_from_secs(seconds).map_err(serde::de::Error::custom)
}
