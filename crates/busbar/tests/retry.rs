//! Retries: `retry_count = n` allows `1 + n` attempts; permanent failures and panics count.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use busbar::{
    handler_fn, ErrorKind, Event, EventBus, EventResult, ExecutionMode, HandlerError, RetryBackoff,
};

const MODES: [ExecutionMode; 2] = [ExecutionMode::Sync, ExecutionMode::Thread];

fn bus() -> EventBus {
    EventBus::builder().threads(2).build().unwrap()
}

/// Subscribes a handler to "flaky" on `bus` that fails its first `failures` calls with
/// `Err`, then succeeds. Returns the attempt numbers it was called with.
fn flaky(bus: &EventBus, failures: u32) -> Arc<Mutex<Vec<u32>>> {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&attempts);
    bus.subscribe(
        "flaky",
        handler_fn(move |ctx| {
            let mut seen = seen.lock().unwrap();
            seen.push(ctx.attempt());
            if seen.len() as u32 <= failures {
                Err(format!("failure {}", seen.len()).into())
            } else {
                Ok(EventResult::success_with("done".into()))
            }
        }),
    );
    attempts
}

#[test]
fn succeeds_after_retries() {
    for mode in MODES {
        let bus = bus();
        let attempts = flaky(&bus, 2);
        let result = bus.publish(Event::new("flaky").with_mode(mode).with_retry_count(2)).unwrap().wait();
        assert!(result.success, "{mode}: {result:?}");
        assert_eq!(result.data, "done");
        assert_eq!(result.attempts, 3, "{mode}");
        assert_eq!(*attempts.lock().unwrap(), [1, 2, 3], "{mode}");
        assert_eq!(bus.stats().retries, 2, "{mode}");
    }
}

#[test]
fn gives_up() {
    for mode in MODES {
        let bus = bus();
        let attempts = flaky(&bus, 2);
        let result = bus.publish(Event::new("flaky").with_mode(mode).with_retry_count(1)).unwrap().wait();
        assert!(!result.success, "{mode}");
        assert_eq!(result.attempts, 2, "{mode}");
        assert_eq!(result.error_kind, Some(ErrorKind::HandlerError), "{mode}");
        assert_eq!(result.error_message.as_deref(), Some("failure 2"), "{mode}: the last error is kept");
        assert_eq!(*attempts.lock().unwrap(), [1, 2], "{mode}");
    }
}

#[test]
fn no_retries_by_default() {
    for mode in MODES {
        let bus = bus();
        let attempts = flaky(&bus, 1);
        let result = bus.publish(Event::new("flaky").with_mode(mode)).unwrap().wait();
        assert!(!result.success, "{mode}");
        assert_eq!(result.attempts, 1, "{mode}");
        assert_eq!(*attempts.lock().unwrap(), [1], "{mode}");
    }
}

#[test]
fn business_failure_is_retried() {
    for mode in MODES {
        let bus = bus();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&calls);
        bus.subscribe(
            "declined",
            handler_fn(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(EventResult::failure("declined"))
            }),
        );
        let result = bus.publish(Event::new("declined").with_mode(mode).with_retry_count(3)).unwrap().wait();
        assert_eq!(result.error_kind, Some(ErrorKind::BusinessFailure), "{mode}");
        assert_eq!(result.attempts, 4, "{mode}");
        assert_eq!(calls.load(Ordering::SeqCst), 4, "{mode}");
    }
}

#[test]
fn permanent() {
    for mode in MODES {
        let bus = bus();
        let calls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&calls);
        bus.subscribe(
            "error",
            handler_fn(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Err(HandlerError::permanent("bad request"))
            }),
        );
        let counted = Arc::clone(&calls);
        bus.subscribe(
            "failure",
            handler_fn(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(EventResult::failure("card declined").permanent())
            }),
        );

        let result = bus.publish(Event::new("error").with_mode(mode).with_retry_count(5)).unwrap().wait();
        assert_eq!(result.attempts, 1, "{mode}");
        assert_eq!(result.error_kind, Some(ErrorKind::HandlerError), "{mode}");
        assert_eq!(result.error_message.as_deref(), Some("bad request"), "{mode}");

        let result = bus.publish(Event::new("failure").with_mode(mode).with_retry_count(5)).unwrap().wait();
        assert_eq!(result.attempts, 1, "{mode}");
        assert_eq!(result.error_kind, Some(ErrorKind::BusinessFailure), "{mode}");
        assert!(result.is_permanent(), "{mode}");

        assert_eq!(calls.load(Ordering::SeqCst), 2, "{mode}: each tried once");
    }
}

#[test]
fn panic_is_an_attempt() {
    for mode in MODES {
        let bus = bus();
        bus.subscribe(
            "shaky",
            handler_fn(|ctx| {
                if ctx.attempt() == 1 {
                    panic!("first attempt panics");
                }
                Ok(EventResult::success())
            }),
        );
        let result = bus.publish(Event::new("shaky").with_mode(mode).with_retry_count(1)).unwrap().wait();
        assert!(result.success, "{mode}: {result:?}");
        assert_eq!(result.attempts, 2, "{mode}");

        let result = bus.publish(Event::new("shaky").with_mode(mode)).unwrap().wait();
        assert_eq!(result.error_kind, Some(ErrorKind::Panic), "{mode}: without retries the panic is final");
        assert_eq!(result.attempts, 1, "{mode}");
    }
}

#[test]
fn fixed_backoff() {
    let pause = Duration::from_millis(100);
    for mode in MODES {
        let bus = EventBus::builder().threads(1).retry_backoff(RetryBackoff::Fixed(pause)).build().unwrap();
        let attempts = flaky(&bus, 2);
        let started = Instant::now();
        let result = bus.publish(Event::new("flaky").with_mode(mode).with_retry_count(2)).unwrap().wait();
        let elapsed = started.elapsed();
        assert!(result.success, "{mode}");
        assert_eq!(*attempts.lock().unwrap(), [1, 2, 3], "{mode}");
        // Two pauses separate three attempts. Only a lower bound: a loaded machine is slower.
        assert!(elapsed >= 2 * pause, "{mode}: took {elapsed:?}");
        assert!(result.duration >= 2 * pause, "{mode}: result says {:?}", result.duration);
    }
}

/// A backoff too long to add to an instant (`Duration::MAX`) pauses "forever" without
/// overflowing: the pool worker used to panic adding it, which aborts the process. The pause
/// is then cut short by `shutdown_now`, as any pause is. (Found reading the code for bad input.)
#[test]
fn endless_backoff() {
    for mode in MODES {
        let bus =
            EventBus::builder().threads(1).retry_backoff(RetryBackoff::Fixed(Duration::MAX)).build().unwrap();
        let (failed, has_failed) = std::sync::mpsc::channel();
        bus.subscribe(
            "fails",
            handler_fn(move |_| {
                let _ = failed.send(());
                Ok(EventResult::failure("not yet"))
            }),
        );
        let publisher = bus.clone();
        let waiter = std::thread::spawn(move || {
            let mut handle =
                publisher.publish(Event::new("fails").with_mode(mode).with_retry_count(1)).unwrap();
            handle.wait_timeout(Duration::from_secs(30)).cloned()
        });
        has_failed.recv().unwrap();
        bus.shutdown_now();
        let result = waiter.join().unwrap().expect("resolved once the bus was killed");
        assert_eq!(result.attempts, 1, "{mode}: {result:?}");
        assert!(
            result.is_cancelled() || result.error_kind == Some(ErrorKind::BusinessFailure),
            "{mode}: {result:?}"
        );
    }
}
