//! An event's compact serde form, for the corelet protocol only: a JSON array of its fields in
//! a fixed order, with the timeout in nanoseconds and the creation time as two integers.
//!
//! Every corelet round trip encodes the event in the parent and decodes it in the child. As a
//! JSON object (the public form, `wire.rs`) that means field names written and matched, the
//! timeout formatted and parsed as a float, the creation time as a nested object; as this
//! array, 1 850 fewer user-space instructions per round trip (7 %; callgrind on the profile
//! mode of `benches/corelet.rs`). Nothing outside the protocol sees this form;
//! [`super::Event`]'s own `Serialize` and `Deserialize` stay the documented object.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Event, EventId, Links, MAX_TIMEOUT};
use crate::mode::ExecutionMode;

/// The fields, borrowed, in wire order.
#[derive(Serialize)]
struct CompactRef<'a>(
    EventId,
    &'a str,
    &'a Value,
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

/// The fields, owned, in wire order.
#[derive(Deserialize)]
struct CompactOwned(
    EventId,
    String,
    Value,
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

/// Serializes `event` in the compact form (for `#[serde(serialize_with)]`).
pub(crate) fn serialize<S: Serializer>(event: &Event, serializer: S) -> Result<S::Ok, S::Error> {
    let created = event
        .created_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| S::Error::custom("the event's creation time is before 1970"))?;
    // Timeouts are at most a year (checked at publish), far below u64 nanoseconds.
    let timeout = u64::try_from(event.timeout.as_nanos()).map_err(S::Error::custom)?;
    CompactRef(
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

/// Deserializes an event from the compact form (for `#[serde(deserialize_with)]`), refusing a
/// timeout or a creation time no event can have.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
    let CompactOwned(
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
    ) = CompactOwned::deserialize(deserializer)?;
    let timeout = Duration::from_nanos(timeout_nanos);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(D::Error::custom(format!("timeout of {timeout_nanos} ns is outside 1 ns ..= one year")));
    }
    if created_nanos >= 1_000_000_000 {
        return Err(D::Error::custom(format!("creation time with {created_nanos} ns past a second")));
    }
    let created_at = UNIX_EPOCH
        .checked_add(Duration::new(created_secs, created_nanos))
        .ok_or_else(|| D::Error::custom(format!("creation time of {created_secs} s is out of range")))?;
    let has_links = correlation_id.is_some() || causation_id.is_some() || !headers.is_empty();
    let links = has_links.then(|| Box::new(Links { correlation_id, causation_id, headers }));
    Ok(Event { id, event_type, data, mode, priority, timeout, retry_count, created_at, links })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Carrier {
        #[serde(serialize_with = "serialize", deserialize_with = "deserialize")]
        event: Event,
    }

    fn round_trip(event: Event) -> Event {
        let text = serde_json::to_string(&Carrier { event }).expect("encodes");
        serde_json::from_str::<Carrier>(&text).expect("decodes").event
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
        let back = round_trip(event.clone());
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&event).unwrap());
        assert_eq!(back.created_at(), event.created_at(), "to the nanosecond");
        assert_eq!(back.timeout(), event.timeout());
        assert_eq!(back.correlation_id(), event.correlation_id());
        assert_eq!(back.causation_id(), Some(parent.id()));
    }

    /// The fuzz seed of corelet requests carries its event in this form: a seed the decoder
    /// refused would start the fuzzer from no valid request.
    #[test]
    fn the_fuzz_seed_decodes() {
        let seed = include_str!("../../../../fuzz/seeds/corelet_requests/execute");
        let message: Value = serde_json::from_str(seed).expect("the seed is JSON");
        let event = Carrier::deserialize(json!({"event": message["execute"]["request"]["event"]}))
            .expect("the seed's event decodes")
            .event;
        assert_eq!(event.event_type(), "user.registered");
        assert_eq!(event.headers().get("tenant").map(String::as_str), Some("acme"));
    }

    #[test]
    fn impossible_values_are_refused() {
        let good = serde_json::to_value(Carrier { event: Event::new("t") }).unwrap();
        let with = |index: usize, value: Value| {
            let mut wire = good.clone();
            wire["event"][index] = value;
            serde_json::from_value::<Carrier>(wire).err().map(|error| error.to_string())
        };
        assert!(with(5, json!(0)).expect("zero timeout").contains("timeout of 0 ns"));
        let over = u64::try_from(MAX_TIMEOUT.as_nanos()).unwrap() + 1;
        assert!(with(5, json!(over)).is_some(), "a timeout over a year");
        assert!(with(8, json!(1_000_000_000)).expect("nanos").contains("past a second"));
        assert!(with(1, json!(7)).is_some(), "a type that is not a string");
        let mut short = good.clone();
        short["event"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<Carrier>(short).is_err(), "a field missing");
    }
}
