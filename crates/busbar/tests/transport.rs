//! The hooks for transports: handles resolved from outside (`EventHandle::with_resolver`) and
//! single attempts whose retries someone else counts (`EventBus::publish_attempt`).

use std::thread;
use std::time::Duration;

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventHandle, EventResult, HandlerError};

#[test]
fn resolved_from_another_thread() {
    let event = Event::new("remote");
    let (mut handle, resolver) = EventHandle::with_resolver(event.id());
    assert_eq!(resolver.id(), event.id());
    assert!(handle.try_result().is_none());
    let sender = thread::spawn(move || resolver.resolve(EventResult::failure("far away")));
    let result = handle.wait_timeout(Duration::from_secs(30)).expect("resolved").clone();
    sender.join().unwrap();
    assert_eq!(result.event_id, event.id());
    assert_eq!(result.error_message.as_deref(), Some("far away"));
}

#[test]
fn dropped_resolver_is_reported() {
    let (handle, resolver) = EventHandle::with_resolver(Event::new("remote").id());
    drop(resolver);
    assert_eq!(handle.wait().error_kind, Some(ErrorKind::Internal));
}

fn attempt_bus() -> EventBus {
    let bus = EventBus::builder().threads(2).build().unwrap();
    bus.subscribe(
        "report",
        handler_fn(|ctx| {
            let seen = serde_json::json!({
                "attempt": ctx.attempt(),
                "retry_count": ctx.event().retry_count(),
                "thread": thread::current().name().unwrap_or_default(),
            });
            Ok(EventResult::failure("always").with_data(seen))
        }),
    );
    bus.subscribe("refuse", handler_fn(|_| Err(HandlerError::permanent("never"))));
    bus.subscribe(
        "slow",
        handler_fn(|ctx| {
            while !ctx.is_cancelled() {
                thread::sleep(Duration::from_millis(5));
            }
            Ok(EventResult::success())
        }),
    );
    bus
}

#[test]
fn one_attempt_with_its_number() {
    let bus = attempt_bus();
    // A sync event too runs on the pool, as attempt 3, and is not retried although 7 remain.
    let result = bus.publish_attempt(Event::new("report").with_retry_count(9), 3).unwrap().wait();
    assert!(!result.success);
    assert_eq!(result.attempts, 3);
    assert_eq!(result.data["attempt"], 3);
    assert_eq!(result.data["retry_count"], 9);
    assert!(result.data["thread"].as_str().unwrap().starts_with("busbar-worker-"));
    assert!(!result.is_permanent(), "a plain failure is worth retrying");
}

#[test]
fn permanent_failures_say_so() {
    let bus = attempt_bus();
    let result = bus.publish_attempt(Event::new("refuse").with_retry_count(3), 1).unwrap().wait();
    assert_eq!(result.error_kind, Some(ErrorKind::HandlerError));
    assert!(result.is_permanent());
    // Through `publish` as well: the final result tells why it was not retried.
    let result = bus.publish(Event::new("refuse").with_retry_count(3)).unwrap().wait();
    assert_eq!(result.attempts, 1);
    assert!(result.is_permanent());
}

#[test]
fn timeout_is_not_retried() {
    let bus = attempt_bus();
    let event = Event::new("slow").with_retry_count(3).with_timeout(Duration::from_millis(50));
    let result = bus.publish_attempt(event, 2).unwrap().wait();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout));
    assert_eq!(result.attempts, 2);
    assert!(!result.is_permanent());
    bus.join();
}

#[test]
fn attempt_zero_is_refused() {
    let bus = attempt_bus();
    let err = bus.publish_attempt(Event::new("report"), 0).unwrap_err();
    assert!(err.to_string().contains("attempts are numbered from 1"), "{err}");
    assert!(bus.publish_attempt(Event::new("nobody"), 1).unwrap_err().to_string().contains("no handler"));
}
