//! Floor of corelet mode: a child process (this binary, `busbar bench --child echo`) that
//! echoes length-prefixed frames from its stdin to its stdout.
//!
//! A frame is a u32 big-endian length and the body, as on busbar's corelet channel. Both sides
//! keep one buffer and read what is there, so a small frame costs one `write` and one `read`
//! on each side.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use crate::bench::Error;

/// Bytes read per `read` call.
const CHUNK: usize = 64 * 1024;

/// A running echo child and the parent's ends of its pipes.
pub(in crate::bench) struct EchoChild {
    child: Child,
    to_child: Option<ChildStdin>,
    from_child: ChildStdout,
    reply: Vec<u8>,
    chunk: Vec<u8>,
}

impl EchoChild {
    pub(in crate::bench) fn spawn() -> Result<EchoChild, Error> {
        let mut child =
            crate::bench::child_command("echo", &[])?.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let to_child = child.stdin.take().ok_or("the echo child has no stdin")?;
        let from_child = child.stdout.take().ok_or("the echo child has no stdout")?;
        Ok(EchoChild {
            child,
            to_child: Some(to_child),
            from_child,
            reply: Vec::new(),
            chunk: vec![0; CHUNK],
        })
    }

    /// Sends `frame` (length prefix included) and waits for it to come back.
    pub(in crate::bench) fn round_trip(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.to_child.as_mut().ok_or("the echo child's stdin is closed")?.write_all(frame)?;
        if !read_frame(&mut self.from_child, &mut self.reply, &mut self.chunk)? {
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
fn read_frame(reader: &mut impl Read, frame: &mut Vec<u8>, chunk: &mut [u8]) -> io::Result<bool> {
    frame.clear();
    loop {
        if let Some(prefix) = frame.first_chunk::<4>() {
            let len = 4 + u32::from_be_bytes(*prefix) as usize;
            if frame.len() >= len {
                return Ok(true);
            }
        }
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
