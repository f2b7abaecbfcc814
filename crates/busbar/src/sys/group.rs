//! Watching and stopping a child together with its process group.
//!
//! The rule that keeps signals from reaching strangers: a group is only ever signalled while
//! its leader is still unreaped. Until it is reaped (even as a zombie) the leader's pid, and with
//! it the group id, cannot be reused. So these functions look at the leader with
//! `waitid(WNOWAIT)`, which leaves it waitable, and reap it only after the last signal.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// Where the leader of a child's process group stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leader {
    /// Still running.
    Running,
    /// Exited but not reaped: its group may still be signalled.
    Exited,
    /// Already reaped, by `Child::wait` or because SIGCHLD is ignored: its pid may belong to
    /// someone else by now, so it must not be signalled.
    Reaped,
}

/// Returns `true` if `child` has exited, without reaping it.
///
/// Unlike [`Child::try_wait`] this leaves the child waitable, so [`signal_group`] and
/// [`terminate_group`] stay safe to call afterwards. A child already reaped counts as exited.
pub(crate) fn has_exited(child: &Child) -> io::Result<bool> {
    Ok(leader(child.id())? != Leader::Running)
}

/// [`has_exited`] for our child `pid`, for tests that know only its pid.
#[cfg(test)]
pub(crate) fn pid_has_exited(pid: u32) -> io::Result<bool> {
    Ok(leader(pid)? != Leader::Running)
}

/// Looks at the leader with `waitid(WNOWAIT)`, which leaves it waitable.
fn leader(pid: libc::id_t) -> io::Result<Leader> {
    // SAFETY: siginfo_t is plain old data for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid writes only to `info`, a valid, exclusively borrowed siginfo_t. WNOWAIT
        // leaves the child waitable, so std's own bookkeeping in `Child` stays correct.
        let rc = unsafe {
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        if rc == 0 {
            break;
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(Leader::Reaped),
            _ => return Err(error),
        }
    }
    // With WNOHANG, waitid succeeds and leaves `si_pid` zero when the child has not exited.
    // SAFETY: `info` was zeroed and then filled in by a successful waitid, so the pid field
    // holds either zero or the child's pid.
    if unsafe { info.si_pid() } == 0 {
        Ok(Leader::Running)
    } else {
        Ok(Leader::Exited)
    }
}

/// Sends `signal` to every process in `child`'s process group.
///
/// The child should have been spawned with [`configure_child`](super::configure_child), which
/// makes it a group leader; one that is not gets the signal alone. A group with no members left
/// is not an error.
///
/// Nothing is sent once the child has been reaped, since its pid may name a stranger by then.
/// That check cannot see a pid reused by *another child of this process*, so callers must not
/// reap the child themselves (with `Child::wait` or `try_wait`) before they are done signalling:
/// watch it with [`has_exited`] and let [`terminate_group`] reap it.
pub(crate) fn signal_group(child: &Child, signal: libc::c_int) -> io::Result<()> {
    signal_group_of(child.id(), signal)
}

/// [`signal_group`] for our child `pid`, for a thread that holds its pid but not its `Child`.
/// The same rule holds: whoever reaps the child must not do so while this may run.
pub(crate) fn signal_group_of(child_pid: u32, signal: libc::c_int) -> io::Result<()> {
    if leader(child_pid)? == Leader::Reaped {
        return Ok(());
    }
    // Linux pids stay below 2^22, so this only fails on a corrupt pid.
    let pid = libc::pid_t::try_from(child_pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "child pid out of range"))?;
    // SAFETY: killpg takes plain integers and touches no memory. The group id is the pid of a
    // child we have not reaped, so it cannot name anyone else's group.
    if unsafe { libc::killpg(pid, signal) } == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::ESRCH) {
        return Err(error);
    }
    // No group has that id: the child did not get a group of its own. Signal just the child,
    // whose pid is still reserved because it has not been reaped.
    // SAFETY: kill takes plain integers and touches no memory.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ESRCH) => Ok(()),
        _ => Err(error),
    }
}

/// Stops `child` and its whole process group, reaps it and returns its status.
///
/// Sends SIGTERM to the group, waits up to `grace` for the leader to exit, then sends SIGKILL to
/// the group (which also removes anything the leader left behind) and reaps the leader. A leader
/// that has already exited skips the SIGTERM and the wait. A child that was already reaped is
/// not signalled at all; its recorded status is returned.
///
/// The child should come from [`configure_child`](super::configure_child); see
/// [`signal_group`] for what happens otherwise.
///
/// # Errors
///
/// Fails if the group cannot be signalled (for instance, a member became privileged with a
/// set-user-ID program). The leader is then left unreaped rather than waited for, because
/// waiting could last forever.
pub(crate) fn terminate_group(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    match leader(child.id())? {
        Leader::Reaped => return child.wait(),
        Leader::Exited => {}
        Leader::Running => {
            signal_group(child, libc::SIGTERM)?;
            wait_for_exit(child, grace)?;
        }
    }
    signal_group(child, libc::SIGKILL)?;
    // The leader has exited or has just been sent SIGKILL, which cannot be caught or ignored,
    // so this wait ends. (A process stuck in uninterruptible sleep delays it; nothing in user
    // space can help with that.)
    child.wait()
}

/// Waits until `child` has exited (without reaping it) or `grace` has passed; returns whether
/// it has exited.
pub(crate) fn wait_for_exit(child: &Child, grace: Duration) -> io::Result<bool> {
    let start = Instant::now();
    // Short first naps catch the common, quick exit; longer ones later keep a slow shutdown
    // from costing much CPU.
    let mut nap = Duration::from_millis(1);
    while leader(child.id())? == Leader::Running {
        let elapsed = start.elapsed();
        if elapsed >= grace {
            break;
        }
        thread::sleep(nap.min(grace - elapsed));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    has_exited(child)
}

/// Opens a pidfd for `child`: a descriptor that polls readable once the child has exited.
///
/// Returns `None` where pidfds are unavailable (Linux before 5.3, other unixes, or a seccomp
/// filter that forbids them); callers then fall back to polling [`has_exited`] on a timer. The
/// descriptor is close-on-exec, as pidfd_open always makes it.
pub(crate) fn pidfd_open(child: &Child) -> Option<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let pid = libc::pid_t::try_from(child.id()).ok()?;
        // SAFETY: pidfd_open takes a pid and flags by value and touches no memory. The child is
        // unreaped (callers open this right after spawning), so the pid is still its own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
        // SAFETY: pidfd_open just returned this descriptor and nothing else owns it.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = child;
        None
    }
}
