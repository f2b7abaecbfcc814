//! Scenario 1: sync publish → result with a trivial handler (ns/event).
//!
//! Floor: build the same event and call the same handler body through `&dyn`, which is the
//! least any event bus must do. Target: busbar ≤ 3× the floor.
//!
//! A repetition's figure is the median over chunks of [`CHUNK`] events: on a shared machine a
//! chunk that was preempted is an outlier the median drops, where a plain average over the
//! repetition would charge it to whichever side happened to run longer (busbar).

use std::hint::black_box;
use std::time::Instant;

use busbar::{Event, EventBus, HandlerResult};

use super::handlers::{self, expect_handled, expect_success, TRIVIAL};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::median;
use super::{Error, Run};

/// Events per timed chunk (a few hundred microseconds).
const CHUNK: usize = 1_000;

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
    Ok(vec![row.runs(reps, format!("{} events in chunks of {}", grouped(events), grouped(CHUNK)))])
}

/// Publishes `events` sync events one after another, taking each result; ns per event
/// (median over chunks).
fn busbar_ns(bus: &EventBus, events: usize) -> Result<f64, Error> {
    chunked_ns(events, || {
        let result = bus.publish(Event::new(TRIVIAL))?.wait();
        expect_success(black_box(&result))
    })
}

/// Builds `events` events and calls the handler on each; ns per event (median over chunks).
fn floor_ns(handler: &dyn Fn(&Event) -> HandlerResult, events: usize) -> Result<f64, Error> {
    chunked_ns(events, || {
        let event = Event::new(TRIVIAL);
        expect_handled(black_box(black_box(handler)(black_box(&event))))
    })
}

/// Runs `one` `events` times in chunks of [`CHUNK`]; the median ns per call over the chunks.
fn chunked_ns(events: usize, mut one: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    let chunk = CHUNK.min(events.max(1));
    let mut per_call = Vec::with_capacity(events / chunk);
    for _ in 0..(events / chunk).max(1) {
        let start = Instant::now();
        for _ in 0..chunk {
            one()?;
        }
        per_call.push(start.elapsed().as_nanos() as f64 / chunk as f64);
    }
    Ok(median(&per_call))
}
