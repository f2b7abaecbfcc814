//! Handlers that call back into their own bus: join, shutdown and nested sync publishes.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};

#[test]
fn join_in_sync_handler() {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let (done, finished) = mpsc::channel();
    let done = Mutex::new(done);
    bus.subscribe(
        "work",
        handler_fn(move |_| {
            let _ = done.lock().expect("not poisoned").send(());
            Ok(EventResult::success())
        }),
    );
    bus.subscribe(
        "fan_out",
        handler_fn(|ctx| {
            for _ in 0..10 {
                ctx.publish(Event::new("work").with_mode(ExecutionMode::Thread))?;
            }
            // Waits for the ten thread events, not for this sync event itself.
            ctx.event_bus().join();
            Ok(EventResult::success_with(ctx.event_bus().stats().in_flight.into()))
        }),
    );
    let result = bus.publish(Event::new("fan_out")).expect("accepted").wait();
    assert!(result.success, "{result:?}");
    assert_eq!(result.data, 1, "only the fan_out event itself is still in flight");
    assert_eq!(finished.try_iter().count(), 10);
}

#[test]
fn join_in_pool_handler() {
    let bus = EventBus::builder().threads(1).build().expect("valid settings");
    bus.subscribe(
        "joiner",
        handler_fn(|ctx| {
            ctx.event_bus().join(); // returns at once instead of deadlocking the only worker
            Ok(EventResult::success())
        }),
    );
    let mut handle = bus.publish(Event::new("joiner").with_mode(ExecutionMode::Thread)).expect("accepted");
    let result = handle.wait_timeout(Duration::from_secs(60)).expect("no deadlock");
    assert!(result.success);
}

#[test]
fn shutdown_in_sync_handler() {
    let bus = EventBus::builder().threads(1).build().expect("valid settings");
    bus.subscribe("work", handler_fn(|_| Ok(EventResult::success())));
    bus.subscribe(
        "stop",
        handler_fn(|ctx| {
            let queued = ctx.publish(Event::new("work").with_mode(ExecutionMode::Thread))?;
            ctx.event_bus().shutdown();
            Ok(EventResult::success_with(queued.wait().success.into()))
        }),
    );
    let result = bus.publish(Event::new("stop")).expect("accepted").wait();
    assert_eq!(result.data, true, "the queued event finished during shutdown: {result:?}");
    assert!(bus.is_shut_down());
}

/// Sync handlers on two threads that call `join` (or `shutdown`) while both are running
/// return: each waits for the rest, not for the other, which waits in its own join.
#[test]
fn joins_in_sync_handlers_on_two_threads() {
    for call in ["join", "shutdown"] {
        let bus = EventBus::builder().threads(1).build().expect("valid settings");
        let both_running = Arc::new(Barrier::new(2));
        let barrier = Arc::clone(&both_running);
        bus.subscribe(
            "joiner",
            handler_fn(move |ctx| {
                barrier.wait();
                match ctx.event().data().as_str() {
                    Some("shutdown") => ctx.event_bus().shutdown(),
                    _ => ctx.event_bus().join(),
                }
                Ok(EventResult::success())
            }),
        );
        let (done, results) = mpsc::channel();
        for _ in 0..2 {
            let (bus, done) = (bus.clone(), done.clone());
            thread::spawn(move || {
                let result =
                    bus.publish(Event::new("joiner").with_data(call.into())).expect("accepted").wait();
                let _ = done.send(result);
            });
        }
        for _ in 0..2 {
            let result = results
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no deadlock: {call}"));
            assert!(result.success, "{call}: {result:?}");
        }
        bus.shutdown();
    }
}
