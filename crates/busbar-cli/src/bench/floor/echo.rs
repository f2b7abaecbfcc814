//! Floor of corelet mode: a child process (this binary, `busbar bench --child echo`) that
//! echoes length-prefixed frames from its stdin to its stdout.
//!
//! Its stdin and stdout are pipes, busbar's corelet transport too.
//!
//! A frame is a u32 big-endian length and the body, as on busbar's corelet channel. Both sides
//! keep one buffer and read what is there, so a small frame costs one `write` and one `read`
//! on each side, after the `poll` calls with which each side watches its input for a moment
//! before a read, as busbar's channel does (see [`super::watch`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Stdio};

use super::watch;
use crate::bench::Error;

/// Bytes read per `read` call.
const CHUNK: usize = 64 * 1024;

/// A running echo child and the parent's ends of its channel.
pub(in crate::bench) struct EchoChild {
    child: Child,
    /// `None` only while dropping: closing both ends ends the child.
    to_child: Option<File>,
    from_child: Option<File>,
    reply: Vec<u8>,
    chunk: Vec<u8>,
}

impl EchoChild {
    pub(in crate::bench) fn spawn() -> Result<EchoChild, Error> {
        let mut command = crate::bench::child_command("echo", &[])?;
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let to_child = child.stdin.take().ok_or("the echo child has no stdin")?;
        let from_child = child.stdout.take().ok_or("the echo child has no stdout")?;
        Ok(EchoChild {
            child,
            to_child: Some(File::from(OwnedFd::from(to_child))),
            from_child: Some(File::from(OwnedFd::from(from_child))),
            reply: Vec::new(),
            chunk: vec![0; CHUNK],
        })
    }

    /// Sends `frame` (length prefix included) and waits for it to come back.
    pub(in crate::bench) fn round_trip(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.to_child.as_mut().ok_or("the echo child's channel is closed")?.write_all(frame)?;
        let from_child = self.from_child.as_mut().ok_or("the echo child's channel is closed")?;
        if !read_frame(from_child, &mut self.reply, &mut self.chunk)? {
            return Err("the echo child exited".into());
        }
        if self.reply.len() != frame.len() {
            return Err(format!("the echo child sent {} bytes for {}", self.reply.len(), frame.len()).into());
        }
        Ok(())
    }
}

impl Drop for EchoChild {
    fn drop(&mut self) {
        // End-of-file on its stdin ends the child.
        drop(self.to_child.take());
        drop(self.from_child.take());
        let _ = self.child.wait();
    }
}

/// Builds a frame: the length of `body` (u32 big-endian), then `body`.
pub(in crate::bench) fn frame(body: &[u8]) -> Result<Vec<u8>, Error> {
    let len = u32::try_from(body.len())?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// The child's side: echoes frames until its stdin closes.
pub(in crate::bench) fn serve() -> Result<(), Error> {
    // Unbuffered handles on descriptors 0 and 1: the std locks buffer, and stdout's flushes
    // lines, which would split a frame holding a newline byte into two writes.
    let mut input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let (mut frame, mut chunk) = (Vec::new(), vec![0; CHUNK]);
    while read_frame(&mut input, &mut frame, &mut chunk)? {
        output.write_all(&frame)?;
    }
    Ok(())
}

/// Reads one whole frame (prefix included) into `frame`; `false` at end-of-file between frames.
fn read_frame(reader: &mut File, frame: &mut Vec<u8>, chunk: &mut [u8]) -> io::Result<bool> {
    frame.clear();
    loop {
        if let Some(prefix) = frame.first_chunk::<4>() {
            let len = 4 + u32::from_be_bytes(*prefix) as usize;
            if frame.len() >= len {
                return Ok(true);
            }
        }
        watch::watch_readable(reader.as_fd());
        let read = reader.read(chunk)?;
        if read == 0 {
            return match frame.is_empty() {
                true => Ok(false),
                false => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
        frame.extend_from_slice(&chunk[..read]);
    }
}
