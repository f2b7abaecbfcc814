//! Timers, cron schedules and delayed events: firing, drift, stopping, shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventResult, ExecutionMode, TimerThread};

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(20);

/// What a handler reports: the event's type and creation time (a timer's firing time).
type Seen = (String, SystemTime);

/// A bus whose handlers for `types` report every event they run.
fn reporting_bus(types: &[&str]) -> (EventBus, Receiver<Seen>) {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let (report, seen) = mpsc::channel();
    for event_type in types {
        let report = Mutex::new(report.clone());
        bus.subscribe(
            *event_type,
            handler_fn(move |ctx| {
                let event = ctx.event();
                let seen = (event.event_type().to_owned(), event.created_at());
                let _ = report.lock().expect("not poisoned").send(seen);
                Ok(EventResult::success())
            }),
        );
    }
    (bus, seen)
}

/// Publishes a `marker` after `delay` and returns the types seen before it arrives.
fn seen_until_marker(bus: &EventBus, seen: &Receiver<Seen>, delay: Duration) -> Vec<String> {
    bus.publish_after(delay, Event::new("marker")).expect("marker accepted");
    let mut before = Vec::new();
    loop {
        let (event_type, _) = seen.recv_timeout(PATIENCE).expect("the marker arrives");
        if event_type == "marker" {
            return before;
        }
        before.push(event_type);
    }
}

#[test]
fn run_once() {
    let (bus, seen) = reporting_bus(&["tick", "marker"]);
    let timer = TimerThread::new(&bus, Duration::from_millis(20), Event::new("tick"), true);
    timer.start();
    timer.start(); // harmless: still one schedule
    assert_eq!(seen.recv_timeout(PATIENCE).expect("fires").0, "tick");
    // Five more intervals: a second firing would arrive before the marker.
    assert_eq!(seen_until_marker(&bus, &seen, Duration::from_millis(100)), Vec::<String>::new());
    assert_eq!(timer.ticks(), 1);
    assert!(!timer.is_running());
}

#[test]
fn periodic_without_drift() {
    const INTERVAL: Duration = Duration::from_millis(5);
    const TICKS: u32 = 200;
    let (bus, seen) = reporting_bus(&["tick"]);
    let timer = TimerThread::new(&bus, INTERVAL, Event::new("tick"), false);
    let wall_start = SystemTime::now();
    let start = Instant::now();
    timer.start();
    let first = timer.next_firing().expect("running");
    assert!(first >= start + INTERVAL && first <= Instant::now() + INTERVAL);

    let mut lateness = Vec::new();
    for tick in 1..=TICKS {
        let (_, fired) = seen.recv_timeout(PATIENCE).expect("the timer keeps firing");
        let offset = fired.duration_since(wall_start).unwrap_or_default();
        lateness.push(offset.as_secs_f64() * 1e3 - f64::from(tick) * 5.0);
    }
    let next = timer.next_firing().expect("still running");
    let fired = timer.ticks();
    timer.stop();
    let elapsed = start.elapsed();

    // The schedule is a fixed grid: the next firing is a whole number of intervals after the first.
    let grid = (next - first).as_nanos();
    assert_eq!(grid % INTERVAL.as_nanos(), 0, "next firing {grid} ns after the first is off the grid");
    // `next` is grid point n (the first is point 0): n firings were due before it.
    let skipped = ((grid / INTERVAL.as_nanos()) as u64).saturating_sub(fired);
    let last = lateness[lateness.len() - 1];
    let max = lateness.iter().copied().fold(f64::MIN, f64::max);
    let mean = lateness.iter().sum::<f64>() / lateness.len() as f64;
    eprintln!(
        "periodic_without_drift: {TICKS} ticks of 5 ms in {elapsed:?}; tick {TICKS} fired {last:+.3} ms \
         from start + {TICKS} x 5 ms; lateness mean {mean:.3} ms, max {max:.3} ms; {skipped} ticks skipped"
    );
    // The 200th tick: at start + 200 x 5 ms, plus its own wake-up latency (and 5 ms per tick
    // skipped if the machine stalled); never early beyond the two clocks' disagreement.
    assert!(last > -1.0, "tick {TICKS} fired {last} ms early");
    assert!(last < 250.0, "tick {TICKS} fired {last} ms late");
    assert!(elapsed >= INTERVAL * TICKS);
}

