//! [`Broker`]: where the queue lives (a Redis URL and a namespace) and how to talk to it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use busbar::EventBus;

use crate::dead::DeadLetter;
use crate::envelope::Band;
use crate::error::BrokerError;
use crate::link::Link;
use crate::publisher::Publisher;
use crate::worker::WorkerBuilder;

/// The default namespace: every key busbar writes starts with `busbar:`.
pub const DEFAULT_NAMESPACE: &str = "busbar";
/// The default time allowed to open a connection to Redis: 2 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default time allowed for one command's request or answer: 5 seconds.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time a publisher's reply stream outlives its last result: one day.
pub const DEFAULT_RESULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The consumer group every worker of a namespace joins.
pub(crate) const GROUP: &str = "workers";

/// A queue on a Redis server: its URL, its namespace and the timeouts used to talk to it.
///
/// A broker is only settings; it opens no connection itself. Make a [`Publisher`] with
/// [`publisher`](Self::publisher) to send events, and a [`Worker`](crate::Worker) with
/// [`worker`](Self::worker) to run them. Publishers and workers with the same URL and
/// namespace share one queue; different namespaces on one Redis are separate queues (and
/// separate fleets: every worker of a namespace must be able to run every event type published
/// to it).
///
/// Every Redis call is bounded by the timeouts: with Redis down, publishing returns a
/// [`PublishError`](crate::PublishError) within about the connect timeout, and a silent
/// Redis within about the I/O timeout, instead of hanging.
///
/// `Broker` is cheap to clone. Its setters take and return it by value:
///
/// ```
/// use std::time::Duration;
/// use busbar_redis::Broker;
///
/// let broker = Broker::new("redis://127.0.0.1:6379/")?
///     .namespace("video")
///     .connect_timeout(Duration::from_millis(500));
/// assert_eq!(broker.namespace_name(), "video");
///
/// let err = Broker::new("http://example").unwrap_err();
/// assert!(err.to_string().starts_with("invalid redis url `http://example`"));
/// # Ok::<(), busbar_redis::BrokerError>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    settings: Arc<Settings>,
}

/// What a [`Broker`] holds; shared by its clones, copied on write by the setters.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) client: redis::Client,
    /// `host:port` (never the password), for messages.
    pub(crate) address: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) result_ttl: Duration,
    pub(crate) keys: Keys,
}

