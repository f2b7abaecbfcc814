//! Floor of cmd mode: `std::process::Command` in a process group of its own, spawn + wait.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::bench::Error;

/// Runs `program` once, as cmd mode does: its own process group, then wait for its exit.
pub(in crate::bench) fn run(program: &str) -> Result<(), Error> {
    let status = Command::new(program).process_group(0).spawn()?.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program}` failed: {status}").into())
    }
}