#[test]
fn stop_mid_interval() {
    let (bus, seen) = reporting_bus(&["tick", "marker"]);
    let timer = TimerThread::new(&bus, Duration::from_millis(100), Event::new("tick"), false);
    timer.start();
    assert_eq!(seen.recv_timeout(PATIENCE).expect("fires").0, "tick");
    let stopping = Instant::now();
    timer.stop();
    let took = stopping.elapsed();
    timer.stop(); // idempotent
    assert!(took < Duration::from_millis(50), "stop took {took:?}");
    assert!(!timer.is_running());
    assert_eq!(timer.next_firing(), None);
    let fired = timer.ticks() as usize;
    bus.join(); // firings made before `stop` have run
    let extra = seen_until_marker(&bus, &seen, Duration::from_millis(300));
    assert_eq!(extra.len() + 1, fired, "a tick followed stop: {extra:?}");
}

#[test]
fn drop_stops() {
    let (bus, seen) = reporting_bus(&["tick", "marker"]);
    let timer = TimerThread::new(&bus, Duration::from_millis(20), Event::new("tick"), false);
    timer.start();
    for _ in 0..2 {
        assert_eq!(seen.recv_timeout(PATIENCE).expect("fires").0, "tick");
    }
    drop(timer);
    bus.join();
    while seen.try_recv().is_ok() {} // ticks fired before the drop
    assert_eq!(seen_until_marker(&bus, &seen, Duration::from_millis(200)), Vec::<String>::new());
}

#[test]
fn restart_after_stop() {
    let (bus, seen) = reporting_bus(&["tick"]);
    let timer = TimerThread::new(&bus, Duration::from_millis(10), Event::new("tick"), true);
    timer.start();
    seen.recv_timeout(PATIENCE).expect("fires");
    timer.start();
    seen.recv_timeout(PATIENCE).expect("fires again after a restart");
    assert_eq!(timer.ticks(), 2);
}

#[test]
fn copies_are_fresh() {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let (report, ids) = mpsc::channel();
    let report = Mutex::new(report);
    bus.subscribe(
        "tick",
        handler_fn(move |ctx| {
            let event = ctx.event();
            let worker = std::thread::current().name().unwrap_or_default().to_owned();
            let _ = report.lock().expect("not poisoned").send((event.id(), event.data().clone(), worker));
            Ok(EventResult::success())
        }),
    );
    // A sync event too: the timer thread never runs handlers, the pool does.
    let event = Event::new("tick").with_data(serde_json::json!({"n": 1})).with_mode(ExecutionMode::Sync);
    let original = event.id();
    let timer = TimerThread::new(&bus, Duration::from_millis(10), event, false);
    timer.start();
    let (first, data, worker) = ids.recv_timeout(PATIENCE).expect("fires");
    let (second, _, _) = ids.recv_timeout(PATIENCE).expect("fires");
    assert!(first != original && second != original && first != second);
    assert_eq!(data["n"], 1);
    assert!(worker.starts_with("busbar-worker-"), "ran on {worker}");
}

