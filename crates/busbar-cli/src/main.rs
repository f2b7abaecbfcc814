//! The `busbar` command: `busbar demo` tours the event bus.

mod bench;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// busbar: an event bus for Rust programs.
///
/// A program publishes an event; the bus runs the handler registered for the event's type
/// in the event's execution mode: sync (on the publishing thread), thread (on a
/// priority-ordered worker pool), corelet (an isolated process) or cmd (a command-line
/// program). Corelet and cmd modes are not built yet.
#[derive(Debug, Parser)]
#[command(name = "busbar", version, after_help = "Start with `busbar demo`: it runs in a few seconds.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tour the event bus: publish events in every mode and print what happened.
    ///
    /// Runs in a few seconds: sync and thread events, priorities, retries, timeouts, a
    /// captured panic, a chain of events with correlation ids, error handling, the modes that
    /// are not built yet, statistics and shutdown. Exits with a non-zero code if anything
    /// behaved unexpectedly.
    Demo,
    /// Measure every execution mode beside its floor (the bare mechanism it is built on).
    ///
    /// Prints one row per scenario: busbar's figure, the floor's, their ratio, the target
    /// and whether it is met. Build with `--release` for figures that mean anything.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    // MERGE NOTE (bench branch): corelet children re-execute this binary, so `main` must call
    // `busbar::corelet_main` first, on a factory holding every handler a corelet event may
    // need, including the bench's: `bench::register_handlers(&factory)`. The demo branch adds
    // `busbar::corelet_main(&handlers())`; keep one call, with the bench's handlers registered
    // in that factory (e.g. call `bench::register_handlers(&factory)` inside `handlers()`).
    let factory = busbar::EventFactory::new();
    bench::register_handlers(&factory);
    busbar::corelet_main(&factory);

    match Cli::parse().command {
        Command::Demo => demo::run(),
        Command::Bench(args) => bench::run(&args),
    }
}
