//! Steps about time: a periodic timer, a delayed event, a rate limit.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode, TimerThread};

use super::report::{millis, StepResult, Tour};

/// How long the tour waits for something that should take milliseconds before calling it stuck.
const PATIENCE: Duration = Duration::from_secs(5);

/// The interval of the tour's periodic timer.
const TICK: Duration = Duration::from_millis(50);

/// A `TimerThread` ticks three times on a fixed grid and stops; `publish_after` delays one event.
pub(super) fn timer(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let (tick, ticks) = mpsc::channel::<Instant>();
    let tick = Mutex::new(tick);
    bus.subscribe(
        "system.health_check",
        handler_fn(move |_| {
            let _ = tick.lock().unwrap_or_else(PoisonError::into_inner).send(Instant::now());
            Ok(EventResult::success())
        }),
    );

    let timer = TimerThread::new(bus, TICK, Event::new("system.health_check"), false);
    let started = Instant::now();
    timer.start();
    let mut at = Vec::new();
    for _ in 0..3 {
        let ticked = ticks.recv_timeout(PATIENCE).map_err(|_| "the timer did not tick")?;
        at.push(ticked.duration_since(started));
    }
    timer.stop();
    let ticks_at_stop = timer.ticks();
    tour.say(format!(
        "TimerThread every {}: health checks ran at +{}",
        millis(TICK),
        at.iter().map(|&d| millis(d)).collect::<Vec<_>>().join(", +")
    ));
    let on_time = at.iter().zip(1..).all(|(&d, n)| d >= TICK * n);
    tour.check(on_time, "each tick on the 50 ms grid from start(), never early");

    // Two more intervals: a stopped timer stays quiet.
    std::thread::sleep(TICK * 2);
    tour.say(format!(
        "stop() after {ticks_at_stop} ticks; {} later: {} ticks in all",
        millis(TICK * 2),
        timer.ticks()
    ));
    tour.check(
        ticks_at_stop >= 3 && timer.ticks() == ticks_at_stop && !timer.is_running(),
        "no tick after stop() returned",
    );
    drop(timer); // dropping a timer stops it too
    while ticks.try_recv().is_ok() {} // the health checks are done with the channel

    let delay = Duration::from_millis(100);
    bus.subscribe("cleanup.start", handler_fn(|_| Ok(EventResult::success())));
    let published = Instant::now();
    let result = bus.publish_after(delay, Event::new("cleanup.start"))?.wait();
    let waited = published.elapsed();
    tour.say(format!("publish_after({}): cleanup.start ran, result after {}", millis(delay), millis(waited)));
    tour.check(result.success && waited >= delay, "a delayed event runs once, not before its delay");
    Ok(())
}

/// A rate limit delays events instead of dropping them: 10 events at 20/s with a burst of 2.
pub(super) fn rate_limit(tour: &mut Tour, bus: &EventBus) -> StepResult {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    bus.subscribe(
        "api.call",
        handler_fn(move |_| {
            log.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now());
            Ok(EventResult::success())
        }),
    );
    bus.register_rate_limit("api.call", 20.0, 2)?;
    tour.say("register_rate_limit(\"api.call\", 20 per second, burst 2); publish 10 at once");

    let published = Instant::now();
    let handles = (0..10)
        .map(|_| bus.publish(Event::new("api.call").with_mode(ExecutionMode::Thread)))
        .collect::<Result<Vec<_>, _>>()?;
    let publishing = published.elapsed();
    if let Some(info) = bus.rate_limit("api.call") {
        tour.say(format!("right after publishing: {} waiting for their slot", info.waiting));
    }
    let succeeded = handles.into_iter().map(|handle| handle.wait()).filter(|result| result.success).count();
    let mut starts = starts.lock().unwrap_or_else(PoisonError::into_inner).clone();
    starts.sort();
    let offsets: Vec<String> = starts
        .iter()
        .map(|start| format!("+{:.0}", start.duration_since(published).as_secs_f64() * 1000.0))
        .collect();
    tour.say(format!(
        "publish returned after {}; handlers started at (ms) {}",
        millis(publishing),
        offsets.join(" ")
    ));
    let span = starts.last().map_or(Duration::ZERO, |last| last.duration_since(published));
    tour.check(succeeded == 10, "delayed, not dropped: all 10 succeeded");
    // Two at once, then one every 50 ms: the tenth may start 8 × 50 ms after the first was
    // published, never earlier. Generous above: a busy machine may start it late.
    tour.check(
        span >= Duration::from_millis(400) && span < Duration::from_secs(3),
        "two at once (the burst), then one every 50 ms: the last started after about 0.4 s",
    );
    Ok(())
}
