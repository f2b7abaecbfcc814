//! [`Publisher`]: sends events to the queue and hands out handles that resolve with the
//! results the workers record.

mod replies;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use busbar::{Event, EventContext, EventHandle, MAX_TIMEOUT};

use crate::broker::Broker;
use crate::dead::DeadLetter;
use crate::envelope::{delayed_member, Envelope, Reply, VERSION};
use crate::error::{BrokerError, PublishError};
use crate::link::Link;
use crate::script;
use replies::Replies;

/// Sends events to a [`Broker`]'s queue, where [`Worker`](crate::Worker)s on any machine run
/// them, and returns the usual [`EventHandle`], which resolves with the result the worker
/// recorded.
///
/// Each publisher has a reply stream of its own in Redis and a listener thread
/// (`busbar-redis-replies`) that reads it and resolves the handles. An event is accepted once
/// Redis has stored it: from then on a worker will run it, even if this process exits (its
/// result then expires unread after the broker's [result TTL](Broker::result_ttl)).
///
/// `Publisher` is cheap to clone; clones share one connection and one listener. **Dropping the
/// last clone closes it**: the listener stops, and handles still waiting resolve at once with
/// an [`Unsupported`](busbar::ErrorKind::Unsupported) failure saying so (their events still
/// run). A handle waits as long as no worker runs its event: use
/// [`wait_timeout`](EventHandle::wait_timeout) where that matters.
///
/// # Examples
///
/// ```no_run
/// use busbar::{Event, ExecutionMode};
/// use busbar_redis::Broker;
/// use serde_json::json;
///
/// let publisher = Broker::new("redis://127.0.0.1/")?.publisher()?;
/// let event = Event::new("video.encode")
///     .with_data(json!({"path": "/videos/cat.mp4"}))
///     .with_mode(ExecutionMode::Corelet) // how the worker runs it
///     .with_retry_count(3);
/// let result = publisher.publish(event)?.wait();
/// println!("encoded: {}", result.success);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Broker,
    reply_stream: String,
    link: Mutex<Link>,
    replies: Arc<Replies>,
    next_ticket: AtomicU64,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The listener notices within one read and exits; it is not waited for.
        self.replies.close();
    }
}

impl Publisher {
    /// Connects (failing early on a wrong URL or a Redis that is down) and starts the listener.
    pub(crate) fn connect(broker: &Broker) -> Result<Self, BrokerError> {
        let mut link = Link::new(broker);
        link.open()?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let reply_stream = broker.keys().reply_stream(&id);
        let replies = Arc::new(Replies::default());
        let listener =
            replies::spawn(broker, reply_stream.clone(), Arc::clone(&replies)).map_err(|error| {
                BrokerError::invalid(format!("cannot start the reply listener thread: {error}"))
            })?;
        let inner = Inner {
            broker: broker.clone(),
            reply_stream,
            link: Mutex::new(link),
            replies,
            next_ticket: AtomicU64::new(1),
            listener: Mutex::new(Some(listener)),
        };
        Ok(Publisher { inner: Arc::new(inner) })
    }

    /// Publishes an event to the queue and returns a handle to its result.
    ///
    /// The event goes to the stream of its priority band: priorities above the default run
    /// first, then the default, then lower ones; publish order within a band. A worker runs it
    /// in its own [mode](busbar::ExecutionMode) (a `Sync` event runs on the worker's pool),
    /// with its timeout and its retries, which are counted across workers.
    ///
    /// # Errors
    ///
    /// The event is handed back inside the error if it is malformed (empty type, zero or
    /// over-long timeout), if Redis cannot be reached or does not answer within the broker's
    /// timeouts ([`is_unavailable`](PublishError::is_unavailable)), or if the publisher was
    /// closed.
    pub fn publish(&self, event: Event) -> Result<EventHandle, PublishError> {
        self.send(event, None)
    }

    /// Publishes an event to run once `delay` has passed, on whichever worker is free then.
    ///
    /// The event waits in Redis (a sorted set by due time, on Redis's clock), so it survives
    /// this process; any worker moves it to its stream when it is due, within about its
    /// polling interval (at most a second).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish); a delay over a year makes the event invalid.
    pub fn publish_after(&self, delay: Duration, event: Event) -> Result<EventHandle, PublishError> {
        if delay > MAX_TIMEOUT {
            let reason = format!("the delay of {delay:?} is longer than the maximum of one year");
            return Err(PublishError::invalid(reason, event));
        }
        self.send(event, (!delay.is_zero()).then_some(delay))
    }

