//! The parent's ends of a child's standard streams, serviced from one thread with poll(2).
//!
//! One thread feeds stdin and drains stdout and stderr at once, so no order of blocking can
//! deadlock: a child that fills its stdout pipe before reading all of its stdin still gets both
//! served. All three ends are non-blocking; a readiness report only says that *some* progress is
//! possible.
//!
//! Writing to a pipe whose reader is gone raises SIGPIPE. Rust programs ignore SIGPIPE from the
//! start (so does Python), so the write fails with EPIPE instead and the feeder stops. busbar
//! relies on that and never touches the disposition; a host program that restored the default
//! would be killed by such a write.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::ChildStdin;
use std::time::Duration;

use super::output::Capture;
use crate::sys;

/// How much is read from a pipe at a time: the default capacity of a Linux pipe.
const CHUNK: usize = 64 * 1024;

/// How many chunks one readiness report may read from a pipe. A child that writes as fast as
/// the bus reads would otherwise keep it in one pipe forever, past deadlines and cancellation.
const CHUNKS_PER_WAKE: usize = 16;

/// The streams of one running child.
#[derive(Debug)]
pub(super) struct Pipes<'a> {
    /// Feeds stdin, until everything is written or the child closes its end.
    stdin: Option<Feeder<'a>>,
    /// Drains stdout.
    stdout: Drain,
    /// Drains stderr.
    stderr: Drain,
    /// Scratch space for reads, [`CHUNK`] bytes.
    buffer: Box<[u8]>,
}

/// Writes a byte string into a pipe.
#[derive(Debug)]
struct Feeder<'a> {
    /// The write end; dropping it tells the child there is no more input.
    pipe: File,
    /// What is left to write.
    rest: &'a [u8],
}

/// Reads a pipe to its end into a bounded capture.
#[derive(Debug)]
struct Drain {
    /// The read end, or `None` once it reached end of file (or was never piped).
    pipe: Option<File>,
    /// What was read.
    capture: Capture,
}

impl<'a> Pipes<'a> {
    /// Takes over the parent's ends of a child's pipes. `input` is written to stdin; each
    /// output keeps at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// Fails if a pipe cannot be made non-blocking.
    pub(super) fn new(
        stdin: Option<ChildStdin>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        input: &'a [u8],
        limit: usize,
    ) -> io::Result<Pipes<'a>> {
        let stdin = match stdin {
            Some(pipe) => Some(Feeder { pipe: non_blocking(pipe.into())?, rest: input }),
            None => None,
        };
        let drain = |pipe: Option<OwnedFd>| -> io::Result<Drain> {
            Ok(Drain { pipe: pipe.map(non_blocking).transpose()?, capture: Capture::new(limit) })
        };
        Ok(Pipes {
            stdin,
            stdout: drain(stdout)?,
            stderr: drain(stderr)?,
            // `vec![0; n]` allocates zeroed memory in one step, where growing a Vec to that
            // length would write every byte (slowly, in debug builds).
            buffer: vec![0; CHUNK].into_boxed_slice(),
        })
    }

    /// Returns `true` once the outputs reached end of file and stdin is closed.
    pub(super) fn is_done(&self) -> bool {
        self.stdin.is_none() && self.stdout.pipe.is_none() && self.stderr.pipe.is_none()
    }

    /// Waits up to `timeout` for a pipe or `exit` to become ready, then moves what data it can.
    ///
    /// `exit` is a descriptor that polls readable when the child exits (a pidfd), so that the
    /// wait ends then too. The caller checks for the exit itself.
    ///
    /// # Errors
    ///
    /// Fails only if poll(2) itself fails. A broken or failing pipe is closed and counts as
    /// finished, because nothing more can come through it.
    pub(super) fn pump(&mut self, exit: Option<BorrowedFd<'_>>, timeout: Duration) -> io::Result<()> {
        // At most four entries, in a fixed order: exit, stdin, stdout, stderr.
        let mut fds = Vec::with_capacity(4);
        let mut watch = |fd: Option<BorrowedFd<'_>>, events: libc::c_short| {
            fd.map(|fd| {
                fds.push(libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 });
                fds.len() - 1
            })
        };
        watch(exit, libc::POLLIN);
        let stdin_slot = watch(self.stdin.as_ref().map(|f| f.pipe.as_fd()), libc::POLLOUT);
        let stdout_slot = watch(self.stdout.fd(), libc::POLLIN);
        let stderr_slot = watch(self.stderr.fd(), libc::POLLIN);
        sys::poll(&mut fds, timeout)?;

        let ready = |slot: Option<usize>| slot.is_some_and(|slot| fds[slot].revents != 0);
        if ready(stdin_slot) {
            self.feed();
        }
        if ready(stdout_slot) {
            self.stdout.drain(&mut self.buffer);
        }
        if ready(stderr_slot) {
            self.stderr.drain(&mut self.buffer);
        }
        Ok(())
    }

    /// Writes as much of stdin as the pipe takes; closes it when done or when the child
    /// closed its end.
    fn feed(&mut self) {
        let Some(feeder) = &mut self.stdin else {
            return;
        };
        while !feeder.rest.is_empty() {
            match feeder.pipe.write(feeder.rest) {
                Ok(written) => feeder.rest = &feeder.rest[written..],
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // EPIPE: the child will not read any more, which is its right. Other errors
                // leave nothing to do either.
                Err(_) => break,
            }
        }
        self.stdin = None;
    }

    /// Gives back what stdout and stderr produced.
    pub(super) fn finish(self) -> (Capture, Capture) {
        (self.stdout.capture, self.stderr.capture)
    }
}

impl Drain {
    /// Returns the read end, if still open.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.pipe.as_ref().map(AsFd::as_fd)
    }

    /// Reads until the pipe is empty for now, or at its end (then closes it), or until
    /// [`CHUNKS_PER_WAKE`] chunks were read.
    fn drain(&mut self, buffer: &mut [u8]) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let mut chunks = 0;
        loop {
            match pipe.read(buffer) {
                Ok(0) => break,
                Ok(read) => {
                    self.capture.push(&buffer[..read]);
                    chunks += 1;
                    if chunks == CHUNKS_PER_WAKE {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // A read error on a pipe has no remedy; treat it as the end.
                Err(_) => break,
            }
        }
        self.pipe = None;
    }
}

/// Creates a pipe and returns its read and write ends, both close-on-exec.
///
/// Both ends block: the parent makes its own end non-blocking when [`Pipes`] takes it over,
/// and the child's end must keep blocking (the flag would be shared through the pipe's open
/// file description otherwise, since `O_NONBLOCK` given to pipe2 applies to both ends).
pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`, a valid, exclusively borrowed array of
    // two C ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes a pipe end non-blocking and wraps it for reading or writing.
fn non_blocking(fd: OwnedFd) -> io::Result<File> {
    sys::set_nonblocking(fd.as_fd())?;
    Ok(File::from(fd))
}
