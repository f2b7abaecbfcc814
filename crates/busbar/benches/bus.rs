//! Hot-path micro-benchmarks: sync publish → result, thread round trip, thread throughput.
//!
//! Each group measures busbar beside its floor (the bare mechanism it is built on), in the same
//! run, so the ratio means something on a noisy machine. Run: `cargo bench -p busbar --bench bus`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use busbar::{handler_fn, Event, EventBus, EventContext, EventResult, ExecutionMode, HandlerResult};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn trivial(_ctx: &EventContext) -> HandlerResult {
    Ok(EventResult::success())
}

/// Sync mode: publish and take the result, versus building the same event and calling the same
/// handler through `&dyn` (what any event bus must do at least).
fn sync_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_publish");
    let bus = EventBus::new();
    bus.subscribe("bench", handler_fn(trivial));
    group.bench_function("busbar", |b| {
        b.iter(|| black_box(bus.publish(Event::new("bench")).map(|h| h.wait().success)))
    });
    let handler: Box<dyn Fn(&Event) -> EventResult> = Box::new(|_| EventResult::success());
    group.bench_function("floor: build event + dyn call", |b| {
        b.iter(|| {
            let event = Event::new("bench");
            black_box(handler(black_box(&event)).success)
        })
    });
    group.finish();
    bus.shutdown();
}

/// Thread mode, one event at a time: publish, then wait for the result.
fn thread_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("thread_round_trip");
    let bus = EventBus::builder().threads(1).build().expect("valid settings");
    bus.subscribe("bench", handler_fn(trivial));
    group.bench_function("busbar", |b| {
        b.iter(|| {
            let event = Event::new("bench").with_mode(ExecutionMode::Thread);
            black_box(bus.publish(event).map(|h| h.wait().success))
        })
    });
    bus.shutdown();

    // Floor: one bare worker thread fed through a channel, answering on a oneshot.
    let (submit, jobs) = std::sync::mpsc::channel::<(Event, oneshot::Sender<EventResult>)>();
    let worker = std::thread::spawn(move || {
        let handler: &dyn Fn(&Event) -> EventResult = &|_| EventResult::success();
        for (event, reply) in jobs {
            let _ = reply.send(handler(&event));
        }
    });
    group.bench_function("floor: bare worker + oneshot reply", |b| {
        b.iter(|| {
            let (reply, result) = oneshot::channel();
            let _ = submit.send((Event::new("bench"), reply));
            black_box(result.recv().map(|r| r.success))
        })
    });
    drop(submit);
    let _ = worker.join();
    group.finish();
}

/// Thread mode, fire-and-forget: publish a batch, then `join()`.
fn thread_throughput(c: &mut Criterion) {
    const BATCH: u64 = 10_000;
    let mut group = c.benchmark_group("thread_throughput");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(8));
    let bus = EventBus::new();
    bus.subscribe("bench", handler_fn(trivial));
    group.bench_function("busbar", |b| {
        b.iter_batched(
            || (0..BATCH).map(|_| Event::new("bench").with_mode(ExecutionMode::Thread)).collect::<Vec<_>>(),
            |events| {
                for event in events {
                    // Dropping the handle is fire-and-forget: the event still runs.
                    drop(bus.publish(event));
                }
                bus.join();
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    bus.shutdown();
}

criterion_group!(benches, sync_publish, thread_round_trip, thread_throughput);
criterion_main!(benches);
