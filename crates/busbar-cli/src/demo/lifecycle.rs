//! Steps about the bus as a whole: context propagation, statistics, shutdown.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventId, EventResult, ExecutionMode};

use super::report::{describe, millis, StepResult, Tour};

/// One event of the chain, as its handler saw it.
#[derive(Clone, Debug)]
struct Link {
    event_type: String,
    id: EventId,
    correlation_id: EventId,
    causation_id: Option<EventId>,
}

/// order.placed → invoice.create → email.send, each published by the previous handler on
/// the thread pool: one correlation id, each caused by its parent.
pub(super) fn chain(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let links = Arc::new(Mutex::new(Vec::new()));
    for (event_type, next) in [
        ("order.placed", Some("invoice.create")),
        ("invoice.create", Some("email.send")),
        ("email.send", None),
    ] {
        let links = Arc::clone(&links);
        bus.subscribe(
            event_type,
            handler_fn(move |ctx| {
                let event = ctx.event();
                let link = Link {
                    event_type: event.event_type().to_owned(),
                    id: event.id(),
                    correlation_id: event.correlation_id(),
                    causation_id: event.causation_id(),
                };
                links.lock().unwrap_or_else(PoisonError::into_inner).push(link);
                if let Some(next) = next {
                    // A child of this event; not waited for: `join` covers it.
                    drop(ctx.publish(Event::new(next).with_mode(ExecutionMode::Thread))?);
                }
                Ok(EventResult::success())
            }),
        );
    }
    let root = Event::new("order.placed").with_mode(ExecutionMode::Thread);
    let root_id = root.id();
    let _ = bus.publish(root)?; // the handle is not needed: `join` waits for the chain
    bus.join(); // waits for the children too
    let links = links.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for link in &links {
        let caused_by = link.causation_id.map_or_else(|| "-".to_owned(), short);
        tour.say(format!(
            "{:<15} id {}  correlation {}  caused by {caused_by}",
            link.event_type,
            short(link.id),
            short(link.correlation_id)
        ));
    }
    let types: Vec<&str> = links.iter().map(|link| link.event_type.as_str()).collect();
    tour.check(types == ["order.placed", "invoice.create", "email.send"], "three events, in causal order");
    tour.check(
        links.iter().all(|link| link.correlation_id == root_id),
        "one correlation id: the first event's",
    );
    let caused = links.windows(2).all(|pair| pair[1].causation_id == Some(pair[0].id));
    tour.check(caused, "each event's causation id is its parent's id");
    Ok(())
}

/// The first 8 hex digits of an id, enough to tell events apart on screen.
fn short(id: EventId) -> String {
    id.to_string().chars().take(8).collect()
}

/// The bus's counters after the tour so far.
pub(super) fn stats(tour: &mut Tour, bus: &EventBus) -> StepResult {
    bus.join();
    let s = bus.stats();
    tour.say(format!(
        "published {}, succeeded {}, failed {}, in flight {}",
        s.published, s.succeeded, s.failed, s.in_flight
    ));
    tour.say(format!(
        "of the failures: {} timed out, {} panicked, {} crashed, {} cancelled; {} retries in all",
        s.timed_out, s.panicked, s.crashed, s.cancelled, s.retries
    ));
    tour.say(format!("workers {}, replaced after a stuck handler {}", s.workers, s.replaced_workers));
    tour.say(format!(
        "corelets alive {}; started {}, crashed {}, killed {}, retired {}",
        s.corelets, s.corelet_spawns, s.corelet_crashes, s.corelet_kills, s.corelet_recycles
    ));
    tour.check(
        s.published == s.succeeded + s.failed + s.in_flight,
        "published = succeeded + failed + in flight",
    );
    tour.check(
        s.corelet_spawns == s.corelets + s.corelet_crashes + s.corelet_kills + s.corelet_recycles,
        "every corelet started is alive, crashed, killed or retired",
    );
    Ok(())
}

/// `shutdown` finishes what was accepted and refuses the rest; `shutdown_now` cancels.
pub(super) fn shutdown(tour: &mut Tour, bus: &EventBus) -> StepResult {
    bus.subscribe(
        "tidy",
        handler_fn(|_| {
            std::thread::sleep(Duration::from_millis(10));
            Ok(EventResult::success())
        }),
    );
    let mut handles = (0..20)
        .map(|_| bus.publish(Event::new("tidy").with_mode(ExecutionMode::Thread)))
        .collect::<Result<Vec<_>, _>>()?;
    bus.shutdown();
    let finished = handles
        .iter_mut()
        .map(|handle| handle.try_result().is_some_and(|r| r.success))
        .filter(|&ok| ok)
        .count();
    tour.say(format!(
        "published 20 events of 10 ms, then shutdown(): {finished} of 20 had finished when it returned"
    ));
    tour.check(finished == 20, "a graceful shutdown finishes everything accepted");
    match bus.publish(Event::new("tidy")) {
        Err(error) if error.is_shut_down() => tour.say(format!("publishing afterwards: {error}")),
        Err(error) => tour.check(false, format!("a shut-down refusal, not: {error}")),
        Ok(_) => tour.check(false, "publish after shutdown to be refused"),
    }

    // shutdown_now: hold a one-thread bus's worker, queue 1000 events, cancel them all.
    let quick_bus = EventBus::builder().threads(1).build()?;
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    quick_bus.subscribe(
        "wait",
        handler_fn(move |_| {
            let _ = gate.lock().unwrap_or_else(PoisonError::into_inner).recv();
            Ok(EventResult::success())
        }),
    );
    let queued = (0..1000)
        .map(|_| quick_bus.publish(Event::new("wait").with_mode(ExecutionMode::Thread)))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    quick_bus.shutdown_now();
    let took = started.elapsed();
    let results: Vec<EventResult> = queued.into_iter().map(|handle| handle.wait()).collect();
    drop(release);
    let cancelled = results.iter().filter(|result| result.is_cancelled()).count();
    tour.say(format!(
        "1000 events stuck behind a busy worker, then shutdown_now(): returned in {}",
        millis(took)
    ));
    if let Some(first) = results.first() {
        tour.say(format!("-> {}", describe(first)));
    }
    tour.check(cancelled == 1000, "every accepted event resolved as cancelled");
    Ok(())
}
