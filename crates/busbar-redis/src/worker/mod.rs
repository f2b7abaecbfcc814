//! [`Worker`]: takes events from the queue and runs them on a local [`EventBus`].
//!
//! Two threads per worker:
//! - `busbar-redis-fetch` (`fetch.rs`) moves due delayed messages to their streams, reclaims
//!   messages whose worker stopped renewing its claim, waits for a free slot and reads
//!   messages, high band first, starting one attempt of each on the bus;
//! - `busbar-redis-record` (`record.rs`) settles each finished attempt (result, retry or dead
//!   letter, and the acknowledgement, in one script) and renews the claims on everything this
//!   worker holds, every third of the visibility timeout.
//!
//! Handlers run on the bus's own threads or processes, never on these two, so a long handler
//! cannot keep its claim from being renewed.

mod fetch;
mod flight;
mod record;

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use busbar::{EventBus, RetryBackoff};

use crate::broker::{Broker, GROUP};
use crate::error::BrokerError;
use crate::link::Link;
use flight::Shared;

/// The default visibility timeout: 30 seconds.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a queue's events: takes them from Redis through the namespace's consumer group, runs
/// each attempt on a local [`EventBus`] (in the event's mode, with that bus's handlers),
/// records the result and only then acknowledges the message.
///
/// Start one with [`Broker::worker`]:
///
/// ```no_run
/// use busbar::{handler_fn, EventBus, EventResult};
/// use busbar_redis::Broker;
///
/// let bus = EventBus::new();
/// bus.subscribe("video.encode", handler_fn(|ctx| {
///     let path = ctx.event().data()["path"].as_str().unwrap_or_default();
///     Ok(EventResult::success_with(format!("{path}.webm").into()))
/// }));
/// let worker = Broker::new("redis://127.0.0.1/")?.worker(bus).concurrency(4).start()?;
/// // ... until the program should stop:
/// worker.shutdown();
/// # Ok::<(), busbar_redis::BrokerError>(())
/// ```
///
/// # Delivery
///
/// At least once. A message is acknowledged in the same step (a Lua script) that records its
/// result, and only if this worker still owns it. While an attempt runs, the worker renews
/// its claim every third of the [visibility timeout](WorkerBuilder::visibility_timeout) from
/// its own thread; a worker that dies stops renewing, and after the visibility timeout
/// another worker reclaims the message. The lost attempt counts as a failed attempt
/// ([`Crashed`](busbar::ErrorKind::Crashed)): the event is retried if it has retries left,
/// and goes to the dead-letter stream otherwise.
///
/// # Retries
///
/// The attempt count travels in the message, so it is counted once, whichever workers run
/// the attempts. A failed attempt with retries left is enqueued again as a new message, after
/// the [backoff](WorkerBuilder::retry_backoff) pause (in Redis's delayed set); a failure that
/// [is permanent](busbar::EventResult::is_permanent), or the last attempt's, is final: the
/// publisher gets it, and the event goes to the dead-letter stream with its error.
///
/// # Shutting down
///
/// [`shutdown`](Self::shutdown) stops taking messages, lets the attempts in hand finish and
/// settles them, then returns. **Dropping a worker** does the same in the background without
/// waiting; if the process exits first, the attempts in hand count as lost and are
/// redelivered after the visibility timeout.
pub struct Worker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Returns the worker's name: its consumer name in the group, unique per worker.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Returns the worker's counters.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats()
    }

    /// Stops taking messages, waits for the attempts in hand to finish and be settled, and
    /// leaves the consumer group.
    ///
    /// While Redis is down, settling waits for it to come back.
    pub fn shutdown(mut self) {
        self.shared.stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // Leave the group where this worker holds nothing: deleting a consumer drops its pending
        // messages. (A message can be pending here unknown to the worker if the reply that
        // delivered it was lost with the connection; it stays, to be reclaimed.)
        let mut link = Link::new(self.shared.broker());
        for stream in self.shared.broker().keys().streams() {
            let left = link.run(|c| {
                let held: redis::Value = redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(1)
                    .arg(self.name())
                    .query(c)?;
                if matches!(&held, redis::Value::Array(items) if !items.is_empty()) {
                    return Ok(());
                }
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(stream)
                    .arg(GROUP)
                    .arg(self.name())
                    .query::<i64>(c)
                    .map(drop)
            });
            if let Err(error) = left {
                tracing::debug!(%error, "busbar-redis: could not leave the consumer group");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker").field("name", &self.name()).field("stats", &self.stats()).finish()
    }
}

/// Configures and starts a [`Worker`]; made by [`Broker::worker`].
#[must_use = "a worker builder does nothing until `start` is called"]
pub struct WorkerBuilder {
    broker: Broker,
    bus: EventBus,
    concurrency: Option<usize>,
    visibility_timeout: Duration,
    retry_backoff: RetryBackoff,
    name: Option<String>,
}

impl WorkerBuilder {
    pub(crate) fn new(broker: Broker, bus: EventBus) -> Self {
        WorkerBuilder {
            broker,
            bus,
            concurrency: None,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            retry_backoff: RetryBackoff::Immediate,
            name: None,
        }
    }

    /// Sets how many events the worker runs at once (default: the number of logical cores).
    ///
    /// The worker takes a message only when a slot is free, so other workers get the rest.
    /// Match it to the bus's thread count: more would wait in the bus's queue.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency);
        self
    }

    /// Sets the visibility timeout (default [`DEFAULT_VISIBILITY_TIMEOUT`]): how long a message
    /// whose claim is not renewed stays with its worker before another worker reclaims it.
    ///
    /// Claims are renewed every third of it, so it bounds how long a dead worker's events
    /// wait, not how long an event may run. At least 100 ms.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Sets the pause before a failed attempt's retry (default: none). Use
    /// [`RetryBackoff::Exponential`] with jitter for failures that may last.
    pub fn retry_backoff(mut self, backoff: RetryBackoff) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets the worker's name, its consumer name in the group (default: `worker-<pid>-<random>`).
    /// Names must be unique among live workers.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Connects, joins the consumer group (creating the streams and the group if needed) and
    /// starts the worker's two threads.
    ///
    /// # Errors
    ///
    /// Fails if a setting is out of range, Redis cannot be reached, or a thread cannot start.
    pub fn start(self) -> Result<Worker, BrokerError> {
        let concurrency =
            self.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        if concurrency == 0 {
            return Err(BrokerError::invalid("invalid setting: `concurrency` must be at least 1, found 0"));
        }
        if self.visibility_timeout < Duration::from_millis(100) {
            return Err(BrokerError::invalid(format!(
                "invalid setting: `visibility_timeout` must be at least 100ms, found {:?}",
                self.visibility_timeout
            )));
        }
        let name = self.name.unwrap_or_else(|| {
            let random = uuid::Uuid::new_v4().simple().to_string();
            format!("worker-{}-{}", std::process::id(), &random[..8])
        });
        let mut link = Link::new(&self.broker);
        fetch::join_group(&mut link, &self.broker)?;
        let shared = Arc::new(Shared::new(
            self.broker,
            self.bus,
            name,
            concurrency,
            self.visibility_timeout,
            self.retry_backoff,
        ));
        let spawn = |name: &str, run: fn(&Arc<Shared>)| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name(name.to_owned()).spawn(move || run(&shared))
        };
        let started = spawn("busbar-redis-record", record::run)
            .and_then(|record| Ok(vec![record, spawn("busbar-redis-fetch", fetch::run)?]));
        match started {
            Ok(threads) => Ok(Worker { shared, threads }),
            Err(error) => {
                shared.stop();
                Err(BrokerError::invalid(format!("cannot start the worker's threads: {error}")))
            }
        }
    }
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("broker", &self.broker)
            .field("concurrency", &self.concurrency)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("retry_backoff", &self.retry_backoff)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A worker's counters: see [`Worker::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Messages read from the streams.
    pub fetched: u64,
    /// Events that succeeded here.
    pub succeeded: u64,
    /// Failed attempts enqueued again for a retry.
    pub retried: u64,
    /// Events given up on here (sent to the dead-letter stream), unreadable messages included.
    pub dead_lettered: u64,
    /// Unreadable messages (garbage, an unknown envelope version).
    pub malformed: u64,
    /// Messages reclaimed from workers that stopped renewing their claims.
    pub reclaimed: u64,
    /// Attempts whose message another worker reclaimed first: their results were discarded.
    pub lost: u64,
    /// Attempts in hand now.
    pub running: u64,
}

/// Counts the messages of `stream` that workers hold and have not settled.
pub(crate) fn pending_count(link: &mut Link, stream: &str) -> Result<u64, BrokerError> {
    let summary: redis::Value =
        link.run(|c| match redis::cmd("XPENDING").arg(stream).arg(GROUP).query(c) {
            // No worker created the group yet: nothing is pending.
            Err(error) if error.code() == Some("NOGROUP") => Ok(redis::Value::Nil),
            other => other,
        })?;
    Ok(match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(count)) => u64::try_from(*count).unwrap_or(0),
            _ => 0,
        },
        _ => 0,
    })
}
