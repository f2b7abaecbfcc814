//! Thread-mode events run by priority, higher first, in publish order among equals.

mod support;

use std::sync::{Arc, Mutex};

use busbar::{handler_fn, EventBus, EventResult};
use serde_json::json;
use support::{thread_event, Gate};

/// Builds a one-thread bus whose worker is held busy at `gate`, and a log of the `tag`s of
/// `record` events in the order they ran. Returns once the worker is blocked.
fn held_bus(gate: &Gate) -> (EventBus, Arc<Mutex<Vec<String>>>) {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let is_started = support::subscribe_held(&bus, "hold", gate);
    let log = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&log);
    bus.subscribe(
        "record",
        handler_fn(move |ctx| {
            let tag = ctx.event().data()["tag"].as_str().unwrap().to_owned();
            record.lock().unwrap().push(tag);
            Ok(EventResult::success())
        }),
    );
    drop(bus.publish(thread_event("hold")).unwrap());
    is_started.recv().unwrap();
    (bus, log)
}

#[test]
fn order() {
    let gate = Gate::new();
    let _release = gate.opener();
    let (bus, log) = held_bus(&gate);
    for (tag, priority) in [("a", 1), ("b", 10), ("c", 5), ("d", 10)] {
        let event = thread_event("record").with_priority(priority).with_data(json!({ "tag": tag }));
        drop(bus.publish(event).unwrap());
    }
    gate.open();
    bus.join();
    assert_eq!(*log.lock().unwrap(), ["b", "d", "c", "a"]);
}

#[test]
fn fifo_among_equals() {
    let gate = Gate::new();
    let _release = gate.opener();
    let (bus, log) = held_bus(&gate);
    let tags: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    for tag in &tags {
        drop(bus.publish(thread_event("record").with_data(json!({ "tag": tag }))).unwrap());
    }
    gate.open();
    bus.join();
    assert_eq!(*log.lock().unwrap(), tags);
}

#[test]
fn extremes() {
    let gate = Gate::new();
    let _release = gate.opener();
    let (bus, log) = held_bus(&gate);
    for (tag, priority) in [("min", i32::MIN), ("zero", 0), ("max", i32::MAX), ("neg", -1)] {
        let event = thread_event("record").with_priority(priority).with_data(json!({ "tag": tag }));
        drop(bus.publish(event).unwrap());
    }
    gate.open();
    bus.join();
    assert_eq!(*log.lock().unwrap(), ["max", "zero", "neg", "min"]);
}
