//! Scenario 6: drift of a 5 ms periodic `TimerThread` after 200 ticks (ms).
//!
//! A handler records when each tick's event runs; the drift is how far the 200th ran from its
//! scheduled instant (the first firing plus 199 intervals), so it includes the trip through
//! the pool, as a user sees it. Target: ≤ 1 ms. The floor is a thread sleeping until each
//! scheduled instant: what the OS's timers allow on this machine, for comparison only.
//!
//! busbar's timer skips the ticks it missed when it wakes a whole interval late (rather than
//! firing them in a burst), so on a loaded machine the 200th firing can belong to a later slot
//! of the schedule: the drift is then a multiple of 5 ms plus a small lateness. The row's note
//! splits the two, so that a miss caused by skipped ticks is not mistaken for a drifting clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode, TimerThread};

use super::floor;
use super::handlers;
use super::report::{Figure, Row, Target, Unit};
use super::stats::median;
use super::{Error, Run};

const INTERVAL: Duration = Duration::from_millis(5);
const TICK: &str = "bench.tick";

/// When the tick events ran, in the order the handler saw them.
type Ticks = Arc<Mutex<Vec<Instant>>>;

pub(super) fn run(run: &Run<'_>) -> Result<Vec<Row>, Error> {
    let ticks = run.size(200, 50);
    let reps = run.size(5, 1);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let bus = handlers::bus(threads, |builder| builder)?;
    let seen: Ticks = Arc::default();
    bus.subscribe(TICK, {
        let seen = Arc::clone(&seen);
        handler_fn(move |_| {
            seen.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now());
            Ok(EventResult::success())
        })
    });
    let (ours, floor) =
        run.alternate(reps, || busbar_drift(&bus, &seen, ticks), || Ok(floor_drift(ticks)))?;
    bus.shutdown();
    let ours_ms: Vec<f64> = ours.iter().map(|rep| rep.drift_ms).collect();
    let floor_ms: Vec<f64> = floor.iter().map(|rep| rep.drift_ms).collect();
    let skipped: Vec<String> = ours.iter().map(|rep| skipped_ticks(rep.drift_ms).to_string()).collect();
    let late: Vec<f64> =
        ours.iter().map(|rep| rep.drift_ms - skipped_ticks(rep.drift_ms) as f64 * interval_ms()).collect();
    let worst: Vec<f64> = floor.iter().map(|rep| rep.worst_late_ms).collect();
    let note = format!(
        "ticks that busbar skipped before tick {ticks}, per repetition: {}; tick {ticks}'s lateness \
         against its own slot: {:.3} ms (median); the floor's latest tick of all {ticks}: {:.3} ms \
         (median), the machine's own wake-up delay",
        skipped.join(", "),
        median(&late),
        median(&worst),
    );
    let row = Row::new(
        "timer",
        format!("timer drift, tick {ticks} of 5 ms"),
        Unit::Millis,
        Figure::of(median(&ours_ms)),
        Figure::of(median(&floor_ms)),
        Target::AtMost(1.0),
    );
    Ok(vec![row.runs(reps, format!("{ticks} ticks")).note(note)])
}

/// One repetition: the drift of the last tick and the latest tick of all, in ms.
struct TimerRep {
    drift_ms: f64,
    worst_late_ms: f64,
}

fn interval_ms() -> f64 {
    INTERVAL.as_secs_f64() * 1e3
}

/// Whole intervals in a drift: ticks the timer skipped (assuming the last tick is less than
/// half an interval late against its own slot).
fn skipped_ticks(drift_ms: f64) -> u64 {
    (drift_ms / interval_ms()).round() as u64
}

/// Runs a periodic timer for `ticks` ticks; the last tick's distance from its schedule in ms.
fn busbar_drift(bus: &EventBus, seen: &Ticks, ticks: usize) -> Result<TimerRep, Error> {
    seen.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let timer = TimerThread::new(bus, INTERVAL, Event::new(TICK).with_mode(ExecutionMode::Thread), false);
    timer.start();
    let first = first_firing(&timer).ok_or("the timer did not start")?;
    let deadline = Instant::now() + INTERVAL * ticks as u32 + Duration::from_secs(10);
    while seen.lock().unwrap_or_else(PoisonError::into_inner).len() < ticks {
        if Instant::now() > deadline {
            return Err(
                format!("{ticks} ticks of {INTERVAL:?} did not arrive within 10 s of schedule").into()
            );
        }
        thread::sleep(INTERVAL);
    }
    timer.stop();
    let mut fired = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    // Two workers may record neighbouring ticks out of order.
    fired.sort();
    Ok(TimerRep { drift_ms: drift_ms(first, &fired, ticks), worst_late_ms: worst_late_ms(first, &fired) })
}

/// The scheduled instant of the timer's first tick, read just after `start`.
fn first_firing(timer: &TimerThread) -> Option<Instant> {
    loop {
        let before = timer.ticks();
        let next = timer.next_firing()?;
        if timer.ticks() == before {
            return Some(next - INTERVAL * before as u32);
        }
    }
}

fn floor_drift(ticks: usize) -> TimerRep {
    let (first, fired) = floor::ticker::tick(INTERVAL, ticks);
    TimerRep { drift_ms: drift_ms(first, &fired, ticks), worst_late_ms: worst_late_ms(first, &fired) }
}

/// The largest lateness of any tick against slot `k` for the `k`-th firing, in ms (exact for
/// a ticker that never skips, such as the floor).
fn worst_late_ms(first: Instant, fired: &[Instant]) -> f64 {
    fired
        .iter()
        .enumerate()
        .map(|(k, at)| at.saturating_duration_since(first + INTERVAL * k as u32).as_secs_f64() * 1e3)
        .fold(0.0, f64::max)
}

/// |actual − scheduled| of tick number `ticks` (1-based), in ms.
fn drift_ms(first: Instant, fired: &[Instant], ticks: usize) -> f64 {
    let scheduled = first + INTERVAL * (ticks as u32 - 1);
    let actual = fired[ticks - 1];
    let drift = if actual >= scheduled { actual - scheduled } else { scheduled - actual };
    drift.as_secs_f64() * 1e3
}
