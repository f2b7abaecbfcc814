//! Scenario 4: corelet mode, round trip one at a time (p50/p99 µs) and throughput with two
//! corelets (events/s).
//!
//! Floor: a child process (this binary, `--child echo`) echoing a frame as large as the
//! request busbar sends for the same event, over pipes. Target: round trip p50 ≤ 1.5× the
//! floor's. The throughput row has no target: it shows what two corelets sustain beside two
//! echo children driven by two threads.
//!
//! The round-trip row's note gives what encoding and decoding a request and its reply cost
//! alone, which busbar must do and the echo does not.

use std::time::{Duration, Instant};

use busbar::{CoreletConfig, Event, EventBus, ExecutionMode};
use serde_json::json;

use super::corelet_wire;
use super::floor::echo::{self, EchoChild};
use super::handlers::{self, expect_no_failures, expect_success, TRIVIAL};
use super::placement::{self, Placed};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::{median, micros, per_second, Latency};
use super::{Error, Run};

/// Corelets (and echo children, and pool threads) in the throughput measurement.
const CORELETS: usize = 2;

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    // Both sides' children are placed alike, on two CPUs, then on one (see `placement`).
    let mut rows = placement::for_each_placement(|placed| round_trip(run, placed))?;
    rows.push(throughput(run)?);
    Ok(rows)
}

fn round_trip(run: &Run<'_>, placed: Placed<'_>) -> Result<Row, Error> {
    let round_trips = run.size(5_000, 100);
    let reps = run.size(7, 3);
    let frame = request_frame(&corelet_event())?;
    let (bus, mut pipe) = placement::start_placed(placed, || {
        let bus = corelet_bus(1)?;
        // The first event starts the corelet child (and the pool's worker thread).
        busbar_latency(&bus, 1)?;
        Ok((bus, EchoChild::spawn()?))
    })?;
    // The children stay where they started; the bus's own threads belong with the publisher.
    placement::gather_with_publisher(placed, "busbar-")?;
    // Warm-up. Placed by the scheduler (where the bench cannot place them), a child often runs
    // on its parent's vCPU for a while after it starts, and each round trip then costs two
    // context switches (about 4 µs instead of 3 for busbar: the parent's nonvoluntary switches
    // rise from none to one per round trip) until the scheduler moves one of them; each side
    // runs long enough for that first. Placed, it settles caches and the watchers' habits.
    let warm_up = Duration::from_millis(run.size(300, 20) as u64);
    for_at_least(warm_up, || busbar_latency(&bus, 100).map(drop))?;
    for_at_least(warm_up, || floor_latency(&mut pipe, &frame, 100).map(drop))?;
    let (ours, floors) = run.alternate(
        reps,
        || busbar_latency(&bus, round_trips),
        || floor_latency(&mut pipe, &frame, round_trips),
    )?;
    bus.shutdown();
    let event = corelet_event();
    let codec = median(
        &(0..reps).map(|_| corelet_wire::codec_micros(&event, round_trips)).collect::<Result<Vec<_>, _>>()?,
    );
    let ours = Latency::median_of(&ours);
    let pipe = Latency::median_of(&floors);
    let rest = ours.p50 - pipe.p50 - codec;
    let note = format!(
        "encoding and decoding the request and its reply as the protocol does (postcard, the \
         event's data as JSON text), alone: {codec:.2} µs ({:.2}× the pipe echo's p50). What \
         busbar adds beyond the echo and that: {rest:.2} µs (taking the job, the attempt, \
         resolving the result)",
        codec / pipe.p50.max(f64::MIN_POSITIVE),
    );
    let row = Row::new(
        "corelet",
        format!("corelet round trip p50 (p99), {}", placement::describe(placed)),
        Unit::Micros,
        Figure::latency(ours),
        Figure::latency(pipe),
        Target::RatioAtMost(1.5),
    );
    let size = format!("{} round trips, {}-byte frame", grouped(round_trips), frame.len());
    Ok(row.runs(reps, size).note(note))
}

