//! `busbar demo`: a short tour of the event bus for newcomers.
//!
//! Each step publishes a few events, prints what happened and checks it against what the bus
//! promises; anything unexpected is reported on stderr and makes the tour exit non-zero.

mod cmd;
mod corelet;
mod failures;
mod lifecycle;
mod modes;
mod report;
mod schedule;

use std::process::ExitCode;

use busbar::EventBus;

pub(crate) use corelet::handlers;
use report::Tour;

/// The worker threads of the tour's main bus, and so its corelet pool size (fixed, so the
/// output reads the same everywhere).
const THREADS: usize = 2;

/// Runs the tour and returns the process's exit code.
pub(crate) fn run() -> ExitCode {
    println!("busbar {} — a tour of the event bus", env!("CARGO_PKG_VERSION"));
    // Built with the corelet handlers that `main` gave to `busbar::corelet_main`, so that the
    // bus accepts corelet events and its children (this program, re-executed) can run them.
    let bus = match EventBus::builder().threads(THREADS).factory(handlers()).build() {
        Ok(bus) => bus,
        Err(error) => {
            eprintln!("error: cannot build the tour's bus: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut tour = Tour::new();
    tour.step("Sync mode: hello", |t| modes::hello(t, &bus));
    tour.step("Thread mode: priorities on a one-thread pool", modes::priorities);
    tour.step("Thread mode: a batch of 1000 events", |t| modes::batch(t, &bus));
    tour.step("Retries: a flaky handler", |t| failures::retry(t, &bus));
    tour.step("Timeouts: cooperative in sync and thread mode", |t| failures::timeout(t, &bus));
    tour.step("Panics: captured, the worker survives", |t| failures::panic(t, &bus));
    tour.step("Context: a chain of events shares one correlation id", |t| lifecycle::chain(t, &bus));
    tour.step("Errors: refused at publish, or failed in the handler", |t| failures::errors(t, &bus));
    tour.step("Corelet mode: a handler in another process", |t| corelet::elsewhere(t, &bus));
    tour.step("Corelet mode: a crash stays in its process", |t| corelet::crash(t, &bus));
    tour.step("Corelet mode: a hard timeout kills the process", |t| corelet::hard_timeout(t, &bus));
    tour.step("Cmd mode: run a program, no handler and no shell", |t| cmd::run(t, &bus));
    tour.step("Timers: a periodic TimerThread, a delayed event", |t| schedule::timer(t, &bus));
    tour.step("Rate limits: delayed, never dropped", |t| schedule::rate_limit(t, &bus));
    tour.step("Statistics", |t| lifecycle::stats(t, &bus));
    tour.step("Shutdown: graceful, then immediate", |t| lifecycle::shutdown(t, &bus));
    tour.finish()
}
