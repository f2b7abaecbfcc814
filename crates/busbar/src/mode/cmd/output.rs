//! Bounded capture of a command's output, and the outcome of running it.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use serde_json::{json, Value};

use crate::sys;

/// How much of stderr's first line a failure description quotes, in characters.
const FAILURE_LINE_LIMIT: usize = 200;

/// The bytes read from one output stream, kept up to a bound.
///
/// Bytes past the bound are counted as lost and dropped, but the caller keeps reading them: a
/// child writing into a full pipe would block forever.
#[derive(Debug)]
pub(super) struct Capture {
    /// What was kept, at most `limit` bytes.
    bytes: Vec<u8>,
    /// The most bytes to keep.
    limit: usize,
    /// Whether bytes were dropped.
    truncated: bool,
}

impl Capture {
    /// Creates an empty capture that keeps at most `limit` bytes.
    pub(super) fn new(limit: usize) -> Capture {
        Capture { bytes: Vec::new(), limit, truncated: false }
    }

    /// Keeps as much of `chunk` as the bound allows and drops the rest.
    pub(super) fn push(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// Decodes the kept bytes as UTF-8, replacing invalid sequences.
    pub(super) fn finish(self) -> Text {
        let truncated = self.truncated;
        let (text, lossy) = match String::from_utf8(self.bytes) {
            Ok(text) => (text, false),
            Err(error) => {
                let utf8 = error.utf8_error();
                let mut bytes = error.into_bytes();
                // `error_len() == None` means the only problem is an incomplete character at
                // the very end. If the bound cut it, its missing bytes were dropped with the
                // rest, and its first bytes go with them rather than turning into U+FFFD.
                if truncated && utf8.error_len().is_none() {
                    bytes.truncate(utf8.valid_up_to());
                }
                match String::from_utf8(bytes) {
                    Ok(text) => (text, false),
                    Err(error) => (String::from_utf8_lossy(error.as_bytes()).into_owned(), true),
                }
            }
        };
        Text { text, lossy, truncated }
    }
}

/// One output stream, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Text {
    /// The output; empty if it went to a file.
    text: String,
    /// Whether invalid UTF-8 was replaced with U+FFFD.
    lossy: bool,
    /// Whether output past the bound was dropped.
    truncated: bool,
}

/// What a command left behind: how it ended and what it wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandOutput {
    /// How the process ended.
    status: ExitStatus,
    /// Its captured stdout.
    stdout: Text,
    /// Its captured stderr.
    stderr: Text,
}

impl CommandOutput {
    /// Creates the output of a process that ended with `status`.
    pub(super) fn new(status: ExitStatus, stdout: Text, stderr: Text) -> CommandOutput {
        CommandOutput { status, stdout, stderr }
    }

    /// Returns `true` if the program exited with code 0.
    pub(crate) fn is_success(&self) -> bool {
        self.status.success()
    }

    /// Returns the exit code, or `None` if a signal killed the program.
    pub(crate) fn returncode(&self) -> Option<i32> {
        self.status.code()
    }

    /// Returns the signal that killed the program, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Returns the captured stdout, empty if it went to `stdout_file`.
    #[cfg(test)]
    pub(crate) fn stdout(&self) -> &str {
        &self.stdout.text
    }

    /// Returns the captured stderr, empty if it went to `stderr_file`.
    #[cfg(test)]
    pub(crate) fn stderr(&self) -> &str {
        &self.stderr.text
    }

    /// Returns the result data of a cmd event.
    ///
    /// `{"returncode", "stdout", "stderr", "signal", "signal_name", "stdout_truncated",
    /// "stderr_truncated", "stdout_lossy", "stderr_lossy"}`, where `returncode` is null if a
    /// signal killed the program, and `signal` and `signal_name` are null if none did.
    pub(crate) fn to_json(&self) -> Value {
        let signal = self.signal();
        json!({
            "returncode": self.returncode(),
            "stdout": self.stdout.text,
            "stderr": self.stderr.text,
            "signal": signal,
            "signal_name": signal.map(sys::signal_name),
            "stdout_truncated": self.stdout.truncated,
            "stderr_truncated": self.stderr.truncated,
            "stdout_lossy": self.stdout.lossy,
            "stderr_lossy": self.stderr.lossy,
        })
    }

    /// Describes how the program ended, with the first line of its stderr if it wrote one:
    /// "exited with code 2: ls: cannot access 'x': No such file or directory".
    pub(crate) fn describe_failure(&self) -> String {
        let mut description = sys::describe_exit(self.status);
        let first_line = self.stderr.text.lines().map(str::trim).find(|line| !line.is_empty());
        if let Some(line) = first_line {
            description.push_str(": ");
            match line.char_indices().nth(FAILURE_LINE_LIMIT) {
                Some((end, _)) => {
                    description.push_str(&line[..end]);
                    description.push('…');
                }
                None => description.push_str(line),
            }
        }
        description
    }
}

/// How running a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommandOutcome {
    /// The program ended on its own (exit or a signal from elsewhere).
    Exited {
        /// What it left behind.
        output: CommandOutput,
    },
    /// The deadline passed and its process group was terminated.
    TimedOut {
        /// What it left behind, up to the end.
        output: CommandOutput,
    },
    /// The cancel check answered `true` and its process group was terminated.
    Cancelled {
        /// What it left behind, up to the end.
        output: CommandOutput,
    },
}

impl CommandOutcome {
    /// Returns `true` if the program ended on its own with exit code 0.
    #[cfg(test)]
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, CommandOutcome::Exited { output } if output.is_success())
    }

    /// Returns the output, whatever the ending.
    #[cfg(test)]
    pub(crate) fn output(&self) -> &CommandOutput {
        match self {
            CommandOutcome::Exited { output }
            | CommandOutcome::TimedOut { output }
            | CommandOutcome::Cancelled { output } => output,
        }
    }

    /// Describes why this is a failure: "exited with code 2: …", "timed out; killed by signal
    /// 15 (SIGTERM)", "cancelled; …".
    #[cfg(test)]
    pub(crate) fn describe_failure(&self) -> String {
        match self {
            CommandOutcome::Exited { output } => output.describe_failure(),
            CommandOutcome::TimedOut { output } => {
                format!("timed out; {}", sys::describe_exit(output.status))
            }
            CommandOutcome::Cancelled { output } => {
                format!("cancelled; {}", sys::describe_exit(output.status))
            }
        }
    }
}
