//! What a handler sees of the event it runs for: [`EventContext`].

use std::cell::RefCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::{EventBus, LentBus};
use crate::clock::Reading;
use crate::deadline::Deadline;
use crate::error::PublishError;
use crate::event::{Event, ParentLink};
use crate::handle::EventHandle;

/// The context of one attempt: the event, the bus, the attempt number, the deadline and the
/// cancellation flag.
///
/// # Timeouts are cooperative in-process
///
/// Rust cannot safely stop a running thread, so `Sync` and `Thread` handlers are never
/// interrupted. Instead the context exposes the [`deadline`](Self::deadline) and
/// [`is_cancelled`](Self::is_cancelled), which turns `true` at the deadline and when the bus
/// is shut down with [`shutdown_now`](EventBus::shutdown_now). Long handlers should check it
/// between steps. A `Thread` waiter gets the timeout result at the deadline even if the
/// handler keeps running, and the pool replaces the stuck worker. Need a hard limit? Use
/// `Corelet` mode, whose process is killed at the deadline.
///
/// # Follow-up events
///
/// [`publish`](Self::publish) (or publishing through [`event_bus`](Self::event_bus) from the
/// handler's thread) makes the new event a child of this one: it inherits the chain's
/// correlation id and gets this event's id as its causation id.
///
/// # Examples
///
/// ```
/// use busbar::{handler_fn, Event, EventBus, EventResult};
///
/// let bus = EventBus::new();
/// bus.subscribe("order.placed", handler_fn(|ctx| {
///     let order = ctx.event().data()["order"].clone();
///     let invoice = ctx.publish(Event::new("invoice.create").with_data(order))?.wait();
///     Ok(EventResult::success_with(invoice.data))
/// }));
/// bus.subscribe("invoice.create", handler_fn(|ctx| {
///     let parent = ctx.event().causation_id().expect("published from a handler");
///     Ok(EventResult::success_with(parent.to_string().into()))
/// }));
///
/// let event = Event::new("order.placed").with_data(serde_json::json!({"order": 7}));
/// let id = event.id();
/// let result = bus.publish(event)?.wait();
/// assert_eq!(result.data, id.to_string());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventContext {
    event: EventSlot,
    /// Lent by whoever runs the attempt, which holds the bus for longer than the context
    /// lives: two atomic operations on its reference count per event saved.
    bus: LentBus,
    attempt: u32,
    deadline: Deadline,
}

/// How a context holds its event.
enum EventSlot {
    /// Lent by the worker running the attempt, which shares the event with its job and holds
    /// it for longer than the context lives (Thread mode). Like [`LentBus`], an `Arc` that
    /// borrows its owner's reference count: a handler never sees the `Arc` itself, and
    /// counting a reference for each attempt cost two atomic operations per event.
    Lent(ManuallyDrop<Arc<Event>>),
    /// Owned by the context, which lives as long as the event (Sync mode, corelet children):
    /// no allocation for sharing it, which the sync path would pay on every publish.
    Owned(Event),
}

impl EventContext {
    /// The context of an attempt whose caller holds the event as well as the bus for longer
    /// than the context lives (a pool worker): it borrows both.
    ///
    /// # Safety
    ///
    /// The context must be dropped before the caller's `event` is.
    pub(crate) unsafe fn lending(event: &Arc<Event>, bus: LentBus, attempt: u32, deadline: Deadline) -> Self {
        // SAFETY: as in `EventBus::lent`: the pointer comes from a live `Arc`, the `Arc` made
        // here is never dropped (`ManuallyDrop`) and so never gives back the count it borrows,
        // and the caller guarantees that `event`'s count outlives it. Nothing clones it.
        let event = ManuallyDrop::new(unsafe { Arc::from_raw(Arc::as_ptr(event)) });
        EventContext { event: EventSlot::Lent(event), bus, attempt, deadline }
    }

    /// The context of an attempt whose caller has no use for the event afterwards: it owns
    /// the event, which saves sharing it (an allocation and a copy), and borrows the bus.
    pub(crate) fn owning(event: Event, bus: LentBus, attempt: u32, deadline: Deadline) -> Self {
        EventContext { event: EventSlot::Owned(event), bus, attempt, deadline }
    }

