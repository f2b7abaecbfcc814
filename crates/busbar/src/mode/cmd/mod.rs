//! Cmd mode: runs a command-line program, never through a shell, as an event's attempt.

mod attempt;
mod error;
mod output;
mod pipes;
mod run;
mod spec;

#[cfg(test)]
mod test;

pub(crate) use attempt::run_attempt;
pub(crate) use error::CommandRunError;
pub(crate) use output::{CommandOutcome, CommandOutput};
pub(crate) use run::{run, RunOptions, DEFAULT_KILL_GRACE, DEFAULT_MAX_OUTPUT_BYTES};
pub(crate) use spec::{CommandSpec, CommandSpecError};
