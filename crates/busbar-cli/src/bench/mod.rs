//! `busbar bench`: every execution mode measured beside its floor, in the same process and run.
//!
//! A *floor* is the bare mechanism a mode is built on, written by hand in `floor/` (never busbar
//! code). Absolute times drift from run to run on a shared machine; the ratio to a floor
//! measured moments earlier in the same process drifts far less. So each scenario measures
//! busbar and its floor in alternating repetitions, takes medians, and returns a [`Row`] with
//! the ratio and whether the target of issue 5 is met.
//!
//! | file | scenario |
//! |---|---|
//! | `sync.rs` | 1. sync publish → result |
//! | `thread_throughput.rs` | 2. thread mode, fire-and-forget, then `join()` |
//! | `thread_round_trip.rs` | 3. thread mode, publish → wait, one at a time |
//! | `corelet.rs` | 4. corelet round trip and throughput with 2 corelets |
//! | `cmd.rs` | 5. cmd mode running `true` |
//! | `timer.rs` | 6. drift of a 5 ms periodic `TimerThread` |
//! | `memory.rs` | 7. resident bytes per queued event (in a fresh child process) |
//! | `scaling.rs` | 8. draining 1 000 000 queued events versus 1 000 |
//!
//! The rest: `floor/` (the floors), `costs.rs` (what the primitives the guarantees need cost,
//! for the notes), `handlers.rs` (the handlers and event types, also
//! registered in corelet children), `gate.rs` (a handler that blocks a pool), `placement.rs`
//! (which CPUs the round trips' two sides run on), `stats.rs`
//! (medians, percentiles), `report.rs` (rows, table, JSON), `machine.rs` (the header),
//! `progress.rs` (the progress bar).
//!
//! The bench re-executes its own binary for two kinds of children: corelets (through
//! `busbar::corelet_main` in `main`, which is why `main` must register [`register_handlers`])
//! and the bench's own helpers, started as `busbar bench --child ROLE` (see [`ChildRole`]).

mod cmd;
mod corelet;
mod corelet_wire;
mod costs;
mod floor;
mod gate;
mod handlers;
mod machine;
mod memory;
mod placement;
mod progress;
mod report;
mod scaling;
mod stats;
mod sync;
mod thread_round_trip;
mod thread_throughput;
mod timer;

use std::process::{Command, ExitCode, Stdio};

use clap::{Args, ValueEnum};

pub(crate) use handlers::register_handlers;

use machine::Machine;
use progress::Progress;
use report::Row;

/// What a scenario or a child returns when it cannot measure at all.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// Arguments of `busbar bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Run small sizes (seconds in total): proves that every scenario works; the figures
    /// mean little.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON on stdout instead of a table (no progress bar).
    #[arg(long)]
    json: bool,
    /// Run only these scenarios, in the order given (default: all).
    #[arg(long, value_enum, num_args = 1.., value_name = "NAME")]
    scenario: Vec<Scenario>,
    /// Serve as one of the bench's own child processes (internal).
    #[arg(long, value_enum, hide = true)]
    child: Option<ChildRole>,
    /// How many events a `--child memory` or `memory-floor` queues (internal).
    #[arg(long, hide = true, default_value_t = 0)]
    events: usize,
}

/// The scenarios, in the order of issue 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Sync publish → result, versus the same event and handler called through `&dyn`.
    Sync,
    /// Thread mode, fire-and-forget then `join()`, versus a bare Mutex<BinaryHeap> pool.
    ThreadThroughput,
    /// Thread mode, publish → wait one at a time, versus a bare worker and a oneshot reply;
    /// with the workers on another CPU than the publisher, then on the same one.
    ThreadRoundTrip,
    /// Corelet round trip (children on another CPU, then on the same one) and throughput,
    /// versus a child echoing the same bytes over pipes.
    Corelet,
    /// Cmd mode running `true`, versus `std::process::Command` in its own process group.
    Cmd,
    /// Drift of the 200th tick of a 5 ms periodic timer.
    Timer,
    /// Resident bytes per event queued behind a blocked pool.
    Memory,
    /// Throughput draining 1 000 000 queued events versus 1 000.
    Scaling,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Sync => "sync",
            Scenario::ThreadThroughput => "thread-throughput",
            Scenario::ThreadRoundTrip => "thread-round-trip",
            Scenario::Corelet => "corelet",
            Scenario::Cmd => "cmd",
            Scenario::Timer => "timer",
            Scenario::Memory => "memory",
            Scenario::Scaling => "scaling",
        }
    }

    fn run(self, run: &Run<'_>) -> Result<Vec<Row>, Error> {
        match self {
            Scenario::Sync => sync::run(run),
            Scenario::ThreadThroughput => thread_throughput::run(run),
            Scenario::ThreadRoundTrip => thread_round_trip::run(run),
            Scenario::Corelet => corelet::run(run),
            Scenario::Cmd => cmd::run(run),
            Scenario::Timer => timer::run(run),
            Scenario::Memory => memory::run(run),
            Scenario::Scaling => scaling::run(run),
        }
    }
}

