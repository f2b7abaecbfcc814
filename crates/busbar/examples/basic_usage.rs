//! Documentation scenario: Usage Examples › Basic Usage (Most Common) — a welcome email sent
//! by a synchronous handler.
//!
//! Prints exactly the documentation's Expected Output:
//!
//! ```text
//! Sending welcome email to user@example.com
//! Success: True
//! ```
//!
//! Rust prints a `bool` as `true`; to reproduce the documented text faithfully this example
//! spells it the Python way with [`python_bool`].
//!
//! Run with `cargo run -p busbar --example basic_usage`.

use busbar::{Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, HandlerResult};
use serde_json::json;

// Step 1: Create handler
struct WelcomeEmailHandler;

impl EventHandler for WelcomeEmailHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        let email = ctx.event().data()["email"].as_str().ok_or("event data has no `email` string")?;
        println!("Sending welcome email to {email}");
        Ok(EventResult::success())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Step 2: Register handler with factory
    let factory = EventFactory::new();
    factory.register_event_type("user.registered", || WelcomeEmailHandler);

    // Step 3: Create event bus. The documentation creates the factory and the bus separately,
    // which leaves the bus without handlers; busbar links them explicitly.
    let bus = EventBus::with_factory(factory);

    // Step 4: Publish event (sync mode: the handler has run when `publish` returns)
    let event = Event::new("user.registered").with_data(json!({"email": "user@example.com", "user_id": 123}));
    let result = bus.publish(event)?.wait();

    println!("Success: {}", python_bool(result.success));
    assert!(result.success, "{result:?}");
    bus.shutdown();
    Ok(())
}

/// Spells a `bool` as Python prints it, so the output matches the documentation.
fn python_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}
