//! Scenario 7: resident bytes per queued event, with 1 000 000 small thread events (handles
//! dropped) queued behind a blocked one-thread pool.
//!
//! Each measurement runs in a fresh child process (`--child memory`), so that the heap left by
//! earlier scenarios neither hides nor inflates the growth. The child reads its resident set
//! from `/proc/self/statm` once the pool is blocked and again after queueing, and prints the
//! difference per event. Target: ≤ 400 bytes. The floor child (`--child memory-floor`) queues
//! the same events in the thread-throughput floor's heap, for comparison.

use busbar::{Event, ExecutionMode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Write;

use super::floor::pool::FloorPool;
use super::gate::{self, Gate, BLOCK};
use super::handlers::TRIVIAL;
use super::report::{grouped, Figure, Row, Target, Unit};
use super::stats::median;
use super::{child_command, Error, Run};

/// What a memory child prints.
#[derive(Debug, Serialize, Deserialize)]
struct Growth {
    before: u64,
    after: u64,
    events: usize,
}

impl Growth {
    fn per_event(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.events.max(1) as f64
    }
}

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let events = run.size(1_000_000, 20_000);
    let reps = run.size(3, 1);
    let (ours, floor) = run.alternate(
        reps,
        || bytes_per_event("memory", events),
        || bytes_per_event("memory-floor", events),
    )?;
    let row = Row::new(
        "memory",
        "memory per queued thread event",
        Unit::BytesPerEvent,
        Figure::of(median(&ours)),
        Figure::of(median(&floor)),
        Target::AtMost(400.0),
    );
    Ok(vec![row.runs(reps, format!("{} events, fresh process", grouped(events)))])
}

/// Runs a memory child and returns its growth per event.
fn bytes_per_event(role: &str, events: usize) -> Result<f64, Error> {
    let output = child_command(role, &["--events", &events.to_string()])?.output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("the {role} child failed ({}): {}", output.status, stderr.trim()).into());
    }
    let growth: Growth = serde_json::from_slice(&output.stdout)?;
    Ok(growth.per_event())
}

/// The event queued `i`-th: a thread event with a small payload.
fn queued_event(i: usize) -> Event {
    Event::new(TRIVIAL).with_mode(ExecutionMode::Thread).with_data(json!(i))
}

/// `--child memory`: queues `events` on a blocked bus and prints the growth.
pub(super) fn serve_busbar(events: usize) -> Result<(), Error> {
    let (bus, _gate) = gate::blocked_bus(events + 1)?;
    let before = resident_bytes()?;
    for i in 0..events {
        drop(bus.publish(queued_event(i))?);
    }
    let after = resident_bytes()?;
    report_and_exit(&Growth { before, after, events })
}

/// `--child memory-floor`: the same with the floor pool.
pub(super) fn serve_floor(events: usize) -> Result<(), Error> {
    let gate = Gate::new();
    let pool = FloorPool::new(1, gate::gated_floor_handler(&gate))?;
    pool.submit(Event::new(BLOCK).with_mode(ExecutionMode::Thread));
    gate.wait_entered();
    let before = resident_bytes()?;
    for i in 0..events {
        pool.submit(queued_event(i));
    }
    let after = resident_bytes()?;
    report_and_exit(&Growth { before, after, events })
}

/// Prints the growth and ends the process at once: the OS frees a million queued events
/// faster than a drain or a shutdown would.
fn report_and_exit(growth: &Growth) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, growth)?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    std::process::exit(0)
}

/// This process's resident set in bytes, from `/proc/self/statm` (in pages).
fn resident_bytes() -> Result<u64, Error> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 =
        statm.split_whitespace().nth(1).ok_or("/proc/self/statm has no resident field")?.parse()?;
    Ok(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value; _SC_PAGESIZE is always supported.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}
