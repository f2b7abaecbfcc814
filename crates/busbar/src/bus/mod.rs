//! [`EventBus`]: publish events, register handlers, wait, shut down.

mod builder;
mod flight;
mod run_here;
mod shared;

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use builder::{EventBusBuildError, EventBusBuilder, DEFAULT_QUEUE_CAPACITY};
pub(crate) use run_here::RunHere;
pub(crate) use shared::{enter_worker, Shared};

use crate::config::BusConfig;
use crate::corelet::ChildLink;
use crate::error::InvalidEventError;
use crate::error::PublishError;
use crate::event::Event;
use crate::factory::EventFactory;
use crate::handle::EventHandle;
use crate::handler::EventHandler;
use crate::pool::Admission;
use crate::rate_limit::{RateLimitError, RateLimitInfo};
use crate::stats::BusStats;
use crate::timer::{CronError, TimerThread};

/// The event bus: finds the handler registered for an event's type and runs it in the
/// event's [mode](crate::ExecutionMode).
///
/// `EventBus` is cheap to clone; clones are handles to one bus. Worker threads start on the
/// first queued (non-`Sync`) event, so a bus used only for sync events runs no threads.
///
/// # Shutting down
///
/// - [`shutdown`](Self::shutdown) refuses new events, finishes everything queued and running,
///   and joins the pool's threads. Timers stop; events delayed by
///   [`publish_after`](Self::publish_after) or a [rate limit](Self::register_rate_limit) still
///   run, at their time.
/// - [`shutdown_now`](Self::shutdown_now) refuses new events, resolves everything queued,
///   delayed or running as cancelled, and returns at once.
/// - **Dropping the last handle** starts a graceful shutdown in the background: new events are
///   refused (handlers still running can't publish), queued events still run and resolve their
///   handles, and the threads exit when the queue is empty. It does not block the dropping
///   thread, but for the memory barrier that refusing sync events needs (some 10 µs, see
///   [`shutdown`](Self::shutdown)). Call `shutdown` to wait for it. The handle a handler gets from
///   [`EventContext::event_bus`](crate::EventContext::event_bus), and clones of it, don't
///   count: a handler cannot keep open a bus that its program dropped.
///
/// # Examples
///
/// ```
/// use busbar::{Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, HandlerResult};
/// use serde_json::json;
///
/// struct WelcomeEmail;
/// impl EventHandler for WelcomeEmail {
///     fn execute(&self, ctx: &EventContext) -> HandlerResult {
///         let email = ctx.event().data()["email"].as_str().unwrap_or_default();
///         println!("Sending welcome email to {email}");
///         Ok(EventResult::success())
///     }
/// }
///
/// let factory = EventFactory::new();
/// factory.register_event_type("user.registered", || WelcomeEmail);
/// let bus = EventBus::with_factory(factory);
/// let result = bus
///     .publish(Event::new("user.registered").with_data(json!({"email": "user@example.com"})))?
///     .wait();
/// assert!(result.success);
/// bus.shutdown();
/// # Ok::<(), busbar::PublishError>(())
/// ```
pub struct EventBus {
    shared: Arc<Shared>,
    /// `None` for the non-owning handles the bus gives to handler contexts (and their clones):
    /// they must not keep a bus alive that its users dropped. A handler storing one would
    /// otherwise make a cycle (bus → factory → handler → bus) that never closes.
    owner: Option<Arc<Owner>>,
}

