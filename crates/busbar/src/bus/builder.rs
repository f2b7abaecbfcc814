//! [`EventBusBuilder`]: threads, queue capacity, retry backoff, factory, corelet and cmd settings.

use std::fmt;

use super::{EventBus, Shared};
use crate::backoff::RetryBackoff;
use crate::barrier;
use crate::clock;
use crate::config::BusConfig;
use crate::corelet::CoreletConfig;
use crate::factory::EventFactory;
use crate::mode::cmd::CommandConfig;

/// The default capacity of the queue of a bus: events beyond it wait in `publish`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;

/// Configures and builds an [`EventBus`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use busbar::{EventBus, RetryBackoff};
///
/// let bus = EventBus::builder()
///     .threads(4)
///     .queue_capacity(10_000)
///     .retry_backoff(RetryBackoff::Fixed(Duration::from_millis(5)))
///     .build()?;
/// # drop(bus);
///
/// let err = EventBus::builder().threads(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "invalid bus configuration: `threads` must be at least 1, found 0");
/// # Ok::<(), busbar::EventBusBuildError>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct EventBusBuilder {
    threads: Option<usize>,
    queue_capacity: Option<usize>,
    retry_backoff: RetryBackoff,
    factory: Option<EventFactory>,
    corelet: CoreletConfig,
    cmd: CommandConfig,
}

impl EventBusBuilder {
    /// Creates a builder with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of pool worker threads, 1 to 1024 (default: the number of logical cores).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Sets how many events may wait in the queue (default [`DEFAULT_QUEUE_CAPACITY`]).
    ///
    /// Beyond it, `publish` waits for room and `try_publish` reports the queue full. A
    /// periodic timer's tick that finds the queue full is not published (the timer logs it
    /// and keeps ticking), so a timer faster than its handlers cannot grow the queue. A few
    /// publishers cannot wait and are queued past it: run-once and cron timer firings, events
    /// released from a delay or a rate limit (already accepted), follow-ups that corelet
    /// handlers publish (the thread receiving them guards the child's deadline), and events a
    /// pool handler publishes (waiting there could deadlock the pool).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = Some(capacity);
        self
    }

    /// Sets the pause between a failed attempt and its retry (default: none).
    pub fn retry_backoff(mut self, backoff: RetryBackoff) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets the factory the bus finds handlers in (default: an empty one).
    pub fn factory(mut self, factory: EventFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Sets how corelet processes are started, limited and retired (see [`CoreletConfig`]).
    pub fn corelet(mut self, corelet: CoreletConfig) -> Self {
        self.corelet = corelet;
        self
    }

    /// Sets how cmd events run their programs: output bound, stopping, limits (see
    /// [`CommandConfig`]).
    pub fn cmd(mut self, cmd: CommandConfig) -> Self {
        self.cmd = cmd;
        self
    }

    /// Takes every setting from `config`.
    pub fn config(mut self, config: &BusConfig) -> Self {
        self.threads = config.threads;
        self.queue_capacity = Some(config.queue_capacity);
        self.retry_backoff = config.retry_backoff;
        self.corelet = config.corelet.clone();
        self.cmd = config.cmd.clone();
        self
    }

    /// Builds the bus. No thread starts until the first queued event.
    ///
    /// The first bus a process builds also does two things once per process, so that no
    /// event's time includes them:
    ///
    /// - it calibrates the CPU's counter, which times sync attempts, against the OS clock:
    ///   about a millisecond (at most 200 ms on a machine too busy to agree sooner);
    /// - on Linux, it registers the process for `membarrier(2)`, which lets a sync event count
    ///   itself without a locked instruction (a `join` that waits pays instead, see
    ///   [`EventBus::join`]): a few microseconds in a process with one thread, 5-30 ms on the
    ///   development machine in one whose other threads run already, more on a busy machine
    ///   (the kernel waits for every CPU to pass a quiescent state). So build the first bus
    ///   early, and not on an async runtime's worker thread.
    ///
    /// # Errors
    ///
    /// Fails if `threads` or `queue_capacity` is out of range, an exponential retry backoff's
    /// max is below its initial pause, or a corelet or cmd setting is out of range.
    pub fn build(self) -> Result<EventBus, EventBusBuildError> {
        let capacity = self.queue_capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY);
        if let Some(reason) = crate::config::check(self.threads, capacity, &self.retry_backoff) {
            return Err(EventBusBuildError { reason });
        }
        if let Err(error) = self.corelet.validate() {
            return Err(EventBusBuildError { reason: error.to_string() });
        }
        if let Err(error) = self.cmd.validate() {
            return Err(EventBusBuildError { reason: error.to_string() });
        }
        Ok(self.build_infallible())
    }

    /// Builds a bus whose settings were checked (or are defaults).
    pub(crate) fn build_infallible(self) -> EventBus {
        // Here rather than at the first sync publish, which may come from a handler with a
        // deadline of its own (once per process; a corelet child's bus has no sync events).
        clock::calibrate();
        // Likewise the registration for the barrier between sync events and `join` (see
        // `barrier`); a corelet child's bus, which does not come here, uses fences.
        barrier::prepare();
        EventBus::from_shared(self.into_shared())
    }

    pub(crate) fn into_shared(self) -> Shared {
        let threads = self.threads.unwrap_or_else(default_threads).max(1);
        let capacity = self.queue_capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY).max(1);
        let factory = self.factory.unwrap_or_default();
        let command_options = self.cmd.run_options();
        Shared::new(factory, threads, capacity, self.retry_backoff, self.corelet, command_options)
    }
}

/// The number of logical cores, or 1 if it cannot be told.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// An [`EventBusBuilder`] setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventBusBuildError {
    reason: String,
}

impl fmt::Display for EventBusBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid bus configuration: {}", self.reason)
    }
}

impl std::error::Error for EventBusBuildError {}
