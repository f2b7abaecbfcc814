//! A thread waiting on a corelet event that no worker has started runs the exchange itself,
//! and never takes an event that others are queued ahead of.

use std::fs;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{config, corelet, handlers};
use busbar::{
    Event, EventBus, EventContext, EventId, EventResult, ExecutionMode, HandlerError, HandlerResult,
};

/// Whether the `gate` handler may return; `true` once opened.
static GATE: Mutex<bool> = Mutex::new(false);
static GATE_CHANGED: Condvar = Condvar::new();

/// Threads the `thread_of` handler ran on, by the correlation id of their chain.
static THREADS: Mutex<Vec<(EventId, String)>> = Mutex::new(Vec::new());

/// Runs in the parent's pool: reports that it started, then blocks until the gate opens.
pub(crate) fn gate(_: &EventContext) -> HandlerResult {
    if let Some(started) = STARTED.lock().unwrap_or_else(PoisonError::into_inner).take() {
        let _ = started.send(());
    }
    let mut open = GATE.lock().unwrap_or_else(PoisonError::into_inner);
    while !*open {
        open = GATE_CHANGED.wait(open).unwrap_or_else(PoisonError::into_inner);
    }
    Ok(EventResult::success())
}

/// Where `gate` says it started.
static STARTED: Mutex<Option<mpsc::SyncSender<()>>> = Mutex::new(None);

/// Runs in a corelet: asks the parent to note the thread that reads this corelet's messages.
pub(crate) fn where_am_i(ctx: &EventContext) -> HandlerResult {
    ctx.publish(Event::new("thread_of"))?;
    Ok(EventResult::success())
}

/// Runs in the parent, as a sync event on the thread that received it from the corelet.
pub(crate) fn thread_of(ctx: &EventContext) -> HandlerResult {
    let name = thread::current().name().unwrap_or("unnamed").to_owned();
    THREADS.lock().unwrap_or_else(PoisonError::into_inner).push((ctx.event().correlation_id(), name));
    Ok(EventResult::success())
}

/// The threads that received the follow-ups of the chains `correlations`, in the order they did.
fn threads_of(correlations: &[EventId]) -> Vec<(EventId, String)> {
    let threads = THREADS.lock().unwrap_or_else(PoisonError::into_inner);
    threads.iter().filter(|(id, _)| correlations.contains(id)).cloned().collect()
}

fn open_gate() {
    *GATE.lock().unwrap_or_else(PoisonError::into_inner) = true;
    GATE_CHANGED.notify_all();
}

/// With the bus's only worker held by a thread-mode handler, a corelet event still completes
/// when a thread waits on it: the waiter ran the exchange (nobody else could). A wait too short
/// for the attempt to be sure to end does not run it. An event with another queued ahead of it
/// is left to the pool, which runs the two in priority order. The `Sync` follow-ups the
/// corelets publish run on the pool, not on the thread that received them.
pub(crate) fn waiter_runs_its_event() {
    let bus = single_worker_bus();
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    *STARTED.lock().unwrap_or_else(PoisonError::into_inner) = Some(started_tx);
    // A timeout longer than the check's own bound, so the watchdog never replaces the worker.
    let gate = Event::new("gate").with_mode(ExecutionMode::Thread).with_timeout(Duration::from_secs(600));
    let gate = bus.publish(gate).expect("accepted");
    started_rx.recv_timeout(Duration::from_secs(60)).expect("the gate handler started");

    // The worker is busy until the gate opens: only the waiter can run this one.
    let ran_here = corelet("where_am_i");
    let ran_here_chain = ran_here.correlation_id();
    let handle = bus.publish(ran_here).expect("accepted");
    let (result_tx, result_rx) = mpsc::channel();
    let waiter = thread::Builder::new()
        .name("waiter".to_owned())
        .spawn(move || {
            let mut handle = handle;
            // Too short for the attempt to be sure to end in time: not run here, so it times
            // out (the worker is busy); the handle can still be waited on, and run here.
            let short_wait = handle.wait_timeout(Duration::from_millis(1)).cloned();
            let long_wait = handle.wait_timeout(Duration::from_secs(600)).cloned();
            // The receiver outlives this thread unless the check already failed.
            let _ = result_tx.send((short_wait, long_wait));
        })
        .expect("a thread");
    let result = result_rx.recv_timeout(Duration::from_secs(60));
    if result.is_err() {
        open_gate();
        panic!("the waiter did not run its corelet event while the only worker was busy");
    }
    let (short_wait, long_wait) = result.expect("checked");
    assert_eq!(short_wait, None, "nothing could run the event within 1 ms");
    let result = long_wait.expect("the result within the long wait");
    assert!(result.success, "{result:?}");
    waiter.join().expect("the waiter thread");

    // Queued behind a more urgent event, a waited-on event is not taken ahead of it.
    let low = corelet("where_am_i").with_priority(1);
    let high = corelet("where_am_i").with_priority(9);
    let (low_chain, high_chain) = (low.correlation_id(), high.correlation_id());
    let low = bus.publish(low).expect("accepted");
    let high = bus.publish(high).expect("accepted");
    let low_waiter = thread::spawn(move || low.wait());
    open_gate();
    let results = [high.wait(), low_waiter.join().expect("the waiter thread"), gate.wait()];
    assert!(results.iter().all(|result| result.success), "{results:?}");
    // The follow-ups are queued in the order their corelets ran, and run in that order.
    bus.join();
    let order: Vec<EventId> = threads_of(&[low_chain, high_chain]).into_iter().map(|(id, _)| id).collect();
    assert_eq!(order, [high_chain, low_chain], "the urgent event ran first");
    let (_, thread) = threads_of(&[ran_here_chain]).pop().expect("the first follow-up ran");
    assert!(thread.starts_with("busbar-worker"), "a Sync follow-up runs on the pool, not on {thread}");
    bus.shutdown();
}

