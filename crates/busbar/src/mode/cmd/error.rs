//! Why a command could not be run at all.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A command that could not be started or supervised.
///
/// Most of these are permanent, such as a program that does not exist or a working directory
/// that cannot be entered; [`is_permanent`](CommandRunError::is_permanent) says which, so that
/// the attempt loop does not retry them.
///
/// The OS error is part of the message, because results carry the message alone. It is
/// deliberately not also returned from `source()`, where reporters would print it twice.
#[derive(Debug)]
pub(crate) struct CommandRunError {
    /// What could not be done.
    kind: RunErrorKind,
    /// Why, as the OS put it.
    error: io::Error,
}

/// What could not be done.
#[derive(Debug)]
enum RunErrorKind {
    /// The program could not be started.
    Spawn {
        /// The `executable` field.
        program: String,
    },
    /// The working directory cannot be used.
    Cwd {
        /// The `cwd` field.
        path: PathBuf,
    },
    /// An output file could not be opened for writing.
    OutputFile {
        /// `stdout_file` or `stderr_file`.
        field: &'static str,
        /// The path as opened (resolved against `cwd`).
        path: PathBuf,
    },
    /// Watching the running program failed; it has been stopped.
    Supervise {
        /// The `executable` field.
        program: String,
    },
}

impl CommandRunError {
    /// Creates the error for a program that could not be started.
    pub(super) fn spawn(program: &str, error: io::Error) -> CommandRunError {
        let program = program.to_owned();
        CommandRunError { kind: RunErrorKind::Spawn { program }, error }
    }

    /// Creates the error for a working directory that cannot be used.
    pub(super) fn cwd(path: PathBuf, error: io::Error) -> CommandRunError {
        CommandRunError { kind: RunErrorKind::Cwd { path }, error }
    }

    /// Creates the error for an output file that cannot be opened.
    pub(super) fn output_file(field: &'static str, path: PathBuf, error: io::Error) -> CommandRunError {
        CommandRunError { kind: RunErrorKind::OutputFile { field, path }, error }
    }

    /// Creates the error for a failure while watching the running program.
    pub(super) fn supervise(program: &str, error: io::Error) -> CommandRunError {
        let program = program.to_owned();
        CommandRunError { kind: RunErrorKind::Supervise { program }, error }
    }

    /// Returns `true` if trying again cannot help: the program, directory or file is missing,
    /// forbidden or of the wrong kind. Shortages (processes, memory, descriptors) and failures
    /// while supervising may pass.
    pub(crate) fn is_permanent(&self) -> bool {
        match self.kind {
            RunErrorKind::Supervise { .. } => false,
            RunErrorKind::Spawn { .. } | RunErrorKind::Cwd { .. } | RunErrorKind::OutputFile { .. } => {
                !matches!(
                    self.error.raw_os_error(),
                    Some(
                        libc::EAGAIN
                            | libc::ENOMEM
                            | libc::EMFILE
                            | libc::ENFILE
                            | libc::EINTR
                            | libc::ETXTBSY
                            | libc::ENOSPC
                    )
                )
            }
        }
    }
}

impl fmt::Display for CommandRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = &self.error;
        match &self.kind {
            RunErrorKind::Spawn { program } => {
                write!(f, "cmd event: cannot run `{program}`: {error}")
            }
            RunErrorKind::Cwd { path } => {
                write!(f, "cmd event: cannot use `cwd` {path:?}: {error}")
            }
            RunErrorKind::OutputFile { field, path } => {
                write!(f, "cmd event: cannot open `{field}` {path:?}: {error}")
            }
            RunErrorKind::Supervise { program } => {
                write!(f, "cmd event: lost track of `{program}`: {error}")
            }
        }
    }
}

impl std::error::Error for CommandRunError {}
