//! What follows from one delivery: the final result, a dead letter, the next attempt, and the
//! one script call (`crate::script::SETTLE`) that writes it all and acknowledges the message.

use std::collections::HashMap;
use std::time::Duration;

use busbar::{ErrorKind, EventResult, RetryBackoff};

use crate::broker::{Keys, GROUP};
use crate::dead::{now_ms, Record};
use crate::envelope::{Band, Envelope, LastError, Malformed, Reply};
use crate::script;

/// The outcome of a delivered message, ready to be written.
#[derive(Debug)]
pub(crate) struct Settlement {
    /// The final result, for the publisher.
    result: Option<(Reply, EventResult)>,
    /// The dead letter, if the message is given up on.
    letter: Option<Record>,
    /// The message of the next attempt and its delay.
    next: Option<(Envelope, Duration)>,
    kind: Kind,
}

/// What a settlement does, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Succeeded,
    Retried,
    DeadLettered,
    Released,
}

impl Settlement {
    /// Decides what follows from `result`, the outcome of attempt `attempt` of `envelope`'s
    /// event, which started (first attempt) at `started_ms`.
    ///
    /// A failure is retried while attempts remain and it is not permanent; the retry is a new
    /// message with the attempt count one higher, after `backoff`'s pause. An attempt the
    /// worker itself cancelled (`worker_stopping`: its bus is shutting down, or refused to
    /// start it) is released: enqueued again as it was, uncounted. A handler that reports
    /// `Cancelled` of its own accord fails like any handler: released, it would run again and
    /// again, uncounted. Anything else is final: the result goes to the publisher, and a
    /// failure to the dead-letter stream too.
    pub(crate) fn decide(
        envelope: &Envelope,
        attempt: u32,
        mut result: EventResult,
        started_ms: u64,
        backoff: &RetryBackoff,
        worker: &str,
        worker_stopping: bool,
    ) -> Self {
        if result.is_cancelled() && worker_stopping {
            let next = Some((envelope.clone(), Duration::ZERO));
            return Settlement { result: None, letter: None, next, kind: Kind::Released };
        }
        let max_attempts = envelope.event.max_attempts();
        if !result.success && !result.is_permanent() && attempt < max_attempts {
            let mut next = envelope.clone();
            next.attempts = attempt;
            next.started_ms = Some(started_ms);
            next.last_error = Some(LastError {
                attempt,
                kind: result.error_kind,
                message: result.error_message.clone().unwrap_or_default(),
            });
            let next = Some((next, backoff.delay(attempt)));
            return Settlement { result: None, letter: None, next, kind: Kind::Retried };
        }
        result.attempts = attempt;
        result.duration = Duration::from_millis(now_ms().saturating_sub(started_ms));
        let letter = (!result.success).then(|| {
            let reason = if result.is_permanent() {
                "permanent failure".to_owned()
            } else {
                format!("failed {attempt} of {max_attempts} attempts")
            };
            let mut done = envelope.clone();
            done.attempts = attempt;
            done.started_ms = Some(started_ms);
            Record {
                reason,
                error_kind: result.error_kind,
                error_message: result.error_message.clone(),
                attempts: attempt,
                envelope: Some(done),
                raw: None,
                worker: worker.to_owned(),
                failed_ms: now_ms(),
            }
        });
        let kind = if letter.is_some() { Kind::DeadLettered } else { Kind::Succeeded };
        let result = envelope.reply.clone().map(|reply| (reply, result));
        Settlement { result, letter, next: None, kind }
    }

    /// Gives up on a message that could not be read: a dead letter with the reason, and a
    /// failure for its publisher if the reply address could be read.
    pub(crate) fn malformed(
        malformed: Malformed,
        fields: &HashMap<String, redis::Value>,
        worker: &str,
    ) -> Self {
        let result = malformed.reply.map(|reply| {
            let mut result = EventResult::failure(malformed.reason.clone()).permanent();
            result.error_kind = Some(ErrorKind::InvalidInput);
            (reply, result)
        });
        let letter = Record::unreadable(malformed.reason, fields, worker);
        Settlement { result, letter: Some(letter), next: None, kind: Kind::DeadLettered }
    }

    /// Returns what this settlement does.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Builds the script call that settles message `message_id` of band `band`'s stream for
    /// `consumer`; it returns 1 if it did, -1 if another consumer owns the message now, 0 if
    /// the message was settled already (see `crate::script::SETTLE`).
    pub(crate) fn command(
        &self,
        keys: &Keys,
        band: Band,
        message_id: &str,
        consumer: &str,
        result_ttl: Duration,
    ) -> Result<redis::Cmd, serde_json::Error> {
        let (reply_stream, ticket, result) = match &self.result {
            Some((reply, result)) if keys.is_reply_stream(&reply.stream) => {
                (reply.stream.as_str(), reply.ticket.to_string(), serde_json::to_string(result)?)
            }
            Some((reply, _)) => {
                tracing::warn!(
                    message_id,
                    stream = reply.stream,
                    "busbar-redis: a message's reply address is not a reply stream of this namespace; \
                     its result is not sent"
                );
                (keys.dead.as_str(), String::new(), String::new())
            }
            None => (keys.dead.as_str(), String::new(), String::new()),
        };
        let letter = match &self.letter {
            Some(letter) => serde_json::to_string(letter)?,
            None => String::new(),
        };
        let (next, delay, next_band) = match &self.next {
            Some((envelope, delay)) => (envelope.to_json()?, delay.as_millis(), envelope.band()),
            None => (String::new(), 0, band),
        };
        let mut cmd = script::call(&script::SETTLE);
        cmd.arg(5)
            .arg(keys.stream(band))
            .arg(reply_stream)
            .arg(&keys.dead)
            .arg(&keys.delayed)
            .arg(keys.stream(next_band))
            .arg(GROUP)
            .arg(consumer)
            .arg(message_id)
            .arg(ticket)
            .arg(result)
            .arg(result_ttl.as_millis().to_string())
            .arg(letter)
            .arg(next)
            .arg(delay.to_string())
            .arg(next_band.digit().to_string());
        Ok(cmd)
    }
}
