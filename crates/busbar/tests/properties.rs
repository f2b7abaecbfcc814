//! Properties: random mixes of publishes, joins and shutdowns from several threads keep the
//! bus's promises (one result per accepted event, bounded attempts, priority order, nothing
//! starting after `shutdown_now`, no hanging waits).
//!
//! Cases are small and few by default (`PROPTEST_CASES` raises them); no case sleeps to
//! synchronise: handlers that "hang" poll their own cancellation, as a cooperative handler does.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use busbar::{
    handler_fn, ErrorKind, Event, EventBus, EventContext, EventHandle, EventId, EventResult, ExecutionMode,
    HandlerError, HandlerResult, RetryBackoff,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

/// How long any wait may take before the case fails as hung. Generous: the machine is shared.
const HANG: Duration = Duration::from_secs(30);

/// The timeout of events meant to time out (and of the others, half the time).
const SHORT: Duration = Duration::from_millis(30);

/// A timeout no attempt here comes near.
const LONG: Duration = Duration::from_secs(60);

/// Message of the panics handlers raise on purpose; the panic hook keeps them off stderr.
const PANIC_MARK: &str = "busbar-property-panic";

/// What the handler (or, for cmd events, the program) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    /// A business failure, `Ok(EventResult::failure(..))`.
    Fail,
    /// `Err`, retryable.
    Error,
    /// `Err`, marked permanent.
    Permanent,
    Panic,
    /// Runs until cancelled (past its deadline, or `shutdown_now`).
    Hang,
    /// Fails the first attempt, succeeds later.
    Flaky,
}

impl Behaviour {
    fn name(self) -> &'static str {
        match self {
            Behaviour::Succeed => "succeed",
            Behaviour::Fail => "fail",
            Behaviour::Error => "error",
            Behaviour::Permanent => "permanent",
            Behaviour::Panic => "panic",
            Behaviour::Hang => "hang",
            Behaviour::Flaky => "flaky",
        }
    }

    fn parse(name: &str) -> Behaviour {
        ALL_BEHAVIOURS.into_iter().find(|b| b.name() == name).expect("a behaviour this test wrote")
    }
}

const ALL_BEHAVIOURS: [Behaviour; 7] = [
    Behaviour::Succeed,
    Behaviour::Fail,
    Behaviour::Error,
    Behaviour::Permanent,
    Behaviour::Panic,
    Behaviour::Hang,
    Behaviour::Flaky,
];

/// One event to publish.
#[derive(Clone, Debug)]
struct Spec {
    mode: ExecutionMode,
    behaviour: Behaviour,
    priority: i32,
    retry_count: u32,
    short_timeout: bool,
}

impl Spec {
    fn timeout(&self) -> Duration {
        if self.short_timeout {
            SHORT
        } else {
            LONG
        }
    }

    fn event(&self) -> Event {
        let data = match self.mode {
            ExecutionMode::Cmd => cmd_data(self.behaviour),
            _ => json!({ "behaviour": self.behaviour.name() }),
        };
        Event::new("prop")
            .with_mode(self.mode)
            .with_priority(self.priority)
            .with_retry_count(self.retry_count)
            .with_timeout(self.timeout())
            .with_data(data)
    }
}

/// A cmd event's data for `behaviour`: cheap programs with the same kinds of outcome.
fn cmd_data(behaviour: Behaviour) -> serde_json::Value {
    match behaviour {
        Behaviour::Succeed => json!({ "executable": "true" }),
        Behaviour::Fail | Behaviour::Flaky | Behaviour::Error => json!({ "executable": "false" }),
        // Malformed data: a permanent failure.
        Behaviour::Permanent => json!({ "executable": "" }),
        // A program that cannot start.
        Behaviour::Panic => json!({ "executable": "/nonexistent/busbar-property-program" }),
        Behaviour::Hang => json!({ "executable": "sleep", "args": ["30"] }),
    }
}

/// What one publisher thread does, in order.
#[derive(Clone, Debug)]
enum Op {
    Publish(Spec),
    Join,
    Shutdown,
    ShutdownNow,
}

