//! What the checks look at in `/proc`, and waiting for a process to end without sleeping.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The fields of `/proc/<pid>/stat` the checks need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) pid: u32,
    /// `R`, `S`, `Z`, …
    pub(crate) state: char,
    pub(crate) ppid: u32,
    pub(crate) pgrp: u32,
}

impl Stat {
    pub(crate) fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Reads `/proc/<pid>/stat`; `None` if the process is gone.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": the comm may contain spaces and parentheses.
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { pid, state, ppid, pgrp })
}

/// Every process visible in `/proc`.
pub(crate) fn processes() -> Vec<Stat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).filter_map(stat).collect()
}

/// Children of this process that have exited but were not reaped.
pub(crate) fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    processes().into_iter().filter(|p| p.ppid == me && p.is_zombie()).map(|p| p.pid).collect()
}

/// Processes of group `pgrp` that have not exited.
pub(crate) fn live_group_members(pgrp: u32) -> Vec<u32> {
    processes().into_iter().filter(|p| p.pgrp == pgrp && !p.is_zombie()).map(|p| p.pid).collect()
}

/// Number of descriptors this process has open (the listing's own included, as always).
pub(crate) fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").map(Iterator::count).unwrap_or_default()
}

/// Waits until process `pid` has ended or `bound` has passed; returns `true` if it ended.
///
/// A process that is gone, or a zombie waiting to be reaped, has ended. Waits on a pidfd, which
/// becomes readable when the process exits, so there is no polling and no sleeping.
pub(crate) fn wait_gone(pid: u32, bound: Duration) -> bool {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return true,
        Err(error) => panic!("pidfd_open({pid}) failed: {error}"),
    };
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let millis = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call, and the
        // descriptor in it is owned by `fd`, which outlives the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) };
        if ready > 0 {
            return true;
        }
        if left.is_zero() {
            return false;
        }
        // Interrupted by a signal, or the time ran out: the loop re-checks the deadline.
    }
}

/// Opens a descriptor that refers to process `pid` (Linux 5.3 and later).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes plain integers and touches no memory.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends SIGKILL to process `pid`.
pub(crate) fn kill(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill takes plain integers and touches no memory.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
