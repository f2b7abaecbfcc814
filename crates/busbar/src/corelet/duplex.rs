//! The descriptors under a corelet channel: two pipes, one each way, and the cut that ends a
//! parent's waits from another thread.
//!
//! Pipes rather than a socketpair, for latency: the same request-sized echo took about 1.5× as
//! long over a Unix socketpair as over two pipes (`busbar bench` measured both until this
//! change; `cargo bench -p busbar --bench corelet` still does), and a corelet round trip is
//! mostly that echo. What the socket gave for free is
//! rebuilt here:
//!
//! - *No `SIGPIPE`.* A write to a pipe whose reader is gone raises `SIGPIPE`, which a library
//!   must not ignore on the application's behalf. The parent keeps a spare read end of its
//!   outgoing pipe, so that pipe always has a reader and a write to it never fails that way; a
//!   dead child shows as end-of-file (or hang-up) on the incoming pipe, whose only writer it
//!   was.
//! - *A request that never reached a dead child* is told apart from one that did by the
//!   bytes still unread in the outgoing pipe ([`Duplex::unread`]), which the spare end can
//!   count.
//! - *Ending a wait from another thread* (`kill_all`) was `shutdown(2)` on the socket; it is
//!   now a [`Cut`], an eventfd that every parent wait polls beside the pipe.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One end of a corelet channel: where it reads the peer's frames and where it writes its own.
#[derive(Debug)]
pub(crate) struct Duplex {
    /// The read end of the pipe the peer writes.
    pub(crate) read: File,
    /// The write end of the pipe the peer reads; shared, so that a child's handler threads can
    /// publish through it (see `ChildLink`).
    pub(crate) write: Arc<File>,
    /// The parent's spare read end of its own outgoing pipe (see the module docs); `None` on
    /// the child's end.
    spare_reader: Option<File>,
}

impl Duplex {
    /// Makes the two ends of a fresh channel, `(parent, child)`; every descriptor is
    /// close-on-exec.
    pub(crate) fn pair() -> io::Result<(Duplex, Duplex)> {
        let (to_child_read, to_child_write) = pipe()?;
        let (to_parent_read, to_parent_write) = pipe()?;
        let spare_reader = Some(to_child_read.try_clone()?);
        let parent = Duplex { read: to_parent_read, write: Arc::new(to_child_write), spare_reader };
        let child = Duplex { read: to_child_read, write: Arc::new(to_parent_write), spare_reader: None };
        Ok((parent, child))
    }

    /// Wraps descriptors inherited from the parent (in a child).
    pub(crate) fn from_parts(read: File, write: File) -> Self {
        Duplex { read, write: Arc::new(write), spare_reader: None }
    }

    /// Takes the end apart into its read and write descriptors, to pass them to a child.
    pub(crate) fn into_parts(self) -> io::Result<(File, File)> {
        let write = Arc::try_unwrap(self.write)
            .map_err(|_| io::Error::other("the channel's write end is still shared"))?;
        Ok((self.read, write))
    }

    /// Returns how many bytes written by this end the peer has not read yet, if this end can
    /// tell (the parent's can).
    pub(crate) fn unread(&self) -> Option<usize> {
        let spare = self.spare_reader.as_ref()?;
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int to the pointer it is given, here a live local; the
        // descriptor is open while `spare` is borrowed.
        let status = unsafe { libc::ioctl(spare.as_raw_fd(), libc::FIONREAD, &mut unread) };
        if status != 0 {
            return None;
        }
        usize::try_from(unread).ok()
    }
}

/// Makes a pipe, both ends close-on-exec and above the standard streams: `(read, write)`.
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given, which has room for them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(above_stdio(read)?), File::from(above_stdio(write)?)))
}

/// Moves a descriptor numbered 0, 1 or 2 above the standard streams.
///
/// A process running with a standard stream closed (a daemon started with `>&-`) hands out
/// those numbers to new descriptors: the application's prints would then go into a request,
/// its reads of stdin would take a child's replies, and a child's `Stdio` setup would
/// overwrite the channel.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // std duplicates with `F_DUPFD_CLOEXEC` to the lowest free number of at least 3.
    fd.try_clone()
}

/// Ends every wait of the parent's channels that share it, from any thread, for good.
///
/// An eventfd: once cut, it stays readable, so a wait that begins after the cut ends at once
/// too.
#[derive(Debug)]
pub(crate) struct Cut {
    fd: OwnedFd,
    cut: AtomicBool,
}

impl Cut {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes plain integers and returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })?;
        Ok(Cut { fd, cut: AtomicBool::new(false) })
    }

    /// Ends the waits, now and later.
    pub(crate) fn cut(&self) {
        if self.cut.swap(true, Ordering::SeqCst) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live local to a descriptor open while `self` lives.
        // An eventfd write of 1 fails only if the counter would overflow, which one write
        // cannot make it do.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Returns `true` once [`cut`](Self::cut) has been called.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// The descriptor to poll: readable once cut.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
