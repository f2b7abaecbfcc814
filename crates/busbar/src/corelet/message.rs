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
        /// The event, for busbar a serialized `Event`.
        event: Value,
    },
    /// The handler's answer; ends the request.
    Reply {
        /// The handler's result.
        reply: Value,
    },
    /// The handler panicked; ends the request. The child survives.
    Panic {
        /// What the panic said and where.
        panic: PanicInfo,
    },
    /// The handler's reply would not fit in a frame; ends the request.
    TooLarge {
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
}

/// Encodes a message as one sealed frame, ready for [`frame::write()`].
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

/// Encodes `ParentMessage::Execute { request }` as one sealed frame, borrowing `request`.
pub(crate) fn encode_execute(request: &Value, limit: u32) -> Result<Vec<u8>, FrameError> {
    encode(&ParentMessageRef::Execute { request }, limit)
}

/// Decodes a frame body into a message.
pub(crate) fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<M, serde_json::Error> {
    serde_json::from_slice(body)
}