/// How the case ends, after every publisher finished.
#[derive(Clone, Copy, Debug)]
enum End {
    Shutdown,
    ShutdownNow,
    JoinThenShutdown,
}

#[derive(Clone, Debug)]
struct Scenario {
    threads: usize,
    queue_capacity: usize,
    backoff: RetryBackoff,
    scripts: Vec<Vec<Op>>,
    end: End,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop::sample::select(ALL_BEHAVIOURS.to_vec())
}

fn priority() -> impl Strategy<Value = i32> {
    prop_oneof![8 => -3..=3_i32, 1 => Just(i32::MIN), 1 => Just(i32::MAX)]
}

fn spec(modes: Vec<ExecutionMode>) -> impl Strategy<Value = Spec> {
    (prop::sample::select(modes), behaviour(), priority(), 0..=3_u32, any::<bool>()).prop_map(
        |(mode, behaviour, priority, retry_count, short_timeout)| Spec {
            mode,
            behaviour,
            priority,
            retry_count,
            // Hanging needs a deadline to end at.
            short_timeout: short_timeout || behaviour == Behaviour::Hang,
        },
    )
}

fn op(modes: Vec<ExecutionMode>) -> impl Strategy<Value = Op> {
    prop_oneof![
        24 => spec(modes).prop_map(Op::Publish),
        2 => Just(Op::Join),
        1 => Just(Op::Shutdown),
        1 => Just(Op::ShutdownNow),
    ]
}

fn scenario(modes: Vec<ExecutionMode>) -> impl Strategy<Value = Scenario> {
    let backoff = prop_oneof![
        3 => Just(RetryBackoff::Immediate),
        1 => (1..=4_u64).prop_map(|ms| RetryBackoff::Fixed(Duration::from_millis(ms))),
    ];
    let end = prop_oneof![Just(End::Shutdown), Just(End::ShutdownNow), Just(End::JoinThenShutdown)];
    (
        1..=3_usize,
        1..=8_usize,
        backoff,
        prop::collection::vec(prop::collection::vec(op(modes), 0..8), 1..=3),
        end,
    )
        .prop_map(|(threads, queue_capacity, backoff, scripts, end)| Scenario {
            threads,
            queue_capacity,
            backoff,
            scripts,
            end,
        })
}

/// What the handlers saw, shared with the test.
#[derive(Default)]
struct Probe {
    /// Attempt numbers started, by event.
    starts: Mutex<HashMap<EventId, Vec<u32>>>,
    /// Set right after the first `shutdown_now` returned.
    killed: AtomicBool,
    /// Attempts that started after that.
    late: Mutex<Vec<(EventId, u32)>>,
}

impl Probe {
    fn handle(&self, ctx: &EventContext) -> HandlerResult {
        let (id, attempt) = (ctx.event().id(), ctx.attempt());
        if self.killed.load(Ordering::SeqCst) {
            self.late.lock().unwrap().push((id, attempt));
        }
        self.starts.lock().unwrap().entry(id).or_default().push(attempt);
        match Behaviour::parse(ctx.event().data()["behaviour"].as_str().unwrap_or_default()) {
            Behaviour::Succeed => Ok(EventResult::success()),
            Behaviour::Fail => Ok(EventResult::failure("failed on purpose")),
            Behaviour::Error => Err(HandlerError::new("error on purpose")),
            Behaviour::Permanent => Err(HandlerError::permanent("permanent error on purpose")),
            Behaviour::Panic => std::panic::panic_any(PANIC_MARK),
            Behaviour::Hang => {
                // A cooperative handler that works until told to stop.
                while !ctx.is_cancelled() {
                    thread::sleep(ctx.remaining().min(Duration::from_millis(1)));
                }
                Ok(EventResult::success())
            }
            Behaviour::Flaky if ctx.attempt() == 1 => Ok(EventResult::failure("not yet")),
            Behaviour::Flaky => Ok(EventResult::success()),
        }
    }
}

/// Keeps the deliberate panics quiet; any other panic still reaches the default hook.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&PANIC_MARK) {
                default(info);
            }
        }));
    });
}

