//! Process group, resource limits and parent-death signal for child processes.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Resource limits and scheduling for a child process.
///
/// `None` leaves the inherited setting alone. Limits only ever tighten what the child inherits:
/// a value above the inherited hard limit is clamped to it, because raising a hard limit takes a
/// privilege the bus must not rely on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcessLimits {
    /// Size of the address space in bytes (`RLIMIT_AS`); allocations past it fail.
    pub(crate) address_space: Option<u64>,
    /// CPU time in seconds (`RLIMIT_CPU`). The child gets `SIGXCPU` when it has used them up,
    /// which names the cause in its exit status, and `SIGKILL` one second later if it ignores
    /// that.
    pub(crate) cpu_seconds: Option<u64>,
    /// Number of open descriptors (`RLIMIT_NOFILE`).
    pub(crate) open_files: Option<u64>,
    /// Niceness *added* to the spawning thread's own, like `nice -n`, then clamped to the
    /// kernel's range of -20..=19. Positive values lower the child's priority; negative ones
    /// need privileges and make the spawn fail without them.
    pub(crate) nice: Option<i32>,
}

impl ProcessLimits {
    /// Returns `true` if no limit is set, so that no code has to run in the child.
    fn is_empty(&self) -> bool {
        *self == ProcessLimits::default()
    }
}

/// Prepares `cmd` to spawn a child in its own process group, with `limits` applied and, if
/// `die_with_parent` is set, `SIGKILL` delivered to it when its parent goes away.
///
/// Call it once per command: every call adds another hook.
///
/// Warning: the parent-death signal fires when the *thread* that spawned the child exits, not
/// when the process does (Linux tracks the forking thread as the parent; see `PR_SET_PDEATHSIG`
/// in prctl(2)). Spawn such children from a thread that lives as long as they should, such as a
/// pool worker or a monitor thread, never from a short-lived helper thread.
pub(crate) fn configure_child(cmd: &mut Command, limits: &ProcessLimits, die_with_parent: bool) {
    // A group of its own lets `terminate_group` reach grandchildren too, and keeps signals meant
    // for the bus's foreground group (Ctrl-C in a terminal) away from the child: the bus decides
    // when its children stop.
    cmd.process_group(0);
    if limits.is_empty() && !die_with_parent {
        // Without a `pre_exec` hook std can spawn with posix_spawn, which on Linux uses a
        // vfork-like clone and is much cheaper than the fork a hook forces.
        return;
    }
    let limits = limits.clone();
    let parent = if die_with_parent {
        // SAFETY: getpid has no preconditions and cannot fail.
        Some(unsafe { libc::getpid() })
    } else {
        None
    };
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // code may run. `apply_in_child` only makes plain syscalls (getrlimit, setrlimit,
    // getpriority, setpriority, prctl, getppid) on values moved into the closure beforehand; it
    // allocates nothing and takes no lock. Its errors are built from raw errno values, which does
    // not allocate either.
    unsafe {
        cmd.pre_exec(move || apply_in_child(&limits, parent));
    }
}

/// Applies `limits` and, if `parent` is given, the parent-death signal to the calling process.
///
/// Runs in a freshly forked child, so it must stay async-signal-safe: no allocation, no locks,
/// no std I/O.
fn apply_in_child(limits: &ProcessLimits, parent: Option<libc::pid_t>) -> io::Result<()> {
    if let Some(bytes) = limits.address_space {
        limit_resource(libc::RLIMIT_AS, bytes, bytes)?;
    }
    if let Some(seconds) = limits.cpu_seconds {
        // The hard limit one second past the soft one turns the kernel's first notice into
        // SIGXCPU rather than an anonymous SIGKILL.
        limit_resource(libc::RLIMIT_CPU, seconds, seconds.saturating_add(1))?;
    }
    if let Some(count) = limits.open_files {
        limit_resource(libc::RLIMIT_NOFILE, count, count)?;
    }
    if let Some(increment) = limits.nice {
        renice(increment)?;
    }
    if let Some(parent) = parent {
        die_with(parent)?;
    }
    Ok(())
}

/// The type `getrlimit` and `setrlimit` take for a resource, which differs between C libraries.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
/// The type `getrlimit` and `setrlimit` take for a resource, which differs between C libraries.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// Sets the soft and hard limits of `resource`, each clamped to the current hard limit.
fn limit_resource(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes to `current`, a valid, exclusively borrowed rlimit.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `rlim_t` is narrower than u64 on some 32-bit targets; a value that does not fit is larger
    // than any finite limit, which is what infinity means.
    let to_rlim = |value: u64| libc::rlim_t::try_from(value).unwrap_or(libc::RLIM_INFINITY);
    // RLIM_INFINITY is the largest rlim_t, so `min` treats an unlimited hard limit correctly.
    let max = to_rlim(hard).min(current.rlim_max);
    let wanted = libc::rlimit { rlim_cur: to_rlim(soft).min(max), rlim_max: max };
    // SAFETY: setrlimit only reads `wanted`, a valid rlimit.
    if unsafe { libc::setrlimit(resource, &wanted) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Adds `increment` to the calling process's niceness, clamped to -20..=19.
fn renice(increment: i32) -> io::Result<()> {
    // SAFETY: getpriority takes plain integers and touches no memory. It returns -1 both on
    // error and for a niceness of -1, but asking about the calling process (who = 0) cannot
    // fail, so the value is always a niceness.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let target = current.saturating_add(increment).clamp(-20, 19);
    // SAFETY: setpriority takes plain integers and touches no memory.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to send SIGKILL to the calling process when `parent` goes away.
///
/// Fails with ESRCH if `parent` is already gone, since the signal would then never come.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn die_with(parent: libc::pid_t) -> io::Result<()> {
    // The kernel reads the signal as an unsigned long; passing a C int through the variadic
    // argument could leave the upper bits undefined.
    let signal = libc::SIGKILL as libc::c_ulong;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // If the parent died between fork and prctl, we were re-parented before the request was
    // made and no signal will ever arrive. getppid tells: it no longer names the parent.
    // SAFETY: getppid has no preconditions and cannot fail.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Does nothing: only Linux has a parent-death signal.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn die_with(_parent: libc::pid_t) -> io::Result<()> {
    Ok(())
}

/// Checks that `dir` exists, is a directory and may be entered by this process: what a child
/// needs to start there.
///
/// Spawning reports a bad working directory with the same error codes as a missing program
/// (both are plain ENOENT or EACCES), so a caller that wants to say which one was wrong asks
/// here first.
///
/// # Errors
///
/// The reason `dir` cannot be used: the lookup error, ENOTDIR, EACCES, or EINVAL for a path
/// with a NUL byte.
pub(crate) fn check_searchable(dir: &Path) -> io::Result<()> {
    if !std::fs::metadata(dir)?.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    let path =
        CString::new(dir.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // chdir needs search (execute) permission, not read permission; access(X_OK) asks exactly
    // that.
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(path.as_ptr(), libc::X_OK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns `true` if this process runs under a CPU-time limit (`RLIMIT_CPU`), as a corelet
/// child given `cpu_seconds` does. `false` if the limit cannot be read.
pub(crate) fn cpu_time_limited() -> bool {
    // SAFETY: rlimit is plain old data for which all-zero bytes are a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes only to `limit`, a valid, exclusively borrowed rlimit.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_CPU, &mut limit) } == 0;
    read && limit.rlim_cur != libc::RLIM_INFINITY
}
