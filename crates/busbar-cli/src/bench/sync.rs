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
        ClockReads {
            counter: costs::counter_read_ns(events)?,
            os: costs::clock_read_ns(events)?,
            counter_used: busbar::__bench::sync_clock_reads_the_counter(),
            kernel_source: busbar::__bench::kernel_clock_source(),
        },
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
/// `busbar/src/clock.rs`), and which of them it uses here.
struct ClockReads {
    /// The CPU's counter, read through quanta as busbar reads it.
    counter: f64,
    /// The OS's monotonic clock, which busbar reads instead where it does not trust the counter.
    os: f64,
    /// Whether busbar reads the counter here (busbar's answer).
    counter_used: bool,
    /// The Linux kernel's clock source, if it could be read: on Linux x86 busbar reads the
    /// counter only where it is the TSC.
    kernel_source: Option<String>,
}

impl ClockReads {
    /// Which clock busbar reads, and its price in this run.
    fn describe(&self) -> (String, f64) {
        let source = self.kernel_source.as_deref().unwrap_or("unknown");
        match self.counter_used {
            true => (
                format!(
                    "the CPU's counter (the kernel's clock source: {source}), {:.0} ns each in this run \
                     (the OS clock: {:.0} ns)",
                    self.counter, self.os
                ),
                self.counter,
            ),
            false => (
                format!(
                    "the OS clock, as the kernel's clock source here is {source}, not the TSC: {:.0} \
                     ns each in this run (the CPU's counter, which busbar does not trust here: {:.0} ns)",
                    self.os, self.counter
                ),
                self.os,
            ),
        }
    }
}

/// What the two clock reads busbar's guarantees need cost, beside what busbar adds to the
/// floor and what the target leaves for everything else.
///
/// Clock reads are given as a share of what busbar adds, an upper bound: the counter read waits
/// for nothing before it, so inside busbar's path it may overlap other work. Locked
/// instructions are not given as a share: alone they cost about half an OS clock read, but
/// inside the path they overlap other work.
fn guarantees_note(ours: f64, floor: f64, clock: ClockReads, locked_increment: f64) -> String {
    let (which, price) = clock.describe();
    let clock_reads = 2.0 * price;
    let added = ours - floor;
    let counts = match busbar::__bench::sync_finish_needs_no_fence() {
        true => "plain stores into the thread's own tally; `join` and `shutdown` pay for the ordering, with membarrier",
        false => "plain stores into the thread's own tally, and a fence after the check's begin and after the finish: membarrier is not available",
    };
    format!(
        "besides the floor's work, busbar reads a clock twice per event (the attempt's start, \
         which gives its deadline and duration, and its end): {which}, {clock_reads:.0} ns \
         together, {:.0} % of the {added:.0} ns busbar adds to the floor. 3× the floor leaves \
         {:.0} ns for everything else: two locked read-modify-writes (the handler \
         registration's reference count up and down; {locked_increment:.1} ns each timed \
         alone, less inside the path, where they overlap other work), the counts that `join` \
         and `stats` read (a check for a closed bus begun and ended, started, finished: \
         {counts}), checking the event, finding its \
         handler, catching a panic, building and handing over the result",
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
        let clock =
            ClockReads { counter: 8.0, os: 20.0, counter_used: true, kernel_source: Some("tsc".to_owned()) };
        let note = guarantees_note(130.0, 50.0, clock, 10.0);
        assert!(
            note.contains(
                "counter (the kernel's clock source: tsc), 8 ns each in this run (the OS clock: 20 ns)"
            ),
            "{note}"
        );
        assert!(note.contains("16 ns together, 20 % of the 80 ns"), "{note}");
        assert!(note.contains("3× the floor leaves 84 ns for everything else"), "{note}");
        assert!(note.contains("10.0 ns each timed alone"), "{note}");
    }

    #[test]
    fn where_busbar_does_not_trust_the_counter_the_note_prices_the_os_clock() {
        let clock = ClockReads {
            counter: 8.0,
            os: 20.0,
            counter_used: false,
            kernel_source: Some("kvm-clock".to_owned()),
        };
        let note = guarantees_note(130.0, 50.0, clock, 10.0);
        // 2 × 20 = 40 ns of the 80 added; 2 × 50 - 40 = 60 ns left.
        assert!(note.contains("the OS clock, as the kernel's clock source here is kvm-clock"), "{note}");
        assert!(note.contains("40 ns together, 50 % of the 80 ns"), "{note}");
        assert!(note.contains("leaves 60 ns"), "{note}");
    }
}
