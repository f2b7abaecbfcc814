//! Steps about corelet mode: handlers in isolated child processes, crashes, hard timeouts.
//!
//! A corelet child is this very program, re-executed by the bus. `main` calls
//! `busbar::corelet_main(&handlers())` before anything else: in a child, that call serves
//! events with [`handlers`] and never returns; in `busbar demo` itself, it returns at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventFactory, EventResult, ExecutionMode};
use serde_json::json;

use super::report::{describe, millis, StepResult, Tour};

/// How long the tour lets a hanging corelet handler run before the bus kills it.
const HANG_TIMEOUT: Duration = Duration::from_millis(300);

/// The handlers of the tour's corelet events.
///
/// Both sides need them: `main` passes them to `busbar::corelet_main`, which runs them in the
/// corelet children, and the tour's bus is built with them, because `publish` refuses an event
/// whose type has no handler.
pub(crate) fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    // The documentation's Corelet Isolation scenario; the pid shows where it ran.
    factory.register_event_type("payment.process", || {
        handler_fn(|ctx| {
            let amount = ctx.event().data()["amount"].as_f64().ok_or("`amount` must be a number")?;
            Ok(EventResult::success_with(json!({
                "transaction_id": 789,
                "amount": amount,
                "pid": std::process::id(),
            })))
        })
    });
    // A crash that would take a whole program down: abort() raises SIGABRT, which cannot be
    // caught as a panic. Here it only ends one child.
    factory.register_event_type("payment.crash", || handler_fn(|_| std::process::abort()));
    // A handler that never returns and never looks at its cancellation flag.
    factory.register_event_type("payment.hang", || {
        handler_fn(|_| loop {
            std::thread::sleep(Duration::from_secs(1));
        })
    });
    factory
}

/// A corelet event of `event_type`, with the documentation's payment data.
fn corelet(event_type: &str) -> Event {
    Event::new(event_type)
        .with_mode(ExecutionMode::Corelet)
        .with_data(json!({"amount": 99.99, "account": "ACC123"}))
}

/// The pid a `payment.process` result reports, if any.
fn pid_of(result: &EventResult) -> Option<u64> {
    result.data["pid"].as_u64()
}

/// A corelet event runs in a child process of the bus's pool, which is reused for the next.
pub(super) fn elsewhere(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let own_pid = std::process::id();
    tour.say(r#"publish payment.process {"amount": 99.99, "account": "ACC123"} in corelet mode"#);
    let result = bus.publish(corelet("payment.process"))?.wait();
    tour.say(format!("-> {}", describe(&result)));
    let child_pid = pid_of(&result);
    tour.say(format!(
        "this process is pid {own_pid}; the handler ran in pid {}",
        child_pid.map_or_else(|| "?".to_owned(), |pid| pid.to_string())
    ));
    tour.check(
        result.success && child_pid.is_some_and(|pid| pid != u64::from(own_pid)),
        "the handler ran in another process",
    );

    let handles = (0..6).map(|_| bus.publish(corelet("payment.process"))).collect::<Result<Vec<_>, _>>()?;
    let pids: BTreeSet<u64> = handles.into_iter().filter_map(|handle| pid_of(&handle.wait())).collect();
    let stats = bus.stats();
    tour.say(format!(
        "6 more at once ran in pids {pids:?}; {} children started so far, pool size {}",
        stats.corelet_spawns,
        super::THREADS
    ));
    tour.check(
        pids.len() <= super::THREADS && stats.corelet_spawns <= super::THREADS as u64,
        "the pool reuses its children: no process per event",
    );
    Ok(())
}

/// A corelet that aborts: a `Crashed` result naming the signal; retries get a fresh child,
/// and the bus carries on.
pub(super) fn crash(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let crashes_before = bus.stats().corelet_crashes;
    tour.say("payment.crash calls std::process::abort() in its child; retry_count 1");
    let result = bus.publish(corelet("payment.crash").with_retry_count(1))?.wait();
    tour.say(format!("-> {}", describe(&result)));
    tour.check(result.error_kind == Some(ErrorKind::Crashed), "a failed result of kind crashed");
    tour.check(
        result.error_message.as_deref().is_some_and(|message| message.contains("SIGABRT")),
        "the message names the signal (SIGABRT)",
    );
    let crashes = bus.stats().corelet_crashes - crashes_before;
    tour.check(
        result.attempts == 2 && crashes == 2,
        format!("two attempts, in two children that both died ({crashes} crashes counted)"),
    );

    let after = bus.publish(corelet("payment.process"))?.wait();
    tour.say(format!("the next payment.process -> {}", describe(&after)));
    tour.check(after.success, "this process and the bus live on");
    Ok(())
}

/// A corelet handler that never returns is killed at the deadline: a hard timeout.
pub(super) fn hard_timeout(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let kills_before = bus.stats().corelet_kills;
    tour.say(format!(
        "payment.hang loops forever, ignoring its cancellation flag; timeout {}",
        millis(HANG_TIMEOUT)
    ));
    let started = Instant::now();
    let result = bus.publish(corelet("payment.hang").with_timeout(HANG_TIMEOUT))?.wait();
    let waited = started.elapsed();
    tour.say(format!("-> {}", describe(&result)));
    tour.say(format!("the result came {} after publishing", millis(waited)));
    tour.check(result.is_timeout(), "a timeout result");
    // Generous: the kill itself is quick, but a loaded machine may be slow to schedule us.
    tour.check(
        waited < HANG_TIMEOUT + Duration::from_secs(2),
        "at the deadline, not whenever the handler ends",
    );
    let kills = bus.stats().corelet_kills - kills_before;
    tour.check(kills == 1, format!("the bus killed the child's process group ({kills} kill counted)"));
    Ok(())
}
