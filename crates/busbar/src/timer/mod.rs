//! Timers and delayed events: [`TimerThread`], cron schedules, and the scheduler that also
//! holds `publish_after` and rate-limited events until their time.
//!
//! Every timer of a bus shares one `busbar-timer` thread (`scheduler`), started on first use:
//! ten thousand timers cost no more threads than one. A timer's firings lie on a fixed grid
//! (`ticker::next_tick`), so they do not drift.

mod cron;
mod scheduler;
#[cfg(test)]
mod test;
mod ticker;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cron::CronError;
pub(crate) use scheduler::{Refusal, Scheduler};

use crate::bus::EventBus;
use crate::event::Event;
use cron::CronSchedule;
use ticker::{Schedule, Ticker};

/// The shortest interval of a periodic timer; a shorter one is raised to it.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// A timer that publishes a fresh copy of an event (new id, same type and data) after an
/// interval, once or periodically.
///
/// The timer starts with [`start`](Self::start) and stops with [`stop`](Self::stop), or when
/// it is dropped. Despite the name, which comes from the documentation busbar follows, a timer
/// has no thread of its own: all timers of a bus share one `busbar-timer` thread.
///
/// # Schedule
///
/// A periodic timer fires at `start + interval`, `start + 2 × interval`, … — each firing is
/// computed from the previous *scheduled* instant, never from when the thread woke up, so
/// lateness does not accumulate. If the thread falls behind by a whole interval or more (a
/// stalled machine), the missed firings are skipped, not fired in a burst.
///
/// # Where the events run
///
/// Fired events run on the bus's worker pool, whatever their [mode](crate::ExecutionMode): the
/// timer thread never runs a handler, so one slow handler cannot delay the other timers. They
/// pass through the type's [rate limit](EventBus::register_rate_limit), if any. The result of
/// each firing is not kept; a handler that must report should publish or log.
///
/// # Failures and shutdown
///
/// - A firing whose publish fails (no handler registered yet, an invalid event) is logged with
///   `tracing` (a warning for the first of a streak) and the timer keeps ticking.
/// - A periodic timer faster than its handlers drops the ticks that find the bus's queue full
///   at its [capacity](crate::EventBusBuilder::queue_capacity), counting the events of its
///   type that wait for a [rate-limit](EventBus::register_rate_limit) slot, instead of queueing
///   them without bound (logged like failed firings). A run-once or cron firing is queued
///   even past the capacity: dropping it would lose its only run.
/// - When the bus shuts down, its timers stop and say so in the log (`info`).
///   [`join`](EventBus::join) does not wait for future firings, only for published events.
/// - The timer keeps a handle to its bus, so the bus stays open while a timer exists.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use busbar::{handler_fn, Event, EventBus, EventResult, TimerThread};
///
/// let bus = EventBus::new();
/// let (tick, ticks) = mpsc::channel();
/// let tick = std::sync::Mutex::new(tick);
/// bus.subscribe("system.health_check", handler_fn(move |_| {
///     let _ = tick.lock().unwrap().send(());
///     Ok(EventResult::success())
/// }));
///
/// let timer = TimerThread::new(&bus, Duration::from_millis(10), Event::new("system.health_check"), false);
/// timer.start();
/// for _ in 0..3 {
///     ticks.recv_timeout(Duration::from_secs(10)).expect("the timer fires");
/// }
/// timer.stop();
/// assert!(!timer.is_running());
/// assert!(timer.ticks() >= 3);
/// ```
#[must_use = "a timer does nothing until started, and dropping it stops it"]
pub struct TimerThread {
    bus: EventBus,
    ticker: Arc<Ticker>,
}

impl TimerThread {
    /// Creates a timer that publishes `event` on `bus` every `interval`, or once after it if
    /// `run_once`. It does nothing until [`start`](Self::start)ed.
    ///
    /// A periodic timer's interval is at least one millisecond: a shorter one (zero included)
    /// is raised to that, and a warning logged; below it the timer thread would do nothing
    /// but fire. A run-once timer with a zero interval fires as soon as it starts.
    pub fn new(bus: &EventBus, interval: Duration, event: Event, run_once: bool) -> Self {
        let interval = if interval < MIN_INTERVAL && !run_once {
            tracing::warn!(
                r#type = event.event_type(),
                ?interval,
                "busbar: a periodic timer's interval below 1 ms is raised to 1 ms"
            );
            MIN_INTERVAL
        } else {
            interval
        };
        Self::with_schedule(bus, event, Schedule::Every { interval, run_once })
    }

    /// Creates a started timer for a parsed cron expression (see
    /// [`EventBus::schedule_cron`]).
    pub(crate) fn cron(bus: &EventBus, expression: &str, event: Event) -> Result<Self, CronError> {
        let schedule = CronSchedule::parse(expression)?;
        let timer = Self::with_schedule(bus, event, Schedule::Cron(Box::new(schedule)));
        timer.start();
        Ok(timer)
    }

    fn with_schedule(bus: &EventBus, event: Event, schedule: Schedule) -> Self {
        TimerThread { bus: bus.clone(), ticker: Arc::new(Ticker::new(event, schedule)) }
    }

    /// Starts the timer: the first firing comes one interval from now (for a cron timer, at
    /// the next matching time).
    ///
    /// Starting a running timer does nothing. Starting it again after [`stop`](Self::stop),
    /// or after a run-once timer fired, begins a new schedule from now. On a bus that was shut
    /// down, the timer does not start (and the log says why).
    pub fn start(&self) {
        self.ticker.start(self.bus.shared());
    }

    /// Stops the timer. No firing follows once `stop` returns.
    ///
    /// Returns promptly, whenever it is called: it waits at most for a firing under way, which
    /// only queues an event. Idempotent.
    pub fn stop(&self) {
        self.ticker.stop();
    }

    /// Returns `true` while the timer is started and has firings ahead.
    pub fn is_running(&self) -> bool {
        self.ticker.is_running()
    }

    /// Returns how many times the timer has fired.
    pub fn ticks(&self) -> u64 {
        self.ticker.ticks()
    }

    /// Returns the instant of the next firing while the timer runs (on the monotonic clock;
    /// for a cron timer, an estimate that is revised against the wall clock).
    pub fn next_firing(&self) -> Option<Instant> {
        self.ticker.next_firing()
    }

    /// Returns the event the timer publishes copies of.
    pub fn event(&self) -> &Event {
        self.ticker.event()
    }
}

impl Drop for TimerThread {
    /// Stops the timer.
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

impl fmt::Debug for TimerThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TimerThread");
        debug.field("event_type", &self.ticker.event().event_type());
        match self.ticker.schedule() {
            Schedule::Every { interval, run_once } => {
                debug.field("interval", interval).field("run_once", run_once);
            }
            Schedule::Cron(cron) => {
                debug.field("cron", &cron.expression());
            }
        }
        debug.field("running", &self.is_running()).field("ticks", &self.ticks()).finish()
    }
}
