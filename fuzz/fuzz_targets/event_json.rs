//! `Event` from JSON, as events arrive from other processes and files; an event that reads
//! must be valid where it is checked at read time, and survive a round trip unchanged.
#![no_main]

use busbar::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let event = match serde_json::from_slice::<Event>(input) {
        Ok(event) => event,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    busbar::__fuzz::check_event(&event);
    let text = serde_json::to_vec(&event).expect("an event that was read can be written");
    let again: Event = serde_json::from_slice(&text).expect("an event that was written can be read");
    assert_eq!(again.id(), event.id());
    assert_eq!(again.event_type(), event.event_type());
    assert_eq!(again.data(), event.data());
    assert_eq!(again.mode(), event.mode());
    assert_eq!(again.priority(), event.priority());
    assert_eq!(again.timeout(), event.timeout(), "the timeout changed in a round trip");
    assert_eq!(again.retry_count(), event.retry_count());
    assert_eq!(again.created_at(), event.created_at());
    assert_eq!(again.correlation_id(), event.correlation_id());
    assert_eq!(again.causation_id(), event.causation_id());
    assert_eq!(again.headers(), event.headers());
});
