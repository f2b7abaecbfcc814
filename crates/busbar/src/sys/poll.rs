//! Non-blocking descriptors and poll(2), for servicing a child's pipes from one thread.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Puts `fd` in non-blocking mode, so reads and writes return `WouldBlock` instead of waiting.
///
/// The flag belongs to the open file description, so it affects every duplicate of `fd` but not
/// the other end of a pipe: a child reading or writing its end still blocks normally.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_nonblocking_flag(fd, true)
}

/// Takes `fd` out of non-blocking mode (for a file opened non-blocking only so that opening it
/// could not wait, before a program inherits it).
pub(crate) fn set_blocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_nonblocking_flag(fd, false)
}

fn set_nonblocking_flag(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL on a descriptor that `BorrowedFd` guarantees open; touches no memory.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if nonblocking { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: F_SETFL with an integer argument on an open descriptor; touches no memory.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, wanted) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until one of `fds` is ready or `timeout` has passed; returns how many are ready.
///
/// The timeout is rounded up to whole milliseconds, so a caller waiting for an instant is not
/// woken just before it and made to spin. An interrupted wait (EINTR) counts as a timeout with
/// nothing ready: callers loop and recompute their deadlines anyway.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    let count = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `count` pollfd structs; poll reads
    // their `fd` and `events` fields and writes only their `revents` fields.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, millis) };
    if ready >= 0 {
        // Non-negative, and at most `fds.len()`, so the conversion cannot fail.
        return Ok(usize::try_from(ready).unwrap_or(0));
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::Interrupted {
        return Ok(0);
    }
    Err(error)
}