/// Runs `f` on another thread and fails the case if it takes longer than [`HANG`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, TestCaseError> {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(f());
    });
    finished.recv_timeout(HANG).map_err(|_| TestCaseError::fail(format!("{what} hung for {HANG:?}")))
}

/// An accepted event, as its publisher saw it.
struct Accepted {
    spec: Spec,
    handle: EventHandle,
}

/// What one publisher thread brings back.
#[derive(Default)]
struct Published {
    accepted: Vec<Accepted>,
    /// Broken promises seen while publishing.
    errors: Vec<String>,
}

/// Runs one scenario and checks every invariant.
fn check(scenario: Scenario) -> Result<(), TestCaseError> {
    quiet_panics();
    let bus = EventBus::builder()
        .threads(scenario.threads)
        .queue_capacity(scenario.queue_capacity)
        .retry_backoff(scenario.backoff)
        .build()
        .unwrap();
    let probe = Arc::new(Probe::default());
    let handler_probe = Arc::clone(&probe);
    bus.subscribe("prop", handler_fn(move |ctx| handler_probe.handle(ctx)));
    // Set before any shutdown starts, so that a refusal seen by any thread can be checked.
    let shutdown_started = Arc::new(AtomicBool::new(false));

    let publishers: Vec<_> = scenario
        .scripts
        .iter()
        .cloned()
        .map(|script| {
            let (bus, probe, shutdown_started) =
                (bus.clone(), Arc::clone(&probe), Arc::clone(&shutdown_started));
            thread::spawn(move || run_script(&bus, &probe, &shutdown_started, script))
        })
        .collect();
    let mut published = Vec::new();
    for publisher in publishers {
        // A publisher blocks at most in sync handlers and joins; both end by themselves.
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            let _ = done.send(publisher.join());
        });
        match finished.recv_timeout(HANG) {
            Ok(Ok(result)) => published.push(result),
            Ok(Err(_)) => return Err(TestCaseError::fail("a publisher thread panicked")),
            Err(_) => return Err(TestCaseError::fail(format!("a publisher hung for {HANG:?}"))),
        }
    }

    shutdown_started.store(true, Ordering::SeqCst);
    let ending = bus.clone();
    let end_probe = Arc::clone(&probe);
    within("the final shutdown", move || match scenario.end {
        End::Shutdown => ending.shutdown(),
        End::ShutdownNow => {
            ending.shutdown_now();
            end_probe.killed.store(true, Ordering::SeqCst);
        }
        End::JoinThenShutdown => {
            ending.join();
            ending.shutdown();
        }
    })?;
    let killed = probe.killed.load(Ordering::SeqCst);

    let mut accepted = Vec::new();
    for mut result in published {
        if let Some(error) = result.errors.pop() {
            return Err(TestCaseError::fail(error));
        }
        accepted.append(&mut result.accepted);
    }

    // Every handle resolves, with its own id, once.
    let mut results = Vec::with_capacity(accepted.len());
    let mut ids = HashSet::new();
    for Accepted { spec, mut handle } in accepted {
        let id = handle.id();
        let result = match handle.wait_timeout(HANG) {
            Some(result) => result.clone(),
            None => return Err(TestCaseError::fail(format!("the handle of {spec:?} hung for {HANG:?}"))),
        };
        prop_assert_eq!(result.event_id, id);
        prop_assert!(ids.insert(id), "two handles for one id {}", id);
        results.push((spec, result));
    }
    // The counters are updated before `in_flight` drops, so `join` makes them final.
    let joining = bus.clone();
    within("join after every handle resolved", move || joining.join())?;

    let starts = probe.starts.lock().unwrap().clone();
    for (spec, result) in &results {
        check_result(spec, result, starts.get(&result.event_id).map_or(&[][..], Vec::as_slice), killed)?;
    }
    // No handler ran for an event that was not accepted.
    for id in starts.keys() {
        prop_assert!(ids.contains(id), "a handler ran for {}, which no handle has", id);
    }
    let late: Vec<_> = probe
        .late
        .lock()
        .unwrap()
        .iter()
        .filter_map(|&(id, attempt)| {
            let (spec, result) = results.iter().find(|(_, r)| r.event_id == id)?;
            (!is_unpreventable(spec, result, attempt)).then_some((attempt, spec, result))
        })
        .collect();
    prop_assert!(late.is_empty(), "attempts started after shutdown_now returned: {:?}", late);

    let stats = bus.stats();
    let count = |f: &dyn Fn(&EventResult) -> bool| results.iter().filter(|(_, r)| f(r)).count() as u64;
    prop_assert_eq!(stats.published, results.len() as u64, "{:?}", stats);
    prop_assert_eq!(stats.succeeded + stats.failed, stats.published, "{:?}", stats);
    prop_assert_eq!(stats.succeeded, count(&|r| r.success), "{:?}", stats);
    prop_assert_eq!(stats.cancelled, count(&|r| r.error_kind == Some(ErrorKind::Cancelled)), "{:?}", stats);
    prop_assert_eq!(stats.timed_out, count(&|r| r.error_kind == Some(ErrorKind::Timeout)), "{:?}", stats);
    prop_assert_eq!(stats.panicked, count(&|r| r.error_kind == Some(ErrorKind::Panic)), "{:?}", stats);
    let retries: u64 = results.iter().map(|(_, r)| u64::from(r.attempts.saturating_sub(1))).sum();
    prop_assert_eq!(stats.retries, retries, "{:?}", stats);
    prop_assert_eq!(stats.in_flight, 0, "{:?}", stats);
    prop_assert_eq!(stats.queued, 0, "{:?}", stats);
    Ok(())
}

