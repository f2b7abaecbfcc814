//! Rate limits: events are delayed, not dropped; other types are not slowed; join and both
//! shutdowns account for waiting events.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventResult, ExecutionMode};

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(20);

fn thread(event_type: &str) -> Event {
    Event::new(event_type).with_mode(ExecutionMode::Thread)
}

/// Subscribes a handler for `event_type` that records when each event starts.
fn record_starts(bus: &EventBus, event_type: &str) -> Arc<Mutex<Vec<Instant>>> {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&starts);
    bus.subscribe(
        event_type,
        handler_fn(move |_| {
            record.lock().expect("not poisoned").push(Instant::now());
            Ok(EventResult::success())
        }),
    );
    starts
}

#[test]
fn twenty_per_second() {
    const EVENTS: usize = 50;
    const STEP: Duration = Duration::from_millis(50);
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let starts = record_starts(&bus, "limited");
    let others = record_starts(&bus, "other");
    bus.register_rate_limit("limited", 20.0, 5).expect("valid limit");

    let published = Instant::now();
    let limited: Vec<_> = (0..EVENTS).map(|_| bus.publish(thread("limited")).expect("accepted")).collect();
    let info = bus.rate_limit("limited").expect("registered");
    assert!(info.waiting >= 40, "{info:?}"); // 45 unless the machine stalled for a while

    // Another type is not slowed: it finishes while the limited events still wait.
    let other: Vec<_> = (0..20).map(|_| bus.publish(thread("other")).expect("accepted")).collect();
    for handle in other {
        assert!(handle.wait().success);
    }
    assert!(bus.rate_limit("limited").expect("registered").waiting > 0, "the others were slowed down");
    assert_eq!(others.lock().expect("not poisoned").len(), 20);

    bus.join();
    let took = published.elapsed();
    for handle in limited {
        assert!(handle.wait().success);
    }
    let mut starts = starts.lock().expect("not poisoned").clone();
    starts.sort();
    assert_eq!(starts.len(), EVENTS);

    // Never early: the first five at once, then one per 50 ms (slots count from the first
    // publish, which is after `published`).
    for (i, start) in starts.iter().enumerate().skip(5) {
        let slot = published + STEP * (i as u32 - 4);
        assert!(*start >= slot, "event {i} started {:?} before its slot", slot - *start);
    }
    // No one-second window holds more than per_second + burst starts.
    for (i, from) in starts.iter().enumerate() {
        let in_window =
            starts[i..].iter().take_while(|start| **start <= *from + Duration::from_secs(1)).count();
        assert!(in_window <= 25, "{in_window} starts in the second from start {i}");
    }
    let span = starts[EVENTS - 1] - starts[0];
    let first_five = starts[4] - published;
    eprintln!(
        "twenty_per_second: {EVENTS} events at 20/s, burst 5: first five started within {first_five:?}, \
         span first to last start {span:?} (schedule: 2.25 s), join after {took:?}"
    );
    assert!(starts[EVENTS - 1] - published >= Duration::from_millis(2250));
    assert!(span < Duration::from_secs(10));
    let info = bus.rate_limit("limited").expect("registered");
    assert_eq!(info.waiting, 0);
    assert!(info.last_second <= 25, "{info:?}");
}

#[test]
fn sync_publisher_waits_for_its_slot() {
    let bus = EventBus::new();
    let starts = record_starts(&bus, "limited");
    bus.register_rate_limit("limited", 50.0, 1).expect("valid limit");
    let published = Instant::now();
    for _ in 0..4 {
        assert!(bus.publish(Event::new("limited")).expect("accepted").wait().success);
    }
    // One at once, then one every 20 ms.
    assert!(published.elapsed() >= Duration::from_millis(60));
    assert_eq!(starts.lock().expect("not poisoned").len(), 4);
}

#[test]
fn join_waits_for_waiting_events() {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let _starts = record_starts(&bus, "limited");
    bus.register_rate_limit("limited", 10.0, 1).expect("valid limit");
    let published = Instant::now();
    let handles: Vec<_> = (0..5).map(|_| bus.publish(thread("limited")).expect("accepted")).collect();
    bus.join();
    assert!(published.elapsed() >= Duration::from_millis(400));
    assert_eq!(bus.stats().succeeded, 5);
    assert!(handles.into_iter().all(|handle| handle.wait().success));
}

#[test]
fn shutdown_waits_for_waiting_events() {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let _starts = record_starts(&bus, "limited");
    bus.register_rate_limit("limited", 10.0, 1).expect("valid limit");
    let published = Instant::now();
    let handles: Vec<_> = (0..3).map(|_| bus.publish(thread("limited")).expect("accepted")).collect();
    bus.shutdown();
    assert!(published.elapsed() >= Duration::from_millis(200));
    assert!(handles.into_iter().all(|handle| handle.wait().success));
}

