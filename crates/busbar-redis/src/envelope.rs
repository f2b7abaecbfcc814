//! The message format: an [`Envelope`] around the event, in a stream entry with two fields,
//! `v` (the format's version) and `envelope` (JSON). Priority bands pick the stream.

use std::collections::HashMap;

use busbar::{ErrorKind, Event, DEFAULT_PRIORITY};
use serde::{Deserialize, Serialize};

use crate::entry::text;

/// The envelope format this crate writes and reads.
pub(crate) const VERSION: &str = "1";

/// An event on its way through the queue, with what the queue needs to know about it.
///
/// The attempt count lives here, not in a worker's memory and not in Redis's delivery
/// counter: a worker runs attempt `attempts + 1` and, to retry, enqueues a new message with
/// `attempts` one higher. So attempts are counted once, whichever workers run them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The event, in its serde form: id, type, data, mode, priority, timeout, retry count,
    /// correlation and causation ids, headers.
    pub(crate) event: Event,
    /// Attempts that already ran (and failed, or were lost with their worker).
    #[serde(default)]
    pub(crate) attempts: u32,
    /// Where the result goes; `None` for messages nobody waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reply: Option<Reply>,
    /// When the first attempt started (Unix ms, the worker's clock), for the result's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started_ms: Option<u64>,
    /// Why the previous attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<LastError>,
}

/// A publisher's address for one result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply {
    /// The publisher's reply stream.
    pub(crate) stream: String,
    /// Which of the publisher's handles the result resolves.
    pub(crate) ticket: u64,
}

/// The failure of an earlier attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LastError {
    pub(crate) attempt: u32,
    #[serde(default)]
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) message: String,
}

impl Envelope {
    /// A new message for `event`, not yet attempted.
    pub(crate) fn new(event: Event, reply: Option<Reply>) -> Self {
        Envelope { event, attempts: 0, reply, started_ms: None, last_error: None }
    }

    pub(crate) fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The stream this message belongs in.
    pub(crate) fn band(&self) -> Band {
        Band::of(self.event.priority())
    }
}

/// A stream entry that is not a message this worker can read.
#[derive(Debug)]
pub(crate) struct Malformed {
    /// What is wrong, and what was expected.
    pub(crate) reason: String,
    /// The publisher's address, if it could be read: the publisher gets a failure then,
    /// rather than waiting forever.
    pub(crate) reply: Option<Reply>,
}

/// Reads a stream entry's fields.
pub(crate) fn decode(fields: &HashMap<String, redis::Value>) -> Result<Envelope, Malformed> {
    let malformed = |reason: String| Malformed { reason, reply: None };
    let Some(version) = fields.get("v") else {
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(malformed(format!(
            "malformed message: no `v` field (expected a busbar envelope with fields `v` and \
             `envelope`, found fields {names:?})"
        )));
    };
    let version = text(version);
    if version != VERSION {
        let mut error = malformed(format!(
            "unsupported envelope version `{version}`: this worker reads version {VERSION}"
        ));
        error.reply = fields.get("envelope").and_then(|raw| reply_of(&text(raw)));
        return Err(error);
    }
    let Some(raw) = fields.get("envelope") else {
        return Err(malformed("malformed message: no `envelope` field".to_owned()));
    };
    let raw = text(raw);
    serde_json::from_str(&raw)
        .map_err(|error| Malformed { reason: format!("malformed envelope: {error}"), reply: reply_of(&raw) })
}

/// Digs the reply address out of an envelope that does not parse as a whole.
fn reply_of(raw: &str) -> Option<Reply> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    serde_json::from_value(value.get("reply")?.clone()).ok()
}

/// A priority band: one stream each, read high first.
///
/// Events with a priority above the default (5) go to `high`, at the default to `normal`, below
/// it to `low`. Within a band, messages are read in publish order; the worker's own bus then
/// orders what it fetched by exact priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Band {
    High,
    Normal,
    Low,
}

impl Band {
    /// Every band, in reading order.
    pub(crate) const ALL: [Band; 3] = [Band::High, Band::Normal, Band::Low];

    pub(crate) fn of(priority: i32) -> Self {
        match priority.cmp(&DEFAULT_PRIORITY) {
            std::cmp::Ordering::Greater => Band::High,
            std::cmp::Ordering::Equal => Band::Normal,
            std::cmp::Ordering::Less => Band::Low,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Band::High => "high",
            Band::Normal => "normal",
            Band::Low => "low",
        }
    }

    /// The band's digit in a delayed-set member (see `crate::script`).
    pub(crate) fn digit(self) -> char {
        match self {
            Band::High => '0',
            Band::Normal => '1',
            Band::Low => '2',
        }
    }
}

/// A member of the delayed set: the band digit, a colon, the envelope.
pub(crate) fn delayed_member(band: Band, envelope_json: &str) -> String {
    format!("{}:{envelope_json}", band.digit())
}
