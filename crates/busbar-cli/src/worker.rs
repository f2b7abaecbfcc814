//! `busbar worker`: runs the cmd events of a Redis queue, a distributed command runner.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use busbar::{EventBus, RetryBackoff};
use busbar_redis::Broker;
use clap::Args;

/// The settings of `busbar worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The Redis server, e.g. `redis://127.0.0.1:6379/`.
    #[arg(long, value_name = "URL")]
    redis: String,
    /// The queue's namespace: the prefix of its Redis keys.
    #[arg(long, default_value = busbar_redis::DEFAULT_NAMESPACE)]
    namespace: String,
    /// How many commands run at once [default: the number of logical cores].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds after which the events of a worker that died are redelivered.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    visibility_timeout: f64,
    /// Seconds to wait before retrying a failed command (for events with retries).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    retry_backoff: f64,
}

/// Runs a worker until SIGINT or SIGTERM, then lets the commands in hand finish.
pub(crate) fn run(args: WorkerArgs) -> ExitCode {
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("busbar worker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &WorkerArgs) -> Result<(), String> {
    let seconds = |name: &str, value: f64| {
        Duration::try_from_secs_f64(value)
            .map_err(|_| format!("--{name} must be a number of seconds, found {value}"))
    };
    let visibility = seconds("visibility-timeout", args.visibility_timeout)?;
    let backoff = match seconds("retry-backoff", args.retry_backoff)? {
        pause if pause.is_zero() => RetryBackoff::Immediate,
        pause => RetryBackoff::Fixed(pause),
    };
    let concurrency =
        args.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    // Before any thread starts, so that every thread inherits the mask and only `sigwait`
    // below sees the signals.
    let signals = block_stop_signals().map_err(|error| format!("cannot set up signal handling: {error}"))?;
    let broker = Broker::new(&args.redis).map_err(|error| error.to_string())?.namespace(&args.namespace);
    let bus = EventBus::builder().threads(concurrency).build().map_err(|error| error.to_string())?;
    let worker = broker
        .worker(bus.clone())
        .concurrency(concurrency)
        .visibility_timeout(visibility)
        .retry_backoff(backoff)
        .start()
        .map_err(|error| error.to_string())?;
    eprintln!(
        "busbar worker {}: running the cmd events of queue `{}` on {} ({concurrency} at once); \
         Ctrl-C stops it",
        worker.name(),
        broker.namespace_name(),
        broker.address(),
    );
    let signal = wait_for(&signals);
    eprintln!("busbar worker: signal {signal}; finishing the commands in hand");
    let stats = worker.stats();
    worker.shutdown();
    bus.shutdown();
    eprintln!(
        "busbar worker: stopped after {} events ({} succeeded, {} retried, {} dead-lettered)",
        stats.fetched, stats.succeeded, stats.retried, stats.dead_lettered
    );
    Ok(())
}

/// Blocks SIGINT and SIGTERM in this thread (and so in the threads it starts later) and
/// returns the set, for [`wait_for`].
fn block_stop_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: `sigset_t` is plain data, for which all-zero bytes are a valid (if unspecified)
    // value; `sigemptyset` initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed `sigset_t`; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    // SAFETY: `set` is initialised; a null old-set pointer is allowed. Only this thread's mask
    // changes; child processes reset theirs when `std::process::Command` starts them.
    let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    match error {
        0 => Ok(set),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// Waits for one of the signals in `set` and returns its number.
fn wait_for(set: &libc::sigset_t) -> i32 {
    loop {
        let mut signal = 0;
        // SAFETY: `set` is an initialised signal set, and `signal` a valid place to write to.
        if unsafe { libc::sigwait(set, &mut signal) } == 0 {
            return signal;
        }
    }
}