/// Shuts the bus down (gracefully, in the background) when the last owning handle drops.
pub(crate) struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl EventBus {
    /// Creates a bus with an empty factory and default settings.
    ///
    /// Register handlers with [`subscribe`](Self::subscribe), or through [`factory`](Self::factory).
    /// The first bus of a process takes longer to build, a millisecond or more (see
    /// [`EventBusBuilder::build`]).
    pub fn new() -> Self {
        Self::with_factory(EventFactory::new())
    }

    /// Creates a bus whose handlers come from `factory`, with default settings.
    pub fn with_factory(factory: EventFactory) -> Self {
        EventBusBuilder::new().factory(factory).build_infallible()
    }

    /// Returns a builder to configure threads, queue capacity, retry backoff and the factory.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::new()
    }

    /// Creates a bus from a [`BusConfig`] (for example one loaded from TOML and the
    /// environment) and a factory.
    ///
    /// # Errors
    ///
    /// Fails if the configuration is invalid (zero threads or zero queue capacity).
    pub fn from_config(config: &BusConfig, factory: EventFactory) -> Result<Self, EventBusBuildError> {
        EventBusBuilder::new().config(config).factory(factory).build()
    }

    fn from_shared(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let owner = Arc::new(Owner { shared: Arc::clone(&shared) });
        EventBus { shared, owner: Some(owner) }
    }

    /// The bus inside a corelet child: same handlers, publishing forwards to the parent.
    pub(crate) fn forwarding_to_parent(factory: EventFactory, link: ChildLink) -> Self {
        let mut shared = EventBusBuilder::new().factory(factory).threads(1).into_shared();
        shared.forward_to(link);
        Self::from_shared(shared)
    }

    /// A non-owning handle that borrows the caller's reference count instead of taking one.
    ///
    /// For the context of an attempt, which lives only while its caller (a sync publisher, a
    /// pool worker) runs it: two atomic operations on the bus's reference count per event are
    /// a measurable part of a sync publish.
    ///
    /// # Safety
    ///
    /// The handle must be dropped before `shared` is.
    pub(crate) unsafe fn lent(shared: &Arc<Shared>) -> LentBus {
        // SAFETY: the pointer comes from a live `Arc`, as `from_raw` requires. The `Arc` made
        // here owns no count: it is never dropped (`ManuallyDrop`), so it never gives one back,
        // and the caller guarantees that the count it borrows, `shared`'s, outlives it. Clones
        // of the handle take counts of their own, as any `Arc` clone does.
        let shared = unsafe { Arc::from_raw(Arc::as_ptr(shared)) };
        LentBus(ManuallyDrop::new(EventBus { shared, owner: None }))
    }

    /// Publishes an event and returns a handle to its result.
    ///
    /// A `Sync` event runs on this thread before `publish` returns (its handle is ready); other
    /// modes are queued by priority and `publish` returns at once. If the queue is full,
    /// `publish` waits for room (except on the bus's own workers, which never wait).
    ///
    /// Published from inside a handler, the event becomes a child of the handler's event
    /// (correlation and causation ids).
    ///
    /// # Errors
    ///
    /// The event is handed back inside the error if
    /// - no handler is registered for its type ([`PublishError::NoHandlerAvailable`]; `Cmd`
    ///   events need none),
    /// - it is malformed: empty type, zero or over-long timeout ([`PublishError::InvalidEvent`]),
    /// - the bus was shut down ([`PublishError::ShutDown`]).
    pub fn publish(&self, event: Event) -> Result<EventHandle, PublishError> {
        self.shared.publish(event, Admission::Block)
    }

    /// Publishes an event unless the queue is full.
    ///
    /// Like [`publish`](Self::publish), but returns [`PublishError::Full`] with the event
    /// instead of waiting for room.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), plus [`PublishError::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode, PublishError};
    ///
    /// let bus = EventBus::builder().threads(1).queue_capacity(1).build()?;
    /// let (release, gate) = mpsc::channel::<()>();
    /// let gate = std::sync::Mutex::new(gate);
    /// bus.subscribe("slow", handler_fn(move |_| {
    ///     let _ = gate.lock().unwrap().recv();
    ///     Ok(EventResult::success())
    /// }));
    /// let slow = || Event::new("slow").with_mode(ExecutionMode::Thread);
    ///
    /// let first = bus.publish(slow())?;             // taken by the worker (or queued)
    /// let mut queued = vec![];
    /// let refused = loop {
    ///     match bus.try_publish(slow()) {
    ///         Ok(handle) => queued.push(handle),      // fills the one free place
    ///         Err(err) => break err,
    ///     }
    /// };
    /// assert!(refused.is_full());
    /// assert_eq!(refused.into_inner().event_type(), "slow");
    /// drop(release); // let everything finish
    /// assert!(first.wait().success);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_publish(&self, event: Event) -> Result<EventHandle, PublishError> {
        self.shared.publish(event, Admission::Try)
    }

    /// Publishes an event to run only its attempt number `attempt`, without retrying it.
    ///
    /// This is the hook for code that counts attempts itself, outside this bus: a transport
    /// whose workers on several machines each run one attempt of an event and re-enqueue it
    /// for the next. The attempt runs on the bus's worker pool whatever the event's mode (a
    /// `Sync` event does not run on the calling thread), through its type's rate limit, like
    /// any queued event: its handler sees [`EventContext::attempt`](crate::EventContext::attempt)
    /// `== attempt` and the event's real [`retry_count`](Event::retry_count), and the result's
    /// [`attempts`](crate::EventResult::attempts) is `attempt`. The bus never runs a second
    /// attempt; a failed result says whether one is worth running: if it
    /// [`is_permanent`](crate::EventResult::is_permanent) (the handler said so, no handler
    /// was found, the input was invalid, the bus was shut down), it is not, whatever attempts
    /// remain.
    ///
    /// Waiting for room, [`join`](Self::join) and shutdown treat the event like one from
    /// [`publish`](Self::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish); an `attempt` of 0 is an
    /// [`InvalidEvent`](PublishError::InvalidEvent).
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::{handler_fn, Event, EventBus, EventResult};
    ///
    /// let bus = EventBus::new();
    /// bus.subscribe("flaky", handler_fn(|ctx| match ctx.attempt() {
    ///     1 | 2 => Ok(EventResult::failure(format!("attempt {} failed", ctx.attempt()))),
    ///     _ => Ok(EventResult::success()),
    /// }));
    /// let event = Event::new("flaky").with_retry_count(5);
    ///
    /// let second = bus.publish_attempt(event.clone(), 2)?.wait();
    /// assert_eq!((second.success, second.attempts), (false, 2)); // not retried here...
    /// assert!(!second.is_permanent()); // ...but worth retrying: attempt 3 is up to the caller
    /// let third = bus.publish_attempt(event, 3)?.wait();
    /// assert_eq!((third.success, third.attempts), (true, 3));
    /// # Ok::<(), busbar::PublishError>(())
    /// ```
    pub fn publish_attempt(&self, event: Event, attempt: u32) -> Result<EventHandle, PublishError> {
        self.shared.publish_attempt(event, attempt)
    }

    /// Registers one handler instance for `event_type`, shared by every thread.
    ///
    /// Replaces an earlier registration for the type. To build one handler per worker thread
    /// instead, register a constructor with [`EventFactory::register_event_type`].
    pub fn subscribe(&self, event_type: impl Into<String>, handler: impl EventHandler) {
        self.shared.factory().register_shared(event_type, handler);
    }

    /// Returns the bus's factory; registrations made through it are seen at once.
    pub fn factory(&self) -> &EventFactory {
        self.shared.factory()
    }

    /// Blocks until every accepted event has its result.
    ///
    /// Events published while `join` waits extend the wait. Called from one of this bus's own
    /// pool handlers, it returns at once, since it would wait for itself.
    ///
    /// A `join` that has to wait first runs a memory barrier on every CPU that runs a thread of
    /// the process (`membarrier(2)` on Linux, some 10 µs): that is what lets sync events count
    /// themselves without a locked instruction each. A `join` with nothing to wait for returns
    /// without it.
    pub fn join(&self) {
        self.shared.join();
    }

    /// Shuts the bus down gracefully and waits for it.
    ///
    /// New events are refused from the first moment; everything queued or running finishes;
    /// then the pool's threads are joined (workers abandoned because their handler overran
    /// its deadline are not waited for). Idempotent: later calls, and concurrent ones, return
    /// once the first shutdown is complete. Called from one of this bus's own pool handlers,
    /// it starts the shutdown without waiting.
    ///
    /// A sync event published on another thread at the moment the bus closes is either
    /// refused or waited for, never run after `shutdown` returns: closing passes the same
    /// memory barrier as a waiting [`join`](Self::join) (some 10 µs), with which the sync
    /// publish pairs.
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// Shuts the bus down immediately.
    ///
    /// New events are refused; every queued event, and every event whose thread-mode attempt
    /// is running, is resolved at once as [`Cancelled`](crate::ErrorKind::Cancelled); running
    /// handlers see [`EventContext::is_cancelled`](crate::EventContext::is_cancelled) turn
    /// `true` and their late results are discarded. Returns without waiting for handlers.
    /// Idempotent. Like [`shutdown`](Self::shutdown), it passes a memory barrier on every CPU
    /// that runs a thread of the process as it refuses new events.
    pub fn shutdown_now(&self) {
        self.shared.shutdown_now();
    }

    /// Returns `true` once the bus refuses new events.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_closed()
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.shared.is_killed()
    }

    /// Returns a snapshot of the bus's counters.
    pub fn stats(&self) -> BusStats {
        self.shared.stats()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Delayed events, cron schedules and rate limits (`crate::timer`, `crate::rate_limit`).
impl EventBus {
    /// Publishes an event to run once `delay` has passed.
    ///
    /// The event is checked and accepted at once, like [`publish`](Self::publish) does: an
    /// invalid event or a missing handler is an error now, not later. From then on it is in
    /// flight, so [`join`](Self::join) waits for it, and the handle resolves with its result.
    /// It runs on the bus's worker pool whatever its mode (its publisher does not wait for it),
    /// no earlier than `delay` from now, and through its type's rate limit if it has one.
    ///
    /// # Shutting down
    ///
    /// [`shutdown`](Self::shutdown) keeps the promise "not before the delay": it waits for
    /// delayed events to come due and run. [`shutdown_now`](Self::shutdown_now) resolves them
    /// as [`Cancelled`](crate::ErrorKind::Cancelled).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish); a delay of more than a year is an
    /// [`InvalidEvent`](PublishError::InvalidEvent).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use busbar::{handler_fn, Event, EventBus, EventResult};
    ///
    /// let bus = EventBus::new();
    /// bus.subscribe("cleanup.start", handler_fn(|_| Ok(EventResult::success())));
    /// let published = Instant::now();
    /// let handle = bus.publish_after(Duration::from_millis(20), Event::new("cleanup.start"))?;
    /// assert!(handle.wait().success);
    /// assert!(published.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), busbar::PublishError>(())
    /// ```
    pub fn publish_after(&self, delay: Duration, event: Event) -> Result<EventHandle, PublishError> {
        match Instant::now().checked_add(delay) {
            Some(at) => self.publish_at(at, event),
            None => {
                let reason = format!("the delay of {delay:?} is longer than the maximum of one year");
                Err(InvalidEventError::new(reason, event).into())
            }
        }
    }

    /// Publishes an event to run at `at` (at once if `at` has passed).
    ///
    /// Like [`publish_after`](Self::publish_after), with an instant instead of a delay.
    ///
    /// # Errors
    ///
    /// As [`publish_after`](Self::publish_after).
    pub fn publish_at(&self, at: Instant, event: Event) -> Result<EventHandle, PublishError> {
        self.shared.publish_at(event, at, Admission::Block)
    }

    /// Publishes a fresh copy of `event` at every time the cron `expression` matches, in UTC.
    ///
    /// The expression has the five crontab fields, `minute hour day-of-month month
    /// day-of-week`, optionally preceded by a seconds field; names (`MON`, `JAN`), ranges,
    /// lists, steps and nicknames (`@hourly`) work as in cron. Times are UTC, so daylight
    /// saving time never skips or repeats a firing. The returned timer is already started
    /// (unless the bus was shut down); like any [`TimerThread`], dropping it stops it, and
    /// firings the machine missed (asleep, clock set forward) are skipped.
    ///
    /// # Errors
    ///
    /// Fails if the expression cannot be parsed or matches no time in the future; the error
    /// names the expression and what is wrong with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::{Event, EventBus};
    ///
    /// let bus = EventBus::new();
    /// let report = bus.schedule_cron("0 6 * * MON-FRI", Event::new("report.daily"))?;
    /// assert!(report.is_running());
    ///
    /// let err = bus.schedule_cron("0 25 * * *", Event::new("report.daily")).unwrap_err();
    /// assert!(err.to_string().starts_with("invalid cron expression `0 25 * * *`"));
    /// # Ok::<(), busbar::CronError>(())
    /// ```
    pub fn schedule_cron(&self, expression: &str, event: Event) -> Result<TimerThread, CronError> {
        TimerThread::cron(self, expression, event)
    }

    /// Limits how fast events of `event_type` start: at most `per_second` per second, after an
    /// initial `burst` that may start at once.
    ///
    /// Events over the limit are **delayed, not dropped**. Each event reserves its start slot
    /// when it is published (a virtual-clock reservation, GCRA): a queued event whose slot is
    /// in the future waits in the bus's scheduler and joins the pool's queue at its slot (by
    /// priority among the queued ones); a `Sync` event's publishing thread sleeps until its
    /// slot. No one-second window holds more than `per_second + burst` slots. Waiting events
    /// are in flight: [`join`](Self::join) and [`shutdown`](Self::shutdown) wait for them,
    /// [`shutdown_now`](Self::shutdown_now) resolves them as
    /// [`Cancelled`](crate::ErrorKind::Cancelled).
    ///
    /// The limit governs when events may *start*; a busy pool can start them later than their
    /// slot, never earlier. Retries of a failed attempt are not limited. Registering a limit
    /// for a type again changes it; events already waiting keep their slots.
    ///
    /// Queued events waiting for their slot are held outside the queue: they do not count
    /// against [`queue_capacity`](crate::EventBusBuilder::queue_capacity), so `publish` does
    /// not block for them and [`try_publish`](Self::try_publish) does not report them `Full`.
    /// They count in [`stats`](Self::stats)' `in_flight` and in the limit's `waiting`.
    ///
    /// # Errors
    ///
    /// Fails if the event type is empty, `per_second` is not a positive, finite number (or
    /// lies outside one per year to 10^9 per second) or `burst` is zero, and inside a corelet,
    /// whose publishes go to the parent's bus (register the limit there).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use busbar::{handler_fn, Event, EventBus, EventResult};
    ///
    /// let bus = EventBus::new();
    /// bus.subscribe("api.call", handler_fn(|_| Ok(EventResult::success())));
    /// bus.register_rate_limit("api.call", 100.0, 2)?;
    ///
    /// let started = Instant::now();
    /// for _ in 0..4 {
    ///     bus.publish(Event::new("api.call"))?; // sync: waits for its slot
    /// }
    /// // Two at once (the burst), then one every 10 ms.
    /// assert!(started.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_rate_limit(
        &self,
        event_type: impl AsRef<str>,
        per_second: f64,
        burst: u32,
    ) -> Result<(), RateLimitError> {
        if let Some(reason) = self.shared.not_in_a_corelet("a rate limit") {
            // In a child nothing would apply it: its publishes go to the parent's bus.
            return Err(RateLimitError::new(event_type.as_ref(), reason));
        }
        self.shared.rate_limits().register(event_type.as_ref(), per_second, burst)
    }

    /// Removes the rate limit of `event_type`; returns `false` if it had none. Events already
    /// waiting keep their slots.
    pub fn remove_rate_limit(&self, event_type: &str) -> bool {
        self.shared.rate_limits().remove(event_type)
    }

    /// Returns the rate limit of `event_type` and how it is used right now: how many events
    /// got a start slot in the last second, and how many are waiting for theirs.
    pub fn rate_limit(&self, event_type: &str) -> Option<RateLimitInfo> {
        self.shared.rate_limits().info(event_type)
    }
}

/// A non-owning bus handle without a reference count of its own: see [`EventBus::lent`].
pub(crate) struct LentBus(ManuallyDrop<EventBus>);

impl Deref for LentBus {
    type Target = EventBus;

    fn deref(&self) -> &EventBus {
        &self.0
    }
}

impl Clone for EventBus {
    fn clone(&self) -> Self {
        // A clone of a non-owning handle is non-owning too.
        EventBus { shared: Arc::clone(&self.shared), owner: self.owner.clone() }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus").field("stats", &self.stats()).finish_non_exhaustive()
    }
}
