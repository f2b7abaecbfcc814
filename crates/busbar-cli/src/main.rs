//! The `busbar` command: `busbar demo` tours the event bus, `busbar bench` measures it,
//! `busbar worker` runs the cmd events of a Redis queue, `busbar soak` holds a faulty load and
//! checks that nothing was lost or grew.

mod bench;
mod demo;
mod soak;
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
    /// Measure every execution mode beside its floor (the bare mechanism it is built on).
    ///
    /// Prints one row per scenario: busbar's figure, the floor's, their ratio, the target
    /// and whether it is met. Build with `--release` for figures that mean anything.
    Bench(bench::BenchArgs),
    /// Run the cmd events of a Redis queue: a distributed command runner.
    ///
    /// Takes events published with busbar-redis's `Publisher` to the queue's streams (any
    /// number of workers, on any machines, share them), runs their commands, records each
    /// result for its publisher, retries failures that have retries left and sends the rest
    /// to the dead-letter stream. SIGINT or SIGTERM stops it after the commands in hand.
    Worker(worker::WorkerArgs),
    /// Publish a steady mixed load with faults for a while; fail if anything was lost or grew.
    ///
    /// Every mode, with failures, panics, cooperative timeouts, corelets that abort or hang
    /// and are killed, and commands that fail or are killed. Reports throughput, results by
    /// kind, resident memory over time, open descriptors and child processes. Exits non-zero
    /// unless: every accepted event resolved exactly once; RSS after shutdown <= RSS after
    /// warm-up + 64 MiB; descriptors after shutdown <= after warm-up + 8; no child process is
    /// left after shutdown. Build with `--release`.
    Soak(soak::SoakArgs),
}

/// Every handler the program's corelet events need: the tour's, the bench's and the soak's.
fn corelet_handlers() -> busbar::EventFactory {
    let factory = demo::handlers();
    bench::register_handlers(&factory);
    soak::register_handlers(&factory);
    factory
}

fn main() -> ExitCode {
    // First, before anything else: corelet events (the tour's and the bench's) run in children
    // that are this program re-executed. In such a child this call serves events and never
    // returns; in `busbar` itself it returns at once. The factory must hold every handler a
    // corelet event of this program may need.
    busbar::corelet_main(&corelet_handlers());
    match Cli::parse().command {
        Command::Demo => demo::run(),
        Command::Bench(args) => bench::run(&args),
        Command::Worker(args) => worker::run(args),
        Command::Soak(args) => soak::run(&args),
    }
}
