//! The fetcher thread, `busbar-redis-fetch`: moves due delayed messages to their streams,
//! reclaims abandoned messages, and takes new ones when a slot is free.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar::{ErrorKind, EventResult, PublishError};

use super::flight::Shared;
use crate::broker::{Broker, GROUP};
use crate::dead::now_ms;
use crate::entry::{self, Entry};
use crate::envelope::{self, Band};
use crate::error::BrokerError;
use crate::link::{retry_pause, Link};
use crate::script;
use crate::settle::Settlement;

/// The longest the fetcher blocks waiting for messages. Delayed messages are moved when due
/// (the fetcher wakes for them), but one published by another process while the fetcher
/// blocks is seen only when it wakes: this bounds that lag.
const MAX_BLOCK: Duration = Duration::from_millis(500);
/// The most delayed messages moved per round.
const PROMOTE_BATCH: usize = 256;
/// The most abandoned messages reclaimed per `XAUTOCLAIM` call, and calls per stream and round.
const RECLAIM_BATCH: usize = 100;
const RECLAIM_PAGES: usize = 10;

/// The fetcher's loop; on any Redis failure it pauses, reconnects and carries on.
pub(super) fn run(shared: &Arc<Shared>) {
    let now = Instant::now();
    let mut fetcher = Fetcher {
        link: Link::blocking(shared.broker(), MAX_BLOCK),
        in_group: true, // `WorkerBuilder::start` joined it.
        next_promote: now,
        next_reclaim: now,
    };
    let mut failures = 0u32;
    while !shared.is_stopping() {
        match fetcher.step(shared) {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(worker = shared.name(), "busbar-redis: worker reconnected to redis");
                }
                failures = 0;
            }
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(worker = shared.name(), %error, "busbar-redis: worker lost redis; retrying");
                }
                // A Redis that lost its data lost the consumer group too: join it again.
                fetcher.in_group = false;
                shared.pause(retry_pause(failures));
                failures += 1;
            }
        }
    }
    shared.set_fetcher_done();
}

/// The fetcher's connection and schedule.
struct Fetcher {
    link: Link,
    /// `false` after a failure: the group may have to be created again.
    in_group: bool,
    /// When to look at the delayed set next: when its first member is due, and at least every
    /// `MAX_BLOCK` (others may add earlier ones).
    next_promote: Instant,
    /// When to look for abandoned messages next: every quarter of the visibility timeout.
    next_reclaim: Instant,
}

impl Fetcher {
    /// One round: promote and reclaim when due, wait for room, take messages.
    fn step(&mut self, shared: &Arc<Shared>) -> Result<(), BrokerError> {
        if !self.in_group {
            join_group(&mut self.link, shared.broker())?;
            self.in_group = true;
        }
        let now = Instant::now();
        if now >= self.next_promote {
            let next_due = promote(&mut self.link, shared.broker())?;
            self.next_promote = now + next_due.map_or(MAX_BLOCK, |due| due.min(MAX_BLOCK));
        }
        if now >= self.next_reclaim {
            reclaim(shared, &mut self.link)?;
            self.next_reclaim = now + (shared.visibility() / 4).max(Duration::from_millis(25));
        }
        let wake_by = self.next_promote.min(self.next_reclaim);
        let free = shared.wait_for_room(wake_by);
        if free == 0 || shared.is_stopping() {
            return Ok(());
        }
        if self.take(shared, free)? == 0 {
            let block = wake_by.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            self.wait_for_messages(shared, block)?;
        }
        Ok(())
    }

    /// Takes up to `count` new messages, high band first, and starts them; returns how many.
    fn take(&mut self, shared: &Arc<Shared>, count: usize) -> Result<usize, BrokerError> {
        let mut call = script::call(&script::TAKE);
        call.arg(3).arg(shared.broker().keys().streams()).arg(GROUP).arg(shared.name()).arg(count);
        let reply: redis::Value = self.link.run(|c| call.query(c))?;
        let taken = entry::take_reply(reply);
        let count = taken.len();
        for (band, entry) in taken {
            match Band::ALL.get(band) {
                Some(band) => start(shared, *band, entry),
                None => tracing::error!(band, "busbar-redis: a message from an unknown band"),
            }
        }
        Ok(count)
    }

    /// Blocks until a message arrives in any band (or `block` passes), and starts it.
    fn wait_for_messages(&mut self, shared: &Arc<Shared>, block: Duration) -> Result<(), BrokerError> {
        let keys = shared.broker().keys();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(shared.name()).arg("COUNT").arg(1);
        cmd.arg("BLOCK").arg(block.as_millis().max(1).to_string()).arg("STREAMS").arg(keys.streams());
        cmd.arg(&[">", ">", ">"][..]);
        let reply: redis::Value = self.link.run(|c| cmd.query(c))?;
        let mut arrived: Vec<(Band, Entry)> = entry::read_reply(reply)
            .into_iter()
            .filter_map(|(stream, entries)| Some((band_of(shared.broker(), &stream)?, entries)))
            .flat_map(|(band, entries)| entries.into_iter().map(move |entry| (band, entry)))
            .collect();
        arrived.sort_by_key(|(band, _)| band.index());
        for (band, entry) in arrived {
            start(shared, band, entry);
        }
        Ok(())
    }
}

/// Creates the band streams and the consumer group where they do not exist. Reading starts
/// at the beginning of the streams: messages published before the first worker are kept.
pub(super) fn join_group(link: &mut Link, broker: &Broker) -> Result<(), BrokerError> {
    for stream in broker.keys().streams() {
        link.run(|c| {
            let created = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query::<()>(c);
            match created {
                Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
                other => other,
            }
        })?;
    }
    Ok(())
}

