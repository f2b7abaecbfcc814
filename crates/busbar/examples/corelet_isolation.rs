//! Documentation scenario: Advanced Usage › Corelet Isolation — a payment handler runs in an
//! isolated child process; if it crashed, this process would be unaffected.
//!
//! A corelet is this very program, re-executed in worker mode, so `main` hands the handler
//! registrations to [`busbar::corelet_main`] before anything else: in the child that call
//! serves events and never returns; here it returns at once.
//!
//! Run with `cargo run -p busbar --example corelet_isolation`.

use std::time::Duration;

use busbar::{
    Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, ExecutionMode, HandlerResult,
};
use serde_json::json;

// Critical handler that needs isolation
struct PaymentProcessingHandler;

impl EventHandler for PaymentProcessingHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        let amount = ctx.event().data()["amount"].as_f64().unwrap_or_default();
        let account = ctx.event().data()["account"].as_str().unwrap_or_default();

        // Process payment in isolated environment
        // If this crashes, main process is unaffected
        let success = process_payment(amount, account);

        if success {
            Ok(EventResult::success_with(json!({"transaction_id": 789})))
        } else {
            Ok(EventResult::failure(format!("payment of {amount} on {account:?} declined")))
        }
    }
}

/// Stands in for the payment provider: accepts positive amounts on a named account.
fn process_payment(amount: f64, account: &str) -> bool {
    amount > 0.0 && !account.is_empty()
}

/// The registrations the bus and its corelet children share.
fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("payment.process", || PaymentProcessingHandler);
    factory
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a corelet child this serves events and exits; in this process it returns at once.
    busbar::corelet_main(&handlers());

    // Setup
    let bus = EventBus::with_factory(handlers());

    // Publish with corelet mode
    let event = Event::new("payment.process")
        .with_data(json!({"amount": 99.99, "account": "ACC123"}))
        .with_mode(ExecutionMode::Corelet) // Isolated process
        .with_timeout(Duration::from_secs(30))
        .with_retry_count(2);
    let result = bus.publish(event)?.wait();

    if result.success {
        println!("Payment processed: {}", result.data["transaction_id"]);
    }
    assert!(result.success, "{result:?}");
    assert_eq!(result.data["transaction_id"], 789);
    bus.shutdown();
    Ok(())
}
