//! One end of the channel between parent and child (two pipes, see [`super::duplex`]): frames
//! in and out, within deadlines.
//!
//! Round-trip latency is the point of a reused child, so the common case is kept to few
//! system calls: the parent sends a frame with one `write` and usually receives the whole
//! reply with one `read` into a buffer kept across frames; the child, which never needs a
//! deadline, answers with one `write`. Either side, before it sleeps waiting for the other (in
//! `poll`), watches its pipe for a moment (see [`crate::watch`]): on a virtual machine, a
//! process asleep on an idle vCPU wakes tens of microseconds late.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::duplex::{Cut, Duplex};
use super::frame::{self, FrameError, Parsed, HEADER_LEN};
use crate::sys;
use crate::watch::{self, WatchHabit};

/// Size of the receive buffer; larger frames are read straight into their own allocation.
const BUFFER_LEN: usize = 64 << 10;

/// How much of a large frame's body is made room for (and zeroed) before each read: bytes
/// the peer has not sent yet take no memory.
const LARGE_READ: usize = 1 << 20;

/// A framed, buffered end of the corelet channel.
///
/// Both read ends are non-blocking, so that either side can watch for bytes and then wait in
/// `poll` (the parent until a deadline). The parent's write end is non-blocking too, so that a
/// full pipe is waited on until the deadline; the child's blocks, as it never has a deadline.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The pipes.
    pipes: Duplex,
    /// Ends the parent's waits from another thread (`kill_all`); `None` in a child.
    cut: Option<Arc<Cut>>,
    /// Largest frame body accepted in either direction.
    limit: u32,
    /// Received bytes; `buf[start..end]` is not consumed yet. Always `BUFFER_LEN` long and
    /// initialised, so reads need no zeroing.
    buf: Box<[u8]>,
    /// Start of the unconsumed bytes.
    start: usize,
    /// End of the received bytes.
    end: usize,
    /// Whether this end watches for the peer's frames before it sleeps at all.
    watches: bool,
    /// Whether watching for the peer's frames has paid off lately (see [`WatchHabit`]).
    habit: WatchHabit,
}

impl Channel {
    /// Wraps the parent's end, making it non-blocking so that reads and writes obey deadlines;
    /// `cut` ends its waits from another thread.
    pub(crate) fn parent(pipes: Duplex, limit: u32, cut: Arc<Cut>) -> io::Result<Self> {
        sys::set_nonblocking(pipes.read.as_fd())?;
        sys::set_nonblocking(pipes.write.as_fd())?;
        Ok(Self::new(pipes, Some(cut), limit))
    }

    /// Wraps the child's end, which must not be given deadlines.
    ///
    /// A child under a CPU-time limit does not watch for requests: the time spent watching
    /// would count against `RLIMIT_CPU`, and the pool retires a child at half of its budget.
    pub(crate) fn child(pipes: Duplex, limit: u32) -> io::Result<Self> {
        sys::set_nonblocking(pipes.read.as_fd())?;
        let mut channel = Self::new(pipes, None, limit);
        channel.watches = !sys::cpu_time_limited();
        Ok(channel)
    }

    /// Builds a channel with an empty buffer.
    fn new(pipes: Duplex, cut: Option<Arc<Cut>>, limit: u32) -> Self {
        Channel {
            pipes,
            cut,
            limit,
            buf: vec![0; BUFFER_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            watches: true,
            habit: WatchHabit::default(),
        }
    }

    /// Returns the frame limit.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Returns the write end, with which other threads can send frames (a child's
    /// publications; see [`send_blocking`]).
    pub(crate) fn writer(&self) -> Arc<File> {
        Arc::clone(&self.pipes.write)
    }

    /// Returns `true` once the parent's waits have been cut (`kill_all`).
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.as_deref().is_some_and(Cut::is_cut)
    }

    /// Returns how many bytes this end wrote that the peer has not read, if it can tell (the
    /// parent's end can): all of a request still unread means it never reached the child.
    pub(crate) fn unread(&self) -> Option<usize> {
        self.pipes.unread()
    }

