//! Starting a child: its command line, its environment and the descriptors it inherits.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::child::{FD_ENV, MAX_FRAME_ENV};
use super::config::{CoreletConfig, CoreletOutput};
use super::confine::CONFINE_ENV;
use super::duplex::Duplex;
use super::error::StartError;
use crate::sys::{self, ProcessLimits};

/// Highest descriptor the fallback in [`inherit_only`] visits when `close_range` is missing.
const FALLBACK_MAX_FD: libc::c_uint = 1 << 16;

/// Everything needed to start one more child, resolved once per pool.
#[derive(Debug)]
pub(crate) struct Launch {
    /// The program as users know it, for error messages and `argv[0]`.
    program: PathBuf,
    /// The file actually executed: `program`, or `/proc/self/exe` when re-executing ourselves.
    executable: PathBuf,
    /// Arguments after `argv[0]`.
    args: Vec<String>,
    /// Resource limits and niceness for the child.
    limits: ProcessLimits,
    /// Where the child's stdout and stderr go.
    output: CoreletOutput,
    /// The frame limit, passed to the child in [`MAX_FRAME_ENV`].
    max_frame: u32,
    /// Upper bound for the descriptor scan when `close_range` is unavailable.
    max_fd: libc::c_uint,
    /// The variables the child keeps, or `None` for the whole environment.
    env_allow: Option<Vec<String>>,
    /// The child's landlock rules as the JSON for [`CONFINE_ENV`], if it is confined.
    confine: Option<String>,
}

/// A child that has been started but has not greeted yet.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// The child process, leader of its own process group.
    pub(crate) child: Child,
    /// The parent's end of the channel.
    pub(crate) channel: Duplex,
}

impl Launch {
    /// Resolves the program to run from `config`: its `program`, or the current executable.
    pub(crate) fn new(config: &CoreletConfig) -> io::Result<Self> {
        let confine = match &config.allowed_paths {
            Some(paths) => Some(paths.to_env().map_err(|error| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("allowed_paths are not UTF-8: {error}"))
            })?),
            None => None,
        };
        let (program, executable) = match &config.program {
            Some(program) => (program.clone(), program.clone()),
            None => {
                let program = std::env::current_exe()?;
                // Executing /proc/self/exe runs the very binary this process was started from,
                // even if the file on disk has since been replaced or deleted (a rebuild while
                // a long-running service is up); `program` still names it in messages.
                let executable =
                    if cfg!(target_os = "linux") { PathBuf::from("/proc/self/exe") } else { program.clone() };
                (program, executable)
            }
        };
        Ok(Launch {
            program,
            executable,
            args: config.args.clone(),
            limits: ProcessLimits {
                address_space: config.memory_limit,
                cpu_seconds: config.cpu_seconds,
                open_files: config.open_files,
                nice: config.nice,
            },
            output: config.output,
            max_frame: config.max_frame_size,
            max_fd: descriptor_limit(),
            env_allow: config.env_allow.clone(),
            confine,
        })
    }

    /// Returns the program as it appears in messages.
    pub(crate) fn program(&self) -> &Path {
        &self.program
    }

    /// Starts a child with one end of a fresh channel (two pipes).
    ///
    /// Warning: the child gets a parent-death signal tied to the calling *thread*; call this
    /// only from a thread that lives as long as the child should (the pool's keeper).
    pub(crate) fn spawn(&self) -> Result<Spawned, StartError> {
        self.try_spawn().map_err(|error| StartError::spawn(self.program.clone(), error))
    }

    /// [`Launch::spawn`] with a plain I/O error.
    fn try_spawn(&self) -> io::Result<Spawned> {
        // Every descriptor is close-on-exec, so none leaks into programs spawned elsewhere in
        // this process; the child's two are made inheritable only inside the child.
        let (parent_end, child_end) = Duplex::pair()?;
        // `Duplex::pair` keeps every end above the standard streams, which the child's `Stdio`
        // setup would otherwise overwrite.
        let (child_read, child_write) = child_end.into_parts()?;
        let keep = [child_read.as_raw_fd(), child_write.as_raw_fd()];
        let max_fd = self.max_fd;

        let mut command = Command::new(&self.executable);
        if let Some(names) = &self.env_allow {
            // Read at each spawn, so that a child sees the allowed variables as they are now,
            // as an unconfined child inherits the environment as it is now.
            command.env_clear();
            for name in names {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
        }
        if let Some(rules) = &self.confine {
            command.env(CONFINE_ENV, rules);
        }
        // busbar's own variables come last: an allow-list cannot drop or override them.
        command
            .arg0(&self.program)
            .args(&self.args)
            .env(FD_ENV, format!("{},{}", keep[0], keep[1]))
            .env(MAX_FRAME_ENV, self.max_frame.to_string())
            .stdin(Stdio::null());
        if self.output == CoreletOutput::Null {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        // SAFETY: the hook runs between fork and exec and must be async-signal-safe.
        // `inherit_only` makes plain `close_range`/`fcntl` system calls on integers captured
        // above; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(move || inherit_only(keep, max_fd));
        }
        sys::configure_child(&mut command, &self.limits, true);
        let child = command.spawn()?;
        // The child has its copies; ours must go, or the parent end would never see the
        // end-of-file that tells of the child's death.
        drop((child_read, child_write));
        Ok(Spawned { child, channel: parent_end })
    }
}

/// Returns the soft descriptor limit, capped, as the bound for the fallback scan.
fn descriptor_limit() -> libc::c_uint {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes to `limit`, a valid, exclusively borrowed rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return FALLBACK_MAX_FD;
    }
    libc::c_uint::try_from(limit.rlim_cur).map_or(FALLBACK_MAX_FD, |n| n.min(FALLBACK_MAX_FD))
}

/// In the forked child: marks every descriptor above the standard streams close-on-exec,
/// except those in `keep`, which are made inheritable.
///
/// std opens its own descriptors close-on-exec, but other code in the application may not;
/// without this a corelet would hold the parent's files, sockets and pipe ends open.
///
/// Runs between fork and exec, so it must stay async-signal-safe: no allocation, no locks.
fn inherit_only(keep: [RawFd; 2], max_fd: libc::c_uint) -> io::Result<()> {
    if mark_range(3, libc::c_uint::MAX).is_err() {
        // close_range came with Linux 5.11 (CLOSE_RANGE_CLOEXEC); older kernels get a scan.
        for fd in 3..max_fd as RawFd {
            set_cloexec(fd);
        }
    }
    for fd in keep {
        // SAFETY: fcntl with F_SETFD takes plain integers and touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks descriptors `first..=last` close-on-exec with one `close_range` call.
#[cfg(target_os = "linux")]
fn mark_range(first: libc::c_uint, last: libc::c_uint) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags; it takes
    // plain integers and touches no memory.
    let status = unsafe { libc::syscall(libc::SYS_close_range, first, last, libc::CLOSE_RANGE_CLOEXEC) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Fails: only Linux has `close_range`, so [`inherit_only`] falls back to its scan.
#[cfg(not(target_os = "linux"))]
fn mark_range(_first: libc::c_uint, _last: libc::c_uint) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Sets the close-on-exec flag of `fd` if it is open; ignores descriptors that are not.
fn set_cloexec(fd: RawFd) {
    // SAFETY: fcntl with F_GETFD/F_SETFD takes plain integers and touches no memory; on a
    // descriptor that is not open it fails with EBADF, which is ignored.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}
