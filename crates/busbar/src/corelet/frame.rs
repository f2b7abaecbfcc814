//! Length-prefixed frames: the byte layer of the corelet protocol.
//!
//! A frame is a 4-byte big-endian body length followed by that many bytes. The reader checks
//! the announced length against a limit *before* it allocates anything, and grows its buffer
//! only as bytes actually arrive, so a child that announces 4 GiB and then sends nothing costs
//! nothing but the wait.

use std::io::{self, Read, Write};

/// Size of the length prefix in front of every frame body.
pub(crate) const HEADER_LEN: usize = 4;

/// Default upper bound for one frame body: 64 MiB.
pub(crate) const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// How much the reader reserves up front for a frame body; larger bodies grow as they arrive.
const INITIAL_RESERVE: usize = 64 << 10;

/// Why a frame could not be read or written.
///
/// After any error except [`FrameError::TooLarge`] from [`seal`], the channel is out of step
/// (part of a frame may have been consumed or sent) and must not be used again.
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
    /// Any other I/O error on the channel.
    #[error("i/o error on the channel: {0}")]
    Io(#[source] io::Error),
}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            // A socket read timeout surfaces as `WouldBlock` (EAGAIN) on Linux and as
            // `TimedOut` elsewhere; both mean the deadline adapter's time ran out.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::Timeout,
            _ => FrameError::Io(error),
        }
    }
}

/// Returns a buffer holding a placeholder header, ready for the body to be appended.
///
/// Building header and body in one buffer lets [`write()`] send a frame with a single system
/// call, which matters for round-trip latency.
pub(crate) fn start() -> Vec<u8> {
    vec![0; HEADER_LEN]
}

/// Fills in the header of a buffer made by [`start`] once its body is complete.
///
/// Fails with [`FrameError::TooLarge`] if the body exceeds `limit`; the buffer is then useless
/// but nothing has been sent, so the channel is still in step.
pub(crate) fn seal(buf: &mut [u8], limit: u32) -> Result<(), FrameError> {
    debug_assert!(
        buf.len() >= HEADER_LEN,
        "buffer was not made by frame::start"
    );
    let len = (buf.len() - HEADER_LEN) as u64;
    if len > u64::from(limit) {
        return Err(FrameError::TooLarge { len, limit });
    }
    // `limit` is a u32, so `len` fits.
    let header = (len as u32).to_be_bytes();
    buf[..HEADER_LEN].copy_from_slice(&header);
    Ok(())
}

/// Writes a sealed frame.
pub(crate) fn write<W: Write>(writer: &mut W, sealed: &[u8]) -> Result<(), FrameError> {
    writer.write_all(sealed)?;
    Ok(())
}

/// Reads the next frame's body.
///
/// Returns [`FrameError::Closed`] if the channel ends before the first header byte, and
/// [`FrameError::Truncated`] if it ends anywhere later in the frame.
pub(crate) fn read<R: Read>(reader: &mut R, limit: u32) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = fill(reader, &mut header)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            expected: HEADER_LEN as u64,
            received: got as u64,
        });
    }
    let len = u32::from_be_bytes(header);
    if len > limit {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            limit,
        });
    }
    let len = len as usize;
    let mut body = Vec::with_capacity(len.min(INITIAL_RESERVE));
    // `take` bounds the read to this frame; `read_to_end` grows `body` only as bytes arrive
    // and stops at the bound without an extra system call.
    let received = reader.take(len as u64).read_to_end(&mut body)?;
    if received < len {
        return Err(FrameError::Truncated {
            expected: (HEADER_LEN + len) as u64,
            received: (HEADER_LEN + received) as u64,
        });
    }
    Ok(body)
}

/// Reads into `buf` until it is full or the reader reaches its end; returns the bytes read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
