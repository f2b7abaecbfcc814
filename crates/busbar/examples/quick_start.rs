//! Documentation scenario: Quick Reference › Quick Start — create a handler, register it,
//! publish an event, shut the bus down.
//!
//! Run with `cargo run -p busbar --example quick_start`.

use busbar::{Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, HandlerResult};
use serde_json::json;

// Step 1: Create handler
struct MyHandler;

impl EventHandler for MyHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Ok(EventResult::success())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Step 2: Register handler (a constructor, so each worker thread can build its own)
    let factory = EventFactory::new();
    factory.register_event_type("my.event", || MyHandler);

    // Step 3: Create bus and publish. The bus must be given the factory: `EventBus::new()`
    // would start with an empty one.
    let bus = EventBus::with_factory(factory);
    let event = Event::new("my.event").with_data(json!({"key": "value"}));
    let result = bus.publish(event)?.wait();
    assert!(result.success);
    assert_eq!(result.attempts, 1);
    println!("my.event: success = {}, attempts = {}", result.success, result.attempts);

    // Step 4: Cleanup
    bus.shutdown();
    assert!(bus.is_shut_down());
    Ok(())
}
