//! Documentation scenario: TimerThread › Examples — a periodic health check and a one-time
//! delayed cleanup, both published by timers, the periodic one stopped later.
//!
//! Differences from the documentation: the health check runs every 100 ms instead of every
//! 60 s and stops after five ticks, and the cleanup comes after 250 ms instead of 5 s, so the
//! example takes half a second. The times printed vary a little from run to run; they stay
//! on the 100 ms grid because a periodic timer computes each firing from the schedule, not
//! from when the previous one ran.
//!
//! Run with `cargo run -p busbar --example health_check`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventResult, TimerThread};
use serde_json::json;

const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(100);
const CLEANUP_DELAY: Duration = Duration::from_millis(250);
const TICKS: u64 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let started = Instant::now();
    let (tick, ticks) = mpsc::channel();

    let tick = Mutex::new(tick);
    let count = AtomicU64::new(0);
    bus.subscribe(
        "system.health_check",
        handler_fn(move |ctx| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let at = started.elapsed().as_millis();
            println!("Health check #{n} at +{at} ms: all systems nominal (event {})", ctx.event().id());
            let _ = tick.lock().map_err(|_| "poisoned")?.send(n);
            Ok(EventResult::success_with(json!({"status": "ok"})))
        }),
    );
    bus.subscribe(
        "cleanup.start",
        handler_fn(move |_| {
            println!("Cleanup started at +{} ms", started.elapsed().as_millis());
            Ok(EventResult::success())
        }),
    );

    // One-time delayed execution
    let delayed =
        TimerThread::new(&bus, CLEANUP_DELAY, Event::new("cleanup.start").with_data(json!({})), true);
    delayed.start();

    // Periodic execution
    let periodic = TimerThread::new(&bus, HEALTH_CHECK_INTERVAL, Event::new("system.health_check"), false);
    periodic.start();

    for expected in 1..=TICKS {
        let n = ticks.recv_timeout(Duration::from_secs(10))?;
        assert_eq!(n, expected);
    }

    // Stop periodic timer later
    periodic.stop();
    let elapsed = started.elapsed();
    println!("Stopped the health check after {} ticks in {} ms", periodic.ticks(), elapsed.as_millis());
    assert!(!periodic.is_running());
    assert!(periodic.ticks() >= TICKS);
    assert!(elapsed >= HEALTH_CHECK_INTERVAL * TICKS as u32);
    assert_eq!(delayed.ticks(), 1, "the one-time timer fired once");
    assert!(!delayed.is_running());

    bus.shutdown(); // waits for the last health check to finish
    Ok(())
}