#[test]
fn missing_handler_keeps_ticking() {
    let (bus, seen) = reporting_bus(&[]);
    let timer = TimerThread::new(&bus, Duration::from_millis(10), Event::new("late.handler"), false);
    timer.start();
    let waiting = Instant::now();
    while timer.ticks() < 3 {
        assert!(waiting.elapsed() < PATIENCE, "the timer stopped ticking");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(timer.is_running(), "a failed publish does not stop the timer");
    let (report, late) = mpsc::channel();
    let report = Mutex::new(report);
    bus.subscribe(
        "late.handler",
        handler_fn(move |_| {
            let _ = report.lock().expect("not poisoned").send(());
            Ok(EventResult::success())
        }),
    );
    late.recv_timeout(PATIENCE).expect("fires once the handler exists");
    drop(seen);
}

#[test]
fn shutdown_stops_timers() {
    let (bus, _seen) = reporting_bus(&["tick"]);
    let timer = TimerThread::new(&bus, Duration::from_millis(10), Event::new("tick"), false);
    timer.start();
    bus.shutdown();
    assert!(!timer.is_running());
    timer.start(); // refused, and logged
    assert!(!timer.is_running());
}

#[test]
fn publish_after_delays() {
    let (bus, _seen) = reporting_bus(&["later"]);
    let published = Instant::now();
    let handle = bus.publish_after(Duration::from_millis(100), Event::new("later")).expect("accepted");
    bus.join(); // waits for the delayed event too
    assert!(published.elapsed() >= Duration::from_millis(100));
    let result = handle.wait();
    assert!(result.success, "{result:?}");

    let err = bus.publish_after(Duration::from_millis(10), Event::new("nobody")).unwrap_err();
    assert_eq!(err.to_string(), "no handler registered for event type `nobody`");
    let err = bus.publish_after(Duration::from_millis(10), Event::new("")).unwrap_err();
    assert!(matches!(err, busbar::PublishError::InvalidEvent(_)), "{err}");
    let err = bus.publish_after(Duration::MAX, Event::new("later")).unwrap_err();
    assert!(err.to_string().contains("longer than the maximum of one year"), "{err}");
}

#[test]
fn shutdown_waits_for_delayed() {
    let (bus, _seen) = reporting_bus(&["later"]);
    let published = Instant::now();
    let handle = bus.publish_after(Duration::from_millis(150), Event::new("later")).expect("accepted");
    bus.shutdown();
    assert!(published.elapsed() >= Duration::from_millis(150));
    assert!(handle.wait().success);
}

#[test]
fn shutdown_now_cancels_delayed() {
    let (bus, _seen) = reporting_bus(&["later"]);
    let handle = bus.publish_after(Duration::from_secs(3600), Event::new("later")).expect("accepted");
    let stopping = Instant::now();
    bus.shutdown_now();
    let result = handle.wait();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert_eq!(result.error_kind, Some(ErrorKind::Cancelled), "{result:?}");
    assert_eq!(bus.stats().cancelled, 1);
    assert_eq!(bus.stats().in_flight, 0);
}

#[test]
fn dropped_bus_still_runs_delayed() {
    let (bus, seen) = reporting_bus(&["later"]);
    let handle = bus.publish_after(Duration::from_millis(50), Event::new("later")).expect("accepted");
    drop(bus); // a graceful shutdown in the background; the queue stays open for the delayed event
    assert_eq!(seen.recv_timeout(PATIENCE).expect("it runs").0, "later");
    assert!(handle.wait().success);
}

#[test]
fn shutdown_now_races_releases() {
    // Every accepted event ends with exactly one result, however the release and the
    // cancellation interleave.
    let (bus, _seen) = reporting_bus(&["later"]);
    let handles: Vec<_> = (0..300u64)
        .map(|i| bus.publish_after(Duration::from_micros(i * 50), Event::new("later")).expect("accepted"))
        .collect();
    std::thread::sleep(Duration::from_millis(7));
    bus.shutdown_now();
    let mut cancelled = 0;
    for handle in handles {
        let result = handle.wait();
        match result.error_kind {
            None => assert!(result.success),
            Some(ErrorKind::Cancelled) => cancelled += 1,
            Some(kind) => panic!("unexpected {kind}: {result:?}"),
        }
    }
    let stats = bus.stats();
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.published, stats.succeeded + stats.failed);
    assert_eq!(stats.cancelled, cancelled);
    assert!(cancelled > 0, "the test released everything before shutdown_now");
}

#[test]
fn cron_errors_are_clear() {
    let bus = EventBus::new();
    let cases = [
        ("", "invalid cron expression ``: the expression is empty; expected five fields"),
        ("* * *", "invalid cron expression `* * *`: invalid pattern: pattern must have between 5 and 7 fields"),
        ("61 * * * *", "invalid cron expression `61 * * * *`: component error: number out of bounds in the minute field (`61`)"),
        ("0 12 * 13 *", "invalid cron expression `0 12 * 13 *`: component error: number out of bounds in the month field (`13`)"),
        ("0 12 * * MON-XYZ", "invalid cron expression `0 12 * * MON-XYZ`: "),
        ("0 0 30 2 *", "invalid cron expression `0 0 30 2 *`: it matches no time in the future"),
        ("every monday", "invalid cron expression `every monday`: "),
    ];
    for (expression, expected) in cases {
        let err = bus.schedule_cron(expression, Event::new("report")).unwrap_err();
        let message = err.to_string();
        eprintln!("{message}");
        assert!(message.starts_with(expected), "{message}");
        assert_eq!(err.expression(), expression);
    }
    for expression in ["*/5 * * * *", "0 6 * * MON-FRI", "30 */10 * * * *", "@hourly"] {
        let timer = bus.schedule_cron(expression, Event::new("report")).expect(expression);
        assert!(timer.is_running());
    }
}

