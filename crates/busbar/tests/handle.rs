//! `EventHandle`: waiting with and without a timeout, polling, and dropping it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventResult};
use support::{thread_event, Gate};

const GENEROUS: Duration = Duration::from_secs(10);

#[test]
fn wait_timeout() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let gate = Gate::new();
    let _release = gate.opener();
    let held = gate.clone();
    bus.subscribe(
        "held",
        handler_fn(move |_| {
            held.wait();
            Ok(EventResult::success_with("done".into()))
        }),
    );
    let event = thread_event("held");
    let id = event.id();
    let mut handle = bus.publish(event).unwrap();
    assert_eq!(handle.id(), id);

    // Held at the gate: nothing to return yet, however we ask.
    assert!(handle.try_result().is_none());
    assert!(!handle.is_finished());
    assert!(handle.wait_timeout(Duration::from_millis(50)).is_none());
    assert!(handle.wait_deadline(Instant::now()).is_none());

    gate.open();
    let result = handle.wait_timeout(GENEROUS).expect("released").clone();
    assert_eq!((result.event_id, result.data.as_str()), (id, Some("done")));
    // The result stays in the handle.
    assert!(handle.is_finished());
    assert_eq!(handle.try_result(), Some(&result));
    assert_eq!(handle.wait_timeout(Duration::ZERO), Some(&result));
    assert_eq!(handle.wait(), result);
}

#[test]
fn overlong_wait_timeout() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    bus.subscribe("ok", handler_fn(|_| Ok(EventResult::success())));
    let mut handle = bus.publish(thread_event("ok")).unwrap();
    // Too far to be an instant: waits without a deadline instead of panicking.
    assert!(handle.wait_timeout(Duration::MAX).expect("finished").success);
}

#[test]
fn sync_is_ready() {
    let bus = EventBus::new();
    bus.subscribe("ok", handler_fn(|_| Ok(EventResult::success())));
    let mut handle = bus.publish(Event::new("ok")).unwrap();
    assert!(handle.is_finished(), "a sync event has run when publish returns");
    assert!(handle.try_result().unwrap().success);
}

#[test]
fn dropped_handle() {
    let bus = EventBus::builder().threads(2).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    bus.subscribe(
        "count",
        handler_fn(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(EventResult::success())
        }),
    );
    for _ in 0..100 {
        drop(bus.publish(thread_event("count")).unwrap());
    }
    bus.join();
    assert_eq!(count.load(Ordering::SeqCst), 100, "dropping a handle does not cancel its event");
    assert_eq!(bus.stats().succeeded, 100);
}
