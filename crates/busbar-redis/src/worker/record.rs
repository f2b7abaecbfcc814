//! The recorder thread, `busbar-redis-record`: writes settled deliveries and renews claims.

use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flight::{Run, Shared};
use crate::broker::GROUP;
use crate::envelope::Band;
use crate::error::BrokerError;
use crate::link::{retry_pause, Link};
use crate::script;
use crate::settle;

/// The most settlements written in one round trip.
const BATCH: usize = 256;

/// The recorder's loop: runs until the fetcher stopped and everything in hand is settled.
///
/// While Redis is down, settled deliveries stay in hand and are written when it is back; their
/// claims are renewed meanwhile, so they are not redelivered unless the outage outlasts the
/// visibility timeout.
pub(super) fn run(shared: &Arc<Shared>) {
    let Some(wakened) = shared.take_wakened() else { return };
    let mut link = Link::new(shared.broker());
    let renew_every = (shared.visibility() / 3).max(Duration::from_millis(10));
    let mut next_renewal = Instant::now() + renew_every;
    let mut failures = 0u32;
    loop {
        shared.poll_attempts();
        let mut outcome = write_settled(shared, &mut link);
        if outcome.is_ok() && Instant::now() >= next_renewal {
            outcome = renew(shared, &mut link);
            if outcome.is_ok() {
                next_renewal = Instant::now() + renew_every;
            }
        }
        match outcome {
            Ok(()) => failures = 0,
            Err(error) => {
                if failures == 0 {
                    tracing::warn!(worker = shared.name(), %error, "busbar-redis: cannot record results; retrying");
                }
                failures += 1;
            }
        }
        if shared.is_drained() {
            return;
        }
        let mut wait = next_renewal.saturating_duration_since(Instant::now());
        if failures > 0 {
            wait = wait.min(retry_pause(failures));
        }
        match wakened.recv_timeout(wait) {
            Ok(()) => while wakened.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }
}

/// Writes every settled delivery, `BATCH` per round trip, and lets go of them.
fn write_settled(shared: &Shared, link: &mut Link) -> Result<(), BrokerError> {
    let keys = shared.broker().keys();
    let ttl = shared.broker().settings().result_ttl;
    loop {
        let mut batch: Vec<(u64, settle::Kind, redis::Cmd)> = Vec::new();
        let mut unwritable = Vec::new();
        for (key, delivery) in shared.lock().iter() {
            let Run::Settled(settlement) = &delivery.run else { continue };
            match settlement.command(keys, delivery.band, &delivery.message_id, shared.name(), ttl) {
                Ok(cmd) => batch.push((*key, settlement.kind(), cmd)),
                Err(error) => {
                    // Cannot happen for values that came through serde_json already. Let go of
                    // it rather than retry forever: it is reclaimed as abandoned later.
                    tracing::error!(message_id = delivery.message_id, %error, "busbar-redis: cannot encode a settlement");
                    unwritable.push(*key);
                }
            }
            if batch.len() == BATCH {
                break;
            }
        }
        shared.remove(&unwritable);
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (_, _, cmd) in &batch {
            pipe.add_command(cmd.clone());
        }
        let answers: Vec<i64> = link.run(|c| pipe.query(c))?;
        let full = batch.len() == BATCH;
        let mut written = Vec::with_capacity(batch.len());
        for ((key, kind, _), answer) in batch.into_iter().zip(answers) {
            match answer {
                1 => shared.counters().count(kind),
                0 => tracing::debug!(
                    worker = shared.name(),
                    "busbar-redis: a message was settled already (by a try whose answer was lost, \
                     or by the worker that reclaimed it)"
                ),
                _ => {
                    shared.counters().lost.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(
                        worker = shared.name(),
                        "busbar-redis: an attempt's outcome was discarded: another worker reclaimed \
                         its message after the visibility timeout"
                    );
                }
            }
            written.push(key);
        }
        shared.remove(&written);
        if !full {
            return Ok(());
        }
    }
}

/// Renews the claims on every message in hand, running or settled and not yet written.
fn renew(shared: &Shared, link: &mut Link) -> Result<(), BrokerError> {
    let mut ids: [Vec<String>; 3] = Default::default();
    for delivery in shared.lock().values() {
        ids[delivery.band.index()].push(delivery.message_id.clone());
    }
    let keys = shared.broker().keys();
    let mut pipe = redis::pipe();
    for band in Band::ALL {
        let band_ids = &ids[band.index()];
        if !band_ids.is_empty() {
            let mut call = script::call(&script::RENEW);
            call.arg(1).arg(keys.stream(band)).arg(GROUP).arg(shared.name()).arg(band_ids);
            pipe.add_command(call);
        }
    }
    if pipe.is_empty() {
        return Ok(());
    }
    let lost: Vec<Vec<String>> = link.run(|c| pipe.query(c))?;
    for message_id in lost.into_iter().flatten() {
        tracing::warn!(
            worker = shared.name(),
            message_id,
            "busbar-redis: lost the claim on a running message: another worker reclaimed it"
        );
    }
    Ok(())
}