/// The bench's own child processes, started as `busbar bench --child ROLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ChildRole {
    /// The corelet floor: echo length-prefixed frames from stdin to stdout.
    Echo,
    /// Queue `--events` thread events behind a blocked bus and report resident bytes.
    Memory,
    /// The same with the floor pool instead of a bus.
    MemoryFloor,
}

/// What every scenario gets: the size class and the progress bar.
struct Run<'a> {
    /// Small sizes for CI.
    quick: bool,
    progress: &'a Progress,
}

impl Run<'_> {
    /// Picks the full or the quick value.
    fn size<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// Runs `reps` repetitions of busbar and its floor, alternating which goes first so that
    /// neither always runs on the warmer (or noisier) side of a pair.
    fn alternate<A, B>(
        &self,
        reps: usize,
        mut busbar: impl FnMut() -> Result<A, Error>,
        mut floor: impl FnMut() -> Result<B, Error>,
    ) -> Result<(Vec<A>, Vec<B>), Error> {
        let (mut ours, mut theirs) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
        for rep in 0..reps {
            self.progress.rep(rep + 1, reps);
            if rep % 2 == 0 {
                ours.push(busbar()?);
                theirs.push(floor()?);
            } else {
                theirs.push(floor()?);
                ours.push(busbar()?);
            }
        }
        Ok((ours, theirs))
    }
}

/// Runs `busbar bench` and returns the process's exit code: failure only if a scenario could
/// not be measured (a missed target is a result, not an error).
pub(crate) fn run(args: &BenchArgs) -> ExitCode {
    if let Some(role) = args.child {
        return serve_child(role, args.events);
    }
    let scenarios = selected(&args.scenario);
    let machine = Machine::detect(args.quick);
    if !args.json {
        report::print_header(&machine);
    }
    let progress = Progress::new(scenarios.len(), !args.json);
    let run = Run { quick: args.quick, progress: &progress };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for scenario in scenarios {
        progress.start(scenario.name());
        match scenario.run(&run) {
            Ok(scenario_rows) => rows.extend(scenario_rows),
            Err(error) => errors.push(format!("{}: {error}", scenario.name())),
        }
        progress.finish_scenario();
    }
    progress.clear();
    if args.json {
        report::print_json(&machine, &rows, &errors);
    } else {
        report::print_table(&rows);
    }
    for error in &errors {
        eprintln!("error: scenario {error}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The scenarios asked for without repeats, or all of them.
fn selected(asked: &[Scenario]) -> Vec<Scenario> {
    if asked.is_empty() {
        return Scenario::value_variants().to_vec();
    }
    let mut scenarios = Vec::new();
    for scenario in asked {
        if !scenarios.contains(scenario) {
            scenarios.push(*scenario);
        }
    }
    scenarios
}

fn serve_child(role: ChildRole, events: usize) -> ExitCode {
    let served = match role {
        ChildRole::Echo => floor::echo::serve(),
        ChildRole::Memory => memory::serve_busbar(events),
        ChildRole::MemoryFloor => memory::serve_floor(events),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("busbar bench child: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts this very binary as `busbar bench --child ROLE ARGS…`.
fn child_command(role: &str, args: &[&str]) -> Result<Command, Error> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.args(["bench", "--child", role]).args(args).stdin(Stdio::null());
    Ok(command)
}
