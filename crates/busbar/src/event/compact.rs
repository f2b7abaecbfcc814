//! An event's compact serde form, for the corelet protocol only: its fields in a fixed order,
//! with the timeout in nanoseconds, the creation time as two integers and the data as JSON
//! text.
//!
//! Every corelet round trip encodes the event in the parent and decodes it in the child (and a
//! published event the other way). The protocol's messages are postcard (`corelet/message.rs`),
//! so this form is a tuple of plain fields: no field names, no floats. Nothing outside the
//! protocol sees it; [`super::Event`]'s own `Serialize` and `Deserialize` stay the documented
//! JSON object.
//!
//! Decoding checks nothing beyond the fields' types, since a binary decoder keeps no message
//! of a failed check: [`CompactEvent::into_event`] checks the rest and says what was wrong.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::ser::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::{Event, EventId, Links, MAX_TIMEOUT};
use crate::corelet::json::{self, JsonText};
use crate::mode::ExecutionMode;

/// An event to send in the compact form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompactRef<'a>(pub(crate) &'a Event);

/// The fields, borrowed, in wire order.
#[derive(Serialize)]
struct Fields<'a>(
    EventId,
    &'a str,
    #[serde(serialize_with = "data")] &'a Value,
    ExecutionMode,
    i32,
    /// Timeout in nanoseconds.
    u64,
    u32,
    /// Creation time: whole seconds since the Unix epoch, then the nanoseconds beyond them.
    u64,
    u32,
    Option<EventId>,
    Option<EventId>,
    &'a BTreeMap<String, String>,
);

fn data<S: Serializer>(value: &&Value, serializer: S) -> Result<S::Ok, S::Error> {
    json::serialize(value, serializer)
}

impl Serialize for CompactRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let created = event
            .created_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| S::Error::custom("the event's creation time is before 1970"))?;
        // Timeouts are at most a year (checked at publish), far below u64 nanoseconds.
        let timeout = u64::try_from(event.timeout.as_nanos()).map_err(S::Error::custom)?;
        Fields(
            event.id,
            &event.event_type,
            &event.data,
            event.mode,
            event.priority,
            timeout,
            event.retry_count,
            created.as_secs(),
            created.subsec_nanos(),
            event.links.as_ref().and_then(|links| links.correlation_id),
            event.causation_id(),
            event.headers(),
        )
        .serialize(serializer)
    }
}

/// An event as it arrives in the compact form, not yet checked: see [`into_event`].
///
/// [`into_event`]: CompactEvent::into_event
#[derive(Debug, Deserialize)]
pub(crate) struct CompactEvent(
    EventId,
    String,
    JsonText<Value>,
    ExecutionMode,
    i32,
    u64,
    u32,
    u64,
    u32,
    Option<EventId>,
    Option<EventId>,
    BTreeMap<String, String>,
);

impl CompactEvent {
    /// The event, refusing data that is not JSON, a timeout or a creation time no event can
    /// have; the error says which.
    pub(crate) fn into_event(self) -> Result<Event, String> {
        let CompactEvent(
            id,
            event_type,
            data,
            mode,
            priority,
            timeout_nanos,
            retry_count,
            created_secs,
            created_nanos,
            correlation_id,
            causation_id,
            headers,
        ) = self;
        let data = data.parsed("the event's data")?;
        let timeout = Duration::from_nanos(timeout_nanos);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(format!("the event's timeout of {timeout_nanos} ns is outside 1 ns ..= one year"));
        }
        if created_nanos >= 1_000_000_000 {
            return Err(format!("the event's creation time has {created_nanos} ns past a second"));
        }
        let created_at = UNIX_EPOCH
            .checked_add(Duration::new(created_secs, created_nanos))
            .ok_or_else(|| format!("the event's creation time of {created_secs} s is out of range"))?;
        let has_links = correlation_id.is_some() || causation_id.is_some() || !headers.is_empty();
        let links = has_links.then(|| Box::new(Links { correlation_id, causation_id, headers }));
        Ok(Event { id, event_type, data, mode, priority, timeout, retry_count, created_at, links })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn encode(event: &Event) -> Vec<u8> {
        postcard::to_stdvec(&CompactRef(event)).expect("encodes")
    }

    fn decode(bytes: &[u8]) -> Result<Event, String> {
        postcard::from_bytes::<CompactEvent>(bytes).map_err(|error| error.to_string())?.into_event()
    }

    #[test]
    fn every_field_round_trips() {
        let parent = Event::new("parent");
        let event = Event::new("child")
            .with_data(json!({"nested": [1, 2.5, "é"], "n": null}))
            .with_mode(ExecutionMode::Corelet)
            .with_priority(-3)
            .with_timeout(Duration::from_nanos(1_500_000_001))
            .with_retry_count(4)
            .with_header("k", "v");
        let mut event = event;
        event.inherit_from(super::super::ParentLink::of(&parent));
        let back = decode(&encode(&event)).expect("decodes");
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&event).unwrap());
        assert_eq!(back.created_at(), event.created_at(), "to the nanosecond");
        assert_eq!(back.timeout(), event.timeout());
        assert_eq!(back.correlation_id(), event.correlation_id());
        assert_eq!(back.causation_id(), Some(parent.id()));
    }

    /// The wire form of an event with the given timeout and creation nanoseconds: every field
    /// but those as `Event::new("t")` has them.
    fn with_times(timeout_nanos: u64, created_nanos: u32) -> Vec<u8> {
        let event = Event::new("t");
        let fields = Fields(
            event.id,
            "t",
            &Value::Null,
            event.mode,
            0,
            timeout_nanos,
            0,
            1_700_000_000,
            created_nanos,
            None,
            None,
            &BTreeMap::new(),
        );
        postcard::to_stdvec(&fields).expect("encodes")
    }

    #[test]
    fn impossible_values_are_refused_saying_which() {
        assert!(decode(&with_times(1, 0)).is_ok(), "the smallest timeout");
        assert!(decode(&with_times(0, 0)).expect_err("zero").contains("timeout of 0 ns"));
        let over = u64::try_from(MAX_TIMEOUT.as_nanos()).unwrap() + 1;
        assert!(decode(&with_times(over, 0)).expect_err("over a year").contains("outside 1 ns ..= one year"));
        assert!(decode(&with_times(1, 1_000_000_000)).expect_err("nanos").contains("past a second"));
        let bytes = encode(&Event::new("t"));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "a field missing");
    }

    #[test]
    fn data_that_is_not_json_is_refused_saying_so() {
        let mut bytes = encode(&Event::new("t").with_data(json!([1])));
        // The data's text, "[1]", follows the id (16 bytes and its length) and the type.
        let at = bytes.windows(3).position(|w| w == b"[1]").expect("the data's text");
        bytes[at + 2] = b',';
        let error = decode(&bytes).expect_err("not JSON");
        assert!(error.starts_with("the event's data is not valid JSON"), "{error}");
    }
}