    /// Turns this into the context of the next attempt, which times out at `deadline`.
    pub(crate) fn next_attempt(&mut self, deadline: Deadline) {
        self.attempt += 1;
        self.deadline = deadline;
    }

    /// Returns `true` if the attempt, which ended at `ended` on the attempt clock, ran past
    /// its deadline (see [`Deadline::passed_at`]).
    pub(crate) fn overran(&self, ended: Reading) -> bool {
        self.deadline.passed_at(ended)
    }

    /// Returns the event being processed.
    pub fn event(&self) -> &Event {
        match &self.event {
            EventSlot::Lent(event) => event,
            EventSlot::Owned(event) => event,
        }
    }

    /// Returns the bus the event was published on.
    ///
    /// This handle, and any clone of it, does not keep the bus open: once the program dropped
    /// its last own handle, publishing through it is refused with
    /// [`PublishError::ShutDown`].
    pub fn event_bus(&self) -> &EventBus {
        &self.bus
    }

    /// Returns the attempt number: 1 for the first attempt, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Returns the instant at which this attempt times out.
    ///
    /// A `Sync` attempt is timed with the CPU's counter where busbar trusts it (on Linux x86,
    /// where the kernel keeps the TSC as its clock source; elsewhere the OS clock), which is
    /// cheaper to read (see the README's performance section); its deadline is worked out from that
    /// reading the first time a handler asks for it, and from then on stays fixed and decides
    /// whether the attempt overran, as it does for `remaining` and `is_cancelled`.
    pub fn deadline(&self) -> Instant {
        self.deadline.instant()
    }

    /// Returns the time left until the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Returns `true` once the attempt should stop: its deadline passed or the bus is being
    /// shut down with [`shutdown_now`](EventBus::shutdown_now).
    pub fn is_cancelled(&self) -> bool {
        self.event_bus().is_killed() || Instant::now() >= self.deadline()
    }

    /// Publishes a follow-up event as a child of this one.
    ///
    /// The child inherits the chain's correlation id and gets this event's id as its causation
    /// id (unless it already has one), then is published like any event.
    ///
    /// # Errors
    ///
    /// As [`EventBus::publish`].
    pub fn publish(&self, mut event: Event) -> Result<EventHandle, PublishError> {
        event.inherit_from(ParentLink::of(self.event()));
        self.event_bus().publish(event)
    }
}

impl fmt::Debug for EventContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventContext")
            .field("event_id", &self.event().id())
            .field("event_type", &self.event().event_type())
            .field("attempt", &self.attempt)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The handlers running on this thread, innermost last (sync handlers nest), each with
    /// its bus (by `Shared` address).
    ///
    /// Publishing from the handler's thread through any bus handle links the new event to the
    /// innermost one, so `ctx.event_bus().publish(..)` keeps the chain as `ctx.publish(..)`
    /// does; `join` must not wait for the handlers of its own bus listed here: they wait for
    /// it. One list for both, so a handler costs one push and one pop.
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
}

/// A handler running on this thread.
struct Running {
    event: ParentLink,
    bus: usize,
}

// `try_with` throughout: a thread-local destructor may publish after this thread's list is
// gone; the event then simply has no parent, as it would outside a handler.

/// Returns the event whose handler runs on this thread, if any.
pub(crate) fn current_parent() -> Option<ParentLink> {
    let innermost = RUNNING.try_with(|running| running.borrow().last().map(|innermost| innermost.event));
    innermost.ok().flatten()
}

/// Returns how many handlers of the bus at address `bus` are running on this thread.
pub(crate) fn handlers_running_here(bus: usize) -> usize {
    let count =
        RUNNING.try_with(|running| running.borrow().iter().filter(|running| running.bus == bus).count());
    count.unwrap_or(0)
}

/// Marks `event`, of the bus at address `bus`, as running on this thread until the guard drops.
pub(crate) fn enter_handler(event: &Event, bus: usize) -> HandlerGuard {
    let event = ParentLink::of(event);
    let listed = RUNNING.try_with(|running| running.borrow_mut().push(Running { event, bus }));
    HandlerGuard { listed: listed.is_ok() }
}

/// Takes the handler off the thread's list when it returns or unwinds.
pub(crate) struct HandlerGuard {
    listed: bool,
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        if self.listed {
            let _gone = RUNNING.try_with(|running| running.borrow_mut().pop());
        }
    }
}
