//! Corelet mode end to end: events run in re-executed child processes of this test binary.

use std::time::Duration;

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventFactory, EventResult, ExecutionMode};
use serde_json::json;

fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("echo", || {
        handler_fn(|ctx| {
            Ok(EventResult::success_with(json!({"pid": std::process::id(), "data": ctx.event().data()})))
        })
    });
    factory.register_event_type("exit", || handler_fn(|_| std::process::exit(3)));
    factory.register_event_type("panic", || handler_fn(|_| panic!("boom in a corelet")));
    factory
}

fn corelet(event_type: &str) -> Event {
    Event::new(event_type).with_mode(ExecutionMode::Corelet).with_timeout(Duration::from_secs(60))
}

fn smoke(bus: &EventBus) {
    let result =
        bus.publish(corelet("echo").with_data(json!({"x": [1, "ü", null]}))).expect("accepted").wait();
    assert!(result.success, "{result:?}");
    assert_ne!(result.data["pid"], std::process::id(), "ran in another process");
    assert_eq!(result.data["data"], json!({"x": [1, "ü", null]}));

    let crashed = bus.publish(corelet("exit")).expect("accepted").wait();
    assert_eq!(crashed.error_kind, Some(ErrorKind::Crashed), "{crashed:?}");
    assert!(
        crashed.error_message.as_deref().unwrap_or_default().contains("exited with code 3"),
        "{crashed:?}"
    );

    let panicked = bus.publish(corelet("panic")).expect("accepted").wait();
    assert_eq!(panicked.error_kind, Some(ErrorKind::Panic), "{panicked:?}");
    assert!(panicked.error_message.as_deref().unwrap_or_default().contains("boom in a corelet"));

    let again = bus.publish(corelet("echo")).expect("accepted").wait();
    assert!(again.success, "the bus survives: {again:?}");
}

fn main() {
    busbar::corelet_main(&handlers());
    let bus = EventBus::builder().threads(2).factory(handlers()).build().expect("valid settings");
    smoke(&bus);
    bus.shutdown();
    println!("1 passed, 0 failed");
}
