//! Scenario 1: sync publish → result with a trivial handler (ns/event).
//!
//! Floor: build the same event and call the same handler body through `&dyn`, which is the
//! least any event bus must do. Target: busbar ≤ 3× the floor.
//!
//! A repetition's figure is the median over chunks of [`CHUNK`] events: on a shared machine a
//! chunk that was preempted is an outlier the median drops, where a plain average over the
//! repetition would charge it to whichever side happened to run longer (busbar).

use std::hint::black_box;

use busbar::{Event, EventBus, HandlerResult};

use super::costs;
use super::handlers::{self, expect_handled, expect_success, TRIVIAL};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::{chunked_ns, median, CHUNK};
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
    let (ours, floor) = (median(&ours), median(&floor));
    let note = guarantees_note(
        ours,
        floor,
        ClockReads { counter: costs::counter_read_ns(events)?, os: costs::clock_read_ns(events)? },
        costs::locked_increment_ns(events)?,
    );
    let row = Row::new(
        "sync",
        "sync publish → result",
        Unit::NsPerEvent,
        Figure::of(ours),
        Figure::of(floor),
        Target::RatioAtMost(3.0),
    );
    Ok(vec![row.runs(reps, format!("{} events in chunks of {}", grouped(events), grouped(CHUNK))).note(note)])
}

/// Nanoseconds per read of the two clocks busbar can time sync attempts with (see
/// `busbar/src/clock.rs`).
struct ClockReads {
    /// The CPU's counter, read through quanta as busbar reads it.
    counter: f64,
    /// The OS's monotonic clock, which busbar reads instead where it does not trust the counter.
    os: f64,
}

/// What the two clock reads busbar's guarantees need cost, beside what busbar adds to the
/// floor and what the target leaves for everything else.
///
/// Clock reads are given as a share of what busbar adds, an upper bound: the counter read waits
/// for nothing before it, so inside busbar's path it may overlap other work. Locked
/// instructions are not given as a share: alone they cost about half an OS clock read, but
/// inside the path they overlap other work, and removing three of the four saved far less than
/// their price alone.
fn guarantees_note(ours: f64, floor: f64, clock: ClockReads, locked_increment: f64) -> String {
    let clock_reads = 2.0 * clock.counter;
    let added = ours - floor;
    format!(
        "besides the floor's work, busbar reads a clock twice per event (the attempt's start, \
         which gives its deadline and duration, and its end): the CPU's counter where busbar \
         trusts it, {:.0} ns each in this run (the OS clock: {:.0} ns), {clock_reads:.0} ns \
         together, {:.0} % \
         of the {added:.0} ns busbar adds to the floor. 3× the floor leaves {:.0} ns for \
         everything else: four locked read-modify-writes (the handler registration's reference \
         count up and down, the started and finished counts that `join` and `stats` read; \
         {locked_increment:.1} ns each timed alone, less inside the path, where they overlap \
         other work), checking the event, finding its handler, catching a panic, building and \
         handing over the result",
        clock.counter,
        clock.os,
        100.0 * clock_reads / added.max(f64::MIN_POSITIVE),
        (2.0 * floor - clock_reads).max(0.0),
    )
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

#[cfg(test)]
mod tests {
    use super::{guarantees_note, ClockReads};

    #[test]
    fn the_note_puts_the_clock_reads_beside_what_busbar_adds_and_what_the_target_leaves() {
        // 2 × 8 = 16 ns of the 80 ns added; 3 × 50 leaves 2 × 50 - 16 = 84 ns.
        let note = guarantees_note(130.0, 50.0, ClockReads { counter: 8.0, os: 20.0 }, 10.0);
        assert!(note.contains("trusts it, 8 ns each in this run (the OS clock: 20 ns)"), "{note}");
        assert!(note.contains("16 ns together, 20 % of the 80 ns"), "{note}");
        assert!(note.contains("3× the floor leaves 84 ns for everything else"), "{note}");
        assert!(note.contains("10.0 ns each timed alone"), "{note}");
    }
}
