//! Cmd mode: runs a command-line program, never through a shell, as an event's attempt.

mod attempt;
mod config;
mod error;
mod output;
mod pipes;
mod run;
mod running;
mod spec;

#[cfg(test)]
mod test;

pub use config::CommandConfig;

pub(crate) use attempt::run_attempt;
pub(crate) use output::CommandOutcome;
#[cfg(test)]
pub(crate) use run::run;
pub(crate) use run::{run_listed, RunOptions};
pub(crate) use running::RunningCommands;
pub(crate) use spec::CommandSpec;

// What only the tests name.
#[cfg(test)]
pub(crate) use {error::CommandRunError, output::CommandOutput, run::DEFAULT_MAX_OUTPUT_BYTES};
