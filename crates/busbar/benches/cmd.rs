//! Cmd mode beside bare `std::process::Command`: how fast the bus runs `true`.
//!
//! The floor spawns `true` the way every cmd event does at the least (a process group of its
//! own) and waits for it. busbar adds a hop to a worker thread and back, captured stdout and
//! stderr, a pidfd and the JSON result. A control separates the two: a thread-mode event whose
//! handler spawns `true` exactly as the floor does pays the hop but none of cmd mode's own
//! costs. Each group runs its sides in the same process, so the ratios mean something on a
//! noisy machine; the run ends with an interleaved measurement that prints them directly.
//!
//! Run: `cargo bench -p busbar --bench cmd`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventHandle, EventResult, ExecutionMode};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use serde_json::json;

/// Events per batch in the batch group.
const BATCH: u64 = 64;

/// A cmd event running `true`.
fn true_event() -> Event {
    Event::new("bench.true").with_mode(ExecutionMode::Cmd).with_data(json!({"executable": "true"}))
}

/// The floor: spawn `true` in a process group of its own and wait for it.
fn bare_true() -> bool {
    let mut command = Command::new("true");
    command.process_group(0);
    command.status().is_ok_and(|status| status.success())
}

/// Publishes one cmd event and waits for its result.
fn busbar_true(bus: &EventBus) -> bool {
    bus.publish(true_event()).map(EventHandle::wait).is_ok_and(|result| result.success)
}

/// A one-worker bus whose `bench.spawn` thread-mode handler runs [`bare_true`]: the control.
fn control_bus() -> EventBus {
    let bus = EventBus::builder().threads(1).build().expect("valid settings");
    bus.subscribe(
        "bench.spawn",
        handler_fn(|_| match bare_true() {
            true => Ok(EventResult::success()),
            false => Err("`true` failed".into()),
        }),
    );
    bus
}

/// Publishes one control event and waits for its result.
fn control_true(bus: &EventBus) -> bool {
    let event = Event::new("bench.spawn").with_mode(ExecutionMode::Thread);
    bus.publish(event).map(EventHandle::wait).is_ok_and(|result| result.success)
}

/// One at a time: publish, wait; spawn, wait.
fn one_at_a_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("cmd_true");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    let bus = control_bus();
    group.bench_function("busbar: cmd event, publish → wait", |b| {
        b.iter(|| assert!(black_box(busbar_true(&bus))))
    });
    group.bench_function("floor: Command + process_group(0) + status", |b| {
        b.iter(|| assert!(black_box(bare_true())))
    });
    group.bench_function("control: thread event spawning like the floor", |b| {
        b.iter(|| assert!(black_box(control_true(&bus))))
    });
    group.finish();
    bus.shutdown();
}

/// A batch on two workers, then `join`; the floor spawns the same number from two threads.
fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("cmd_true_batch");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(8));
    let bus = EventBus::builder().threads(2).build().expect("valid settings");
    group.bench_function("busbar: 2 workers, publish × 64 → join", |b| {
        b.iter_batched(
            || (0..BATCH).map(|_| true_event()).collect::<Vec<_>>(),
            |events| {
                let handles: Vec<_> = events.into_iter().map(|event| bus.publish(event)).collect();
                bus.join();
                for handle in handles {
                    assert!(handle.expect("accepted").wait().success);
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("floor: 2 threads × 32 spawn + status", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| (0..BATCH / 2).for_each(|_| assert!(bare_true())));
                }
            })
        })
    });
    group.finish();
    bus.shutdown();
}

/// Runs rounds of three back-to-back blocks (floor, cmd event, control) and prints the median
/// rates and the median of each round's ratios to the floor.
///
/// Blocks next to each other in time see the same load from the other tenants of the machine;
/// the order rotates from round to round, and medians shrug off the odd stall. The quartiles
/// of the cmd ratio show how much the load moved it.
fn interleaved_ratio() {
    const ROUNDS: usize = 21;
    const RUNS: u32 = 100;
    let bus = control_bus();
    let rate = |run: &dyn Fn() -> bool| {
        let start = Instant::now();
        for _ in 0..RUNS {
            assert!(run());
        }
        f64::from(RUNS) / start.elapsed().as_secs_f64()
    };
    let sides: [&dyn Fn() -> bool; 3] = [&bare_true, &|| busbar_true(&bus), &|| control_true(&bus)];
    let mut rates = [Vec::new(), Vec::new(), Vec::new()];
    let (mut cmd_ratios, mut control_ratios) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let mut this_round = [0.0; 3];
        for step in 0..3 {
            let side = (round + step) % 3;
            this_round[side] = rate(sides[side]);
            rates[side].push(this_round[side]);
        }
        cmd_ratios.push(this_round[1] / this_round[0]);
        control_ratios.push(this_round[2] / this_round[0]);
    }
    bus.shutdown();
    let quartiles = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        (values[n / 4], values[n / 2], values[3 * n / 4])
    };
    let [floor, cmd, control] = rates.map(|mut side| quartiles(&mut side).1);
    let (low, cmd_ratio, high) = quartiles(&mut cmd_ratios);
    let (_, control_ratio, _) = quartiles(&mut control_ratios);
    println!("cmd_true interleaved: {ROUNDS} rounds of {RUNS}-run blocks, medians");
    println!("  floor   {floor:>6.0} runs/s");
    println!("  cmd     {cmd:>6.0} runs/s  ratio {cmd_ratio:.3} (quartiles {low:.3}..{high:.3})");
    println!("  control {control:>6.0} runs/s  ratio {control_ratio:.3} (the worker hop alone)");
}

criterion_group!(benches, one_at_a_time, batch);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs each benchmark once as a smoke test; skip the long A/B then.
    if std::env::args().any(|arg| arg == "--bench") {
        interleaved_ratio();
    }
}
