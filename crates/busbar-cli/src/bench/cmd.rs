//! Scenario 5: cmd mode running `true`, one run at a time (runs/s).
//!
//! Floor: `std::process::Command` with a process group of its own, spawn + wait, one at a time
//! on the calling thread. Target: busbar ≥ 0.85× the floor. busbar also captures the
//! program's output and enforces its deadline, which the floor does not: that is part of
//! what the ratio shows.
//!
//! A repetition's figure is one over the median time of its runs, so that a run during which
//! another process held the CPU does not weigh on the figure.

use std::time::Instant;

use busbar::{Event, EventBus, ExecutionMode};
use serde_json::json;

use super::floor;
use super::handlers::{self, expect_success};
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::median;
use super::{Error, Run};

/// The program both sides run.
const PROGRAM: &str = "true";

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let runs = run.size(500, 20);
    let reps = run.size(5, 3);
    let bus = handlers::bus(1, |builder| builder)?;
    busbar_rate(&bus, runs / 10 + 1)?;
    floor_rate(runs / 10 + 1)?;
    let (ours, floor) = run.alternate(reps, || busbar_rate(&bus, runs), || floor_rate(runs))?;
    bus.shutdown();
    let row = Row::new(
        "cmd",
        "cmd `true`, one at a time",
        Unit::RunsPerSecond,
        Figure::of(median(&ours)),
        Figure::of(median(&floor)),
        Target::RatioAtLeast(0.85),
    );
    Ok(vec![row.runs(reps, format!("{} runs", grouped(runs)))])
}

fn busbar_rate(bus: &EventBus, runs: usize) -> Result<f64, Error> {
    median_rate(runs, || {
        let event =
            Event::new("bench.cmd").with_mode(ExecutionMode::Cmd).with_data(json!({"executable": PROGRAM}));
        expect_success(&bus.publish(event)?.wait())
    })
}

fn floor_rate(runs: usize) -> Result<f64, Error> {
    median_rate(runs, || floor::spawn::run(PROGRAM))
}

/// Calls `one` `runs` times; runs per second at the median duration of a call.
fn median_rate(runs: usize, mut one: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    let mut seconds = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        one()?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    Ok(1.0 / median(&seconds).max(f64::MIN_POSITIVE))
}
