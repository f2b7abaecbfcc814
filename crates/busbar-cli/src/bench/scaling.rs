//! Scenario 8: throughput draining events already queued behind a blocked one-thread pool,
//! 1 000 000 versus 1 000 (events/s).
//!
//! Each measurement builds a fresh bus, holds its only worker at a gate, queues the events
//! (untimed), then opens the gate and times until `join()` returns. The small case is short
//! and noisy, so it is repeated many times and its median taken. Target: the rate at
//! 1 000 000 ≥ 0.7× the rate at 1 000. The reference is busbar itself; the note gives the same
//! ratio for the thread-throughput floor's pool, which shows how much of a drop the memory
//! hierarchy alone causes when a million queued events no longer fit in the caches.

use std::time::Instant;

use busbar::{Event, ExecutionMode};

use super::floor::pool::FloorPool;
use super::gate::{self, Gate, BLOCK};
use super::handlers::{expect_no_failures, TRIVIAL};
use super::report::{grouped, si_rate, Figure, Row, Target, Unit};
use super::stats::{median, per_second};
use super::{Error, Run};

/// Events queued in the small case.
const SMALL: usize = 1_000;

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let large = run.size(1_000_000, 20_000);
    let large_reps = run.size(5, 1);
    let small_per_large = run.size(11, 11);
    let (mut large_rates, mut small_rates) = (Vec::new(), Vec::new());
    let (mut floor_large, mut floor_small) = (Vec::new(), Vec::new());
    for rep in 0..large_reps {
        run.progress.rep(rep + 1, large_reps);
        for _ in 0..small_per_large {
            small_rates.push(drain_rate(SMALL)?);
            floor_small.push(floor_drain_rate(SMALL)?);
        }
        large_rates.push(drain_rate(large)?);
        floor_large.push(floor_drain_rate(large)?);
    }
    let (floor_large, floor_small) = (median(&floor_large), median(&floor_small));
    let note = format!(
        "the floor pool drained {} events/s with {} queued and {} events/s with {}: ratio {:.2}×",
        si_rate(floor_large),
        grouped(large),
        si_rate(floor_small),
        grouped(SMALL),
        floor_large / floor_small.max(f64::MIN_POSITIVE),
    );
    let row = Row::new(
        "scaling",
        format!("drain {} queued vs {}", grouped(large), grouped(SMALL)),
        Unit::EventsPerSecond,
        Figure::of(median(&large_rates)),
        Figure::of(median(&small_rates)),
        Target::RatioAtLeast(0.7),
    )
    .reference("at 1 000");
    let size = format!("{} events ({} × {} events)", grouped(large), small_rates.len(), grouped(SMALL));
    Ok(vec![row.runs(large_reps, size).note(note)])
}

/// Queues `queued` events behind a blocked worker, releases it, and times the drain.
fn drain_rate(queued: usize) -> Result<f64, Error> {
    let (bus, gate) = gate::blocked_bus(queued + 1)?;
    for _ in 0..queued {
        drop(bus.publish(Event::new(TRIVIAL).with_mode(ExecutionMode::Thread))?);
    }
    let start = Instant::now();
    gate.open();
    bus.join();
    let rate = per_second(queued, start.elapsed());
    expect_no_failures(&bus)?;
    bus.shutdown();
    Ok(rate)
}

/// The same with the floor pool: one worker held at a gate.
fn floor_drain_rate(queued: usize) -> Result<f64, Error> {
    let gate = Gate::new();
    let pool = FloorPool::new(1, gate::gated_floor_handler(&gate))?;
    pool.submit(Event::new(BLOCK).with_mode(ExecutionMode::Thread));
    gate.wait_entered();
    for _ in 0..queued {
        pool.submit(Event::new(TRIVIAL).with_mode(ExecutionMode::Thread));
    }
    let start = Instant::now();
    gate.open();
    pool.join();
    Ok(per_second(queued, start.elapsed()))
}
