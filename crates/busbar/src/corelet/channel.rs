//! One end of the socketpair between parent and child: frames in and out, within deadlines.
//!
//! Round-trip latency is the point of a reused child, so the common case is kept to few
//! system calls: the parent sends a frame with one `send` and usually receives the whole reply
//! with one `recv` into a buffer kept across frames; the child, which never needs a deadline,
//! answers with `send`. Either side, before it sleeps waiting for the other (in `poll` or a
//! blocking `recv`), watches the socket for a moment (see [`crate::watch`]): on a virtual
//! machine, a process asleep on an idle vCPU wakes tens of microseconds late.

use std::borrow::Cow;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{self, FrameError, Parsed, HEADER_LEN};
use crate::sys;
use crate::watch::{self, WatchHabit};

/// Size of the receive buffer; larger frames are read straight into their own allocation.
const BUFFER_LEN: usize = 64 << 10;

/// How much of a large frame's body is made room for (and zeroed) before each read: bytes
/// the peer has not sent yet take no memory.
const LARGE_READ: usize = 1 << 20;

/// A framed, buffered end of the corelet socketpair.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The socket; shared with whoever may need to cut the channel from another thread.
    stream: Arc<UnixStream>,
    /// Whether the socket is non-blocking: the parent's is, so that it can wait with `poll`
    /// until a deadline; the child's is not, and it never passes a deadline.
    nonblocking: bool,
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
    /// Wraps the parent's end, making it non-blocking so that reads and writes obey deadlines.
    pub(crate) fn parent(stream: UnixStream, limit: u32) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self::new(stream, true, limit))
    }

    /// Wraps the child's end, which blocks and must not be given deadlines.
    ///
    /// A child under a CPU-time limit does not watch for requests: the time spent watching
    /// would count against `RLIMIT_CPU`, and the pool retires a child at half of its budget.
    pub(crate) fn child(stream: UnixStream, limit: u32) -> Self {
        let mut channel = Self::new(stream, false, limit);
        channel.watches = !sys::cpu_time_limited();
        channel
    }

    /// Builds a channel with an empty buffer.
    fn new(stream: UnixStream, nonblocking: bool, limit: u32) -> Self {
        Channel {
            stream: Arc::new(stream),
            nonblocking,
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

    /// Returns the socket, with which another thread can `shutdown` the channel: the peer
    /// then sees end-of-file and a pending read here returns at once.
    pub(crate) fn socket(&self) -> Arc<UnixStream> {
        Arc::clone(&self.stream)
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
    /// Uses `MSG_NOSIGNAL`: a peer that died makes the send fail with `EPIPE` instead of
    /// raising `SIGPIPE`, which would kill a host process that did not ignore it. A peer found
    /// gone before the first byte of the frame left is [`FrameError::Closed`]: the frame was
    /// not delivered at all.
    pub(crate) fn write_frame(&mut self, sealed: &[u8], deadline: Option<Instant>) -> Result<(), FrameError> {
        send_all(&self.stream, sealed, |events| self.wait(events, deadline))
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
                &self.stream,
                self.nonblocking,
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
            &self.stream,
            self.nonblocking,
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

    /// Waits until the socket is ready for `events` or `deadline` passes.
    fn wait(&self, events: libc::c_short, deadline: Option<Instant>) -> Result<(), FrameError> {
        wait(&self.stream, events, deadline)
    }
}

/// Reads at least one byte into `dst`, waiting until `deadline`; 0 means end-of-file.
fn read_some(
    stream: &UnixStream,
    nonblocking: bool,
    dst: &mut [u8],
    deadline: Option<Instant>,
    habit: Option<&mut WatchHabit>,
) -> Result<usize, FrameError> {
    debug_assert!(nonblocking || deadline.is_none(), "a blocking channel cannot honour a deadline");
    if let Some(watched) = habit.and_then(|habit| watch_for_bytes(stream, dst, deadline, habit)) {
        return watched;
    }
    loop {
        if nonblocking {
            // Waiting first saves a read that would fail with EAGAIN: when the parent reads,
            // the child has usually not answered yet.
            wait(stream, libc::POLLIN, deadline)?;
        }
        let mut reader = stream;
        match reader.read(dst) {
            Ok(n) => return Ok(n),
            Err(error) => match error.kind() {
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => {}
                _ => return Err(FrameError::Io(error)),
            },
        }
    }
}

/// Watches `stream` for bytes about to arrive, for [`watch::WATCH_FOR`] at most and never
/// past `deadline`; `None` if none came (the caller then sleeps until they do).
fn watch_for_bytes(
    stream: &UnixStream,
    dst: &mut [u8],
    deadline: Option<Instant>,
    habit: &mut WatchHabit,
) -> Option<Result<usize, FrameError>> {
    if deadline.is_some_and(|deadline| deadline.saturating_duration_since(Instant::now()) < watch::WATCH_FOR)
    {
        return None;
    }
    let mut watched = None;
    habit.watch(|| {
        watched = receive_now(stream, dst).transpose();
        watched.is_some()
    });
    watched
}

/// Receives what is there without waiting: `None` if nothing is.
///
/// `MSG_DONTWAIT` makes this one call non-blocking, so the child's blocking socket can be
/// watched too.
fn receive_now(stream: &UnixStream, dst: &mut [u8]) -> Result<Option<usize>, FrameError> {
    // SAFETY: the descriptor is open while `stream` is borrowed, and the pointer and length
    // describe `dst`, which the kernel writes at most `dst.len()` bytes into.
    let n = unsafe { libc::recv(stream.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len(), libc::MSG_DONTWAIT) };
    match usize::try_from(n) {
        Ok(n) => Ok(Some(n)),
        Err(_) => {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(FrameError::Io(error)),
            }
        }
    }
}

/// Waits with `poll` until `stream` is ready for `events`, has hung up, or `deadline` passes.
fn wait(stream: &UnixStream, events: libc::c_short, deadline: Option<Instant>) -> Result<(), FrameError> {
    loop {
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
        let mut fds = [libc::pollfd { fd: stream.as_raw_fd(), events, revents: 0 }];
        // Ready, hung up or in error: the next read or write tells which. Nothing ready means
        // the time ran out or a signal interrupted; the loop re-checks the deadline.
        if sys::poll(&mut fds, timeout).map_err(FrameError::Io)? > 0 {
            return Ok(());
        }
    }
}

/// Sends a sealed frame on the child's blocking socket (for publications from any thread).
pub(crate) fn send_blocking(stream: &UnixStream, sealed: &[u8]) -> Result<(), FrameError> {
    // A blocking socket never reports `WouldBlock`; if it somehow did, waiting for writability
    // without a deadline is what blocking means.
    send_all(stream, sealed, |_| Ok(()))
}

/// Sends all of `sealed` with `MSG_NOSIGNAL`, calling `wait_writable` when the socket is full.
fn send_all(
    stream: &UnixStream,
    sealed: &[u8],
    mut wait_writable: impl FnMut(libc::c_short) -> Result<(), FrameError>,
) -> Result<(), FrameError> {
    let mut sent = 0;
    while sent < sealed.len() {
        let rest = &sealed[sent..];
        // SAFETY: the descriptor is open while `stream` is borrowed, and the pointer and length
        // describe the initialised bytes of `rest`, which the kernel only reads.
        let n =
            unsafe { libc::send(stream.as_raw_fd(), rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        match usize::try_from(n) {
            Ok(n) => sent += n,
            Err(_) => {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock => wait_writable(libc::POLLOUT)?,
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset if sent == 0 => {
                        return Err(FrameError::Closed)
                    }
                    _ => return Err(FrameError::Io(error)),
                }
            }
        }
    }
    Ok(())
}