    /// Reads the next frame's body, waiting until `deadline` at most.
    ///
    /// A frame that fits the receive buffer is lent from it, without a copy; a larger one
    /// comes in an allocation of its own. Returns [`FrameError::Closed`] if the channel ends
    /// between frames and [`FrameError::Truncated`] if it ends inside one.
    pub(crate) fn read_frame(&mut self, deadline: Option<Instant>) -> Result<Cow<'_, [u8]>, FrameError> {
        loop {
            let frame_len = match frame::parse(&self.buf[self.start..self.end], self.limit)? {
                Parsed::Complete { body_len } => {
                    let body = self.start + HEADER_LEN..self.start + HEADER_LEN + body_len;
                    // The bytes stay in place until the next receive, which the borrow of
                    // `self` by the returned slice rules out while it lives.
                    self.consume(HEADER_LEN + body_len);
                    return Ok(Cow::Borrowed(&self.buf[body]));
                }
                Parsed::Incomplete { frame_len } => frame_len,
            };
            if frame_len > self.buf.len() {
                return self.read_large(frame_len, deadline).map(Cow::Owned);
            }
            if self.start + frame_len > self.buf.len() {
                // Move the partial frame to the front so that the rest fits behind it.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let received = self.receive(self.end, deadline)?;
            if received == 0 {
                return Err(self.ended(frame_len));
            }
            self.end += received;
        }
    }

    /// Sends a frame sealed by [`frame::seal`], waiting until `deadline` at most.
    ///
    /// A peer found gone before the first byte of the frame left is [`FrameError::Closed`]: the
    /// frame was not delivered at all. (The parent's outgoing pipe always has a reader, its own
    /// spare end, so a write never raises `SIGPIPE`; a dead child shows as a hang-up of the
    /// incoming pipe, which a full outgoing pipe is waited on beside.)
    pub(crate) fn write_frame(&mut self, sealed: &[u8], deadline: Option<Instant>) -> Result<(), FrameError> {
        let Channel { pipes, cut, .. } = self;
        let wait_writable = || {
            let hang_up = pipes.read.as_raw_fd();
            wait(pipes.write.as_raw_fd(), libc::POLLOUT, deadline, cut.as_deref(), Some(hang_up))
        };
        // A frame larger than the pipe holds is written in parts: a child found gone after the
        // first part but before reading any of it was not delivered anything either.
        let nothing_read = |sent| pipes.unread() == Some(sent);
        send_all(&pipes.write, sealed, wait_writable, nothing_read)
    }

    /// Reads a frame too large for the buffer into an allocation of its own.
    ///
    /// The body grows as bytes arrive rather than all at once: a header is only a claim, and a
    /// peer sending garbage could otherwise make this commit up to the frame limit at once.
    /// The address space is reserved up front, fallibly: an allocation that cannot be had is
    /// an I/O error, not an abort of the whole process.
    fn read_large(&mut self, frame_len: usize, deadline: Option<Instant>) -> Result<Vec<u8>, FrameError> {
        let body_len = frame_len - HEADER_LEN;
        let mut body = Vec::new();
        body.try_reserve_exact(body_len).map_err(|error| {
            FrameError::Io(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("cannot hold a frame of {frame_len} bytes: {error}"),
            ))
        })?;
        body.extend_from_slice(&self.buf[self.start + HEADER_LEN..self.end]);
        self.start = 0;
        self.end = 0;
        while body.len() < body_len {
            let filled = body.len();
            body.resize((filled + LARGE_READ).min(body_len), 0);
            let received = read_some(
                &self.pipes.read,
                self.cut.as_deref(),
                &mut body[filled..],
                deadline,
                self.watches.then_some(&mut self.habit),
            )?;
            body.truncate(filled + received);
            if received == 0 {
                return Err(FrameError::Truncated {
                    expected: frame_len as u64,
                    received: (HEADER_LEN + filled) as u64,
                });
            }
        }
        Ok(body)
    }

    /// Receives into the buffer from `at`; returns the number of bytes, 0 at end-of-file.
    fn receive(&mut self, at: usize, deadline: Option<Instant>) -> Result<usize, FrameError> {
        read_some(
            &self.pipes.read,
            self.cut.as_deref(),
            &mut self.buf[at..],
            deadline,
            self.watches.then_some(&mut self.habit),
        )
    }

    /// Marks `len` buffered bytes as consumed.
    fn consume(&mut self, len: usize) {
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The error for an end-of-file while waiting for a frame of `frame_len` bytes.
    fn ended(&self, frame_len: usize) -> FrameError {
        let received = self.end - self.start;
        if received == 0 {
            FrameError::Closed
        } else {
            FrameError::Truncated { expected: frame_len as u64, received: received as u64 }
        }
    }
}

/// Reads at least one byte into `dst`, waiting until `deadline`; 0 means end-of-file.
fn read_some(
    read: &File,
    cut: Option<&Cut>,
    dst: &mut [u8],
    deadline: Option<Instant>,
    habit: Option<&mut WatchHabit>,
) -> Result<usize, FrameError> {
    if let Some(watched) = habit.and_then(|habit| watch_for_bytes(read, dst, deadline, habit)) {
        return watched;
    }
    loop {
        // Waiting first saves a read that would fail with EAGAIN: when the parent reads, the
        // child has usually not answered yet.
        wait(read.as_raw_fd(), libc::POLLIN, deadline, cut, None)?;
        if let Some(n) = read_now(read, dst)? {
            return Ok(n);
        }
    }
}

