//! Helpers shared by the crate's white-box tests: waiting on other processes, and checks that
//! pair readings of two clocks.

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

/// Runs `check` until it passes, at most five times. For checks that pair a reading of each of
/// two clocks: a thread preempted between the two reads fails one try, a wrong clock all five.
pub(crate) fn in_one_of_five_tries(mut check: impl FnMut() -> Result<(), String>) {
    let mut failures = Vec::new();
    for _ in 0..5 {
        match check() {
            Ok(()) => return,
            Err(failure) => failures.push(failure),
        }
    }
    panic!("failed five times: {failures:#?}");
}
