//! Helpers shared by the behaviour tests: a gate to hold handlers, polling with patience, and
//! short constructors.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};

/// How long a test waits for something that should happen at once: generous, so that a
/// loaded machine never fails a test that is right.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` until it holds or [`PATIENCE`] runs out; returns its last answer.
pub(crate) fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// A gate that handlers wait at until the test opens it. Clones share one gate.
///
/// Opening is permanent: every waiter, present and future, passes.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Lets every waiter through, now and later.
    pub(crate) fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }

    /// Blocks until the gate is open.
    pub(crate) fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*open {
            open = changed.wait(open).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Returns a guard that opens the gate when dropped, so that a failing test does not
    /// leave handler threads blocked behind it.
    pub(crate) fn opener(&self) -> Opener {
        Opener(self.clone())
    }
}

/// Opens its gate on drop.
pub(crate) struct Opener(Gate);

impl Drop for Opener {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Subscribes, for `event_type`, a handler that reports each start on the returned channel
/// and then waits at `gate`.
pub(crate) fn subscribe_held(bus: &EventBus, event_type: &str, gate: &Gate) -> mpsc::Receiver<()> {
    let (started, has_started) = mpsc::channel();
    let held = gate.clone();
    bus.subscribe(
        event_type,
        handler_fn(move |_| {
            // The test may have stopped listening; the handler still waits at the gate.
            let _ = started.send(());
            held.wait();
            Ok(EventResult::success())
        }),
    );
    has_started
}

/// Subscribes, for `event_type`, a handler that counts its calls in the returned counter.
pub(crate) fn subscribe_counting(bus: &EventBus, event_type: &str) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    bus.subscribe(
        event_type,
        handler_fn(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(EventResult::success())
        }),
    );
    count
}

/// A thread-mode event of type `event_type`.
pub(crate) fn thread_event(event_type: &str) -> Event {
    Event::new(event_type).with_mode(ExecutionMode::Thread)
}
