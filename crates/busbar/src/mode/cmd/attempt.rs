//! One attempt of a cmd event: the mode's side of the seam in [`crate::mode::run_attempt`].

use std::time::Instant;

use super::{run_listed, CommandOutcome, CommandSpec};
use crate::attempt::Outcome;
use crate::bus::Shared;
use crate::event::Event;
use crate::result::{ErrorKind, EventResult};

/// Runs the program `event`'s data describes, until it ends, `deadline` passes or the bus is
/// shut down with `shutdown_now`.
///
/// Exit code 0 is a success carrying `{returncode, stdout, stderr, …}`; any other ending is a
/// `CommandFailed` failure carrying the same data (and retried while retries remain). Data
/// that does not describe a command, and programs, directories or files that cannot be used,
/// are permanent `InvalidInput` failures: retrying cannot fix them.
pub(crate) fn run_attempt(shared: &Shared, event: &Event, deadline: Instant) -> Outcome {
    let spec = match CommandSpec::from_value(event.data()) {
        Ok(spec) => spec,
        Err(error) => return Outcome::refused(ErrorKind::InvalidInput, error.to_string()),
    };
    let is_cancelled = || shared.is_killed();
    match run_listed(
        &spec,
        deadline,
        &is_cancelled,
        shared.command_options(),
        Some(shared.running_commands()),
    ) {
        Ok(CommandOutcome::Exited { output }) if output.is_success() => {
            Outcome::Returned(Ok(EventResult::success_with(output.to_json())))
        }
        Ok(CommandOutcome::Exited { output }) => Outcome::Returned(Ok(EventResult::failed(
            ErrorKind::CommandFailed,
            format!("command `{}` {}", spec.executable(), output.describe_failure()),
        )
        .with_data(output.to_json()))),
        Ok(CommandOutcome::TimedOut { .. }) => Outcome::TimedOut,
        Ok(CommandOutcome::Cancelled { .. }) => Outcome::Cancelled,
        Err(error) if error.is_permanent() => Outcome::refused(ErrorKind::InvalidInput, error.to_string()),
        Err(error) => Outcome::Returned(Ok(EventResult::failed(ErrorKind::CommandFailed, error.to_string()))),
    }
}
