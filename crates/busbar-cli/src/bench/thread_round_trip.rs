//! Scenario 3: thread mode round trip, publish → wait, one event at a time (p50/p99 µs).
//!
//! busbar runs a one-thread pool. Floor: one bare worker thread fed by a channel, answering
//! on a oneshot. Target: busbar's p50 ≤ 1.3× the floor's.

use std::time::Instant;

use busbar::{Event, EventBus, ExecutionMode};

use super::costs;
use super::floor::trivial_handler;
use super::floor::worker::BareWorker;
use super::handlers::{self, expect_handled, expect_success, TRIVIAL};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::{micros, Latency};
use super::{Error, Run};

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let round_trips = run.size(20_000, 500);
    let reps = run.size(5, 3);
    let bus = handlers::bus(1, |builder| builder)?;
    let worker = BareWorker::new(trivial_handler())?;
    busbar_latency(&bus, round_trips / 10)?;
    floor_latency(&worker, round_trips / 10)?;
    let (ours, floor) =
        run.alternate(reps, || busbar_latency(&bus, round_trips), || floor_latency(&worker, round_trips))?;
    bus.shutdown();
    let (ours, floor) = (Latency::median_of(&ours), Latency::median_of(&floor));
    let line_trip = costs::line_round_trip_ns(round_trips)? / 1000.0;
    let added = ours.p50 - floor.p50;
    let note = format!(
        "a cache line's trip to another CPU and back (two threads answering each other through \
         one atomic, spinning) took {line_trip:.2} µs in this run. For every event, publisher \
         and worker both write the queue's first cache line (its lock, its length, the ends of \
         its front lane), the job's lines and the reply's oneshot, as the floor's two threads \
         write their channel and the oneshot; on top of that the worker keeps the attempt's \
         books (its deadline, the slot the watchdog looks at, the panic boundary, the result's \
         duration). The {added:.2} µs busbar adds to the floor's p50 is the time of {:.1} such trips",
        added / line_trip.max(f64::MIN_POSITIVE),
    );
    let row = Row::new(
        "thread-round-trip",
        "thread round trip p50 (p99)",
        Unit::Micros,
        Figure::latency(ours),
        Figure::latency(floor),
        Target::RatioAtMost(1.3),
    );
    Ok(vec![row.runs(reps, format!("{} round trips", grouped(round_trips))).note(note)])
}

fn thread_event() -> Event {
    Event::new(TRIVIAL).with_mode(ExecutionMode::Thread)
}

fn busbar_latency(bus: &EventBus, round_trips: usize) -> Result<Latency, Error> {
    let mut samples = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let start = Instant::now();
        let result = bus.publish(thread_event())?.wait();
        samples.push(micros(start.elapsed()));
        expect_success(&result)?;
    }
    Ok(Latency::of(&samples))
}

fn floor_latency(worker: &BareWorker, round_trips: usize) -> Result<Latency, Error> {
    let mut samples = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let start = Instant::now();
        let result = worker.call(thread_event())?;
        samples.push(micros(start.elapsed()));
        expect_handled(result)?;
    }
    Ok(Latency::of(&samples))
}
