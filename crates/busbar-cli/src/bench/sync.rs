//! Scenario 1: sync publish → result with a trivial handler (ns/event).
//!
//! Floor: build the same event and call the same handler body through `&dyn`, which is the
//! least any event bus must do. Target: busbar ≤ 3× the floor.

use std::hint::black_box;
use std::time::Instant;

use busbar::{Event, EventBus, HandlerResult};

use super::handlers::{self, expect_handled, expect_success, TRIVIAL};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::median;
use super::{Error, Run};

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let events = run.size(200_000, 2_000);
    let reps = run.size(7, 3);
    let bus = handlers::bus(1, |builder| builder)?;
    let handler: &dyn Fn(&Event) -> HandlerResult = &|_event| handlers::trivial();
    // Warm-up: the handler cache, the allocator's free lists, the branch predictors.
    busbar_ns(&bus, events / 10)?;
    floor_ns(handler, events / 10)?;
    let (ours, floor) = run.alternate(reps, || busbar_ns(&bus, events), || floor_ns(handler, events))?;
    bus.shutdown();
    let row = Row::new(
        "sync",
        "sync publish → result",
        Unit::NsPerEvent,
        Figure::of(median(&ours)),
        Figure::of(median(&floor)),
        Target::RatioAtMost(3.0),
    );
    Ok(vec![row.runs(reps, format!("{} events", grouped(events)))])
}

/// Publishes `events` sync events one after another, taking each result; ns per event.
fn busbar_ns(bus: &EventBus, events: usize) -> Result<f64, Error> {
    let start = Instant::now();
    for _ in 0..events {
        let result = bus.publish(Event::new(TRIVIAL))?.wait();
        expect_success(black_box(&result))?;
    }
    Ok(start.elapsed().as_nanos() as f64 / events.max(1) as f64)
}

/// Builds `events` events and calls the handler on each; ns per event.
fn floor_ns(handler: &dyn Fn(&Event) -> HandlerResult, events: usize) -> Result<f64, Error> {
    let start = Instant::now();
    for _ in 0..events {
        let event = Event::new(TRIVIAL);
        expect_handled(black_box(black_box(handler)(black_box(&event))))?;
    }
    Ok(start.elapsed().as_nanos() as f64 / events.max(1) as f64)
}
