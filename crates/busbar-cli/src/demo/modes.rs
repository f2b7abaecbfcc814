//! Steps about the in-process modes: sync, and thread (priorities, a batch).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
use serde_json::json;

use super::report::{describe, millis, StepResult, Tour};

/// How long the tour waits for something that should take milliseconds before calling it stuck.
const PATIENCE: Duration = Duration::from_secs(5);

/// A sync event: the handler runs on this thread and the handle is ready when `publish` returns.
pub(super) fn hello(tour: &mut Tour, bus: &EventBus) -> StepResult {
    bus.subscribe(
        "greet",
        handler_fn(|ctx| {
            let name = ctx.event().data()["name"].as_str().unwrap_or("world");
            Ok(EventResult::success_with(json!(format!("Hello, {name}!"))))
        }),
    );
    tour.say(r#"publish greet {"name": "newcomer"} in sync mode (the default)"#);
    let mut handle = bus.publish(Event::new("greet").with_data(json!({"name": "newcomer"})))?;
    let ready = handle.try_result().is_some();
    let result = handle.wait();
    tour.say(format!("-> {}", describe(&result)));
    tour.check(ready, "the result was ready as soon as publish returned");
    tour.check(result.data == "Hello, newcomer!", "the handler's greeting came back");
    Ok(())
}

/// Priorities: with the only worker held busy, queued events run highest priority first,
/// in publish order among equals.
pub(super) fn priorities(tour: &mut Tour) -> StepResult {
    let bus = EventBus::builder().threads(1).build()?;
    let (started_tx, started) = mpsc::channel::<()>();
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    bus.subscribe(
        "hold",
        handler_fn(move |_| {
            let _ = started_tx.send(());
            // Returns (with an error) once `release` is dropped.
            let _ = gate.lock().unwrap_or_else(PoisonError::into_inner).recv();
            Ok(EventResult::success())
        }),
    );
    let ran = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    bus.subscribe(
        "job",
        handler_fn(move |ctx| {
            let label = format!("{}({})", ctx.event().data().as_str().unwrap_or("?"), ctx.event().priority());
            log.lock().unwrap_or_else(PoisonError::into_inner).push(label);
            Ok(EventResult::success())
        }),
    );

    let thread_event = |event_type: &str| Event::new(event_type).with_mode(ExecutionMode::Thread);
    let hold = bus.publish(thread_event("hold"))?;
    started.recv_timeout(PATIENCE).map_err(|_| "the worker did not start the holding event")?;
    tour.say("the pool's only worker is busy; publishing four jobs:");
    let jobs = [("a", 1), ("b", 10), ("c", 5), ("d", 10)];
    for (label, priority) in jobs {
        drop(bus.publish(thread_event("job").with_data(json!(label)).with_priority(priority))?);
    }
    tour.say(format!(
        "published: {}",
        jobs.map(|(label, priority)| format!("{label}({priority})")).join(" ")
    ));
    drop(release);
    bus.join();
    let ran = ran.lock().unwrap_or_else(PoisonError::into_inner).clone();
    tour.say(format!("ran:       {}", ran.join(" ")));
    tour.check(hold.wait().success, "the holding event finished once released");
    tour.check(
        ran == ["b(10)", "d(10)", "c(5)", "a(1)"],
        "higher priority first, publish order among equals",
    );
    bus.shutdown();
    Ok(())
}

/// Many thread events: `publish` returns at once, `join` waits for all of them.
pub(super) fn batch(tour: &mut Tour, bus: &EventBus) -> StepResult {
    bus.subscribe(
        "square",
        handler_fn(|ctx| {
            let n = ctx.event().data().as_i64().ok_or("data must be an integer")?;
            Ok(EventResult::success_with(json!(n * n)))
        }),
    );
    let started = Instant::now();
    let handles = (1..=1000_i64)
        .map(|n| bus.publish(Event::new("square").with_data(json!(n)).with_mode(ExecutionMode::Thread)))
        .collect::<Result<Vec<_>, _>>()?;
    let published = started.elapsed();
    bus.join();
    let finished = started.elapsed();
    let sum: i64 = handles.into_iter().map(|handle| handle.wait().data.as_i64().unwrap_or(0)).sum();
    tour.say(format!(
        "published 1000 squares in {}; all finished after {} on {} workers",
        millis(published),
        millis(finished),
        bus.stats().workers
    ));
    tour.say(format!("sum of the results: {sum}"));
    tour.check(
        sum == (1..=1000_i64).map(|n| n * n).sum::<i64>(),
        "every event ran once, with the right result",
    );
    Ok(())
}