    /// Publishes a follow-up of the event `ctx` runs for: the new event inherits the chain's
    /// correlation id and gets that event's id as its causation id (unless it has its own),
    /// as [`EventContext::publish`] does on a local bus.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn publish_from(&self, ctx: &EventContext, event: Event) -> Result<EventHandle, PublishError> {
        let parent = ctx.event();
        let event = if event.causation_id().is_some() {
            event
        } else {
            // An event correlates with itself unless a correlation id was set.
            let correlation = if event.correlation_id() == event.id() {
                parent.correlation_id()
            } else {
                event.correlation_id()
            };
            event.with_causation_id(parent.id()).with_correlation_id(correlation)
        };
        self.publish(event)
    }

    /// Publishes a dead letter's event again, with a fresh attempt count, and removes the
    /// letter; returns a handle to the new run's result.
    ///
    /// # Errors
    ///
    /// Fails if the letter holds no event (a message that could not be read), if it is gone
    /// (re-published or deleted since it was listed), or if Redis cannot be reached.
    pub fn republish(&self, letter: &DeadLetter) -> Result<EventHandle, BrokerError> {
        let Some(event) = letter.event() else {
            return Err(BrokerError::invalid(format!(
                "dead letter {} holds no event to publish: {}",
                letter.id(),
                letter.reason()
            )));
        };
        let Prepared { ticket, envelope, json, handle } = self
            .prepare(event.clone())
            .map_err(|error| BrokerError::invalid(format!("dead letter {}: {error}", letter.id())))?;
        let keys = self.inner.broker.keys();
        let revived = self.link().run_again_if_stale(|c| {
            script::call(&script::REVIVE)
                .arg(2)
                .arg(&keys.dead)
                .arg(keys.stream(envelope.band()))
                .arg(letter.id())
                .arg(&json)
                .query::<i64>(c)
        });
        match revived {
            Ok(1) => {
                self.inner.replies.published.fetch_add(1, Ordering::SeqCst);
                Ok(handle)
            }
            Ok(_) => {
                self.inner.replies.forget(ticket);
                Err(BrokerError::not_found(format!(
                    "dead letter {} is gone: it was re-published or deleted",
                    letter.id()
                )))
            }
            Err(error) => {
                self.inner.replies.forget(ticket);
                Err(error)
            }
        }
    }

    /// Returns the publisher's counters.
    pub fn stats(&self) -> PublisherStats {
        let replies = &self.inner.replies;
        PublisherStats {
            published: replies.published.load(Ordering::SeqCst),
            results: replies.results.load(Ordering::SeqCst),
            unmatched_results: replies.unmatched.load(Ordering::SeqCst),
            waiting: replies.waiting() as u64,
        }
    }

    /// Closes the publisher and its clones: new events are refused, the listener stops
    /// (this waits for it, at most about a second), and waiting handles resolve at once, as
    /// when the last clone is dropped. Idempotent.
    pub fn close(&self) {
        self.inner.replies.close();
        let listener = self.inner.listener.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(listener) = listener {
            let _ = listener.join();
        }
    }

    /// Checks, wraps and publishes `event`, at once or after `delay`.
    fn send(&self, event: Event, delay: Option<Duration>) -> Result<EventHandle, PublishError> {
        if let Some(reason) = event.invalid_reason() {
            return Err(PublishError::invalid(reason, event));
        }
        if self.inner.replies.is_closed() {
            return Err(PublishError::closed(event));
        }
        let Prepared { ticket, envelope, json, handle } = self.prepare(event)?;
        let keys = self.inner.broker.keys();
        let band = envelope.band();
        let sent = self.link().run_again_if_stale(|c| match delay {
            None => redis::cmd("XADD")
                .arg(keys.stream(band))
                .arg("*")
                .arg("v")
                .arg(VERSION)
                .arg("envelope")
                .arg(&json)
                .query::<String>(c)
                .map(drop),
            Some(delay) => script::call(&script::DELAY)
                .arg(1)
                .arg(&keys.delayed)
                .arg(delay.as_millis().to_string())
                .arg(delayed_member(band, &json))
                .query::<i64>(c)
                .map(drop),
        });
        match sent {
            Ok(()) => {
                self.inner.replies.published.fetch_add(1, Ordering::SeqCst);
                Ok(handle)
            }
            Err(error) => {
                self.inner.replies.forget(ticket);
                Err(PublishError::broker(error, envelope.event))
            }
        }
    }

    /// Wraps `event` in a new envelope addressed to this publisher, and registers the handle
    /// its result will resolve.
    fn prepare(&self, event: Event) -> Result<Prepared, PublishError> {
        let ticket = self.inner.next_ticket.fetch_add(1, Ordering::SeqCst);
        let reply = Reply { stream: self.inner.reply_stream.clone(), ticket };
        let envelope = Envelope::new(event, Some(reply));
        let json = match envelope.to_json() {
            Ok(json) => json,
            Err(error) => {
                return Err(PublishError::invalid(
                    format!("it cannot be serialized: {error}"),
                    envelope.event,
                ))
            }
        };
        let (handle, resolver) = EventHandle::with_resolver(envelope.event.id());
        self.inner.replies.expect(ticket, resolver);
        Ok(Prepared { ticket, envelope, json, handle })
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.inner.link.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("broker", &self.inner.broker)
            .field("reply_stream", &self.inner.reply_stream)
            .field("stats", &self.stats())
            .finish()
    }
}

/// An event ready to be sent: its envelope, as JSON, and the handle its result resolves.
struct Prepared {
    ticket: u64,
    envelope: Envelope,
    json: String,
    handle: EventHandle,
}

/// A publisher's counters: see [`Publisher::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublisherStats {
    /// Events Redis accepted.
    pub published: u64,
    /// Results that resolved a handle.
    pub results: u64,
    /// Results that matched no waiting handle: for a closed publisher, or a second result for
    /// one event (which the queue's design rules out; a non-zero count is worth a bug report).
    pub unmatched_results: u64,
    /// Handles waiting for their result.
    pub waiting: u64,
}
