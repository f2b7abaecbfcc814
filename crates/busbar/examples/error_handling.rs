//! Documentation scenario: Error Handling — Common Errors (`NoHandlerAvailableError`,
//! `EventExecutionError`, the `SafeHandler` pattern) and Error Recovery with `retry_count`.
//!
//! In busbar a missing handler is refused at publish ([`PublishError::NoHandlerAvailable`]),
//! while everything that goes wrong *in* a handler — an `Err`, a panic, a business failure —
//! ends as a failed [`EventResult`]; [`EventResult::into_result`] turns it into an
//! [`EventExecutionError`](busbar::EventExecutionError) for `?`.
//!
//! Run with `cargo run -p busbar --example error_handling`.

use std::num::ParseIntError;
use std::time::Duration;

use busbar::{
    handler_fn, ErrorKind, Event, EventBus, EventContext, EventHandler, EventResult, HandlerResult,
    PublishError,
};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    no_handler_available()?;
    event_execution_error()?;
    error_recovery()?;
    Ok(())
}

/// Error 1: NoHandlerAvailableError, and its solution.
fn no_handler_available() -> Result<(), Box<dyn std::error::Error>> {
    println!("== Error 1: NoHandlerAvailableError");
    let bus = EventBus::new();

    // WRONG - No handler registered
    let event = Event::new("unknown.event").with_data(json!({}));
    let Err(PublishError::NoHandlerAvailable(error)) = bus.publish(event) else {
        return Err("publishing without a handler should be refused".into());
    };
    println!("NoHandlerAvailableError: {error}");
    assert_eq!(error.event_type(), "unknown.event");

    // CORRECT - Register handler first, on the bus's own factory (the documentation registers
    // it on a new, unconnected factory, which the bus would never see).
    bus.factory().register_event_type("unknown.event", || MyHandler);
    let event = Event::new("unknown.event").with_data(json!({}));
    let result = bus.publish(event)?.wait();
    println!("after registering a handler: success = {}", result.success);
    assert!(result.success);
    Ok(())
}

struct MyHandler;

impl EventHandler for MyHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Ok(EventResult::success())
    }
}

/// Error 2: EventExecutionError — a handler that fails instead of returning a failure result.
fn event_execution_error() -> Result<(), Box<dyn std::error::Error>> {
    println!("== Error 2: EventExecutionError");
    let bus = EventBus::new();
    bus.subscribe("broken", BrokenHandler);
    bus.subscribe("panicking", PanickingHandler);
    bus.subscribe("safe", SafeHandler);

    // "WRONG": the handler returns `Err`, Rust's way of raising. busbar turns it into a failed
    // result of kind `HandlerError`; nothing escapes from `publish`.
    let result = bus.publish(Event::new("broken"))?.wait();
    assert!(!result.success);
    assert_eq!(result.error_kind, Some(ErrorKind::HandlerError));
    let Err(error) = result.into_result() else {
        return Err("a broken handler should give a failed result".into());
    };
    println!("BrokenHandler -> EventExecutionError: {error}");
    assert_eq!(error.kind(), ErrorKind::HandlerError);
    assert_eq!(error.message(), "Something broke");

    // A panic is caught too and becomes a failed result of kind `Panic`. (The panic hook is
    // silenced so the caught panic does not print a scary message.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = bus.publish(Event::new("panicking"))?.wait();
    std::panic::set_hook(default_hook);
    println!(
        "PanickingHandler -> {:?}: {}",
        result.error_kind,
        result.error_message.as_deref().unwrap_or("")
    );
    assert_eq!(result.error_kind, Some(ErrorKind::Panic));
    assert_eq!(result.error_message.as_deref(), Some("handler panicked: Something broke"));

    // CORRECT - Handle errors and return a failure result (a *business failure*).
    let ok = bus.publish(Event::new("safe").with_data(json!({"value": "21"})))?.wait();
    println!("SafeHandler(\"21\") -> success = {}, data = {}", ok.success, ok.data);
    assert!(ok.success);
    assert_eq!(ok.data, 42);

    let failed = bus.publish(Event::new("safe").with_data(json!({"value": "abc"})))?.wait();
    println!(
        "SafeHandler(\"abc\") -> success = {}, error = {}",
        failed.success,
        failed.error_message.as_deref().unwrap_or("")
    );
    assert_eq!(failed.error_kind, Some(ErrorKind::BusinessFailure));
    assert_eq!(failed.error_message.as_deref(), Some("invalid digit found in string"));
    Ok(())
}

struct BrokenHandler;

impl EventHandler for BrokenHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Err("Something broke".into())
    }
}

struct PanickingHandler;

impl EventHandler for PanickingHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        panic!("Something broke")
    }
}

struct SafeHandler;

impl EventHandler for SafeHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        match risky_operation(ctx.event().data()) {
            Ok(result) => Ok(EventResult::success_with(result)),
            Err(e) => Ok(EventResult::failure(e.to_string())),
        }
    }
}

/// Doubles the number given as a string in `value`; fails like Python's `int("abc")`.
fn risky_operation(data: &Value) -> Result<Value, ParseIntError> {
    let n: i64 = data["value"].as_str().unwrap_or_default().parse()?;
    Ok(json!(n * 2))
}

/// Error Recovery: automatic retries, then fallback on failure.
fn error_recovery() -> Result<(), Box<dyn std::error::Error>> {
    println!("== Error Recovery");
    let bus = EventBus::new();
    // A flaky operation: the first two attempts fail, the third succeeds.
    bus.subscribe(
        "risky.operation",
        handler_fn(|ctx| {
            if ctx.attempt() < 3 {
                return Err(format!("service unavailable on attempt {}", ctx.attempt()).into());
            }
            Ok(EventResult::success_with(ctx.event().data().clone()))
        }),
    );
    // An operation that always fails.
    bus.subscribe("hopeless.operation", handler_fn(|_| Err("service is down".into())));

    let risky = |event_type: &str| {
        Event::new(event_type)
            .with_data(json!({"value": 123}))
            .with_retry_count(3) // Automatic retry on failure
            .with_timeout(Duration::from_secs(30))
    };

    let result = bus.publish(risky("risky.operation"))?.wait();
    println!("risky.operation: success = {} after {} attempts", result.success, result.attempts);
    assert!(result.success);
    assert_eq!(result.attempts, 3);

    // The documentation's try/except: `publish` errors are the refusals (no handler, invalid
    // event, shut down); execution errors come back in the result.
    match bus.publish(risky("hopeless.operation")) {
        Ok(handle) => {
            let result = handle.wait();
            if !result.success {
                println!("Operation failed: {}", result.error_message.as_deref().unwrap_or(""));
                // Implement fallback logic here
            }
            assert_eq!(result.attempts, 4, "1 attempt + 3 retries");
            if let Err(error) = result.into_result() {
                println!("Event execution error: {error}");
                assert_eq!(error.attempts(), 4);
            }
        }
        Err(error) => println!("Unexpected error: {error}"),
    }
    bus.shutdown();
    Ok(())
}
