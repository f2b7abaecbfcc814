//! Properties of corelet mode: random mixes of corelet events whose handlers succeed, fail,
//! panic, exit, abort or hang past a hard timeout, published from several threads between
//! joins and shutdowns, each end with one result of the right kind; no child outlives the bus.
//!
//! The children are this binary re-executed, so `main` calls `corelet_main` first and runs
//! proptest by hand (no libtest harness). Few, small cases by default; `PROPTEST_CASES`
//! raises them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use busbar::{
    handler_fn, CoreletConfig, CoreletOutput, ErrorKind, Event, EventBus, EventFactory, EventHandle,
    EventResult, ExecutionMode, HandlerError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

/// How long any wait may take before the case fails as hung.
const HANG: Duration = Duration::from_secs(60);

/// The hard timeout of hanging events (the others get [`HANG`]).
const SHORT: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    Fail,
    Error,
    Permanent,
    Panic,
    /// `std::process::exit(7)`: the child dies.
    Exit,
    /// `std::process::abort()`: the child dies of SIGABRT.
    Abort,
    /// Never returns and ignores cancellation: only the hard timeout ends it.
    Hang,
}

const ALL: [Behaviour; 8] = [
    Behaviour::Succeed,
    Behaviour::Fail,
    Behaviour::Error,
    Behaviour::Permanent,
    Behaviour::Panic,
    Behaviour::Exit,
    Behaviour::Abort,
    Behaviour::Hang,
];

fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("prop", || {
        handler_fn(|ctx| match ALL[ctx.event().data()["behaviour"].as_u64().unwrap_or_default() as usize] {
            Behaviour::Succeed => Ok(EventResult::success()),
            Behaviour::Fail => Ok(EventResult::failure("failed on purpose")),
            Behaviour::Error => Err(HandlerError::new("error on purpose")),
            Behaviour::Permanent => Err(HandlerError::permanent("permanent error on purpose")),
            Behaviour::Panic => panic!("panic on purpose"),
            Behaviour::Exit => std::process::exit(7),
            Behaviour::Abort => std::process::abort(),
            Behaviour::Hang => loop {
                thread::sleep(Duration::from_millis(50));
            },
        })
    });
    factory
}

#[derive(Clone, Debug)]
struct Spec {
    behaviour: Behaviour,
    priority: i32,
    retry_count: u32,
}

impl Spec {
    fn event(&self) -> Event {
        let index = ALL.iter().position(|b| *b == self.behaviour).unwrap_or_default();
        let timeout = if self.behaviour == Behaviour::Hang { SHORT } else { HANG };
        Event::new("prop")
            .with_mode(ExecutionMode::Corelet)
            .with_priority(self.priority)
            .with_retry_count(self.retry_count)
            .with_timeout(timeout)
            .with_data(json!({ "behaviour": index }))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Publish(Spec),
    Join,
    Shutdown,
    ShutdownNow,
}

#[derive(Clone, Debug)]
struct Scenario {
    threads: usize,
    pool_size: usize,
    scripts: Vec<Vec<Op>>,
    /// End with `shutdown_now` (else `shutdown`).
    end_now: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let spec = (prop::sample::select(ALL.to_vec()), -2..=2_i32, 0..=2_u32)
        .prop_map(|(behaviour, priority, retry_count)| Spec { behaviour, priority, retry_count });
    let op = prop_oneof![
        16 => spec.prop_map(Op::Publish),
        2 => Just(Op::Join),
        1 => Just(Op::Shutdown),
        1 => Just(Op::ShutdownNow),
    ];
    (1..=2_usize, 1..=2_usize, prop::collection::vec(prop::collection::vec(op, 0..5), 1..=2), any::<bool>())
        .prop_map(|(threads, pool_size, scripts, end_now)| Scenario { threads, pool_size, scripts, end_now })
}

/// Runs `f` on another thread and fails the case if it takes longer than [`HANG`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, TestCaseError> {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(f());
    });
    finished.recv_timeout(HANG).map_err(|_| TestCaseError::fail(format!("{what} hung for {HANG:?}")))
}

fn run_script(
    bus: EventBus,
    killed: Arc<AtomicBool>,
    script: Vec<Op>,
) -> Result<Vec<(Spec, EventHandle)>, String> {
    let mut accepted = Vec::new();
    let mut shut = false;
    for op in script {
        match op {
            Op::Publish(spec) => match bus.publish(spec.event()) {
                Ok(_) if shut => return Err(format!("{spec:?} accepted after shutdown returned")),
                Ok(handle) => accepted.push((spec, handle)),
                Err(error) if error.is_shut_down() => {}
                Err(error) => return Err(format!("{spec:?} refused: {error}")),
            },
            Op::Join => bus.join(),
            Op::Shutdown => {
                bus.shutdown();
                shut = true;
            }
            Op::ShutdownNow => {
                bus.shutdown_now();
                killed.store(true, Ordering::SeqCst);
                shut = true;
            }
        }
    }
    Ok(accepted)
}