/// Runs one publisher's script; never panics, so that a failure is reported, not lost.
fn run_script(bus: &EventBus, probe: &Probe, shutdown_started: &AtomicBool, script: Vec<Op>) -> Published {
    let mut published = Published::default();
    let mut own_shutdown_done = false;
    for op in script {
        match op {
            Op::Publish(spec) => match bus.publish(spec.event()) {
                Ok(handle) => {
                    if own_shutdown_done {
                        published.errors.push(format!("{spec:?} was accepted after shutdown returned"));
                    }
                    published.accepted.push(Accepted { spec, handle });
                }
                Err(error) if error.is_shut_down() && shutdown_started.load(Ordering::SeqCst) => {}
                Err(error) => published.errors.push(format!("{spec:?} was refused: {error}")),
            },
            Op::Join => bus.join(),
            Op::Shutdown => {
                shutdown_started.store(true, Ordering::SeqCst);
                bus.shutdown();
                own_shutdown_done = true;
            }
            Op::ShutdownNow => {
                shutdown_started.store(true, Ordering::SeqCst);
                bus.shutdown_now();
                probe.killed.store(true, Ordering::SeqCst);
                own_shutdown_done = true;
            }
        }
    }
    published
}

/// Returns `true` for a handler that entered after `shutdown_now` returned although the bus
/// kept its promise that no attempt *begins* after that.
///
/// The bus checks for `shutdown_now` just before it calls a handler; a thread preempted between
/// that check and the handler's first line (the probe) enters late, and on a loaded machine this
/// happens. It is told apart from a real late start by what the bus did with it: in thread mode
/// it had already taken the event away (the result is `Cancelled`, counting this attempt, and
/// the handler's own result is discarded); in sync mode it is the publisher's last attempt (no
/// retry follows a kill). A sync retry that waited out a pause across the kill looks the same
/// here; `shutdown::now_cancels_sync_backoff` covers that case deterministically.
fn is_unpreventable(spec: &Spec, result: &EventResult, attempt: u32) -> bool {
    let last = attempt == result.attempts;
    match spec.mode {
        ExecutionMode::Thread => last && result.error_kind == Some(ErrorKind::Cancelled),
        ExecutionMode::Sync => last,
        _ => false,
    }
}

