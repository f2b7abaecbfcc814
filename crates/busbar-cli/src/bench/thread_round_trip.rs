//! Scenario 3: thread mode round trip, publish → wait, one event at a time (p50/p99 µs).
//!
//! busbar runs a one-thread pool. Floor: one bare worker thread fed by a channel, answering
//! on a oneshot. Target: busbar's p50 ≤ 1.3× the floor's.

use std::time::Instant;

use busbar::{Event, EventBus, ExecutionMode};

use super::costs::LineAnswerer;
use super::floor::trivial_handler;
use super::floor::worker::BareWorker;
use super::handlers::{self, expect_handled, expect_success, TRIVIAL};
use super::placement::{self, Placed, Placement};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::{micros, Latency};
use super::{Error, Run};

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let round_trips = run.size(20_000, 500);
    // Both sides' threads are placed alike, on two CPUs, then on one (see `placement`).
    placement::for_each_placement(|placed| {
        let (row, added) = measure(run, placed)?;
        let note = match placed {
            Some((_, Placement::Together)) => together_note(added),
            _ => {
                // The line's two threads placed as the round trip's were.
                let answerer = placement::start_placed(placed, LineAnswerer::start)?;
                let line_trip = answerer.round_trip_ns(round_trips)? / 1000.0;
                apart_note(line_trip, placed.map(|_| added))
            }
        };
        Ok(row.note(note))
    })
}

/// Measures busbar's round trips and the floor's, their worker threads started as `placed`
/// says (or wherever the scheduler puts them). Returns the row and the µs busbar adds to the
/// floor's p50.
fn measure(run: &Run<'_>, placed: Placed<'_>) -> Result<(Row, f64), Error> {
    let round_trips = run.size(20_000, 500);
    let reps = run.size(5, 3);
    let start = || {
        let bus = handlers::bus(1, |builder| builder)?;
        // The pool starts its worker with the first queued event: this starts it here.
        busbar_latency(&bus, 1)?;
        Ok((bus, BareWorker::new(trivial_handler())?))
    };
    let (bus, worker) = placement::start_placed(placed, start)?;
    busbar_latency(&bus, round_trips / 10)?;
    floor_latency(&worker, round_trips / 10)?;
    let (ours, floor) =
        run.alternate(reps, || busbar_latency(&bus, round_trips), || floor_latency(&worker, round_trips))?;
    bus.shutdown();
    let (ours, floor) = (Latency::median_of(&ours), Latency::median_of(&floor));
    let row = Row::new(
        "thread-round-trip",
        format!("thread round trip p50 (p99), {}", placement::describe(placed)),
        Unit::Micros,
        Figure::latency(ours),
        Figure::latency(floor),
        Target::RatioAtMost(1.3),
    );
    Ok((row.runs(reps, format!("{} round trips", grouped(round_trips))), ours.p50 - floor.p50))
}

/// What a round trip between two CPUs costs: cache lines that one wrote and the other reads.
/// `added`: the µs busbar added, if the threads were placed (unplaced, the figures may come
/// from either placement).
fn apart_note(line_trip: f64, added: Option<f64>) -> String {
    let mut note = format!(
        "publisher and worker on two CPUs. A cache line's trip to the other CPU and back (two \
         threads answering each other through one atomic, spinning) took {line_trip:.2} µs in \
         this run. For every event, publisher and worker both write the queue's first cache line \
         (its lock, its length, the ends of its front lane), the job's lines and the reply's \
         oneshot, as the floor's two threads write their channel and the oneshot; on top of that \
         the worker keeps the attempt's books (its deadline, the slot the watchdog looks at, the \
         panic boundary, the result's duration)"
    );
    match added {
        Some(added) => note.push_str(&format!(
            ". The {added:.2} µs busbar adds to the floor's p50 is the time of {:.1} such trips",
            added / line_trip.max(f64::MIN_POSITIVE)
        )),
        None => {
            note = format!(
                "placed by the scheduler, which may put the two sides of either one \
             differently ({note})"
            )
        }
    }
    note
}

/// What a round trip on one CPU costs: each hand-over is a switch between the two threads.
fn together_note(added: f64) -> String {
    format!(
        "publisher and worker on one CPU: each side yields the CPU to the other while it \
         watches for what it waits for, so every hand-over is a switch between the two \
         threads, and no cache line travels. What busbar adds, {added:.2} µs, is its work: \
         checking the event and finding its handler, the queue's lock on both sides, the \
         attempt's books, resolving the result"
    )
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
