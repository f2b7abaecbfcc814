//! A gate that holds a pool's worker in a handler until the measurement releases it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use busbar::{handler_fn, Event, EventBus, ExecutionMode};

use super::floor::Handler;
use super::{handlers, Error};

/// Blocks whoever [`pass`](Gate::pass)es until [`open`](Gate::open) is called.
#[derive(Debug, Default)]
pub(super) struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// A thread is waiting in `pass` (the pool is blocked).
    entered: bool,
    open: bool,
}

impl Gate {
    pub(super) fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Waits until the gate opens (called by the blocking handler).
    pub(super) fn pass(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.entered = true;
        self.changed.notify_all();
        while !state.open {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Waits until a handler is held in [`pass`](Gate::pass).
    pub(super) fn wait_entered(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.entered {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Lets the held handler (and any later one) through.
    pub(super) fn open(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).open = true;
        self.changed.notify_all();
    }
}

/// The event type whose handler waits at the gate.
pub(super) const BLOCK: &str = "bench.block";

/// A one-thread bus whose worker is held at a fresh gate, with room for `capacity` queued
/// events: whatever is published next waits in the queue until the gate opens.
pub(super) fn blocked_bus(capacity: usize) -> Result<(EventBus, Arc<Gate>), Error> {
    let bus = handlers::bus(1, |builder| builder.queue_capacity(capacity))?;
    let gate = Gate::new();
    bus.subscribe(BLOCK, {
        let gate = Arc::clone(&gate);
        handler_fn(move |_| {
            gate.pass();
            handlers::trivial()
        })
    });
    // A long timeout: the watchdog would otherwise replace the held worker, and two workers
    // would drain the queue.
    let block = Event::new(BLOCK).with_mode(ExecutionMode::Thread).with_timeout(Duration::from_secs(3600));
    drop(bus.publish(block)?);
    gate.wait_entered();
    Ok((bus, gate))
}

/// A floor handler that waits at `gate` for [`BLOCK`] events and runs the trivial handler
/// body for every other event.
pub(super) fn gated_floor_handler(gate: &Arc<Gate>) -> Handler {
    let gate = Arc::clone(gate);
    Arc::new(move |event: &Event| {
        if event.event_type() == BLOCK {
            gate.pass();
        }
        handlers::trivial()
    })
}
