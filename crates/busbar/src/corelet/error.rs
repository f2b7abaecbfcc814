//! Why a corelet request did not produce a reply.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::panic::PanicInfo;

/// Why [`CoreletPool::execute`](super::pool::CoreletPool::execute) returned no reply.
///
/// The attempt loop maps each variant to a result kind: `Timeout` and `Saturated` to a
/// timeout, `Crashed` to a crash, `Panicked` to a panic, `Cancelled` to cancelled, the rest to
/// an execution error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CoreletError {
    /// The deadline passed while the child worked; its process group was killed.
    #[error("corelet timed out and its process group was killed")]
    Timeout,
    /// The deadline passed while every child of the pool was busy.
    #[error("timed out waiting for a free corelet (all {pool_size} busy)")]
    Saturated {
        /// The pool's size.
        pool_size: usize,
    },
    /// The child died during the request.
    #[error("corelet crashed: {description}")]
    Crashed {
        /// How it ended, e.g. "killed by signal 11 (SIGSEGV)" or "exited with code 3".
        description: String,
    },
    /// The handler panicked; the child survived.
    #[error("corelet handler panicked: {0}")]
    Panicked(PanicInfo),
    /// The request or the reply does not fit in a frame. Nothing was killed.
    #[error("{what} of {len} bytes exceeds the corelet frame limit of {limit} bytes")]
    TooLarge {
        /// Which message was too large.
        what: Payload,
        /// Its encoded size.
        len: u64,
        /// The frame limit.
        limit: u32,
    },
    /// The child sent something that is not a valid frame or message; it was killed.
    #[error("corelet protocol error, the child was killed: {0}")]
    Protocol(String),
    /// No child could be started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The pool was killed while the request ran.
    #[error("corelet request cancelled: the pool was shut down")]
    Cancelled,
    /// The pool no longer accepts requests.
    #[error("corelet pool is shut down")]
    ShutDown,
}

/// The message that did not fit, in [`CoreletError::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// The parent's request.
    Request,
    /// The handler's reply.
    Reply,
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Payload::Request => "request",
            Payload::Reply => "reply",
        })
    }
}

/// Why a child could not be started, or why the pool is not trying right now.
///
/// The child, if there was one, has been killed and reaped; it never joins the pool.
#[derive(Debug)]
pub(crate) struct StartError {
    /// What went wrong.
    kind: StartErrorKind,
}

/// The cases of [`StartError`].
#[derive(Debug)]
enum StartErrorKind {
    /// The program could not be executed.
    Spawn { program: PathBuf, error: io::Error },
    /// The child started but did not complete the handshake.
    Handshake { program: PathBuf, reason: String },
    /// The child did not greet in time.
    Silent { program: PathBuf, waited: Duration },
    /// The child greeted with another protocol version.
    Version { program: PathBuf, theirs: u32, ours: u32 },
    /// Earlier starts failed; the pool waits before it tries again.
    Backoff { failures: u32, retry_in: Duration, last: String },
}

impl StartError {
    /// The program could not be executed at all.
    pub(crate) fn spawn(program: PathBuf, error: io::Error) -> Self {
        StartError { kind: StartErrorKind::Spawn { program, error } }
    }

    /// The child ran but broke off before or during the handshake.
    pub(crate) fn handshake(program: PathBuf, reason: String) -> Self {
        StartError { kind: StartErrorKind::Handshake { program, reason } }
    }

    /// The child did not greet within `waited`.
    pub(crate) fn silent(program: PathBuf, waited: Duration) -> Self {
        StartError { kind: StartErrorKind::Silent { program, waited } }
    }

    /// The child greeted with protocol version `theirs` instead of `ours`.
    pub(crate) fn version(program: PathBuf, theirs: u32, ours: u32) -> Self {
        StartError { kind: StartErrorKind::Version { program, theirs, ours } }
    }

    /// The pool refuses to start a child for `retry_in` after `failures` failed starts.
    pub(crate) fn backoff(failures: u32, retry_in: Duration, last: String) -> Self {
        StartError { kind: StartErrorKind::Backoff { failures, retry_in, last } }
    }

    /// Returns `true` if no start was tried because earlier ones failed.
    // Only the tests ask; the mode reports every start error alike, by its message.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_backoff(&self) -> bool {
        matches!(self.kind, StartErrorKind::Backoff { .. })
    }

    /// Returns `true` if the child did not greet in time.
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self.kind, StartErrorKind::Silent { .. })
    }

    /// Returns `true` if the child spoke another protocol version.
    pub(crate) fn is_version_mismatch(&self) -> bool {
        matches!(self.kind, StartErrorKind::Version { .. })
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StartErrorKind::Spawn { program, error } => {
                write!(f, "failed to start corelet `{}`: {error}", program.display())
            }
            StartErrorKind::Handshake { program, reason } => write!(
                f,
                "corelet `{}` failed its handshake: {reason} \
                 (does the program call busbar's corelet entry first in `main`?)",
                program.display()
            ),
            StartErrorKind::Silent { program, waited } => write!(
                f,
                "corelet `{}` sent no greeting within {waited:.1?} \
                 (does the program call busbar's corelet entry first in `main`?)",
                program.display()
            ),
            StartErrorKind::Version { program, theirs, ours } => write!(
                f,
                "corelet `{}` speaks protocol version {theirs}, this process speaks {ours} \
                 (was it built against another busbar version?)",
                program.display()
            ),
            StartErrorKind::Backoff { failures, retry_in, last } => write!(
                f,
                "not starting a corelet for another {retry_in:.1?} after {failures} failed \
                 start(s) in a row; last error: {last}"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            StartErrorKind::Spawn { error, .. } => Some(error),
            _ => None,
        }
    }
}
