//! busbar's distributed mode: events published to [Redis Streams] and run by [`Worker`]s in any
//! number of processes on any number of machines, with the same handlers and the same
//! [`EventHandle`](busbar::EventHandle)s as a local [`EventBus`](busbar::EventBus).
//!
//! [Redis Streams]: https://redis.io/docs/latest/develop/data-types/streams/
//!
//! # The design in one paragraph
//!
//! A [`Publisher`] wraps each event in an envelope (the event's serde form plus its attempt
//! count and the publisher's reply address) and adds it to one of three streams, by priority
//! band. Workers read the streams through one consumer group; each runs **one attempt** of an
//! event on its local bus ([`EventBus::publish_attempt`](busbar::EventBus::publish_attempt)),
//! in the event's own mode, then *settles* the message in a single Lua script: result to the
//! publisher's reply stream, or a new message for the next attempt (with backoff, through a
//! delayed set), or a dead letter; and the acknowledgement, all or nothing, and only if the
//! worker still owns the message. While an attempt runs, the worker renews its claim from its
//! own thread; a worker that dies stops renewing, and after the visibility timeout another
//! worker reclaims the message and counts the lost attempt. The publisher's listener thread
//! reads its reply stream and resolves the handles.
//!
//! # Hello, fleet!
//!
//! ```
//! use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
//! use busbar_redis::Broker;
//! use serde_json::json;
//!
//! # use busbar_redis::testsupport::RedisServer;
//! # if !RedisServer::is_installed() { return Ok(()); }
//! # let server = RedisServer::start(false);
//! # let url = server.url();
//! let broker = Broker::new(&url)?.namespace("thumbnails");
//!
//! // A worker: any process, any machine, with the handlers it should run.
//! let bus = EventBus::new();
//! bus.subscribe("thumbnail.create", handler_fn(|ctx| {
//!     let path = ctx.event().data()["path"].as_str().unwrap_or_default();
//!     Ok(EventResult::success_with(json!(format!("{path}.thumb.png"))))
//! }));
//! let worker = broker.worker(bus).concurrency(2).start()?;
//!
//! // A publisher: gets a handle, as from a local bus.
//! let publisher = broker.publisher()?;
//! let event = Event::new("thumbnail.create")
//!     .with_mode(ExecutionMode::Thread)
//!     .with_data(json!({"path": "/photos/cat.jpg"}));
//! let result = publisher.publish(event)?.wait();
//! assert!(result.success);
//! assert_eq!(result.data, "/photos/cat.jpg.thumb.png");
//!
//! worker.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Delivery
//!
//! **At least once.** A message is acknowledged only in the script that records its outcome,
//! so a worker that dies leaves its messages pending; they are redelivered after the
//! [visibility timeout](WorkerBuilder::visibility_timeout), and the lost attempt counts as a
//! failed one ([`Crashed`](busbar::ErrorKind::Crashed)). A long attempt is never redelivered
//! while its worker lives: the claim is renewed every third of the visibility timeout from
//! the worker's `busbar-redis-record` thread, not the handler's.
//!
//! **One result per handle.** Settling checks that the worker still owns the message and
//! acknowledges it in the same atomic step, so of two workers that ran the same message (one
//! that stalled past the visibility timeout, one that reclaimed it) only one records a result.
//! A publish whose connection broke after the event was sent is
//! [ambiguous](PublishError::is_ambiguous): Redis may have stored it, and publishing again
//! then runs the event twice; only one result reaches the new handle, and the other is counted
//! in [`PublisherStats::unmatched_results`].
//!
//! # Retries and dead letters
//!
//! The attempt count travels in the message, so retries are counted once whichever workers
//! run them: a failed attempt with retries left becomes a new message with the count one
//! higher, after the worker's [backoff](WorkerBuilder::retry_backoff). A final failure goes to
//! the publisher and to the dead-letter stream with its error; so does a message no worker can
//! read (garbage, an unknown envelope version), with the reason. List them with
//! [`Broker::dead_letters`], publish one again with [`Publisher::republish`].
//!
//! # Priorities and delays
//!
//! Events with a priority above the default (5) go to the `high` stream, at the default to
//! `normal`, below it to `low`; workers take from a lower band only when the higher ones are
//! empty. [`Publisher::publish_after`] keeps an event in a sorted set until it is due (by
//! Redis's clock); any worker moves it to its stream then.
//!
//! # When Redis fails
//!
//! Every call has a connect timeout and an I/O timeout (see [`Broker`]): with Redis down,
//! [`publish`](Publisher::publish) returns an [unavailable](PublishError::is_unavailable)
//! error at once, and with Redis silent, within the I/O timeout; it never hangs. Workers and
//! publishers reconnect on their own; with Redis's append-only file on, a restart loses nothing
//! that was accepted. Results that could not be recorded while Redis was down are recorded when
//! it is back, and their claims are renewed meanwhile.
//!
//! # Keys
//!
//! For namespace `ns`: the streams `ns:queue:high`, `ns:queue:normal` and `ns:queue:low`
//! (consumer group `workers`), the sorted set `ns:delayed`, the stream `ns:dead`, and one
//! stream `ns:reply:<id>` per publisher, which expires a [while](Broker::result_ttl) after
//! its last result. Stream entries have two fields: `v` (the envelope version, `1`) and
//! `envelope` (JSON).
//!
//! # Testing
//!
//! The crate's tests start their own `redis-server` (on a free loopback port, with a
//! temporary directory) and worker processes; they need `redis-server` installed
//! (`.ci/redis`). `cargo bench -p busbar-redis --bench throughput` compares the throughput with
//! `redis-benchmark`'s XADD rate on the same server.

mod broker;
mod dead;
mod entry;
mod envelope;
mod error;
mod link;
mod publisher;
mod script;
mod settle;
mod worker;

mod test;

#[doc(hidden)]
pub mod testsupport;

pub use crate::broker::{
    Broker, QueueStats, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_NAMESPACE, DEFAULT_RESULT_TTL,
};
pub use crate::dead::DeadLetter;
pub use crate::error::{BrokerError, PublishError};
pub use crate::publisher::{Publisher, PublisherStats};
pub use crate::worker::{Worker, WorkerBuilder, WorkerStats, DEFAULT_VISIBILITY_TIMEOUT};
