//! Spawning a command and supervising it until it ends, its deadline passes or it is cancelled.
//!
//! One thread does everything: it polls the pipes and a pidfd (a descriptor that becomes
//! readable when the child exits) and wakes at least every [`CHECK_INTERVAL`] to ask the cancel
//! check. Stopping is a small state machine inside that loop rather than a blocking
//! [`sys::terminate_group`] call, so that a child printing while it shuts down never blocks on
//! a full pipe during its grace period.
//!
//! The leader is never reaped before the end: until then its pid, and so its process group id,
//! stays reserved, and signalling the group cannot reach a stranger (see `sys::group`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::CommandRunError;
use super::output::{Capture, CommandOutcome, CommandOutput, Text};
use super::pipes::{self, Pipes};
use super::running::RunningCommands;
use super::spec::CommandSpec;
use crate::sys::{self, ProcessLimits};

/// How much of each output stream a result keeps by default: 1 MiB.
pub(crate) const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// How long a stopped command has by default between SIGTERM and SIGKILL.
pub(crate) const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);

/// The longest a running command goes without its cancel check being asked.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// How often exit is checked for where no pidfd is available to announce it.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// How long output is still read after the program exited and its group was killed. Only a
/// process that left the group (`setsid`) can keep the pipes open after that; its output is not
/// the program's, and waiting for it would hold the result until the deadline and report an
/// exit as a timeout.
const LINGER: Duration = Duration::from_millis(100);

/// How commands are run: output bounds, stopping and the child's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunOptions {
    /// The most bytes of stdout, and separately of stderr, that a result keeps. The rest is
    /// read and dropped, and the result says it was truncated.
    pub(crate) max_output_bytes: usize,
    /// How long a command that is being stopped has between SIGTERM and SIGKILL.
    pub(crate) kill_grace: Duration,
    /// Resource limits and niceness for the command.
    pub(crate) limits: ProcessLimits,
    /// Whether the command gets SIGKILL when the thread that ran it exits (see
    /// [`sys::configure_child`] for why a *thread*). Off by default: it needs a fork where std
    /// could otherwise use the cheaper posix_spawn (spawning `true` measured about 10% slower),
    /// and a command that outlives a crashed bus is the usual behaviour of subprocesses. Turn it
    /// on only when commands run on long-lived threads, such as pool workers.
    pub(crate) die_with_parent: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            kill_grace: DEFAULT_KILL_GRACE,
            limits: ProcessLimits::default(),
            die_with_parent: false,
        }
    }
}

/// Runs the command `spec` describes and waits for it to end.
///
/// The program runs without a shell, in a process group of its own, with stdin fed from the
/// spec (or `/dev/null`) and stdout and stderr captured up to the bound (or written to files).
/// When `deadline` passes, or `is_cancelled` returns `true` (it is asked at least every 20 ms),
/// the whole group gets SIGTERM, then SIGKILL after the grace period. When the program exits,
/// anything it left running in its group is killed, so an attempt leaves nothing behind; a
/// program that must outlive its event has to leave the group (e.g. with `setsid`) before it
/// exits, or it is killed too, and should not keep the program's stdout or stderr: output is
/// read for at most 100 ms after the exit.
///
/// Whatever happens, the child is reaped before this returns, also if `is_cancelled` panics.
///
/// # Errors
///
/// Fails, naming the field and value, if the working directory cannot be entered, an output
/// file cannot be opened or the program cannot be started; and, after stopping the command, if
/// supervising it fails. [`CommandRunError::is_permanent`] tells whether retrying can help.
#[cfg(test)]
pub(crate) fn run(
    spec: &CommandSpec,
    deadline: Instant,
    is_cancelled: &dyn Fn() -> bool,
    options: &RunOptions,
) -> Result<CommandOutcome, CommandRunError> {
    run_listed(spec, deadline, is_cancelled, options, None)
}

/// Runs the command as `run` (a test helper) does, with the program on `listed` while it runs,
/// for `shutdown_now` to kill at once (see [`RunningCommands`]).
pub(crate) fn run_listed(
    spec: &CommandSpec,
    deadline: Instant,
    is_cancelled: &dyn Fn() -> bool,
    options: &RunOptions,
    listed: Option<&RunningCommands>,
) -> Result<CommandOutcome, CommandRunError> {
    let (mut command, outputs) = prepare(spec, options)?;
    let spawned = command.spawn();
    // The command holds the parent's copies of the output files and of the pipes' write ends
    // given to the child; close them now.
    drop(command);
    let child = spawned.map_err(|error| CommandRunError::spawn(&spec.executable, error))?;
    if let Some(listed) = listed {
        listed.add(child.id());
    }
    let mut running = Running { child, is_reaped: false, grace: options.kill_grace, listed };
    supervise(&mut running, outputs, spec, deadline, is_cancelled, options)
        .map_err(|error| CommandRunError::supervise(&spec.executable, error))
}

