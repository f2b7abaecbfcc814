//! Documentation twins: the code blocks of "Choosing the Right Approach" (SYNC, THREAD and
//! CORELET mode), "Best Practices" and "Performance Tips", one function per block pair, named
//! after its heading.
//!
//! Corelet events run in child processes that are this example re-executed, so `main` calls
//! `busbar::corelet_main` before anything else, with the handlers of the corelet events.
//!
//! Run with `cargo run -p busbar --example best_practices`.

use std::error::Error;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use busbar::{
    handler_fn, ErrorKind, Event, EventBus, EventContext, EventFactory, EventHandler, EventResult,
    HandlerResult, PublishError, EXECUTION_MODE_CORELET, EXECUTION_MODE_SYNC, EXECUTION_MODE_THREAD,
};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn Error>> {
    // First: in a corelet child this serves corelet events and never returns.
    busbar::corelet_main(&corelet_handlers());

    when_to_use_sync_mode()?;
    when_to_use_thread_mode()?;
    when_to_use_corelet_mode()?;
    always_return_event_result()?;
    use_appropriate_execution_mode()?;
    cleanup_resources()?;
    thread_mode_for_io()?;
    batch_events()?;
    Ok(())
}

/// Choosing the Right Approach › When to Use SYNC Mode: the result is there when `publish`
/// returns.
fn when_to_use_sync_mode() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::new();
    bus.subscribe("validate.input", handler_fn(|_| Ok(EventResult::success())));

    let event = Event::new("validate.input").with_mode(EXECUTION_MODE_SYNC);
    let mut handle = bus.publish(event)?;
    assert!(handle.try_result().is_some(), "a sync handle is ready at once");
    let result = handle.wait();
    if result.success {
        println!("SYNC: validated, proceeding with the data");
    }
    assert!(result.success);
    Ok(())
}

/// Choosing the Right Approach › When to Use THREAD Mode: `publish` returns at once.
fn when_to_use_thread_mode() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::new();
    let release = gated_handler(&bus, "send.notification");

    let event = Event::new("send.notification").with_mode(EXECUTION_MODE_THREAD);
    let mut handle = bus.publish(event)?;
    // Continue immediately: the handler is still waiting for the gate.
    assert!(handle.try_result().is_none());
    println!("THREAD: publish returned while the notification is still being sent");
    drop(release);
    assert!(handle.wait().success);
    Ok(())
}

/// The handlers of this example's corelet events, for its buses and for `corelet_main`.
fn corelet_handlers() -> EventFactory {
    let factory = EventFactory::new();
    // Untrusted code: it may crash the process it runs in.
    factory.register_event_type("process.untrusted", || {
        handler_fn(|ctx| {
            if ctx.event().data()["input"] == "malicious" {
                std::process::abort();
            }
            Ok(EventResult::success_with(json!({"pid": std::process::id()})))
        })
    });
    factory.register_event_type("payment", || handler_fn(|_| Ok(EventResult::success())));
    factory
}

/// Choosing the Right Approach › When to Use CORELET Mode: a handler that might crash runs in
/// an isolated process, under a hard timeout.
fn when_to_use_corelet_mode() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::with_factory(corelet_handlers());
    let untrusted = |input: &str| {
        Event::new("process.untrusted")
            .with_mode(EXECUTION_MODE_CORELET)
            .with_timeout(Duration::from_secs(10))
            .with_data(json!({"input": input}))
    };

    let result = bus.publish(untrusted("benign"))?.wait();
    assert!(result.success);
    assert_ne!(result.data["pid"], std::process::id(), "it ran in another process");

    let crashed = bus.publish(untrusted("malicious"))?.wait();
    println!(
        "CORELET: the untrusted handler crashed its process: {}",
        crashed.error_message.as_deref().unwrap_or("")
    );
    assert_eq!(crashed.error_kind, Some(ErrorKind::Crashed));
    assert!(bus.publish(untrusted("benign"))?.wait().success, "this process is unaffected");
    bus.shutdown();
    Ok(())
}

/// A handler for `event_type` that blocks until the returned sender is dropped, so examples
/// can show deterministically that `publish` did not wait for it.
fn gated_handler(bus: &EventBus, event_type: &str) -> mpsc::Sender<()> {
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    bus.subscribe(
        event_type,
        handler_fn(move |_| {
            // `recv` returns (with an error) once the sender is dropped.
            let _ = gate.lock().unwrap_or_else(PoisonError::into_inner).recv();
            Ok(EventResult::success())
        }),
    );
    release
}

/// The documentation's `process()`, failing as a real one sometimes does.
fn process() -> Result<Value, String> {
    Err("disk full".to_owned())
}

/// Best Practice 1 › GOOD: handle the error and return a failure result.
struct GoodHandler;

impl EventHandler for GoodHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        match process() {
            Ok(result) => Ok(EventResult::success_with(result)),
            Err(e) => Ok(EventResult::failure(e)),
        }
    }
}

/// Best Practice 1 › AVOID: assume success. In Rust that is an `unwrap`, which panics.
struct BadHandler;

impl EventHandler for BadHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        process().unwrap(); // Might fail
        Ok(EventResult::success())
    }
}

