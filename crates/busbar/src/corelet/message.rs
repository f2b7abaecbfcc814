//! The messages parent and child exchange, and their encoding into frames.
//!
//! Bodies are postcard, a compact binary serde format: decoding one costs a fraction of
//! parsing the same message as JSON (measured in `corelet/README.md`, "Costs"). Payloads
//! without a fixed shape, such as an event's data, cross inside it as JSON text (`json.rs`).
//! Only the child's greeting is JSON, in every version, so that parents and children of any
//! two versions can tell each other apart ([`Greeting`]).
//!
//! Messages are generic over what they carry (the request, the reply, a published event), so
//! payloads are encoded straight from the caller's types into the frame and decoded straight
//! from the frame into the caller's types.

use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::frame::{self, FrameError};
use super::panic::PanicInfo;

/// Version of the message set below; a child must greet with exactly this number.
///
/// Bump it whenever a message changes shape, payloads included (2: busbar's replies are
/// externally tagged; 3: a handler's result is sent without the fields the parent fills in;
/// 4: the channel is two pipes, whose descriptors [`FD_ENV`](super::child::FD_ENV) names, not
/// a socket, and a request's event travels in its compact form, `event::compact`; 5: messages
/// are postcard, not JSON, after the greeting).
/// [`Greeting`] itself must never change.
pub(crate) const PROTOCOL_VERSION: u32 = 5;

/// The first message of every child, as JSON: who it is and which protocol it speaks.
///
/// Its form is fixed across versions (`{"hello":{"protocol_version":5,"pid":42}}`), so that a
/// parent recognises a child of another version as such rather than as garbage.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Greeting {
    Hello {
        /// The child's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The child's process id, for logs.
        pid: u32,
    },
}

/// Messages from the parent to a child, carrying requests of type `R`.
#[derive(Debug, Serialize, Deserialize)]
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

/// A [`ParentMessage`] without its request: the same variants in the same order, so that
/// postcard encodes both alike up to the request, which follows the head in the body. The child
/// decodes the head first and the request after it, and so knows the request's number even
/// when the request does not decode (see `child::decode_request`).
#[derive(Debug, Deserialize)]
pub(crate) enum ParentHead {
    Execute { seq: u64 },
    Shutdown,
}

/// Messages from a child to the parent, carrying replies of type `R` and published events of
/// type `P`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ChildMessage<R, P> {
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

/// A child message that carries no payload (`Panic`, `TooLarge`): its payload types do not
/// matter.
pub(crate) type BareChildMessage = ChildMessage<(), ()>;

impl<R, P> ChildMessage<R, P> {
    /// Returns the message's name as it appears on the wire, for error messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ChildMessage::Publish { .. } => "publish",
            ChildMessage::Reply { .. } => "reply",
            ChildMessage::Panic { .. } => "panic",
            ChildMessage::TooLarge { .. } => "too_large",
        }
    }

    /// Returns the number of the request the message is about.
    ///
    /// The parent checks it on every message, so a reply that arrives late, or twice, is
    /// caught as a protocol error instead of being taken as the answer to a later request.
    pub(crate) fn seq(&self) -> u64 {
        match self {
            ChildMessage::Publish { seq, .. }
            | ChildMessage::Reply { seq, .. }
            | ChildMessage::Panic { seq, .. }
            | ChildMessage::TooLarge { seq, .. } => *seq,
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
/// [`FrameError::Io`] if the message cannot be serialized; `buf` is then emptied.
pub(crate) fn encode_into<M: Serialize>(
    buf: &mut Vec<u8>,
    message: &M,
    limit: u32,
) -> Result<(), FrameError> {
    frame::start(buf);
    // postcard appends to a writer it owns; the buffer is lent to it and comes back.
    match postcard::to_extend(message, std::mem::take(buf)) {
        Ok(encoded) => *buf = encoded,
        Err(error) => return Err(FrameError::Io(io::Error::new(io::ErrorKind::InvalidData, error))),
    }
    frame::seal(buf, limit)
}

/// Encodes the child's [`Greeting`] as one sealed frame into `buf`, in JSON.
pub(crate) fn encode_greeting_into(
    buf: &mut Vec<u8>,
    greeting: &Greeting,
    limit: u32,
) -> Result<(), FrameError> {
    frame::start(buf);
    if let Err(error) = serde_json::to_writer(&mut *buf, greeting) {
        return Err(FrameError::Io(error.into()));
    }
    frame::seal(buf, limit)
}

/// Decodes a child's first frame body as its [`Greeting`].
pub(crate) fn decode_greeting(body: &[u8]) -> Result<Greeting, DecodeError> {
    serde_json::from_slice(body).map_err(DecodeError::Greeting)
}

/// Decodes a frame body into a message; bytes left over after it are an error.
pub(crate) fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<M, DecodeError> {
    let (message, rest) = decode_head(body)?;
    match rest.len() {
        0 => Ok(message),
        extra => Err(DecodeError::Trailing { extra }),
    }
}

/// Decodes a message from the start of `body`, returning it and the bytes after it.
pub(crate) fn decode_head<M: DeserializeOwned>(body: &[u8]) -> Result<(M, &[u8]), DecodeError> {
    postcard::take_from_bytes(body).map_err(DecodeError::Malformed)
}

/// Why a frame body is not the message expected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// postcard could not decode it. Its errors name the kind of fault only ("Hit the end of
    /// buffer, expected more data"); a nested value that failed its own check shows as
    /// "Serde Deserialization Error".
    #[error("malformed message ({0})")]
    Malformed(#[source] postcard::Error),
    /// The message ended before the body did.
    #[error("{extra} bytes follow the message")]
    Trailing { extra: usize },
    /// The first frame was not a JSON greeting.
    #[error("{0}")]
    Greeting(#[source] serde_json::Error),
}