/// Runs in a corelet. First attempt: creates `started` in the directory the event names,
/// waits until `release` appears there, and fails. Later attempts succeed.
pub(crate) fn fail_until_released(ctx: &EventContext) -> HandlerResult {
    if ctx.attempt() > 1 {
        return Ok(EventResult::success());
    }
    let dir = PathBuf::from(ctx.event().data()["dir"].as_str().unwrap_or_default());
    fs::write(dir.join("started"), b"").map_err(HandlerError::new)?;
    while !dir.join("release").exists() {
        if ctx.is_cancelled() {
            return Err(HandlerError::new("never released"));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Err(HandlerError::new("fails once, as asked"))
}

/// A waiter runs a corelet event's first attempt (the only worker is busy); meanwhile
/// `shutdown()` closes the queue and the worker finishes its own event. The attempt fails,
/// and its retry is given back to the closed queue: the worker must still be there to run it,
/// and `shutdown()` must return once it did.
pub(crate) fn waiters_retry_outlives_shutdown() {
    let bus = single_worker_bus();
    let dir = std::env::temp_dir().join(format!("busbar-retry-after-close-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a scratch directory");
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    *STARTED.lock().unwrap_or_else(PoisonError::into_inner) = Some(started_tx);
    let gate = Event::new("gate").with_mode(ExecutionMode::Thread).with_timeout(Duration::from_secs(600));
    let gate = bus.publish(gate).expect("accepted");
    started_rx.recv_timeout(Duration::from_secs(60)).expect("the gate handler started");

    let event = corelet("fail_until_released").with_retry_count(1).with_data(json!({"dir": dir.to_str()}));
    let handle = bus.publish(event).expect("accepted");
    let waiter = thread::spawn(move || handle.wait());
    wait_for(|| dir.join("started").exists(), "the waiter to start the first attempt");

    open_gate();
    assert!(gate.wait().success, "the worker's own event");
    let closing = bus.clone();
    let shutdown = thread::spawn(move || closing.shutdown());
    wait_for(|| bus.is_shut_down(), "shutdown() to close the bus");
    // The worker has nothing queued now and the queue is closed; the retry comes after this.
    fs::write(dir.join("release"), b"").expect("the release file");

    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = done_tx.send((waiter.join(), shutdown.join()));
    });
    let outcome = done_rx.recv_timeout(Duration::from_secs(60));
    let _ = fs::remove_dir_all(&dir);
    let (result, shutdown) = outcome.expect("the retry ran and shutdown() returned within 60 s");
    let result = result.expect("the waiter thread");
    assert!(result.success && result.attempts == 2, "{result:?}");
    shutdown.expect("the shutdown thread");
}

/// Polls `done` until it is true (60 s at most, else panics naming `what`).
fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// One worker thread, one corelet.
fn single_worker_bus() -> EventBus {
    let mut config = config();
    config.pool_size = Some(1);
    EventBus::builder().threads(1).factory(handlers()).corelet(config).build().expect("valid settings")
}

/// A corelet event wakes no worker when published (its waiter usually runs it), so one that
/// nobody waits for must still start: the watchdog's sweep wakes a worker for it. Checked with
/// a dropped handle and with handles kept but not waited on while the pool sleeps.
pub(crate) fn unwaited_events_start() {
    let bus = single_worker_bus();
    // Let the worker go to sleep: its watch after a job lasts 50 µs.
    assert!(bus.publish(corelet("echo")).expect("accepted").wait().success);
    thread::sleep(Duration::from_millis(20));
    drop(bus.publish(corelet("echo")).expect("accepted"));
    let kept: Vec<_> = (0..3).map(|_| bus.publish(corelet("echo")).expect("accepted")).collect();
    let since = Instant::now();
    while bus.stats().succeeded < 5 {
        assert!(since.elapsed() < Duration::from_secs(60), "unwaited events never ran: {:?}", bus.stats());
        thread::sleep(Duration::from_millis(1));
    }
    for mut handle in kept {
        assert!(handle.try_result().is_some_and(|result| result.success), "finished without a wait");
    }
    bus.shutdown();
}

/// An attempt that waits for a free child tells the child the time left after the wait: the
/// child's `ctx.remaining()` must not promise time that the parent's kill at the deadline
/// takes away (it was told the whole timeout, a second more than was left here).
pub(crate) fn child_deadline_after_a_wait() {
    let mut config = config();
    config.pool_size = Some(1);
    let bus = EventBus::builder().threads(2).factory(handlers()).corelet(config).build().expect("valid");
    assert!(bus.publish(corelet("echo")).expect("accepted").wait().success);
    let busy = bus.publish(corelet("budget").with_data(json!({"sleep_ms": 1000}))).expect("accepted");
    thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let second =
        bus.publish(corelet("budget").with_timeout(Duration::from_secs(3))).expect("accepted").wait();
    let waited = start.elapsed();
    let parent_left = Duration::from_secs(3).saturating_sub(waited);
    assert!(second.success, "{second:?}");
    assert!(busy.wait().success);
    assert!(waited > Duration::from_millis(500), "the second event waited for the busy child");
    let child_left = second.data["remaining_ms"].as_u64().expect("remaining");
    assert!(
        u128::from(child_left) <= parent_left.as_millis() + 50,
        "the child believes it has {child_left} ms left, the parent kills it in {} ms",
        parent_left.as_millis()
    );
    bus.shutdown();
}