/// A spawned child that is stopped and reaped unless supervision finishes normally, so that an
/// error or a panic in the cancel check leaves neither a running process nor a zombie.
#[derive(Debug)]
struct Running<'a> {
    /// The child.
    child: Child,
    /// Whether the child has been reaped, which makes dropping this a no-op.
    is_reaped: bool,
    /// The grace period for an early stop.
    grace: Duration,
    /// The bus's list of running commands, which the child is on until just before it is
    /// reaped.
    listed: Option<&'a RunningCommands>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.is_reaped {
            if let Some(listed) = self.listed.take() {
                listed.remove(self.child.id());
            }
            // Nothing can report an error from here; terminate_group does what can be done.
            let _ = sys::terminate_group(&mut self.child, self.grace);
        }
    }
}

/// Why supervision stopped a command before it ended on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The cancel check returned `true`.
    Cancelled,
}

/// The parent's ends of the pipes that capture a child's stdout and stderr.
#[derive(Debug)]
struct Outputs {
    /// The read end of stdout's pipe; `None` if stdout goes to a file.
    stdout: Option<OwnedFd>,
    /// The read end of stderr's pipe; `None` if stderr goes to a file.
    stderr: Option<OwnedFd>,
    /// Copies of the write ends, which keep the pipes from reaching end of file while the
    /// leader runs (see `supervise`).
    writers: Vec<OwnedFd>,
}

/// Feeds and drains the child's pipes until it has exited and its output ended, stopping it at
/// the deadline or on cancellation; then reaps it.
fn supervise(
    running: &mut Running<'_>,
    outputs: Outputs,
    spec: &CommandSpec,
    deadline: Instant,
    is_cancelled: &dyn Fn() -> bool,
    options: &RunOptions,
) -> io::Result<CommandOutcome> {
    let child = &mut running.child;
    let exit_fd = exit_watch(child);
    // A program's pipes reach end of file as it exits, a moment before its pidfd turns
    // readable, and each of those events would wake this thread on its own: three wake-ups
    // for a silent program where one would do, and on a busy machine each wake-up waits for a
    // CPU. Holding a copy of each write end until the exit has been seen leaves the pidfd as
    // the only event. (Without a pidfd the early end of file is the quickest sign of an exit,
    // so the copies go at once.)
    let Outputs { stdout, stderr, mut writers } = outputs;
    if exit_fd.is_none() {
        writers.clear();
    }
    let input = spec.stdin.as_deref().unwrap_or_default().as_bytes();
    let mut pipes = Pipes::new(child.stdin.take(), stdout, stderr, input, options.max_output_bytes)?;
    let mut stop = None;
    let mut exited = false;
    // When the pipes stop being waited for, once the program has exited.
    let mut linger_until: Option<Instant> = None;
    // When the group gets SIGKILL if the leader has not exited by then.
    let mut kill_at: Option<Instant> = None;
    loop {
        if !exited && sys::has_exited(child)? {
            exited = true;
            // Whatever the program left in its group would hold the pipes open and outlive
            // the attempt.
            sys::signal_group(child, libc::SIGKILL)?;
            kill_at = None;
            // Now the pipes may end.
            writers.clear();
            linger_until = Some(Instant::now() + LINGER);
        }
        if exited && pipes.is_done() {
            break;
        }
        let now = Instant::now();
        if linger_until.is_some_and(|until| now >= until) {
            tracing::warn!(
                program = spec.executable,
                "busbar: a cmd event's program exited, but a process outside its group keeps its \
                 output open; the result has the output read so far"
            );
            pipes.pump(None, Duration::ZERO)?;
            break;
        }
        if stop.is_none() {
            if is_cancelled() {
                stop = Some(Stop::Cancelled);
            } else if now >= deadline {
                stop = Some(Stop::TimedOut);
            }
            if stop.is_some() && !exited {
                sys::signal_group(child, libc::SIGTERM)?;
                // A grace too long to represent means no SIGKILL, as asked.
                kill_at = now.checked_add(options.kill_grace);
            }
        }
        if stop.is_some() && exited {
            // The group has been killed, so only a process that left it can still hold the
            // pipes; take what they already hold and stop waiting.
            pipes.pump(None, Duration::ZERO)?;
            break;
        }
        if kill_at.is_some_and(|at| now >= at) {
            sys::signal_group(child, libc::SIGKILL)?;
            kill_at = None;
        }

        let interval = if exited || exit_fd.is_some() { CHECK_INTERVAL } else { EXIT_POLL_INTERVAL };
        let mut wake = now + interval;
        if stop.is_none() {
            wake = wake.min(deadline);
        }
        if let Some(at) = kill_at {
            wake = wake.min(at);
        }
        if let Some(until) = linger_until {
            wake = wake.min(until);
        }
        // Once the leader has exited its pidfd stays readable; watching it would spin.
        let exit = exit_fd.as_ref().filter(|_| !exited).map(AsFd::as_fd);
        pipes.pump(exit, wake.saturating_duration_since(now))?;
    }

    let (stdout, stderr) = pipes.finish();
    // Off the list before it is reaped: its group id may name a stranger's group after.
    if let Some(listed) = running.listed.take() {
        listed.remove(child.id());
    }
    let status = child.wait()?;
    running.is_reaped = true;
    let output = CommandOutput::new(
        status,
        finish_text(stdout, spec.stdout_file.is_some()),
        finish_text(stderr, spec.stderr_file.is_some()),
    );
    Ok(match stop {
        None => CommandOutcome::Exited { output },
        Some(Stop::TimedOut) => CommandOutcome::TimedOut { output },
        Some(Stop::Cancelled) => CommandOutcome::Cancelled { output },
    })
}

