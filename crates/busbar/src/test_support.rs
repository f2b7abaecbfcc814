//! Helpers shared by the crate's white-box tests that wait on other processes.

use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for something another process must do: generous, for a loaded
/// 2-core machine.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `done` until it returns `true` or `PATIENCE` runs out; returns its last answer.
pub(crate) fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    done()
}
