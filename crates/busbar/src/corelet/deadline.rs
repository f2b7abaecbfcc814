//! A socket view whose reads and writes give up at a fixed instant.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Borrows a stream so that every read and write returns by `deadline`.
///
/// Before each system call the remaining time is installed as the socket's receive or send
/// timeout, so one frame made of several reads still ends at the same instant instead of
/// restarting a timeout per read. Past the deadline, calls fail with
/// [`io::ErrorKind::TimedOut`] without touching the socket. `None` waits without limit.
///
/// Writes use `MSG_NOSIGNAL`: a peer that died makes them fail with `EPIPE` instead of
/// raising `SIGPIPE`, which would kill a host process that did not ignore it.
#[derive(Debug)]
pub(crate) struct DeadlineStream<'a> {
    /// The channel to the peer.
    stream: &'a UnixStream,
    /// When reads and writes stop waiting; `None` for never.
    deadline: Option<Instant>,
}

impl<'a> DeadlineStream<'a> {
    /// Wraps `stream` with a deadline.
    pub(crate) fn new(stream: &'a UnixStream, deadline: Option<Instant>) -> Self {
        DeadlineStream { stream, deadline }
    }

    /// Returns the time left, `Ok(None)` for no limit, or a `TimedOut` error if none is left.
    fn remaining(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                // A zero timeout means "block forever" to the socket API (std rejects it), so
                // an exhausted deadline must be reported here rather than passed down.
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(io::ErrorKind::TimedOut.into()),
            },
        }
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(self.remaining()?)?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

impl Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(self.remaining()?)?;
        // SAFETY: the descriptor is open for the lifetime of the borrowed stream, and the
        // pointer and length describe the initialised bytes of `buf`, which the kernel only
        // reads.
        let sent = unsafe {
            libc::send(
                self.stream.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        // `send` returns -1 on error and otherwise a count no larger than `buf.len()`.
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
