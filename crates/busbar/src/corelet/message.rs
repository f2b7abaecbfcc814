//! The messages parent and child exchange, and their encoding into frames.
//!
//! Bodies are JSON. Enums use serde's default external tagging (`{"reply":{"reply":…}}`)
//! because it deserializes in one pass; internal tagging would buffer every payload first.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::frame::{self, FrameError};
use super::panic::PanicInfo;

/// Version of the message set below; a child must greet with exactly this number.
///
/// Bump it whenever a message changes shape. `Hello` itself must never change, so that
/// parents and children of different versions can always tell each other apart.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// Messages from the parent to a child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ParentMessage {
    /// Run the handler on `request` and answer with [`ChildMessage::Reply`].
    Execute {
        /// Number of the request, repeated in every message about it.
        seq: u64,
        /// The request, for busbar the serialized event.
        request: Value,
    },
    /// Exit now; sent when a child is retired.
    Shutdown,
}

/// Borrowed twin of [`ParentMessage::Execute`]: encodes identically, without cloning the
/// request (which may be megabytes and is kept by the caller for retries).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum ParentMessageRef<'a> {
    /// See [`ParentMessage::Execute`].
    Execute {
        /// Number of the request.
        seq: u64,
        /// The request.
        request: &'a Value,
    },
}

/// Messages from a child to the parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChildMessage {
    /// The first message of every child: who it is and which protocol it speaks.
    Hello {
        /// The child's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The child's process id, for logs.
        pid: u32,
    },
    /// A follow-up event published by the handler that is running; more frames follow.
    Publish {
        /// Number of the request whose handler published it.
        seq: u64,
        /// The event, for busbar a serialized `Event`.
        event: Value,
    },
    /// The handler's answer; ends the request.
    Reply {
        /// Number of the request answered.
        seq: u64,
        /// The handler's result.
        reply: Value,
    },
    /// The handler panicked; ends the request. The child survives.
    Panic {
        /// Number of the request whose handler panicked.
        seq: u64,
        /// What the panic said and where.
        panic: PanicInfo,
    },
    /// The handler's reply would not fit in a frame; ends the request.
    TooLarge {
        /// Number of the request answered.
        seq: u64,
        /// Encoded size of the reply.
        len: u64,
        /// The frame limit it exceeded.
        limit: u32,
    },
}

impl ChildMessage {
    /// Returns the message's name as it appears on the wire, for error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ChildMessage::Hello { .. } => "hello",
            ChildMessage::Publish { .. } => "publish",
            ChildMessage::Reply { .. } => "reply",
            ChildMessage::Panic { .. } => "panic",
            ChildMessage::TooLarge { .. } => "too_large",
        }
    }

    /// Returns the number of the request the message is about; `None` for `Hello`.
    ///
    /// The parent checks it on every message, so a reply that arrives late, or twice, is
    /// caught as a protocol error instead of being taken as the answer to a later request.
    pub(crate) fn seq(&self) -> Option<u64> {
        match self {
            ChildMessage::Hello { .. } => None,
            ChildMessage::Publish { seq, .. }
            | ChildMessage::Reply { seq, .. }
            | ChildMessage::Panic { seq, .. }
            | ChildMessage::TooLarge { seq, .. } => Some(*seq),
        }
    }
}

/// Encodes a message as one sealed frame, ready to send.
///
/// Fails with [`FrameError::TooLarge`] if the encoded message exceeds `limit`.
pub(crate) fn encode<M: Serialize>(message: &M, limit: u32) -> Result<Vec<u8>, FrameError> {
    let mut buf = frame::start();
    // Serializing a `Value` into memory cannot fail: its map keys are always strings.
    if let Err(error) = serde_json::to_writer(&mut buf, message) {
        return Err(FrameError::Io(error.into()));
    }
    frame::seal(&mut buf, limit)?;
    Ok(buf)
}

/// Encodes `ParentMessage::Execute { seq, request }` as one sealed frame, borrowing `request`.
pub(crate) fn encode_execute(seq: u64, request: &Value, limit: u32) -> Result<Vec<u8>, FrameError> {
    encode(&ParentMessageRef::Execute { seq, request }, limit)
}

/// Decodes a frame body into a message.
pub(crate) fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<M, serde_json::Error> {
    serde_json::from_slice(body)
}
