//! Panics in handlers and constructors become `Panic` results; the worker survives.

mod support;

use busbar::{
    handler_fn, ErrorKind, Event, EventBus, EventContext, EventFactory, EventHandler, EventResult,
    ExecutionMode, HandlerResult,
};
use support::thread_event;

const MODES: [ExecutionMode; 2] = [ExecutionMode::Sync, ExecutionMode::Thread];

fn panicking_bus() -> EventBus {
    let bus = EventBus::builder().threads(1).build().unwrap();
    bus.subscribe("str", handler_fn(|_| panic!("out of cheese")));
    bus.subscribe("string", handler_fn(|ctx| panic!("bad value {} in {}", 42, ctx.event().event_type())));
    bus.subscribe("other", handler_fn(|_| std::panic::panic_any(7_u8)));
    bus.subscribe("ok", handler_fn(|_| Ok(EventResult::success())));
    bus
}

#[test]
fn message() {
    let bus = panicking_bus();
    for mode in MODES {
        for (event_type, expected) in
            [("str", "out of cheese"), ("string", "bad value 42 in string"), ("other", "non-string payload")]
        {
            let result = bus.publish(Event::new(event_type).with_mode(mode)).unwrap().wait();
            assert!(!result.success, "{mode} {event_type}");
            assert_eq!(result.error_kind, Some(ErrorKind::Panic), "{mode} {event_type}");
            let message = result.error_message.unwrap();
            assert!(message.contains("panicked") && message.contains(expected), "{mode}: {message}");
        }
    }
    let stats = bus.stats();
    assert_eq!(stats.panicked, 6, "{stats:?}");
}

#[test]
fn worker_survives() {
    let bus = panicking_bus();
    let panics: Vec<_> = (0..20).map(|_| bus.publish(thread_event("str")).unwrap()).collect();
    let ok = bus.publish(thread_event("ok")).unwrap();
    for handle in panics {
        assert_eq!(handle.wait().error_kind, Some(ErrorKind::Panic));
    }
    assert!(ok.wait().success, "the one worker still serves events");
    let stats = bus.stats();
    assert_eq!(stats.workers, 1, "{stats:?}");
    assert_eq!(stats.replaced_workers, 0, "a panic does not cost the worker: {stats:?}");
}

struct Unbuildable;

impl EventHandler for Unbuildable {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Ok(EventResult::success())
    }
}

#[test]
fn constructor() {
    let factory = EventFactory::new();
    factory.register_event_type("unbuildable", || -> Unbuildable { panic!("no database connection") });
    factory.register_event_type("ok", || handler_fn(|_| Ok(EventResult::success())));
    let bus = EventBus::builder().threads(1).factory(factory).build().unwrap();
    for mode in MODES {
        for _ in 0..2 {
            let result = bus.publish(Event::new("unbuildable").with_mode(mode)).unwrap().wait();
            assert_eq!(result.error_kind, Some(ErrorKind::Panic), "{mode}: {result:?}");
            let message = result.error_message.unwrap();
            assert!(message.contains("no database connection"), "{mode}: {message}");
        }
        let result = bus.publish(Event::new("ok").with_mode(mode)).unwrap().wait();
        assert!(result.success, "{mode}: the thread survives a constructor's panic");
    }
    assert_eq!(bus.stats().replaced_workers, 0);
}

/// A handler error whose `Display` panics.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("cannot print this error")
    }
}

impl std::error::Error for Unprintable {}

/// Formatting a handler's error runs the handler author's code; a panic there is the
/// handler's panic: a `Panic` result in both modes, no aborted worker, and the bus's counts
/// stay right (`join` returns).
#[test]
fn error_that_panics_when_printed() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    bus.subscribe("unprintable", handler_fn(|_| Err(busbar::HandlerError::new(Unprintable))));
    for mode in MODES {
        let result = bus.publish(Event::new("unprintable").with_mode(mode)).unwrap().wait();
        assert_eq!(result.error_kind, Some(ErrorKind::Panic), "{mode}: {result:?}");
        assert!(result.error_message.unwrap().contains("cannot print this error"), "{mode}");
    }
    bus.join();
    assert_eq!(bus.stats().in_flight, 0);
    bus.shutdown();
}

/// A panic payload whose `Drop` panics.
struct ExplodingPayload;

impl Drop for ExplodingPayload {
    fn drop(&mut self) {
        panic!("the payload exploded when dropped");
    }
}

/// Dropping a handler's panic payload runs the handler author's code too: a panic there stays
/// inside the boundary (a `Panic` result in both modes, the counts right).
#[test]
fn panic_payload_that_panics_when_dropped() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    bus.subscribe("exploding", handler_fn(|_| std::panic::panic_any(ExplodingPayload)));
    for mode in MODES {
        let result = bus.publish(Event::new("exploding").with_mode(mode)).unwrap().wait();
        assert_eq!(result.error_kind, Some(ErrorKind::Panic), "{mode}: {result:?}");
    }
    bus.join();
    assert_eq!(bus.stats().in_flight, 0);
    bus.shutdown();
}