/// Moves due delayed messages to their streams; returns how long until the next one is due.
fn promote(link: &mut Link, broker: &Broker) -> Result<Option<Duration>, BrokerError> {
    let keys = broker.keys();
    let mut call = script::call(&script::PROMOTE);
    call.arg(4).arg(&keys.delayed).arg(keys.streams()).arg(PROMOTE_BATCH);
    let (moved, wait): (usize, i64) = link.run(|c| call.query(c))?;
    if moved == PROMOTE_BATCH {
        return Ok(Some(Duration::ZERO)); // More are due.
    }
    Ok(u64::try_from(wait).ok().map(Duration::from_millis))
}

fn band_of(broker: &Broker, stream: &str) -> Option<Band> {
    Band::ALL.into_iter().find(|band| broker.keys().stream(*band) == stream)
}

/// Starts attempt `attempts + 1` of a message on the bus; a message that cannot be read, or
/// that the bus refuses, is settled at once.
fn start(shared: &Arc<Shared>, band: Band, entry: Entry) {
    shared.counters().fetched.fetch_add(1, Ordering::SeqCst);
    let envelope = match envelope::decode(&entry.fields) {
        Ok(envelope) => envelope,
        Err(malformed) => return dead_letter_unreadable(shared, band, entry, malformed),
    };
    let attempt = envelope.attempts.saturating_add(1);
    let started_ms = envelope.started_ms.unwrap_or_else(now_ms);
    match shared.bus().publish_attempt(envelope.event.clone(), attempt) {
        Ok(handle) => shared.track_attempt(band, entry.id, envelope, attempt, started_ms, handle),
        Err(error) => {
            let result = refusal(&error, shared.name());
            if result.is_cancelled() {
                // The bus was shut down: hand the message back, uncounted, and stop.
                shared.stop();
            }
            // A refusal to start it is this worker's own doing.
            let settlement = Settlement::decide(
                &envelope,
                attempt,
                result,
                started_ms,
                shared.backoff(),
                shared.name(),
                true,
            );
            shared.track_settled(band, entry.id, settlement);
        }
    }
}

/// The result of an attempt the bus refused to start.
fn refusal(error: &PublishError, worker: &str) -> EventResult {
    let (kind, message) = match error {
        PublishError::NoHandlerAvailable(_) => (ErrorKind::NoHandler, format!("{error} on worker {worker}")),
        PublishError::InvalidEvent(_) => (ErrorKind::InvalidInput, error.to_string()),
        _ if error.is_shut_down() || error.is_full() => {
            (ErrorKind::Cancelled, format!("worker {worker} could not start it: {error}"))
        }
        _ => (ErrorKind::Internal, format!("worker {worker} could not start it: {error}")),
    };
    let mut result = EventResult::failure(message);
    result.error_kind = Some(kind);
    if kind == ErrorKind::Cancelled {
        result
    } else {
        result.permanent()
    }
}

/// Reclaims the messages whose workers have not renewed their claims for the visibility
/// timeout. Their attempt counts as failed ([`Crashed`](ErrorKind::Crashed)): retried if
/// retries remain, dead-lettered otherwise.
fn reclaim(shared: &Arc<Shared>, link: &mut Link) -> Result<(), BrokerError> {
    let keys = shared.broker().keys();
    let min_idle = shared.visibility().as_millis().to_string();
    for band in Band::ALL {
        let mut cursor = "0-0".to_owned();
        for _ in 0..RECLAIM_PAGES {
            let reply: redis::Value = link.run(|c| {
                redis::cmd("XAUTOCLAIM")
                    .arg(keys.stream(band))
                    .arg(GROUP)
                    .arg(shared.name())
                    .arg(&min_idle)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(RECLAIM_BATCH)
                    .query(c)
            })?;
            let (next, claimed) = entry::autoclaim_reply(reply);
            for entry in claimed {
                abandoned(shared, band, entry);
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

/// Settles a reclaimed message: its attempt was lost with its worker.
fn abandoned(shared: &Arc<Shared>, band: Band, entry: Entry) {
    if shared.holds(band, &entry.id) {
        // Ours and in hand (its renewal was late): the recorder renews and settles it.
        return;
    }
    shared.counters().reclaimed.fetch_add(1, Ordering::SeqCst);
    let envelope = match envelope::decode(&entry.fields) {
        Ok(envelope) => envelope,
        Err(malformed) => return dead_letter_unreadable(shared, band, entry, malformed),
    };
    let attempt = envelope.attempts.saturating_add(1);
    let started_ms = envelope.started_ms.unwrap_or_else(now_ms);
    let message = format!(
        "attempt {attempt} was abandoned: its worker did not renew its claim for {:?} \
         (it died, or lost its connection to redis)",
        shared.visibility()
    );
    tracing::warn!(
        worker = shared.name(),
        id = %envelope.event.id(),
        message_id = entry.id,
        attempt,
        "busbar-redis: reclaimed an abandoned message"
    );
    let mut result = EventResult::failure(message);
    result.error_kind = Some(ErrorKind::Crashed);
    let settlement =
        Settlement::decide(&envelope, attempt, result, started_ms, shared.backoff(), shared.name(), false);
    shared.track_settled(band, entry.id, settlement);
}

/// Sends a message that cannot be read to the dead-letter stream, with the reason.
fn dead_letter_unreadable(shared: &Arc<Shared>, band: Band, entry: Entry, malformed: envelope::Malformed) {
    tracing::warn!(
        worker = shared.name(),
        message_id = entry.id,
        reason = malformed.reason,
        "busbar-redis: unreadable message sent to the dead-letter stream"
    );
    shared.counters().malformed.fetch_add(1, Ordering::SeqCst);
    let settlement = Settlement::malformed(malformed, &entry.fields, shared.name());
    shared.track_settled(band, entry.id, settlement);
}
