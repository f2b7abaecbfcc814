//! The messages parent and child exchange, and their encoding into frames.
//!
//! Bodies are JSON. Enums use serde's default external tagging (`{"reply":{"reply":…}}`)
//! because it deserializes in one pass; internal tagging would buffer every payload first.
//!
//! Messages are generic over what they carry (the request, the reply, a published event), so
//! payloads are encoded straight from the caller's types into the frame and decoded straight
//! from the frame into the caller's types, with no `serde_json::Value` in between: that tree
//! would cost more than everything else a round trip does in user space.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::frame::{self, FrameError};
use super::panic::PanicInfo;

/// Version of the message set below; a child must greet with exactly this number.
///
/// Bump it whenever a message changes shape, payloads included (2: busbar's replies are
/// externally tagged; 3: a handler's result is sent without the fields the parent fills in;
/// 4: the channel is two pipes, whose descriptors [`FD_ENV`](super::child::FD_ENV) names, not
/// a socket, and a request's event travels in its compact form, `event::compact`).
/// `Hello` itself must never change, so that parents and children of different versions can
/// always tell each other apart.
pub(crate) const PROTOCOL_VERSION: u32 = 4;

/// Messages from the parent to a child, carrying requests of type `R`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ParentMessage<R> {
    /// Run the handler on `request` and answer with [`ChildMessage::Reply`].
    Execute {
        /// Number of the request, repeated in every message about it.
        seq: u64,
        /// The request, for busbar the event and its attempt.
        request: R,
    },
    /// Exit now; sent when a child is retired.
    Shutdown,
}

/// Messages from a child to the parent, carrying replies of type `R` and published events of
/// type `P`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChildMessage<R, P> {
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
        event: P,
    },
    /// The handler's answer; ends the request.
    Reply {
        /// Number of the request answered.
        seq: u64,
        /// The handler's result.
        reply: R,
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

/// A child message that carries no payload (`Hello`, `Panic`, `TooLarge`): its payload types
/// do not matter.
pub(crate) type BareChildMessage = ChildMessage<(), ()>;

impl<R, P> ChildMessage<R, P> {
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
    let mut buf = Vec::new();
    encode_into(&mut buf, message, limit)?;
    Ok(buf)
}

/// Encodes a message as one sealed frame into `buf`, replacing what it held.
///
/// Reusing one buffer for every request saves an allocation per round trip. Fails with
/// [`FrameError::TooLarge`] if the encoded message exceeds `limit`, and with
/// [`FrameError::Io`] if the message cannot be serialized (a map with non-string keys).
pub(crate) fn encode_into<M: Serialize>(
    buf: &mut Vec<u8>,
    message: &M,
    limit: u32,
) -> Result<(), FrameError> {
    frame::start(buf);
    if let Err(error) = serde_json::to_writer(&mut *buf, message) {
        return Err(FrameError::Io(error.into()));
    }
    frame::seal(buf, limit)
}

/// Decodes a frame body into a message.
pub(crate) fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<M, serde_json::Error> {
    // Validating the body once lets serde_json skip validating every string in it, which is
    // a good part of decoding a small message. A body that is not UTF-8 is decoded from the
    // bytes only to get serde_json's error, which says where it went wrong.
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}
