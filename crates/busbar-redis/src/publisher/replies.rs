//! [`Replies`]: the publisher's waiting handles, and the listener thread that resolves them
//! from the publisher's reply stream.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use busbar::{ErrorKind, EventResolver, EventResult};

use crate::broker::Broker;
use crate::entry::{self, text};
use crate::link::{retry_pause, Link};

/// How long the listener blocks in one `XREAD`: it notices a close within this time.
const BLOCK: Duration = Duration::from_millis(500);
/// The most results the listener takes in one read.
const BATCH: usize = 1024;

/// The resolvers of a publisher's handles, by ticket, and its counters.
#[derive(Default)]
pub(crate) struct Replies {
    pending: Mutex<HashMap<u64, EventResolver>>,
    closed: AtomicBool,
    /// The listener pauses here after a failure; closing wakes it.
    pause_lock: Mutex<()>,
    pause: Condvar,
    pub(crate) published: AtomicU64,
    pub(crate) results: AtomicU64,
    pub(crate) unmatched: AtomicU64,
}

impl Replies {
    /// Remembers the resolver of the handle for `ticket` until its result arrives.
    pub(crate) fn expect(&self, ticket: u64, resolver: EventResolver) {
        self.lock().insert(ticket, resolver);
    }

    /// Forgets `ticket` (its event was not accepted after all).
    pub(crate) fn forget(&self, ticket: u64) {
        self.lock().remove(&ticket);
    }

    pub(crate) fn waiting(&self) -> usize {
        self.lock().len()
    }

    /// Resolves the handle of `ticket`; a result for a ticket that is not waiting (its
    /// publisher closed, or a duplicate) is counted and dropped.
    fn deliver(&self, ticket: u64, result: EventResult) {
        let resolver = self.lock().remove(&ticket);
        match resolver {
            Some(resolver) => {
                self.results.fetch_add(1, Ordering::SeqCst);
                resolver.resolve(result);
            }
            None => {
                self.unmatched.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(ticket, event_id = %result.event_id, "busbar-redis: a result nobody waits for");
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops the listener and resolves every waiting handle: their events stay queued and
    /// still run, but their results can no longer reach this publisher.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        {
            let _guard = self.pause_lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.pause.notify_all();
        }
        let waiting: Vec<EventResolver> = self.lock().drain().map(|(_, resolver)| resolver).collect();
        for resolver in waiting {
            let mut result = EventResult::failure(
                "the publisher was closed before a worker recorded the result; \
                 the event stays queued and still runs",
            );
            result.error_kind = Some(ErrorKind::Unsupported);
            resolver.resolve(result);
        }
    }

    /// Waits `pause`, or less if the publisher closes.
    fn wait(&self, pause: Duration) {
        let guard = self.pause_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.is_closed() {
            let _ = self.pause.wait_timeout(guard, pause);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, EventResolver>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the listener thread, `busbar-redis-replies`, on the publisher's reply stream.
pub(crate) fn spawn(broker: &Broker, stream: String, replies: Arc<Replies>) -> io::Result<JoinHandle<()>> {
    let broker = broker.clone();
    thread::Builder::new()
        .name("busbar-redis-replies".to_owned())
        .spawn(move || listen(&broker, &stream, &replies))
}

/// Reads results from `stream` until the publisher closes, deleting what it read.
///
/// After a failure (Redis down or restarting) it pauses and reconnects; it goes on from the
/// last id it read, and the deletes that did not reach Redis are sent again.
fn listen(broker: &Broker, stream: &str, replies: &Replies) {
    let mut link = Link::blocking(broker, BLOCK);
    let mut last = "0-0".to_owned();
    let mut read: Vec<String> = Vec::new();
    let mut failures = 0u32;
    while !replies.is_closed() {
        // One round trip: delete what was read last time, then read on.
        let mut query = redis::pipe();
        if !read.is_empty() {
            query.cmd("XDEL").arg(stream).arg(&read).ignore();
        }
        query
            .cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis().to_string())
            .arg("STREAMS")
            .arg(stream)
            .arg(&last);
        match link.run(|c| query.query::<(redis::Value,)>(c)) {
            Ok((reply,)) => {
                read.clear();
                if failures > 0 {
                    tracing::info!(stream, "busbar-redis: reply listener reconnected");
                }
                failures = 0;
                for entry in entry::read_reply(reply).into_iter().flat_map(|(_, entries)| entries) {
                    receive(replies, &entry.fields);
                    last.clone_from(&entry.id);
                    read.push(entry.id);
                }
            }
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(stream, %error, "busbar-redis: reply listener lost redis; retrying");
                }
                replies.wait(retry_pause(failures));
                failures += 1;
            }
        }
    }
}

/// Delivers one entry of the reply stream: fields `ticket` and `result`.
fn receive(replies: &Replies, fields: &HashMap<String, redis::Value>) {
    let ticket = fields.get("ticket").and_then(|ticket| text(ticket).parse::<u64>().ok());
    let result = fields.get("result").map(|result| serde_json::from_str::<EventResult>(&text(result)));
    match (ticket, result) {
        (Some(ticket), Some(Ok(result))) => replies.deliver(ticket, result),
        (Some(ticket), Some(Err(error))) => {
            // The handle must not wait forever for a result that arrived unreadable.
            let mut result = EventResult::failure(format!("the worker's result could not be read: {error}"));
            result.error_kind = Some(ErrorKind::Internal);
            replies.deliver(ticket, result);
        }
        (ticket, result) => {
            replies.unmatched.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(?ticket, ?result, "busbar-redis: unreadable entry in the reply stream");
        }
    }
}
