//! `busbar soak`: a steady mixed load for a while, then proof that nothing was lost and
//! nothing grew.
//!
//! The publisher paces [`load::MIX`] (every mode, with failures, panics, cooperative
//! timeouts, corelets that abort or hang and are killed, commands that fail or are killed) at
//! `--rate` events per second; a collector thread waits for each handle and counts its
//! outcome. After a warm-up the soak samples its resident memory, descriptors, threads and
//! children (`probe.rs`), again at each quarter of `--duration`, after `join()` and after
//! `shutdown()`, then checks the bounds below and exits non-zero if one is broken.
//!
//! | file | responsibility |
//! |---|---|
//! | `load.rs` | the handlers, the mix, the tally of results |
//! | `probe.rs` | samples of `/proc/self` and of this process's children |
//! | `report.rs` | the verdict, printed as text or JSON |

mod load;
mod probe;
mod report;

use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use busbar::{CoreletConfig, CoreletOutput, EventBus, EventFactory};
use clap::Args;

pub(crate) use load::register_handlers;

use probe::Sample;
use report::Report;

/// Resident memory may grow by at most this much from the warm-up sample to the last one.
const RSS_GROWTH: u64 = 64 << 20;
/// Open descriptors may grow by at most this many from the warm-up sample to the last one.
const DESCRIPTOR_GROWTH: usize = 8;
/// Length of the warm-up, at most: a quarter of the duration if that is shorter.
const WARM_UP: Duration = Duration::from_secs(2);
/// Worker threads of the soak's bus: corelet and cmd attempts hold one while they wait.
const THREADS: usize = 8;
/// Corelet processes at once.
const CORELETS: usize = 4;

/// Arguments of `busbar soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// How long to publish after the warm-up: `30s`, `500ms`, `2m` or plain seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Events published per second (paced evenly).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Print the report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the soak and prints its report; fails if a bound is broken.
pub(crate) fn run(args: &SoakArgs) -> ExitCode {
    quiet_soak_panics();
    let started = Instant::now();
    let bus = match bus() {
        Ok(bus) => bus,
        Err(error) => {
            eprintln!("busbar soak: cannot build the bus: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (sender, receiver) = mpsc::channel();
    let collector = thread::Builder::new()
        .name("busbar-soak-collector".to_owned())
        .spawn(move || load::Tally::collect(&receiver))
        .expect("a thread for the collector");
    let mut publisher =
        Publisher { bus: &bus, sender, rate: args.rate, next: 0, accepted: 0, refused: Vec::new() };

    let warm_up = WARM_UP.min(args.duration / 4);
    publisher.publish_for(warm_up);
    bus.join();
    let mut samples = vec![("warm-up", Sample::take(started.elapsed().as_secs_f64()))];

    let measured = Instant::now();
    let accepted_before = publisher.accepted;
    let quarter = args.duration / 4;
    for label in ["25%", "50%", "75%", "100%"] {
        publisher.publish_for(quarter);
        samples.push((label, Sample::take(started.elapsed().as_secs_f64())));
    }
    bus.join();
    let elapsed = measured.elapsed();
    let measured_accepted = publisher.accepted - accepted_before;
    samples.push(("after join", Sample::take(started.elapsed().as_secs_f64())));
    let Publisher { accepted, refused, sender, .. } = publisher;
    drop(sender);
    let stats = bus.stats();
    bus.shutdown();
    drop(bus);
    let tally = collector.join().expect("the collector does not panic");
    samples.push(("after shutdown", Sample::take(started.elapsed().as_secs_f64())));

    let report = Report {
        duration_s: args.duration.as_secs_f64(),
        warm_up_s: warm_up.as_secs_f64(),
        rate: args.rate,
        accepted,
        refused,
        measured_accepted,
        measured_s: elapsed.as_secs_f64(),
        tally,
        stats,
        samples,
        rss_growth_bound: RSS_GROWTH,
        descriptor_growth_bound: DESCRIPTOR_GROWTH,
    };
    report.print(args.json);
    if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Publishes the mix at a steady rate and hands every handle to the collector.
struct Publisher<'a> {
    bus: &'a EventBus,
    sender: mpsc::Sender<(usize, busbar::EventHandle)>,
    rate: u32,
    /// Index of the next event, over the whole run: it picks the slot of the mix and, with
    /// the rate, the instant the event is due.
    next: u64,
    accepted: u64,
    /// Why events were refused (none should be).
    refused: Vec<String>,
}

impl Publisher<'_> {
    /// Publishes for `span`, each event at its due instant (publishing late ones at once, so
    /// a stall is caught up rather than dropped).
    fn publish_for(&mut self, span: Duration) {
        let start = Instant::now();
        let first = self.next;
        let interval = Duration::from_secs(1) / self.rate;
        loop {
            let due = start + interval * u32::try_from(self.next - first).unwrap_or(u32::MAX);
            if due.duration_since(start) >= span {
                return;
            }
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let slot = (self.next % load::MIX.len() as u64) as usize;
            match self.bus.publish(load::MIX[slot].event()) {
                Ok(handle) => {
                    self.accepted += 1;
                    // The collector lives until the sender is dropped.
                    let _ = self.sender.send((slot, handle));
                }
                Err(error) => self.refused.push(format!("{}: {error}", load::MIX[slot].name)),
            }
            self.next += 1;
        }
    }
}

/// The soak's bus: its handlers, [`THREADS`] workers, [`CORELETS`] silent corelets.
fn bus() -> Result<EventBus, busbar::EventBusBuildError> {
    let factory = EventFactory::new();
    register_handlers(&factory);
    let mut corelet = CoreletConfig::default();
    corelet.pool_size = Some(CORELETS);
    // Aborting children print nothing useful; a soak's output is its report.
    corelet.output = CoreletOutput::Null;
    EventBus::builder().threads(THREADS).factory(factory).corelet(corelet).build()
}

/// Keeps the soak's own panics (thousands of them, all caught by the bus) off stderr; any
/// other panic still reaches the previous hook.
fn quiet_soak_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<&str>().copied().unwrap_or_default();
        if !message.starts_with("soak:") {
            previous(info);
        }
    }));
}

/// Parses `30s`, `500ms`, `2m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1_000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3_600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m or h")),
    };
    let duration = Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))?;
    if duration < Duration::from_millis(100) {
        return Err(format!("{text:?} is too short: at least 100ms"));
    }
    Ok(duration)
}
