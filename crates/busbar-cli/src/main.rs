//! The `busbar` command: `busbar demo` tours the event bus.

mod demo;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// busbar: an event bus for Rust programs.
///
/// A program publishes an event; the bus runs the handler registered for the event's type
/// in the event's execution mode: sync (on the publishing thread), thread (on a
/// priority-ordered worker pool), corelet (an isolated child process) or cmd (a command-line
/// program, no handler needed).
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
    /// captured panic, a chain of events with correlation ids, error handling, corelets
    /// (another process, a crash, a hard timeout), commands, timers, a rate limit,
    /// statistics and shutdown. Exits with a non-zero code if anything behaved unexpectedly.
    Demo,
    /// Run the cmd events of a Redis queue: a distributed command runner.
    ///
    /// Takes events published with busbar-redis's `Publisher` to the queue's streams (any
    /// number of workers, on any machines, share them), runs their commands, records each
    /// result for its publisher, retries failures that have retries left and sends the rest
    /// to the dead-letter stream. SIGINT or SIGTERM stops it after the commands in hand.
    Worker(worker::WorkerArgs),
}

fn main() -> ExitCode {
    // First, before anything else: the tour's corelet events run in children that are this
    // program re-executed. In such a child this call serves events with the tour's corelet
    // handlers and never returns; in `busbar` itself it returns at once.
    busbar::corelet_main(&demo::handlers());
    match Cli::parse().command {
        Command::Demo => demo::run(),
        Command::Worker(args) => worker::run(args),
    }
}
