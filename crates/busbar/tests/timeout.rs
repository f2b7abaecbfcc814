//! Timeouts: the waiter is released at the deadline, the handler sees it, the pool keeps serving.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventResult};
use support::{thread_event, Gate};

const TIMEOUT: Duration = Duration::from_millis(300);
/// Far more than a timeout result may take on a loaded machine, far less than the handlers
/// below would run if nothing stopped them.
const GENEROUS: Duration = Duration::from_secs(10);
const FOREVER: Duration = Duration::from_secs(60);

#[test]
fn cooperative() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let (saw_cancel, cancel_seen) = mpsc::channel();
    bus.subscribe(
        "slow",
        handler_fn(move |ctx| {
            let started = Instant::now();
            while !ctx.is_cancelled() && started.elapsed() < FOREVER {
                thread::sleep(Duration::from_millis(5));
            }
            saw_cancel.send(ctx.is_cancelled()).unwrap();
            Ok(EventResult::success())
        }),
    );
    let started = Instant::now();
    let result = bus.publish(thread_event("slow").with_timeout(TIMEOUT)).unwrap().wait();
    let elapsed = started.elapsed();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(!result.success);
    assert!(result.is_timeout());
    assert_eq!(result.attempts, 1);
    assert!(elapsed >= TIMEOUT && elapsed < GENEROUS, "took {elapsed:?}");
    assert_eq!(cancel_seen.recv_timeout(GENEROUS), Ok(true), "the handler saw its cancellation flag");
}

#[test]
fn stuck_worker_is_replaced() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let gate = Gate::new();
    let _release = gate.opener();
    let stuck = gate.clone();
    // Ignores its cancellation flag: only the gate, opened at the end, lets it return.
    bus.subscribe(
        "stuck",
        handler_fn(move |_| {
            stuck.wait();
            Ok(EventResult::success())
        }),
    );
    bus.subscribe("quick", handler_fn(|_| Ok(EventResult::success_with("served".into()))));

    let started = Instant::now();
    let stuck = bus.publish(thread_event("stuck").with_timeout(TIMEOUT)).unwrap();
    // Queued behind the stuck handler on a one-thread pool.
    let quick: Vec<_> = (0..10).map(|_| bus.publish(thread_event("quick")).unwrap()).collect();

    let result = stuck.wait();
    let elapsed = started.elapsed();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(elapsed >= TIMEOUT && elapsed < GENEROUS, "took {elapsed:?}");
    for handle in quick {
        assert_eq!(handle.wait().data, "served");
    }
    let stats = bus.stats();
    assert!(stats.replaced_workers >= 1, "{stats:?}");
    assert_eq!(stats.workers, 1, "the replacement keeps the pool at its size: {stats:?}");
    assert_eq!(stats.timed_out, 1, "{stats:?}");
    gate.open();
}

#[test]
fn sync_reports_timeout() {
    let bus = EventBus::new();
    bus.subscribe(
        "overrun",
        handler_fn(|ctx| {
            while !ctx.is_cancelled() {
                thread::sleep(ctx.remaining().max(Duration::from_millis(1)));
            }
            // Returns "success", but too late.
            Ok(EventResult::success())
        }),
    );
    let result = bus.publish(Event::new("overrun").with_timeout(Duration::from_millis(100))).unwrap().wait();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(!result.success);
    assert!(result.error_message.unwrap().contains("timed out"));
}

/// A sync handler that never asks for its deadline is timed by the attempt clock alone, and
/// still reported as timed out when it returns late.
#[test]
fn sync_times_out_a_handler_that_never_looks_at_its_deadline() {
    let bus = EventBus::new();
    bus.subscribe(
        "oblivious",
        handler_fn(|_| {
            // Five times the timeout: a loaded machine only makes the nap longer.
            thread::sleep(Duration::from_millis(50));
            Ok(EventResult::success())
        }),
    );
    let result = bus.publish(Event::new("oblivious").with_timeout(Duration::from_millis(10))).unwrap().wait();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(result.duration >= Duration::from_millis(49), "{result:?}");
}

/// The sync result's duration is read from the same clock reading that checks the deadline:
/// it covers the handler's run, and a handler that returns in time is not timed out.
#[test]
fn sync_duration_covers_the_handler() {
    let bus = EventBus::new();
    let nap = Duration::from_millis(30);
    bus.subscribe(
        "nap",
        handler_fn(move |_| {
            thread::sleep(nap);
            Ok(EventResult::success())
        }),
    );
    let event = Event::new("nap").with_timeout(GENEROUS);
    let id = event.id();
    let before = Instant::now();
    let result = bus.publish(event).unwrap().wait();
    let outside = before.elapsed();
    assert!(result.success, "{result:?}");
    assert_eq!((result.event_id, result.attempts), (id, 1));
    assert!(result.duration >= nap, "{:?} < {nap:?}", result.duration);
    assert!(result.duration <= outside, "{:?} > {outside:?} measured around publish", result.duration);
}

#[test]
fn retried() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let gate = Gate::new();
    let _release = gate.opener();
    let stuck = gate.clone();
    // The first attempt hangs past its deadline; the second returns at once.
    bus.subscribe(
        "hangs_once",
        handler_fn(move |ctx| {
            if ctx.attempt() == 1 {
                stuck.wait();
            }
            Ok(EventResult::success_with(ctx.attempt().into()))
        }),
    );
    let event = thread_event("hangs_once").with_timeout(TIMEOUT).with_retry_count(1);
    let result = bus.publish(event).unwrap().wait();
    assert!(result.success, "{result:?}");
    assert_eq!(result.attempts, 2);
    assert_eq!(result.data, 2);

    // The same in sync mode, where the overrun is noticed when the handler returns.
    bus.subscribe(
        "overruns_once",
        handler_fn(|ctx| {
            while ctx.attempt() == 1 && !ctx.is_cancelled() {
                thread::sleep(ctx.remaining().max(Duration::from_millis(1)));
            }
            Ok(EventResult::success_with(ctx.attempt().into()))
        }),
    );
    let event = Event::new("overruns_once").with_timeout(Duration::from_millis(100)).with_retry_count(1);
    let result = bus.publish(event).unwrap().wait();
    assert!(result.success, "{result:?}");
    assert_eq!(result.attempts, 2);
    gate.open();
}

#[test]
fn deadline_in_context() {
    let bus = EventBus::new();
    bus.subscribe(
        "check",
        handler_fn(|ctx| {
            let remaining = ctx.remaining();
            let ok =
                !ctx.is_cancelled() && remaining > Duration::ZERO && remaining <= Duration::from_secs(20);
            Ok(EventResult::success_with(ok.into()))
        }),
    );
    let result = bus.publish(Event::new("check").with_timeout(Duration::from_secs(20))).unwrap().wait();
    assert_eq!(result.data, true);
}
