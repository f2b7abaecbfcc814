//! A small runner of named checks, for a test target without libtest.
//!
//! Checks run one after another, each on a thread of its own with a hard bound: a check that
//! hangs fails the run instead of hanging it. Arguments that do not start with `-` are filters
//! (a check runs if its name contains one of them), as libtest's are; flags are ignored.

use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Longest a single check may take before the run is abandoned.
const CHECK_BOUND: Duration = Duration::from_secs(120);

/// A named check: it passes if it returns, fails if it panics.
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) run: fn(),
}

/// Runs the checks selected by the command-line filters and prints one line per check, then
/// `N passed, M failed`.
pub(crate) fn run(checks: &[Check]) -> ExitCode {
    let filters: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let selected = checks
        .iter()
        .filter(|check| filters.is_empty() || filters.iter().any(|f| check.name.contains(f.as_str())));
    let (mut passed, mut failed) = (0, 0);
    for check in selected {
        let started = Instant::now();
        let (done, verdict) = mpsc::channel();
        let run = check.run;
        let spawned = thread::Builder::new().name(check.name.to_owned()).spawn(move || {
            let outcome = std::panic::catch_unwind(run);
            let _ = done.send(outcome.is_ok());
        });
        let ok = match spawned.map(|_| verdict.recv_timeout(CHECK_BOUND)) {
            Ok(Ok(ok)) => ok,
            Ok(Err(_)) => {
                println!("FAILED {}: no verdict within {CHECK_BOUND:?}; abandoning the run", check.name);
                println!("{passed} passed, {} failed", failed + 1);
                // Exiting ends the stuck thread; corelets die with this process.
                std::process::exit(1);
            }
            Err(error) => panic!("cannot start a thread for {}: {error}", check.name),
        };
        let elapsed = started.elapsed().as_secs_f64();
        if ok {
            passed += 1;
            println!("ok     {} ({elapsed:.2} s)", check.name);
        } else {
            failed += 1;
            println!("FAILED {} ({elapsed:.2} s)", check.name);
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
