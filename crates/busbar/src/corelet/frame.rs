//! Length-prefixed frames: the byte layer of the corelet protocol.
//!
//! A frame is a 4-byte big-endian body length followed by that many bytes. [`parse`] checks
//! the announced length against a limit *before* anything is allocated for the body, so a
//! child that announces 4 GiB costs nothing. The I/O around it lives in `channel.rs`.

use std::io;

/// Size of the length prefix in front of every frame body.
pub(crate) const HEADER_LEN: usize = 4;

/// Default upper bound for one frame body: 64 MiB.
pub(crate) const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// Why a frame could not be read or written.
///
/// After any error except [`FrameError::TooLarge`] from [`seal`], the channel is out of step
/// (part of a frame may have been consumed or sent) and must not be used again.
///
/// `Io` errors of kind `WouldBlock` or `TimedOut` convert to `Timeout`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The peer closed the channel cleanly, between two frames.
    #[error("channel closed")]
    Closed,
    /// The peer closed the channel in the middle of a frame.
    #[error("channel closed in the middle of a frame ({received} of {expected} bytes)")]
    Truncated {
        /// Bytes the frame should have had, header included.
        expected: u64,
        /// Bytes that arrived before the end of the channel.
        received: u64,
    },
    /// A frame announces (or would need) more bytes than the limit allows.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Length of the body.
        len: u64,
        /// The configured limit.
        limit: u32,
    },
    /// The deadline passed before the frame was complete.
    #[error("timed out")]
    Timeout,
    /// The wait was ended from another thread (the pool's `kill_all`).
    #[error("the channel was cut: the corelet pool was killed")]
    Cut,
    /// A corelet handler's thread published after its request ended, when nothing reads it.
    #[error("no corelet request is running: a corelet can publish only while a handler runs")]
    NotServing,
    /// Any other I/O error on the channel.
    #[error("i/o error on the channel: {0}")]
    Io(#[source] io::Error),
}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            // Only the channel's deadline logic produces these, when its time is up.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::Timeout,
            _ => FrameError::Io(error),
        }
    }
}

/// Empties `buf` and puts a placeholder header in it, ready for the body to be appended.
///
/// Building header and body in one buffer lets the channel send a frame with a single system
/// call, which matters for round-trip latency.
pub(crate) fn start(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER_LEN]);
}

/// Fills in the header of a buffer prepared by [`start`] once its body is complete.
///
/// Fails with [`FrameError::TooLarge`] if the body exceeds `limit`; the buffer is then useless
/// but nothing has been sent, so the channel is still in step.
pub(crate) fn seal(buf: &mut [u8], limit: u32) -> Result<(), FrameError> {
    debug_assert!(buf.len() >= HEADER_LEN, "buffer was not prepared by frame::start");
    let len = (buf.len() - HEADER_LEN) as u64;
    if len > u64::from(limit) {
        return Err(FrameError::TooLarge { len, limit });
    }
    // `limit` is a u32, so `len` fits.
    let header = (len as u32).to_be_bytes();
    buf[..HEADER_LEN].copy_from_slice(&header);
    Ok(())
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A whole frame: the header and `body_len` bytes of body.
    Complete {
        /// Length of the body that follows the header.
        body_len: usize,
    },
    /// Not a whole frame yet; the frame is `frame_len` bytes long, header included (just the
    /// header's length while the header itself is incomplete).
    Incomplete {
        /// Bytes needed from the start of the buffer.
        frame_len: usize,
    },
}

/// Looks for a frame at the start of `buf`, checking its announced length against `limit`.
///
/// Fails with [`FrameError::TooLarge`] as soon as the header is complete, before a single
/// body byte is needed, so the caller never reserves memory for an oversized frame.
pub(crate) fn parse(buf: &[u8], limit: u32) -> Result<Parsed, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Parsed::Incomplete { frame_len: HEADER_LEN });
    };
    let len = u32::from_be_bytes(*header);
    if len > limit {
        return Err(FrameError::TooLarge { len: u64::from(len), limit });
    }
    let body_len = len as usize;
    if buf.len() - HEADER_LEN >= body_len {
        Ok(Parsed::Complete { body_len })
    } else {
        Ok(Parsed::Incomplete { frame_len: HEADER_LEN + body_len })
    }
}
