//! Dead letters: events that failed for good, and messages no worker could read.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busbar::{ErrorKind, Event};
use serde::{Deserialize, Serialize};

use crate::broker::Keys;
use crate::entry::{self, text};
use crate::envelope::Envelope;
use crate::error::BrokerError;
use crate::link::Link;

/// An entry of the dead-letter stream: an event whose last attempt failed and that will not be
/// retried (its attempts ran out, or the failure was permanent), or a message no worker could
/// read (garbage, an unknown envelope version), with the reason.
///
/// List them with [`Broker::dead_letters`](crate::Broker::dead_letters); publish one again,
/// with a fresh attempt count, with [`Publisher::republish`](crate::Publisher::republish).
#[derive(Clone)]
pub struct DeadLetter {
    id: String,
    record: Record,
    event: Option<Event>,
}

/// A dead letter as it is stored: one JSON field, `letter`, next to `v`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Why the message was given up on.
    pub(crate) reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error_kind: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error_message: Option<String>,
    /// Attempts that ran.
    #[serde(default)]
    pub(crate) attempts: u32,
    /// The message's envelope, if it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) envelope: Option<Envelope>,
    /// The message's fields as they were, if it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) raw: Option<BTreeMap<String, String>>,
    /// The worker that gave up on it.
    #[serde(default)]
    pub(crate) worker: String,
    /// When (Unix ms, the worker's clock).
    #[serde(default)]
    pub(crate) failed_ms: u64,
}

impl Record {
    /// The record of a message whose fields could not be read.
    pub(crate) fn unreadable(
        reason: String,
        fields: &std::collections::HashMap<String, redis::Value>,
        worker: &str,
    ) -> Self {
        let raw = fields.iter().map(|(name, value)| (name.clone(), text(value))).collect();
        Record {
            reason,
            error_kind: Some(ErrorKind::InvalidInput),
            error_message: None,
            attempts: 0,
            envelope: None,
            raw: Some(raw),
            worker: worker.to_owned(),
            failed_ms: now_ms(),
        }
    }
}

impl DeadLetter {
    /// Returns the letter's id in the dead-letter stream.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns why the message was given up on, for example `"failed 3 of 3 attempts"`,
    /// `"permanent failure"` or `"unsupported envelope version `2`: ..."`.
    pub fn reason(&self) -> &str {
        &self.record.reason
    }

    /// Returns the last attempt's error message, if an attempt ran.
    pub fn error_message(&self) -> Option<&str> {
        self.record.error_message.as_deref()
    }

    /// Returns the kind of the last attempt's failure.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.record.error_kind
    }

    /// Returns how many attempts ran.
    pub fn attempts(&self) -> u32 {
        self.record.attempts
    }

    /// Returns the event, or `None` for a message that could not be read.
    pub fn event(&self) -> Option<&Event> {
        self.event.as_ref()
    }

    /// Returns the fields of a message that could not be read, as they were.
    pub fn raw_fields(&self) -> Option<&BTreeMap<String, String>> {
        self.record.raw.as_ref()
    }

    /// Returns the name of the worker that gave up on the message.
    pub fn worker(&self) -> &str {
        &self.record.worker
    }

    /// Returns when the message was given up on (by that worker's clock).
    pub fn failed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.record.failed_ms)
    }
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("id", &self.id)
            .field("event_type", &self.event.as_ref().map(Event::event_type))
            .field("reason", &self.record.reason)
            .field("error_message", &self.record.error_message)
            .field("attempts", &self.record.attempts)
            .finish_non_exhaustive()
    }
}

/// Reads up to `count` dead letters, oldest first. An entry that is not a letter this crate
/// wrote is listed with its fields as they are.
pub(crate) fn list(link: &mut Link, keys: &Keys, count: usize) -> Result<Vec<DeadLetter>, BrokerError> {
    let reply: redis::Value = link
        .run(|c| redis::cmd("XRANGE").arg(&keys.dead).arg("-").arg("+").arg("COUNT").arg(count).query(c))?;
    Ok(entry::entries(reply).into_iter().map(|entry| letter(entry.id, &entry.fields)).collect())
}

fn letter(id: String, fields: &std::collections::HashMap<String, redis::Value>) -> DeadLetter {
    let parsed = fields.get("letter").map(|raw| serde_json::from_str::<Record>(&text(raw)));
    let record = match parsed {
        Some(Ok(record)) => record,
        Some(Err(error)) => Record::unreadable(format!("unreadable dead letter: {error}"), fields, ""),
        None => Record::unreadable("unreadable dead letter: no `letter` field".to_owned(), fields, ""),
    };
    let event = record.envelope.as_ref().map(|envelope| envelope.event.clone());
    DeadLetter { id, record, event }
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
