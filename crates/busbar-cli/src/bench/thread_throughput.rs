//! Scenario 2: thread mode, a batch of fire-and-forget events then `join()` (events/s).
//!
//! Floor: a bare `Mutex<BinaryHeap>` + `Condvar` pool with as many workers, running the same
//! handler body on the same events. Target: busbar ≥ 0.5× the floor.
//!
//! Both queues are unbounded for the run (busbar's capacity is set above the batch), so that
//! the publisher never waits for room in one and not in the other.

use std::time::Instant;

use busbar::{Event, EventBus, ExecutionMode};

use super::floor::pool::FloorPool;
use super::floor::trivial_handler;
use super::handlers::{self, expect_no_failures, TRIVIAL};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::{median, per_second};
use super::{Error, Run};

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let events = run.size(200_000, 2_000);
    let reps = run.size(5, 3);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let bus = handlers::bus(threads, |builder| builder.queue_capacity(events + 1))?;
    let pool = FloorPool::new(threads, trivial_handler())?;
    busbar_rate(&bus, events / 10)?;
    floor_rate(&pool, events / 10);
    let (ours, floor) =
        run.alternate(reps, || busbar_rate(&bus, events), || Ok(floor_rate(&pool, events)))?;
    expect_no_failures(&bus)?;
    bus.shutdown();
    let row = Row::new(
        "thread-throughput",
        format!("thread throughput, {threads} workers"),
        Unit::EventsPerSecond,
        Figure::of(median(&ours)),
        Figure::of(median(&floor)),
        Target::RatioAtLeast(0.5),
    );
    Ok(vec![row.runs(reps, format!("{} events", grouped(events)))])
}

fn thread_event() -> Event {
    Event::new(TRIVIAL).with_mode(ExecutionMode::Thread)
}

/// Publishes `events` thread events, dropping the handles, and joins; events per second.
fn busbar_rate(bus: &EventBus, events: usize) -> Result<f64, Error> {
    let start = Instant::now();
    for _ in 0..events {
        drop(bus.publish(thread_event())?);
    }
    bus.join();
    Ok(per_second(events, start.elapsed()))
}

/// The same on the floor pool.
fn floor_rate(pool: &FloorPool, events: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..events {
        pool.submit(thread_event());
    }
    pool.join();
    per_second(events, start.elapsed())
}