#[test]
fn cron_fires() {
    let (bus, seen) = reporting_bus(&["every.second"]);
    let timer = bus.schedule_cron("* * * * * *", Event::new("every.second")).expect("valid");
    let (_, first) = seen.recv_timeout(PATIENCE).expect("fires");
    let (_, second) = seen.recv_timeout(PATIENCE).expect("fires again");
    let gap = second.duration_since(first).unwrap_or_default();
    assert!(gap >= Duration::from_millis(500), "{gap:?} between firings");
    drop(timer);
}

#[test]
fn ten_thousand_timers() {
    // Counting the process's `busbar-timer` threads needs a process with no other bus in it.
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "ten_thousand_timers_child", "--ignored", "--nocapture", "--test-threads=1"])
        .status()
        .expect("the test binary reruns");
    assert!(status.success(), "the child test failed: {status}");
}

#[test]
#[ignore = "run by `ten_thousand_timers` in a process of its own"]
fn ten_thousand_timers_child() {
    const TIMERS: usize = 10_000;
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fired);
    bus.subscribe(
        "tick",
        handler_fn(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(EventResult::success())
        }),
    );
    assert_eq!(timer_threads(), 0);
    let timers: Vec<_> = (0..TIMERS)
        .map(|i| {
            let delay = Duration::from_millis(50 + (i % 100) as u64);
            let timer = TimerThread::new(&bus, delay, Event::new("tick"), true);
            timer.start();
            timer
        })
        .collect();
    assert_eq!(timer_threads(), 1, "one scheduler thread for all timers");
    let waiting = Instant::now();
    while fired.load(Ordering::SeqCst) < TIMERS {
        assert!(waiting.elapsed() < PATIENCE, "only {} of {TIMERS} fired", fired.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(timers.iter().all(|timer| timer.ticks() == 1 && !timer.is_running()));
    assert_eq!(timer_threads(), 1);
    bus.shutdown();
    // Joined; the kernel may list the exited thread a moment longer.
    let joined = Instant::now();
    while timer_threads() > 0 {
        assert!(joined.elapsed() < Duration::from_secs(1), "shutdown left the scheduler thread running");
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("ten_thousand_timers: all {TIMERS} fired in {:?}", waiting.elapsed());
}

/// Counts this process's threads named `busbar-timer`.
fn timer_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc is mounted");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "busbar-timer")
        .count()
}

/// A periodic interval below 1 ms is raised to 1 ms: with a nanosecond the timer thread would
/// do nothing but fire, and flood the queue.
#[test]
fn sub_millisecond_interval_is_raised() {
    let (bus, _seen) = reporting_bus(&["tick"]);
    let timer = TimerThread::new(
        &bus,
        Duration::from_nanos(1),
        Event::new("tick").with_mode(ExecutionMode::Thread),
        false,
    );
    let before = Instant::now();
    timer.start();
    let next = timer.next_firing().expect("a running timer has a next firing");
    assert!(next >= before + Duration::from_millis(1), "next firing {:?} after start", next - before);
    timer.stop();
    bus.shutdown();
}

/// A gate for `slow` handlers: each reports that it started, then blocks until the gate's
/// sender is dropped (or [`PATIENCE`] passes). Counts the handlers that ran.
struct SlowHandlers {
    release: mpsc::Sender<()>,
    started: Receiver<()>,
    ran: Arc<AtomicUsize>,
}

impl SlowHandlers {
    /// Subscribes the `slow` type on `bus`.
    fn subscribe(bus: &EventBus) -> Self {
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let (started_tx, started) = mpsc::channel();
        let started_tx = Mutex::new(started_tx);
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        bus.subscribe(
            "slow",
            handler_fn(move |_| {
                let _ = started_tx.lock().expect("not poisoned").send(());
                let _ = released.lock().expect("not poisoned").recv_timeout(PATIENCE);
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(EventResult::success())
            }),
        );
        SlowHandlers { release, started, ran }
    }

    /// A thread-mode `slow` event whose timeout outlasts the test.
    fn event() -> Event {
        Event::new("slow").with_mode(ExecutionMode::Thread).with_timeout(Duration::from_secs(120))
    }
}

/// A timer faster than its handler does not grow the queue past its capacity: the firings that
/// find it full are dropped (and logged), and those queued still run.
#[test]
fn firings_that_find_the_queue_full_are_dropped() {
    const CAPACITY: usize = 3;
    let bus = EventBus::builder().threads(1).queue_capacity(CAPACITY).build().expect("valid settings");
    let slow = SlowHandlers::subscribe(&bus);
    let timer = TimerThread::new(&bus, Duration::from_millis(1), SlowHandlers::event(), false);
    timer.start();
    slow.started.recv_timeout(PATIENCE).expect("the first firing runs");
    // The only worker is now blocked: every later firing can only queue.
    let waited_since = Instant::now();
    while timer.ticks() < 10 * CAPACITY as u64 {
        assert!(waited_since.elapsed() < PATIENCE, "the timer fired {} times", timer.ticks());
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = bus.stats();
    assert!(stats.queued <= CAPACITY as u64, "queued past the capacity: {stats:?}");
    timer.stop();
    let fired = timer.ticks();
    drop(slow.release);
    bus.join();
    let stats = bus.stats();
    assert!(stats.published <= 1 + CAPACITY as u64 + 1, "published: {stats:?}, fired {fired}");
    assert_eq!(slow.ran.load(Ordering::SeqCst) as u64, stats.published, "every accepted firing ran");
    assert_eq!(stats.failed, 0, "{stats:?}");
}

/// A run-once timer's only firing is queued even when the queue is full: dropping it would
/// lose the only run.
#[test]
fn run_once_firing_is_queued_past_a_full_queue() {
    let bus = EventBus::builder().threads(1).queue_capacity(1).build().expect("valid settings");
    let slow = SlowHandlers::subscribe(&bus);
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ran);
    bus.subscribe(
        "once",
        handler_fn(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(EventResult::success())
        }),
    );
    bus.publish(SlowHandlers::event()).expect("accepted");
    slow.started.recv_timeout(PATIENCE).expect("the first runs");
    bus.publish(SlowHandlers::event()).expect("accepted"); // fills the queue (capacity 1)
    let once = Event::new("once").with_mode(ExecutionMode::Thread);
    let timer = TimerThread::new(&bus, Duration::from_millis(1), once, true);
    timer.start();
    let waited_since = Instant::now();
    while timer.ticks() < 1 {
        assert!(waited_since.elapsed() < PATIENCE, "the timer never fired");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(slow.release);
    bus.join();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the only firing ran");
}

/// A periodic timer of a rate-limited type does not grow the queue and the rate limiter's
/// waiting list past the queue's capacity either.
#[test]
fn rate_limited_firings_stay_within_the_capacity() {
    const CAPACITY: usize = 3;
    let bus = EventBus::builder().threads(1).queue_capacity(CAPACITY).build().expect("valid settings");
    bus.register_rate_limit("slow", 500.0, 1).expect("a valid limit");
    let slow = SlowHandlers::subscribe(&bus);
    let timer = TimerThread::new(&bus, Duration::from_millis(1), SlowHandlers::event(), false);
    timer.start();
    let waited_since = Instant::now();
    while timer.ticks() < 20 * CAPACITY as u64 {
        assert!(waited_since.elapsed() < PATIENCE, "the timer fired {} times", timer.ticks());
        std::thread::sleep(Duration::from_millis(1));
    }
    timer.stop();
    let stats = bus.stats();
    let waiting = bus.rate_limit("slow").expect("registered").waiting;
    drop(slow.release);
    bus.shutdown_now();
    // One may have started, and one more be released between the check and the publish.
    let bound = CAPACITY as u64 + 2;
    assert!(stats.in_flight <= bound, "in flight {}, waiting {waiting}: {stats:?}", stats.in_flight);
}