fn throughput(run: &Run<'_>) -> Result<Row, Error> {
    let events = run.size(20_000, 200);
    let reps = run.size(5, 3);
    let bus = corelet_bus(CORELETS)?;
    let frame = request_frame(&corelet_event())?;
    let mut children = (0..CORELETS).map(|_| EchoChild::spawn()).collect::<Result<Vec<_>, _>>()?;
    busbar_rate(&bus, 200)?;
    floor_rate(&mut children, &frame, 200)?;
    let (ours, floor) =
        run.alternate(reps, || busbar_rate(&bus, events), || floor_rate(&mut children, &frame, events))?;
    expect_no_failures(&bus)?;
    bus.shutdown();
    let row = Row::new(
        "corelet",
        format!("corelet throughput, {CORELETS} corelets"),
        Unit::EventsPerSecond,
        Figure::of(median(&ours)),
        Figure::of(median(&floor)),
        Target::None,
    );
    Ok(row.runs(reps, format!("{} events", grouped(events))))
}

/// A bus whose `threads` workers each can keep one of `threads` corelets busy.
fn corelet_bus(threads: usize) -> Result<EventBus, Error> {
    let mut corelets = CoreletConfig::default();
    corelets.pool_size = Some(threads);
    // No idle retirement during the measurement.
    corelets.idle_timeout = Duration::from_secs(3600);
    handlers::bus(threads, |builder| builder.corelet(corelets).queue_capacity(1_000_000))
}

fn corelet_event() -> Event {
    Event::new(TRIVIAL).with_mode(ExecutionMode::Corelet).with_data(json!({"n": 12345}))
}

/// A frame as large as the one busbar's parent sends to run one attempt of `event`.
fn request_frame(event: &Event) -> Result<Vec<u8>, Error> {
    echo::frame(&corelet_wire::request_body(event)?)
}

/// Calls `step` until `duration` has passed.
fn for_at_least(duration: Duration, mut step: impl FnMut() -> Result<(), Error>) -> Result<(), Error> {
    let start = Instant::now();
    while start.elapsed() < duration {
        step()?;
    }
    Ok(())
}

/// Times `publish` → `wait` of each event; the event is built before the clock starts, as the
/// floor's frame is.
fn busbar_latency(bus: &EventBus, round_trips: usize) -> Result<Latency, Error> {
    let mut samples = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let event = corelet_event();
        let start = Instant::now();
        let result = bus.publish(event)?.wait();
        samples.push(micros(start.elapsed()));
        expect_success(&result)?;
    }
    Ok(Latency::of(&samples))
}

fn floor_latency(child: &mut EchoChild, frame: &[u8], round_trips: usize) -> Result<Latency, Error> {
    let mut samples = Vec::with_capacity(round_trips);
    for _ in 0..round_trips {
        let start = Instant::now();
        child.round_trip(frame)?;
        samples.push(micros(start.elapsed()));
    }
    Ok(Latency::of(&samples))
}

fn busbar_rate(bus: &EventBus, events: usize) -> Result<f64, Error> {
    let start = Instant::now();
    for _ in 0..events {
        drop(bus.publish(corelet_event())?);
    }
    bus.join();
    Ok(per_second(events, start.elapsed()))
}

/// Drives each echo child from its own thread, `events` round trips in all.
fn floor_rate(children: &mut [EchoChild], frame: &[u8], events: usize) -> Result<f64, Error> {
    let share = events / children.len();
    let start = Instant::now();
    let outcomes: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let threads: Vec<_> = children
            .iter_mut()
            .map(|child| scope.spawn(move || (0..share).try_for_each(|_| child.round_trip(frame))))
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap_or_else(|_| Err("a floor thread panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    outcomes.into_iter().collect::<Result<(), Error>>()?;
    Ok(per_second(share * children.len(), elapsed))
}