fn check(scenario: Scenario) -> Result<(), TestCaseError> {
    let mut corelet = CoreletConfig::default();
    corelet.pool_size = Some(scenario.pool_size);
    corelet.output = CoreletOutput::Null;
    let bus =
        EventBus::builder().threads(scenario.threads).factory(handlers()).corelet(corelet).build().unwrap();
    let killed = Arc::new(AtomicBool::new(false));

    // All publishers start at once; each reports on its own channel.
    let publishers: Vec<_> = scenario
        .scripts
        .iter()
        .cloned()
        .map(|script| {
            let (bus, killed) = (bus.clone(), Arc::clone(&killed));
            let (done, finished) = mpsc::channel();
            thread::spawn(move || {
                let _ = done.send(run_script(bus, killed, script));
            });
            finished
        })
        .collect();
    let mut accepted = Vec::new();
    for finished in publishers {
        let published = finished.recv_timeout(HANG).map_err(|_| TestCaseError::fail("a publisher hung"))?;
        accepted.extend(published.map_err(TestCaseError::fail)?);
    }
    let ending = bus.clone();
    let end_now = scenario.end_now;
    let end_killed = Arc::clone(&killed);
    within("the final shutdown", move || {
        if end_now {
            ending.shutdown_now();
            end_killed.store(true, Ordering::SeqCst);
        } else {
            ending.shutdown();
        }
    })?;
    let killed = killed.load(Ordering::SeqCst);

    let mut ids = HashSet::new();
    let mut results = Vec::new();
    for (spec, mut handle) in accepted {
        let id = handle.id();
        let Some(result) = handle.wait_timeout(HANG).cloned() else {
            return Err(TestCaseError::fail(format!("the handle of {spec:?} hung")));
        };
        prop_assert_eq!(result.event_id, id);
        prop_assert!(ids.insert(id));
        check_result(&spec, &result, killed)?;
        results.push(result);
    }
    // A graceful shutdown after everything (idempotent after the first) retires every child.
    let closing = bus.clone();
    within("shutdown", move || closing.shutdown())?;
    let stats = bus.stats();
    let count = |kind: ErrorKind| results.iter().filter(|r| r.error_kind == Some(kind)).count() as u64;
    prop_assert_eq!(stats.published, results.len() as u64, "{:?}", stats);
    prop_assert_eq!(stats.succeeded + stats.failed, stats.published, "{:?}", stats);
    prop_assert_eq!(stats.succeeded, results.iter().filter(|r| r.success).count() as u64, "{:?}", stats);
    prop_assert_eq!(stats.crashed, count(ErrorKind::Crashed), "{:?}", stats);
    prop_assert_eq!(stats.timed_out, count(ErrorKind::Timeout), "{:?}", stats);
    prop_assert_eq!(stats.cancelled, count(ErrorKind::Cancelled), "{:?}", stats);
    prop_assert_eq!(stats.in_flight, 0, "{:?}", stats);
    prop_assert_eq!(stats.corelets, 0, "children outlived the shutdown: {:?}", stats);
    Ok(())
}

fn check_result(spec: &Spec, result: &EventResult, killed: bool) -> Result<(), TestCaseError> {
    let max = 1 + spec.retry_count;
    let kind = result.error_kind;
    prop_assert!(result.attempts <= max, "{:?}: {:?}", spec, result);
    prop_assert_eq!(result.success, kind.is_none(), "{:?}: {:?}", spec, result);
    if kind == Some(ErrorKind::Cancelled) {
        prop_assert!(killed, "cancelled without shutdown_now: {:?}: {:?}", spec, result);
        return Ok(());
    }
    // `shutdown_now` stops retries, and kills what runs (a child killed mid-request may be
    // reported as crashed before the cancellation is).
    let all = |n: u32| n == max || (killed && n >= 1 && n < max);
    let crashed_by_kill = killed && kind == Some(ErrorKind::Crashed);
    let expected = match spec.behaviour {
        Behaviour::Succeed => kind.is_none() && result.attempts == 1,
        Behaviour::Fail => kind == Some(ErrorKind::BusinessFailure) && all(result.attempts),
        Behaviour::Error => kind == Some(ErrorKind::HandlerError) && all(result.attempts),
        Behaviour::Permanent => kind == Some(ErrorKind::HandlerError) && result.attempts == 1,
        Behaviour::Panic => kind == Some(ErrorKind::Panic) && all(result.attempts),
        Behaviour::Exit | Behaviour::Abort => kind == Some(ErrorKind::Crashed) && all(result.attempts),
        Behaviour::Hang => kind == Some(ErrorKind::Timeout) && all(result.attempts),
    };
    prop_assert!(expected || crashed_by_kill, "unexpected result for {:?}: {:?}", spec, result);
    Ok(())
}

fn main() {
    busbar::corelet_main(&handlers());
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24);
    // Failures are reported on stdout, not persisted: this binary has no source-file lookup.
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    match runner.run(&scenario(), check) {
        Ok(()) => println!("properties_corelet: {cases} cases passed"),
        Err(error) => {
            eprintln!("properties_corelet failed: {error}");
            std::process::exit(1);
        }
    }
}