/// Checks one event's result against its spec and the attempts its handler started.
fn check_result(
    spec: &Spec,
    result: &EventResult,
    starts: &[u32],
    killed: bool,
) -> Result<(), TestCaseError> {
    let max_attempts = 1 + spec.retry_count;
    let kind = result.error_kind;
    prop_assert!(result.attempts <= max_attempts, "{:?}: {:?}", spec, result);
    prop_assert_eq!(result.success, kind.is_none(), "{:?}: {:?}", spec, result);
    prop_assert!(starts.len() <= max_attempts as usize, "{:?} started {:?}", spec, starts);
    // Attempt numbers are 1, 2, 3 … each once (in any order: a timed-out thread attempt may
    // still run while its retry starts).
    let mut sorted = starts.to_vec();
    sorted.sort_unstable();
    prop_assert!(sorted.iter().copied().eq(1..=sorted.len() as u32), "{:?} started {:?}", spec, starts);

    if kind == Some(ErrorKind::Cancelled) {
        prop_assert!(killed, "cancelled without shutdown_now: {:?}: {:?}", spec, result);
        return Ok(());
    }
    prop_assert!(result.attempts >= 1, "{:?}: {:?}", spec, result);
    if spec.short_timeout {
        // On a loaded machine any short attempt may time out, and be retried: only the final
        // kind is certain, and only if the last attempt did not time out too.
        if kind == Some(ErrorKind::Timeout) {
            return Ok(());
        }
    } else if spec.mode != ExecutionMode::Cmd {
        // No watchdog can have taken an attempt before its handler started.
        prop_assert_eq!(starts.len(), result.attempts as usize, "{:?}: {:?}", spec, result);
    }
    // With short timeouts an early attempt may have timed out: attempt counts are loose.
    let loose = spec.short_timeout;
    // `shutdown_now` stops retries, so with it, fewer attempts than the maximum are fine.
    let all_attempts = |n: u32| loose || n == max_attempts || (killed && n < max_attempts);
    let one_attempt = |n: u32| loose || n == 1;
    let expected = match (spec.mode, spec.behaviour) {
        (_, Behaviour::Succeed) => kind.is_none() && one_attempt(result.attempts),
        (ExecutionMode::Cmd, Behaviour::Fail | Behaviour::Flaky | Behaviour::Error) => {
            kind == Some(ErrorKind::CommandFailed) && all_attempts(result.attempts)
        }
        (ExecutionMode::Cmd, Behaviour::Permanent) => {
            kind == Some(ErrorKind::InvalidInput) && one_attempt(result.attempts)
        }
        (ExecutionMode::Cmd, Behaviour::Panic) => kind.is_some(),
        (ExecutionMode::Cmd, Behaviour::Hang) => false,
        (_, Behaviour::Fail) => kind == Some(ErrorKind::BusinessFailure) && all_attempts(result.attempts),
        (_, Behaviour::Error) => kind == Some(ErrorKind::HandlerError) && all_attempts(result.attempts),
        (_, Behaviour::Permanent) => kind == Some(ErrorKind::HandlerError) && one_attempt(result.attempts),
        (_, Behaviour::Panic) => kind == Some(ErrorKind::Panic) && all_attempts(result.attempts),
        // Not timed out: only `shutdown_now` stops it early (in sync mode it then returns).
        (_, Behaviour::Hang) => killed,
        (_, Behaviour::Flaky) if spec.retry_count == 0 => kind == Some(ErrorKind::BusinessFailure),
        (_, Behaviour::Flaky) => kind.is_none() || (killed && result.attempts == 1),
    };
    prop_assert!(expected, "unexpected result for {:?}: {:?}", spec, result);
    Ok(())
}

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, max_shrink_iters: 256, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(48))]

    /// Sync and thread events: every accepted event resolves once, attempts stay within
    /// `1 + retry_count`, stats agree, nothing starts after `shutdown_now`, no wait hangs.
    #[test]
    fn in_process(scenario in scenario(vec![ExecutionMode::Sync, ExecutionMode::Thread])) {
        check(scenario)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// The same with cmd events (`true`, `false`, `sleep`, a missing program, bad data) mixed in.
    #[test]
    fn with_commands(
        scenario in scenario(vec![ExecutionMode::Sync, ExecutionMode::Thread, ExecutionMode::Cmd]),
    ) {
        check(scenario)?;
    }
}