impl Broker {
    /// Creates a broker for the Redis at `url` (`redis://[:password@]host[:port][/db]`), with
    /// the default namespace and timeouts. Nothing is connected yet.
    ///
    /// # Errors
    ///
    /// Fails if the URL does not parse.
    pub fn new(url: &str) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url).map_err(|error| BrokerError::invalid_url(url, error))?;
        let address = client.get_connection_info().addr.to_string();
        let settings = Settings {
            client,
            address,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            result_ttl: DEFAULT_RESULT_TTL,
            keys: Keys::new(DEFAULT_NAMESPACE),
        };
        Ok(Broker { settings: Arc::new(settings) })
    }

    /// Sets the namespace (default [`DEFAULT_NAMESPACE`]): the prefix of every key, so that
    /// several queues can share one Redis. An empty namespace is replaced by the default.
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        let namespace = if namespace.is_empty() { DEFAULT_NAMESPACE } else { namespace };
        Arc::make_mut(&mut self.settings).keys = Keys::new(namespace);
        self
    }

    /// Sets how long opening a connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.settings).connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long one command's request or answer may take (default [`DEFAULT_IO_TIMEOUT`]).
    #[must_use]
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.settings).io_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a publisher's reply stream is kept after its last result (default
    /// [`DEFAULT_RESULT_TTL`]): results for a publisher that went away expire then.
    #[must_use]
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.settings).result_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Returns the namespace.
    pub fn namespace_name(&self) -> &str {
        &self.settings.keys.namespace
    }

    /// Returns the server's `host:port`.
    pub fn address(&self) -> &str {
        &self.settings.address
    }

    /// Connects a [`Publisher`] and starts its reply listener.
    ///
    /// # Errors
    ///
    /// Fails if Redis cannot be reached, or the listener thread cannot be started.
    pub fn publisher(&self) -> Result<Publisher, BrokerError> {
        Publisher::connect(self)
    }

    /// Returns a builder for a [`Worker`](crate::Worker) that runs this queue's events on
    /// `bus`, with `bus`'s handlers.
    pub fn worker(&self, bus: EventBus) -> WorkerBuilder {
        WorkerBuilder::new(self.clone(), bus)
    }

    /// Returns up to `count` dead letters, oldest first.
    ///
    /// # Errors
    ///
    /// Fails if Redis cannot be reached or answers with an error.
    pub fn dead_letters(&self, count: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        crate::dead::list(&mut Link::new(self), &self.settings.keys, count)
    }

    /// Deletes a dead letter; returns `false` if it was not there.
    ///
    /// # Errors
    ///
    /// Fails if Redis cannot be reached or answers with an error.
    pub fn delete_dead_letter(&self, letter: &DeadLetter) -> Result<bool, BrokerError> {
        let dead = &self.settings.keys.dead;
        let deleted: u64 = Link::new(self).run(|c| redis::cmd("XDEL").arg(dead).arg(letter.id()).query(c))?;
        Ok(deleted == 1)
    }

    /// Counts what is in the queue right now.
    ///
    /// # Errors
    ///
    /// Fails if Redis cannot be reached or answers with an error.
    pub fn queue_stats(&self) -> Result<QueueStats, BrokerError> {
        let keys = &self.settings.keys;
        let mut query = redis::pipe();
        for band in Band::ALL {
            query.cmd("XLEN").arg(keys.stream(band));
        }
        query.cmd("ZCARD").arg(&keys.delayed).cmd("XLEN").arg(&keys.dead);
        let (high, normal, low, delayed, dead): (u64, u64, u64, u64, u64) =
            Link::new(self).run(|c| query.query(c))?;
        let mut running = 0;
        for band in Band::ALL {
            running += crate::worker::pending_count(&mut Link::new(self), keys.stream(band))?;
        }
        let in_streams = high + normal + low;
        Ok(QueueStats { waiting: in_streams.saturating_sub(running), running, delayed, dead })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.settings.keys
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("address", &self.settings.address)
            .field("namespace", &self.settings.keys.namespace)
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("io_timeout", &self.settings.io_timeout)
            .finish_non_exhaustive()
    }
}

/// What is in a queue: see [`Broker::queue_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Messages in the streams that no worker has taken yet.
    pub waiting: u64,
    /// Messages a worker has taken and not yet settled (running, or their worker died and
    /// they wait for the visibility timeout).
    pub running: u64,
    /// Messages waiting for their time: delayed publishing and retries backing off.
    pub delayed: u64,
    /// Dead letters.
    pub dead: u64,
}

impl QueueStats {
    /// Returns `true` if nothing is waiting, running or delayed (dead letters aside).
    pub fn is_idle(&self) -> bool {
        self.waiting == 0 && self.running == 0 && self.delayed == 0
    }
}

/// The names of a namespace's keys.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) namespace: String,
    /// One stream per priority band, in `Band` order.
    streams: [String; 3],
    /// The sorted set of delayed messages, scored by due time (ms, Redis's clock).
    pub(crate) delayed: String,
    /// The dead-letter stream.
    pub(crate) dead: String,
}

impl Keys {
    fn new(namespace: &str) -> Self {
        Keys {
            namespace: namespace.to_owned(),
            streams: Band::ALL.map(|band| format!("{namespace}:queue:{}", band.name())),
            delayed: format!("{namespace}:delayed"),
            dead: format!("{namespace}:dead"),
        }
    }

    /// The stream of a priority band.
    pub(crate) fn stream(&self, band: Band) -> &str {
        &self.streams[band.index()]
    }

    /// The band streams, high first.
    pub(crate) fn streams(&self) -> &[String; 3] {
        &self.streams
    }

    /// A new publisher's reply stream.
    pub(crate) fn reply_stream(&self, publisher: &str) -> String {
        format!("{}:reply:{publisher}", self.namespace)
    }

    /// Returns `true` if `stream` can be a reply stream of this namespace. A reply address
    /// comes from whoever wrote the message: one naming another key (a band stream, the
    /// dead-letter stream) would have the worker write a result there and set it to expire.
    pub(crate) fn is_reply_stream(&self, stream: &str) -> bool {
        stream
            .strip_prefix(self.namespace.as_str())
            .and_then(|rest| rest.strip_prefix(":reply:"))
            .is_some_and(|publisher| !publisher.is_empty())
    }
}