/// Best Practice 1: Always Return EventResult.
///
/// busbar catches the panic either way, but the good handler's failure is a clear business
/// failure while the bad one's is a panic with a less useful message.
fn always_return_event_result() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::new();
    bus.subscribe("good", GoodHandler);
    bus.subscribe("bad", BadHandler);

    let good = bus.publish(Event::new("good"))?.wait();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the panic is expected: keep stderr quiet
    let bad = bus.publish(Event::new("bad"))?.wait();
    std::panic::set_hook(default_hook);

    println!("GoodHandler: {:?}: {}", good.error_kind, good.error_message.as_deref().unwrap_or(""));
    println!("BadHandler:  {:?}: {}", bad.error_kind, bad.error_message.as_deref().unwrap_or(""));
    assert_eq!(good.error_kind, Some(ErrorKind::BusinessFailure));
    assert_eq!(good.error_message.as_deref(), Some("disk full"));
    assert_eq!(bad.error_kind, Some(ErrorKind::Panic));
    Ok(())
}

/// Best Practice 2: Use Appropriate Execution Mode.
fn use_appropriate_execution_mode() -> Result<(), Box<dyn Error>> {
    // GOOD - Fast validation in sync mode
    let validation_event = Event::new("validate").with_mode(EXECUTION_MODE_SYNC);
    // GOOD - Slow I/O in thread mode
    let io_event = Event::new("file.upload").with_mode(EXECUTION_MODE_THREAD);
    // GOOD - Critical operations in corelet mode
    let critical_event = Event::new("payment").with_mode(EXECUTION_MODE_CORELET);
    assert_eq!(
        [validation_event.mode(), io_event.mode(), critical_event.mode()],
        [EXECUTION_MODE_SYNC, EXECUTION_MODE_THREAD, EXECUTION_MODE_CORELET]
    );
    let payments = EventBus::with_factory(corelet_handlers());
    assert!(payments.publish(critical_event)?.wait().success);
    payments.shutdown();

    // AVOID - Slow I/O blocking caller: a sync publish lasts as long as its handler.
    let bus = EventBus::new();
    let upload_time = Duration::from_millis(50);
    bus.subscribe(
        "file.upload",
        handler_fn(move |_| {
            std::thread::sleep(upload_time);
            Ok(EventResult::success())
        }),
    );
    let slow_event = Event::new("file.upload").with_mode(EXECUTION_MODE_SYNC);
    let started = Instant::now();
    let result = bus.publish(slow_event)?.wait();
    let blocked = started.elapsed();
    println!("AVOID: a sync file.upload blocked the caller for {blocked:?}");
    assert!(result.success && blocked >= upload_time);
    Ok(())
}

/// Best Practice 3: Cleanup Resources.
fn cleanup_resources() -> Result<(), Box<dyn Error>> {
    // GOOD: Rust has no `finally`; run the fallible part, shut down, then report its outcome.
    let bus = EventBus::new();
    bus.subscribe("cleanup.demo", handler_fn(|_| Ok(EventResult::success())));
    let event = Event::new("cleanup.demo").with_mode(EXECUTION_MODE_THREAD);
    let outcome = (|| -> Result<EventResult, PublishError> {
        // Use event bus
        Ok(bus.publish(event)?.wait())
    })();
    bus.shutdown(); // Always cleanup
    assert!(outcome?.success);
    assert!(bus.is_shut_down());

    // AVOID (and what busbar does about it): forgetting `shutdown` leaks nothing. Dropping
    // the last handle starts a graceful shutdown in the background: queued events still run.
    let bus = EventBus::new();
    bus.subscribe("cleanup.demo", handler_fn(|_| Ok(EventResult::success())));
    let handle = bus.publish(Event::new("cleanup.demo").with_mode(EXECUTION_MODE_THREAD))?;
    drop(bus); // Bus not shut down explicitly
    assert!(handle.wait().success);
    println!("Cleanup: shutdown() after use; a dropped bus still finished its queued event");
    Ok(())
}

/// Performance Tips › Tip 1: Use thread mode for I/O-bound operations.
fn thread_mode_for_io() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::new();
    let release = gated_handler(&bus, "api.call");

    // FAST - Non-blocking I/O: publish returns while the call is in flight.
    let mut in_flight = bus.publish(Event::new("api.call").with_mode(EXECUTION_MODE_THREAD))?;
    assert!(in_flight.try_result().is_none());
    drop(release);
    assert!(in_flight.wait().success);

    // SLOW - Blocks until complete: the handle of a sync publish is always ready.
    let mut done = bus.publish(Event::new("api.call").with_mode(EXECUTION_MODE_SYNC))?;
    assert!(done.try_result().is_some());
    println!("Tip 1: thread publish returned before the API call finished; sync publish after");
    Ok(())
}

/// Performance Tips › Tip 2: Batch events when possible.
fn batch_events() -> Result<(), Box<dyn Error>> {
    let items: Vec<i64> = (1..=100).collect();
    let bus = EventBus::new();
    bus.subscribe(
        "process.batch",
        handler_fn(|ctx| {
            let items = ctx.event().data()["items"].as_array().ok_or("`items` must be an array")?;
            Ok(EventResult::success_with(items.iter().filter_map(Value::as_i64).sum::<i64>().into()))
        }),
    );
    bus.subscribe(
        "process.item",
        handler_fn(|ctx| Ok(EventResult::success_with(ctx.event().data().clone()))),
    );

    // FAST - Single handler with batch data
    let event = Event::new("process.batch").with_data(json!({"items": items}));
    let batch_total = bus.publish(event)?.wait().data;

    // SLOW - Multiple events
    let mut item_total = 0;
    for item in &items {
        let event = Event::new("process.item").with_data(json!(item));
        item_total += bus.publish(event)?.wait().data.as_i64().unwrap_or_default();
    }

    assert_eq!(batch_total, item_total);
    assert_eq!(bus.stats().published, 1 + 100);
    println!("Tip 2: the same total ({item_total}) from 1 batch event or from 100 item events");
    Ok(())
}