/// Watches `read` for bytes about to arrive, for [`watch::WATCH_FOR`] at most and never
/// past `deadline`; `None` if none came (the caller then sleeps until they do).
fn watch_for_bytes(
    read: &File,
    dst: &mut [u8],
    deadline: Option<Instant>,
    habit: &mut WatchHabit,
) -> Option<Result<usize, FrameError>> {
    // One clock read for the check and the watch's window.
    let now = Instant::now();
    if deadline.is_some_and(|deadline| deadline.saturating_duration_since(now) < watch::WATCH_FOR) {
        return None;
    }
    let mut watched = None;
    habit.watch_from(now, || {
        watched = read_now(read, dst).transpose();
        watched.is_some()
    });
    watched
}

/// Reads what is there without waiting (the read end is non-blocking): `None` if nothing is.
fn read_now(mut read: &File, dst: &mut [u8]) -> Result<Option<usize>, FrameError> {
    match read.read(dst) {
        Ok(n) => Ok(Some(n)),
        Err(error) => match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(FrameError::Io(error)),
        },
    }
}

/// Waits with `poll` until `fd` is ready for `events` or has hung up, `deadline` passes
/// ([`FrameError::Timeout`]), `cut` is cut ([`FrameError::Cut`]) or `hang_up` reports that
/// its peer has gone ([`FrameError::Closed`]).
fn wait(
    fd: libc::c_int,
    events: libc::c_short,
    deadline: Option<Instant>,
    cut: Option<&Cut>,
    hang_up: Option<libc::c_int>,
) -> Result<(), FrameError> {
    // Unused entries have a negative descriptor, which poll skips.
    let mut fds = [
        libc::pollfd { fd, events, revents: 0 },
        libc::pollfd { fd: cut.map_or(-1, |cut| cut.fd().as_raw_fd()), events: libc::POLLIN, revents: 0 },
        // Asks for no event: poll reports a hang-up (or error) on any descriptor regardless.
        libc::pollfd { fd: hang_up.unwrap_or(-1), events: 0, revents: 0 },
    ];
    loop {
        if cut.is_some_and(Cut::is_cut) {
            return Err(FrameError::Cut);
        }
        // Without a deadline, wait in the longest steps poll allows (about 24 days).
        let timeout = match deadline {
            None => Duration::MAX,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(FrameError::Timeout);
                }
                left
            }
        };
        // Nothing ready means the time ran out or a signal interrupted; the loop re-checks.
        if sys::poll(&mut fds, timeout).map_err(FrameError::Io)? == 0 {
            continue;
        }
        if fds[1].revents != 0 {
            return Err(FrameError::Cut);
        }
        // Ready, hung up or in error: the next read or write tells which.
        if fds[0].revents != 0 {
            return Ok(());
        }
        if fds[2].revents != 0 {
            return Err(FrameError::Closed);
        }
    }
}

/// Sends a sealed frame on the child's blocking write end (for publications from any thread).
pub(crate) fn send_blocking(write: &File, sealed: &[u8]) -> Result<(), FrameError> {
    // A blocking descriptor never reports `WouldBlock`; if it somehow did, trying again is
    // what blocking means.
    send_all(write, sealed, || Ok(()), |_| false)
}

/// Writes all of `sealed`, calling `wait_writable` when the pipe is full.
///
/// A peer gone before the first byte left, or before it read any of the `n` bytes that did
/// (`nothing_read(n)`), is [`FrameError::Closed`]: the frame was not delivered at all. Gone
/// later, an I/O error.
fn send_all(
    mut write: &File,
    sealed: &[u8],
    mut wait_writable: impl FnMut() -> Result<(), FrameError>,
    nothing_read: impl Fn(usize) -> bool,
) -> Result<(), FrameError> {
    let mut sent = 0;
    while sent < sealed.len() {
        let gone = match write.write(&sealed[sent..]) {
            Ok(n) => {
                sent += n;
                continue;
            }
            Err(error) => match error.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => match wait_writable() {
                    Ok(()) => continue,
                    Err(FrameError::Closed) => io::Error::from(io::ErrorKind::BrokenPipe),
                    Err(other) => return Err(other),
                },
                io::ErrorKind::BrokenPipe => error,
                _ => return Err(FrameError::Io(error)),
            },
        };
        return Err(if sent == 0 || nothing_read(sent) { FrameError::Closed } else { FrameError::Io(gone) });
    }
    Ok(())
}
