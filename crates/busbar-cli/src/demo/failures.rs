//! Steps about things going wrong: retries, timeouts, panics, refused events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar::{
    handler_fn, ErrorKind, Event, EventBus, EventResult, ExecutionMode, HandlerError, PublishError,
};
use serde_json::json;

use super::report::{describe, millis, StepResult, Tour};

/// A handler that fails its first two attempts, like a service that needs a moment.
pub(super) fn retry(tour: &mut Tour, bus: &EventBus) -> StepResult {
    bus.subscribe(
        "flaky",
        handler_fn(|ctx| {
            if ctx.attempt() < 3 {
                return Err(format!("service unavailable on attempt {}", ctx.attempt()).into());
            }
            Ok(EventResult::success_with(json!("done")))
        }),
    );
    bus.subscribe("declined", handler_fn(|_| Err(HandlerError::permanent("card declined"))));

    let enough = bus.publish(Event::new("flaky").with_retry_count(2))?.wait();
    tour.say(format!("flaky, retry_count 2 -> {}", describe(&enough)));
    tour.check(enough.success && enough.attempts == 3, "success on the third attempt");

    let too_few = bus.publish(Event::new("flaky").with_retry_count(1))?.wait();
    tour.say(format!("flaky, retry_count 1 -> {}", describe(&too_few)));
    tour.check(!too_few.success && too_few.attempts == 2, "failure after two attempts");

    let permanent = bus.publish(Event::new("declined").with_retry_count(5))?.wait();
    tour.say(format!("permanent error, retry_count 5 -> {}", describe(&permanent)));
    tour.check(permanent.attempts == 1, "a failure marked permanent is not retried");
    Ok(())
}

/// Timeouts are cooperative: the handler sees its cancellation flag; a thread-mode waiter is
/// released at the deadline even if the handler ignores it.
pub(super) fn timeout(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let timeout = Duration::from_millis(100);
    let saw_flag = Arc::new(AtomicBool::new(false));
    let saw = Arc::clone(&saw_flag);
    bus.subscribe(
        "polite.slow",
        handler_fn(move |ctx| {
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            saw.store(true, Ordering::SeqCst);
            Ok(EventResult::success())
        }),
    );
    bus.subscribe(
        "stubborn.slow",
        handler_fn(|_| {
            std::thread::sleep(Duration::from_millis(400)); // ignores its cancellation flag
            Ok(EventResult::success())
        }),
    );
    bus.subscribe("quick", handler_fn(|_| Ok(EventResult::success())));

    let result = bus.publish(Event::new("polite.slow").with_timeout(timeout))?.wait();
    tour.say(format!("sync handler that checks its flag, timeout 100 ms -> {}", describe(&result)));
    tour.check(result.is_timeout(), "a timeout result");
    tour.check(saw_flag.load(Ordering::SeqCst), "the handler saw its cancellation flag and stopped");

    let started = Instant::now();
    let stuck =
        bus.publish(Event::new("stubborn.slow").with_mode(ExecutionMode::Thread).with_timeout(timeout))?;
    let quick = bus.publish(Event::new("quick").with_mode(ExecutionMode::Thread))?.wait();
    let stuck = stuck.wait();
    let waited = started.elapsed();
    tour.say(format!("thread handler that sleeps 400 ms, timeout 100 ms -> {}", describe(&stuck)));
    tour.say(format!("the waiter got that result after {}", millis(waited)));
    tour.check(stuck.is_timeout(), "a timeout result at the deadline, not after 400 ms");
    tour.check(quick.success, "another event was served meanwhile");
    tour.say("Rust cannot stop a thread safely: the stubborn handler finishes in the background");
    tour.say("on a worker the pool has replaced. For a hard limit, corelet mode kills a process.");
    Ok(())
}

/// A handler that panics: a failed result with the panic's message, and the pool goes on.
pub(super) fn panic(tour: &mut Tour, bus: &EventBus) -> StepResult {
    bus.subscribe("boom", handler_fn(|_| panic!("out of cheese")));
    bus.subscribe("after", handler_fn(|_| Ok(EventResult::success())));
    let workers_before = bus.stats().workers;

    // Expected panics: keep the default hook from printing them.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = bus.publish(Event::new("boom").with_mode(ExecutionMode::Thread)).map(|handle| handle.wait());
    std::panic::set_hook(default_hook);
    let result = result?;

    tour.say(format!("thread handler panicking -> {}", describe(&result)));
    tour.check(result.error_kind == Some(ErrorKind::Panic), "a failed result of kind panic");
    tour.check(
        result.error_message.as_deref().is_some_and(|message| message.contains("out of cheese")),
        "the panic's message is kept",
    );
    let after = (0..10)
        .map(|_| bus.publish(Event::new("after").with_mode(ExecutionMode::Thread)))
        .collect::<Result<Vec<_>, _>>()?;
    let all_ok = after.into_iter().all(|handle| handle.wait().success);
    tour.check(
        all_ok && bus.stats().workers == workers_before,
        "the workers survive and serve the next events",
    );
    Ok(())
}

/// Errors: a missing handler or a malformed event is refused by `publish`; a handler's error
/// comes back in the result, and `into_result` makes it an `EventExecutionError`.
pub(super) fn errors(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let refused = [
        ("no handler", Event::new("no.such.event")),
        ("empty type", Event::new("")),
        ("zero timeout", Event::new("greet").with_timeout(Duration::ZERO)),
    ];
    for (what, event) in refused {
        match bus.publish(event) {
            Err(error @ (PublishError::NoHandlerAvailable(_) | PublishError::InvalidEvent(_))) => {
                tour.say(format!("{what}: publish refused it: {error}"));
            }
            Err(error) => tour.check(false, format!("{what} to be refused as such, not with: {error}")),
            Ok(_) => tour.check(false, format!("{what} to be refused by publish")),
        }
    }

    bus.subscribe("broken", handler_fn(|_| Err("something broke".into())));
    match bus.publish(Event::new("broken"))?.wait().into_result() {
        Err(error) => {
            tour.say(format!("handler returning Err: into_result() gives EventExecutionError: {error}"));
            tour.check(error.kind() == ErrorKind::HandlerError, "an error of kind handler_error");
        }
        Ok(data) => tour.check(false, format!("a failed result, not success with {data}")),
    }
    Ok(())
}