#[test]
fn shutdown_now_cancels_waiting_events() {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let _starts = record_starts(&bus, "limited");
    bus.register_rate_limit("limited", 0.1, 1).expect("valid limit"); // one per 10 s
    let first = bus.publish(thread("limited")).expect("accepted");
    let waiting: Vec<_> = (0..4).map(|_| bus.publish(thread("limited")).expect("accepted")).collect();
    // A sync publisher sleeping until its slot is woken too.
    let sync = std::thread::spawn({
        let bus = bus.clone();
        move || bus.publish(Event::new("limited")).expect("accepted").wait()
    });
    while bus.rate_limit("limited").expect("registered").waiting < 5 {
        std::thread::sleep(Duration::from_millis(1));
    }

    let stopping = Instant::now();
    bus.shutdown_now();
    for handle in waiting {
        let result = handle.wait();
        assert_eq!(result.error_kind, Some(ErrorKind::Cancelled), "{result:?}");
    }
    let result = sync.join().expect("the publisher returns");
    assert_eq!(result.error_kind, Some(ErrorKind::Cancelled), "{result:?}");
    assert!(stopping.elapsed() < Duration::from_secs(5), "shutdown_now took {:?}", stopping.elapsed());
    let _ = first.wait(); // ran at once, or was cancelled: either way it has a result
    assert_eq!(bus.stats().in_flight, 0);
}

#[test]
fn released_events_keep_priority_order() {
    let bus = EventBus::builder().threads(1).build().expect("valid settings");
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    bus.subscribe(
        "block",
        handler_fn(move |_| {
            let _ = gate.lock().expect("not poisoned").recv_timeout(PATIENCE);
            Ok(EventResult::success())
        }),
    );
    let (report, order) = mpsc::channel();
    let report = Mutex::new(report);
    bus.subscribe(
        "limited",
        handler_fn(move |ctx| {
            let _ = report.lock().expect("not poisoned").send(ctx.event().priority());
            Ok(EventResult::success())
        }),
    );
    bus.register_rate_limit("limited", 100.0, 1).expect("valid limit");
    bus.publish(thread("block")).expect("accepted"); // occupies the only worker
    for priority in [1, 2, 9] {
        bus.publish(thread("limited").with_priority(priority)).expect("accepted");
    }
    // All three released (at 0, 10 and 20 ms) into the queue behind the blocked worker.
    let waiting = Instant::now();
    while bus.stats().queued < 3 {
        assert!(waiting.elapsed() < PATIENCE, "the limited events were not released");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(release);
    let order: Vec<i32> = (0..3).map(|_| order.recv_timeout(PATIENCE).expect("runs")).collect();
    assert_eq!(order, [9, 2, 1]);
}

#[test]
fn invalid_limits_are_refused() {
    let bus = EventBus::new();
    for per_second in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        let err = bus.register_rate_limit("api.call", per_second, 1).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid rate limit for `api.call`: `per_second` must be"),
            "{err}"
        );
    }
    let err = bus.register_rate_limit("api.call", 10.0, 0).unwrap_err();
    assert_eq!(err.to_string(), "invalid rate limit for `api.call`: `burst` must be at least 1, found 0");
    let err = bus.register_rate_limit("", 10.0, 1).unwrap_err();
    assert!(err.to_string().contains("the event type is empty"), "{err}");
    assert!(bus.rate_limit("api.call").is_none(), "a refused limit is not registered");
}

#[test]
fn change_and_remove() {
    let bus = EventBus::new();
    let _starts = record_starts(&bus, "limited");
    bus.register_rate_limit("limited", 1.0, 1).expect("valid limit");
    bus.register_rate_limit("limited", 1000.0, 10).expect("valid limit");
    let info = bus.rate_limit("limited").expect("registered");
    assert_eq!((info.per_second, info.burst), (1000.0, 10));
    assert!(bus.remove_rate_limit("limited"));
    assert!(!bus.remove_rate_limit("limited"));
    assert!(bus.rate_limit("limited").is_none());
    let published = Instant::now();
    for _ in 0..100 {
        bus.publish(Event::new("limited")).expect("accepted");
    }
    assert!(published.elapsed() < Duration::from_secs(5), "no limit any more");
}

/// `shutdown_now` while the scheduler releases a large batch of delayed events of a
/// rate-limited type returns promptly: the jobs of the batch it has not released yet are
/// cancelled too, not held again for their slots (an hour apart here), where nothing would
/// cancel them and the scheduler would wait for each.
#[test]
fn shutdown_now_while_a_batch_of_delayed_events_is_released() {
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    let (ran, first_ran) = mpsc::channel();
    let ran = Mutex::new(ran);
    bus.subscribe(
        "limited",
        handler_fn(move |_| {
            let _ = ran.lock().expect("not poisoned").send(());
            Ok(EventResult::success())
        }),
    );
    bus.register_rate_limit("limited", 1.0 / 3600.0, 1).expect("valid limit");
    let due = Instant::now() + Duration::from_millis(200);
    let handles: Vec<_> =
        (0..100_000).map(|_| bus.publish_at(due, thread("limited")).expect("accepted")).collect();
    // The first one of the batch ran: the scheduler is releasing the rest now.
    first_ran.recv_timeout(PATIENCE * 3).expect("the batch came due");
    let (stopped, done) = mpsc::channel();
    let stopping = bus.clone();
    std::thread::spawn(move || {
        stopping.shutdown_now();
        let _ = stopped.send(());
    });
    done.recv_timeout(PATIENCE * 3).expect("shutdown_now returned");
    let cancelled = handles
        .into_iter()
        .map(|handle| handle.wait())
        .filter(|result| result.error_kind == Some(ErrorKind::Cancelled))
        .count();
    assert_eq!(cancelled, 99_999, "all but the first were cancelled");
    assert_eq!(bus.stats().in_flight, 0);
}