#[cfg(test)]
thread_local! {
    /// Makes `run` on this thread act as if pidfds were unavailable, to test the fallback.
    pub(super) static WITHOUT_PIDFD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Opens a descriptor that polls readable when `child` exits, where the system has them.
fn exit_watch(child: &Child) -> Option<std::os::fd::OwnedFd> {
    #[cfg(test)]
    if WITHOUT_PIDFD.get() {
        return None;
    }
    sys::pidfd_open(child)
}

/// Decodes a capture, or returns empty text for a stream that went to a file.
fn finish_text(capture: Capture, redirected: bool) -> Text {
    if redirected {
        Text::default()
    } else {
        capture.finish()
    }
}

/// Builds the `Command` for `spec` (program, arguments, environment, directory, streams and
/// limits) and the parent's ends of its output pipes.
fn prepare(spec: &CommandSpec, options: &RunOptions) -> Result<(Command, Outputs), CommandRunError> {
    let mut command = Command::new(&spec.executable);
    command.args(&spec.args).envs(&spec.env);
    if let Some(cwd) = &spec.cwd {
        // Checked here because spawn reports a bad directory with the same error codes as a
        // missing program.
        sys::check_searchable(cwd).map_err(|error| CommandRunError::cwd(cwd.clone(), error))?;
        command.current_dir(cwd);
    }
    let has_input = spec.stdin.as_deref().is_some_and(|input| !input.is_empty());
    command.stdin(if has_input { Stdio::piped() } else { Stdio::null() });
    let (stdout_file, stderr_file) = output_files(spec)?;
    let mut writers = Vec::new();
    // Returns what the child gets for a stream, and the parent's read end if it is a pipe. A
    // pipe that cannot be made is a shortage (descriptors, memory), reported as a spawn that
    // failed for the same reason would be.
    let mut capture = |file: Option<File>| -> Result<(Stdio, Option<OwnedFd>), CommandRunError> {
        let Some(file) = file else {
            let spawn_error = |error| CommandRunError::spawn(&spec.executable, error);
            let (read, write) = pipes::pipe().map_err(spawn_error)?;
            writers.push(write.try_clone().map_err(spawn_error)?);
            return Ok((Stdio::from(write), Some(read)));
        };
        Ok((Stdio::from(file), None))
    };
    let (child_stdout, stdout) = capture(stdout_file)?;
    let (child_stderr, stderr) = capture(stderr_file)?;
    command.stdout(child_stdout).stderr(child_stderr);
    let outputs = Outputs { stdout, stderr, writers };
    sys::configure_child(&mut command, &options.limits, options.die_with_parent);
    Ok((command, outputs))
}

/// Opens `stdout_file` and `stderr_file`, if given.
///
/// Both naming the same file share one open file, as `>file 2>&1` does, so that the streams
/// follow each other instead of overwriting each other from separate offsets.
fn output_files(spec: &CommandSpec) -> Result<(Option<File>, Option<File>), CommandRunError> {
    let open = |field, path: &Option<PathBuf>| {
        path.as_deref().map(|path| open_output(spec.cwd.as_deref(), field, path)).transpose()
    };
    let stdout = open("stdout_file", &spec.stdout_file)?;
    let stderr = open("stderr_file", &spec.stderr_file)?;
    if let (Some(out), Some(err)) = (&stdout, &stderr) {
        if is_same_file(out, err) {
            let shared = out.try_clone().map_err(|error| {
                let path = spec.stderr_file.clone().unwrap_or_default();
                CommandRunError::output_file("stderr_file", path, error)
            })?;
            return Ok((stdout, Some(shared)));
        }
    }
    Ok((stdout, stderr))
}

/// Creates (or truncates) an output file. A relative path is taken relative to `cwd`, where the
/// program runs, as a shell redirection after `cd` would.
///
/// Opened non-blocking: opening a FIFO that no process reads would otherwise wait, on a pool
/// worker and before any deadline applies, until one does; non-blocking, it fails at once
/// (ENXIO), and the program then gets an ordinary blocking descriptor.
fn open_output(cwd: Option<&Path>, field: &'static str, path: &Path) -> Result<File, CommandRunError> {
    let path = match cwd {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ENXIO) => io::Error::new(
                error.kind(),
                format!("nothing has it open for reading: a FIFO without a reader, or a socket ({error})"),
            ),
            _ => error,
        })
        .and_then(|file| sys::set_blocking(file.as_fd()).map(|()| file));
    opened.map_err(|error| CommandRunError::output_file(field, path, error))
}

/// Returns `true` if both handles are the same file on disk.
fn is_same_file(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