/// Starts a one-thread bus whose worker is held in a "hold" handler until `release` is
/// dropped, with a "record" handler that logs `(publisher, index)` from the event's data.
#[allow(clippy::type_complexity)]
fn held_bus() -> (EventBus, mpsc::Sender<()>, Arc<Mutex<Vec<(u64, u64)>>>) {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let (started, is_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    bus.subscribe(
        "hold",
        handler_fn(move |_| {
            started.send(()).unwrap();
            // Returns when the test drops its sender (or fails and drops everything).
            let _ = released.lock().unwrap().recv();
            Ok(EventResult::success())
        }),
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&log);
    bus.subscribe(
        "record",
        handler_fn(move |ctx| {
            let data = ctx.event().data();
            record
                .lock()
                .unwrap()
                .push((data["publisher"].as_u64().unwrap(), data["index"].as_u64().unwrap()));
            Ok(EventResult::success())
        }),
    );
    drop(bus.publish(Event::new("hold").with_mode(ExecutionMode::Thread).with_priority(i32::MIN)).unwrap());
    is_started.recv().unwrap();
    (bus, release, log)
}

proptest! {
    #![proptest_config(config(64))]

    /// Events queued behind a busy one-thread pool start by priority, higher first, and in
    /// publish order among equals, whichever threads published them.
    #[test]
    fn priority_order(batches in prop::collection::vec(prop::collection::vec(priority(), 0..16), 1..=3)) {
        let (bus, release, log) = held_bus();
        thread::scope(|scope| {
            for (publisher, batch) in batches.iter().enumerate() {
                let bus = &bus;
                scope.spawn(move || {
                    for (index, priority) in batch.iter().enumerate() {
                        let event = Event::new("record")
                            .with_mode(ExecutionMode::Thread)
                            .with_priority(*priority)
                            .with_data(json!({ "publisher": publisher, "index": index }));
                        drop(bus.publish(event).unwrap());
                    }
                });
            }
        });
        drop(release);
        let joining = bus.clone();
        within("join", move || joining.join())?;
        bus.shutdown();

        let log = log.lock().unwrap();
        let total: usize = batches.iter().map(Vec::len).sum();
        prop_assert_eq!(log.len(), total);
        let priority_of = |&(publisher, index): &(u64, u64)| batches[publisher as usize][index as usize];
        let mut last_index: HashMap<(u64, i32), u64> = HashMap::new();
        for pair in log.windows(2) {
            prop_assert!(priority_of(&pair[0]) >= priority_of(&pair[1]), "lower priority first: {:?}", *log);
        }
        for entry in log.iter() {
            let key = (entry.0, priority_of(entry));
            if let Some(previous) = last_index.insert(key, entry.1) {
                prop_assert!(previous < entry.1, "not FIFO among equals: {:?}", *log);
            }
        }
    }
}

/// Numbers for event data, whole and fractional, across the whole range of `f64`.
fn number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
            .prop_map(serde_json::Value::from),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// An event's data reads back exactly as it was written, as it must when the event
    /// crosses to a corelet child and back.
    #[test]
    fn event_round_trip(numbers in prop::collection::vec(number(), 1..8)) {
        let event = Event::new("numbers").with_data(serde_json::Value::Array(numbers));
        let text = serde_json::to_vec(&event).unwrap();
        let again: Event = serde_json::from_slice(&text).unwrap();
        prop_assert_eq!(again.data(), event.data());
    }
}

/// The input the `event_json` fuzz target found: with serde_json's default (approximate)
/// float parsing, 9.999999999999999e47 read back as 1e48, so a number in an event's data
/// changed on its way to a corelet child.
#[test]
fn event_round_trip_found_by_fuzzing() {
    let input = br#"{"event_type":"x","data":{"n":1000000000000000000000000000000000000000000000123}}"#;
    let event: Event = serde_json::from_slice(input).unwrap();
    assert_eq!(event.data()["n"].as_f64(), Some(1e48), "the nearest double to the literal");
    let again: Event = serde_json::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
    assert_eq!(again.data(), event.data());
    let exact: serde_json::Value = serde_json::from_str("9.999999999999999e47").unwrap();
    assert_eq!(exact.as_f64(), Some(9.999999999999999e47));
}
