//! What crosses the process boundary: data, frame limits, panics, follow-up events, stats and
//! retries.

use std::sync::{mpsc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use busbar::{ErrorKind, Event, EventContext, EventId, EventResult, ExecutionMode, HandlerResult};
use serde_json::{json, Value};

use super::{bus, config, corelet, echo_pid, proc, recorded, run};

/// Nested JSON, unicode, escapes and numbers at the edges come back exactly.
pub(crate) fn data_round_trip() {
    let bus = bus(config());
    for (name, data) in samples() {
        let result = run(&bus, corelet("echo").with_data(data.clone()));
        assert!(result.success, "{name}: {result:?}");
        let back = &result.data["data"];
        assert_eq!(back, &data, "{name} came back changed");
        // Equal values can still differ in ways `==` forgives, such as -0.0 and 0.0.
        assert_eq!(back.to_string(), data.to_string(), "{name} came back changed");
    }
    bus.shutdown();
}

/// Payloads that test what JSON and the channel must carry unchanged.
fn samples() -> Vec<(&'static str, Value)> {
    let mut nested = json!("bottom");
    for depth in 0..100 {
        nested =
            if depth % 2 == 0 { json!([depth, nested]) } else { json!({"level": depth, "inner": nested}) };
    }
    vec![
        ("100 levels of nesting", nested),
        ("unicode", json!("grüße, 東京, Ελλάδα, עברית, 🦀👩‍👩‍👧, e\u{301}, \u{feff}, \u{10ffff}")),
        (
            "escapes",
            json!("quote \" backslash \\ slash / newline \n tab \t nul \u{0} esc \u{1b} del \u{7f} \u{2028}"),
        ),
        ("unicode keys", json!({"ключ": 1, "🔑": 2, "": 3, "a\"b\\c": 4, "\u{0}": 5})),
        (
            "numbers",
            json!([
                0,
                -1,
                u64::MAX,
                i64::MIN,
                0.1,
                0.30000000000000004,
                1e308,
                f64::MAX,
                f64::MIN_POSITIVE,
                5e-324,
                -2.5e-8,
                123_456_789.123_456_79,
                -0.0,
                9_007_199_254_740_993_u64
            ]),
        ),
        ("empty things", json!({"object": {}, "array": [], "string": "", "null": null, "false": false})),
    ]
}

/// The frame limit: a payload just below it round-trips, one above it is a clear
/// `InvalidInput` error, a reply above it a permanent handler error, and nothing crashes.
pub(crate) fn frame_limit() {
    const LIMIT: u32 = 1 << 20;
    let mut config = config();
    config.pool_size = Some(1);
    config.max_frame_size = LIMIT;
    let bus = bus(config);

    // Multi-byte text and escapes, spread over many receive buffers, within 1 KiB of the limit
    // once encoded (the rest of the frame is the event's envelope).
    let big = text_encoding_to(LIMIT as usize - 1024);
    let result = run(&bus, corelet("echo").with_data(json!(big)));
    assert!(result.success, "{:?}", result.error_message);
    assert!(result.data["data"].as_str() == Some(big.as_str()), "the large payload came back changed");
    let pid = result.data["pid"].as_u64();

    let over = "x".repeat(LIMIT as usize + 1);
    let result = run(&bus, corelet("echo").with_data(json!(over)).with_retry_count(2));
    assert_eq!(result.error_kind, Some(ErrorKind::InvalidInput), "{:?}", result.error_message);
    let message = result.error_message.as_deref().unwrap_or_default();
    assert!(message.contains(&format!("exceeds the corelet frame limit of {LIMIT} bytes")), "{message}");
    assert_eq!(result.attempts, 1, "a payload that cannot fit is not retried");

    let result = run(&bus, corelet("inflate").with_data(json!({"len": LIMIT + 1})).with_retry_count(2));
    assert_eq!(result.error_kind, Some(ErrorKind::HandlerError), "{:?}", result.error_message);
    let message = result.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("reply of"), "{message}");
    assert!(message.contains(&format!("exceeds the corelet frame limit of {LIMIT} bytes")), "{message}");
    assert_eq!(result.attempts, 1, "a reply that cannot fit is not retried");

    assert_eq!(Some(echo_pid(&bus)), pid, "the same child serves on");
    let stats = bus.stats();
    assert_eq!((stats.corelet_spawns, stats.corelet_crashes, stats.corelet_kills), (1, 0, 0), "{stats:?}");
    bus.shutdown();
}

/// An event nested beyond serde_json's recursion limit is refused with a clear error by the
/// child, which serves on.
pub(crate) fn too_deep() {
    let event = corelet("echo").with_data(too_deep_data()).with_retry_count(2);
    let result = fails_once_and_the_child_serves_on(event);
    assert_eq!(result.error_kind, Some(ErrorKind::InvalidInput), "{:?}", result.error_message);
    let message = result.error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("refused its request: the event's data is not valid JSON: recursion limit exceeded"),
        "{message}"
    );
}

/// Runs `event` on a bus with one child and returns its result, checking that the failure
/// was not retried and that the same child serves on.
fn fails_once_and_the_child_serves_on(event: Event) -> EventResult {
    let mut config = config();
    config.pool_size = Some(1);
    let bus = bus(config);
    let pid = echo_pid(&bus);
    let result = run(&bus, event);
    assert_eq!(result.attempts, 1, "a failure that cannot go otherwise is not retried: {result:?}");
    assert_eq!(echo_pid(&bus), pid, "the same child serves on");
    bus.shutdown();
    result
}

/// Data nested beyond serde_json's recursion limit (128).
fn too_deep_data() -> Value {
    (0..200).fold(json!("bottom"), |inner, _| json!([inner]))
}

/// Returns data the parent cannot parse: nested beyond serde_json's recursion limit.
pub(crate) fn deep_result(_ctx: &EventContext) -> HandlerResult {
    Ok(EventResult::success_with(too_deep_data()))
}

/// A result nested beyond serde_json's recursion limit is a permanent failure of the handler,
/// with a clear error, and the child serves on.
pub(crate) fn too_deep_result() {
    let result = fails_once_and_the_child_serves_on(corelet("deep_result").with_retry_count(2));
    assert_eq!(result.error_kind, Some(ErrorKind::HandlerError), "{:?}", result.error_message);
    assert!(result.is_permanent(), "{result:?}");
    let message = result.error_message.as_deref().unwrap_or_default();
    assert!(
        message.contains("the handler's result data is not valid JSON: recursion limit exceeded"),
        "{message}"
    );
}

/// A string whose JSON encoding is exactly `encoded_len` bytes, quotes included.
fn text_encoding_to(encoded_len: usize) -> String {
    let chunk = "grüße 東京 🦀 \"q\" \\ \n\t\u{1}|";
    let chunk_len = json!(chunk).to_string().len() - 2;
    let mut text = chunk.repeat((encoded_len - 2) / chunk_len);
    let encoded = json!(text).to_string().len();
    text.push_str(&"a".repeat(encoded_len - encoded));
    assert_eq!(json!(text).to_string().len(), encoded_len);
    text
}

/// A panic in a child handler comes back as `Panic` with its message; the child survives.
pub(crate) fn panic() {
    let mut config = config();
    config.pool_size = Some(1);
    let bus = bus(config);
    let pid = echo_pid(&bus);
    let result = run(&bus, corelet("panic"));
    assert_eq!(result.error_kind, Some(ErrorKind::Panic), "{result:?}");
    let message = result.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("boom in a corelet"), "{message}");
    assert_eq!(echo_pid(&bus), pid, "the same child serves the next event");
    let stats = bus.stats();
    assert_eq!((stats.panicked, stats.corelet_spawns, stats.corelet_crashes), (1, 1, 0), "{stats:?}");
    bus.shutdown();
}

/// Events a child handler publishes run on the parent's bus with correlation and causation ids
/// intact.
pub(crate) fn follow_up() {
    let bus = bus(config());
    let correlation = EventId::new();
    let event = corelet("chain").with_correlation_id(correlation);
    let id = event.id();
    let result = run(&bus, event);
    assert!(result.success, "{result:?}");
    // In the child, the handles of published events resolve at once and say where they ran.
    assert_eq!(result.data["local"], json!(["unsupported", "unsupported"]));
    bus.join();

    let mut records = recorded(correlation, 2);
    records.sort_by_key(|(event, _)| event.data()["n"].as_u64());
    for (n, (event, pid)) in (1..).zip(&records) {
        assert_eq!(event.data()["n"], n);
        assert_eq!(*pid, std::process::id(), "follow-up {n} ran in the parent");
        assert_ne!(result.data["pid"], *pid, "the publishing handler ran in a child");
        assert_eq!(event.mode(), ExecutionMode::Thread);
        assert_eq!(event.correlation_id(), correlation, "follow-up {n}");
        assert_eq!(event.causation_id(), Some(id), "follow-up {n}");
    }
    bus.shutdown();
}

/// `stats()` counts spawns, recycles (`max_requests = 2`), crashes and kills.
pub(crate) fn stats() {
    let mut config = config();
    config.pool_size = Some(1);
    config.max_requests = Some(2);
    let bus = bus(config);
    let pids: Vec<u64> = (0..4).map(|_| echo_pid(&bus)).collect();
    assert!(
        pids[0] == pids[1] && pids[2] == pids[3] && pids[1] != pids[2],
        "two children, two events each: {pids:?}"
    );
    let stats = bus.stats();
    assert_eq!((stats.corelet_spawns, stats.corelet_recycles, stats.corelets), (2, 2, 0), "{stats:?}");

    let crashed = run(&bus, corelet("exit"));
    assert_eq!(crashed.error_kind, Some(ErrorKind::Crashed), "{crashed:?}");
    echo_pid(&bus); // a warm child for the next event, so its timeout is spent in the handler
    let hung = run(&bus, corelet("hang").with_timeout(Duration::from_millis(500)));
    assert_eq!(hung.error_kind, Some(ErrorKind::Timeout), "{hung:?}");

    let stats = bus.stats();
    let counts = (stats.corelet_spawns, stats.corelet_recycles, stats.corelet_crashes, stats.corelet_kills);
    assert_eq!(counts, (4, 2, 1, 1), "spawns, recycles, crashes, kills: {stats:?}");
    assert_eq!((stats.corelets, stats.corelet_start_failures), (0, 0), "{stats:?}");
    bus.shutdown();
}

/// A retry after a crash runs in a fresh child.
pub(crate) fn retry_fresh_child() {
    let bus = bus(config());
    let event = corelet("crash_once").with_retry_count(1);
    let id = event.id();
    let result = run(&bus, event);
    assert!(result.success, "{result:?}");
    assert_eq!((result.attempts, &result.data["attempt"]), (2, &json!(2)));
    let first = recorded(id, 1).remove(0).0.data()["pid"].as_u64().expect("the first child's pid");
    assert_ne!(result.data["pid"], first, "the retry ran in another child");
    assert!(proc::wait_gone(first as u32, Duration::ZERO), "the crashed child was reaped");
    let stats = bus.stats();
    assert_eq!((stats.retries, stats.corelet_crashes, stats.corelet_spawns), (1, 1, 2), "{stats:?}");
    bus.shutdown();
}

/// Whether `blocked_in_parent` may return; `true` once opened.
static PARENT_GATE: Mutex<bool> = Mutex::new(false);
static PARENT_GATE_CHANGED: Condvar = Condvar::new();

/// Runs in the parent, as the follow-up of `publish_then_spin`: blocks until the check opens
/// its gate.
pub(crate) fn blocked_in_parent(_: &EventContext) -> HandlerResult {
    let mut open = PARENT_GATE.lock().unwrap_or_else(PoisonError::into_inner);
    while !*open {
        open = PARENT_GATE_CHANGED.wait(open).unwrap_or_else(PoisonError::into_inner);
    }
    Ok(EventResult::success())
}

/// Runs in a corelet: publishes a `Sync` follow-up that blocks in the parent, then spins.
pub(crate) fn publish_then_spin(ctx: &EventContext) -> HandlerResult {
    ctx.publish(Event::new("blocked_in_parent"))?;
    loop {
        std::hint::spin_loop();
    }
}

/// A `Sync` follow-up whose handler blocks in the parent does not keep the corelet that
/// published it from being killed at its deadline: it runs on the pool, not on the thread
/// that guards the deadline.
pub(crate) fn sync_follow_up_keeps_the_deadline() {
    let bus = bus(config());
    let handle = bus.publish(corelet("publish_then_spin").with_timeout(Duration::from_millis(500)));
    let handle = handle.expect("accepted");
    let (result_tx, result_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = result_tx.send(handle.wait());
    });
    // The follow-up's handler is still blocked (the gate is shut) while the result comes.
    let result = result_rx.recv_timeout(Duration::from_secs(60));
    *PARENT_GATE.lock().unwrap_or_else(PoisonError::into_inner) = true;
    PARENT_GATE_CHANGED.notify_all();
    let result = result.expect("the corelet was killed at its deadline while its follow-up ran");
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    // Killed by the thread that ran the exchange, not given up by the pool's backstop, which
    // replaces a worker stuck 30 s past a hard deadline.
    assert_eq!(bus.stats().replaced_workers, 0, "{:?}", bus.stats());
    bus.shutdown();
}

/// Runs in a corelet: tries the publishing that a child's private bus cannot do for the
/// parent, and answers with what each attempt said.
pub(crate) fn delay_in_child(ctx: &EventContext) -> HandlerResult {
    let bus = ctx.event_bus();
    let refusals = [
        bus.publish_after(Duration::from_millis(10), Event::new("record")).err(),
        bus.publish_at(std::time::Instant::now(), Event::new("record")).err(),
        bus.publish_attempt(Event::new("record"), 1).err(),
    ];
    let mut refusals: Vec<Option<String>> =
        refusals.iter().map(|error| error.as_ref().map(ToString::to_string)).collect();
    refusals.push(bus.register_rate_limit("record", 1.0, 1).err().map(|error| error.to_string()));
    Ok(EventResult::success_with(json!(refusals)))
}

/// Delayed publishing, single attempts and rate limits inside a corelet are refused with a message that
/// says why and what to do, instead of running on the child's private bus (where the parent's
/// `join` and shutdown would never see them, and a retired child would lose them).
pub(crate) fn delayed_publish_in_child() {
    let bus = bus(config());
    let result = run(&bus, corelet("delay_in_child"));
    assert!(result.success, "{result:?}");
    let refusals = result.data.as_array().expect("four answers");
    assert_eq!(refusals.len(), 4);
    for refusal in refusals {
        let message = refusal.as_str().unwrap_or_default();
        assert!(
            message.contains("not available inside a corelet") && message.contains("follow-up"),
            "{message}"
        );
    }
    bus.shutdown();
}

/// Publishes a follow-up whose data is nested beyond serde_json's recursion limit, and answers
/// with what its publish said.
pub(crate) fn publish_deep(ctx: &EventContext) -> HandlerResult {
    let follow_up = Event::new("record").with_mode(ExecutionMode::Thread).with_data(too_deep_data());
    let published = ctx.publish(follow_up).map(|_| ()).map_err(|error| error.to_string());
    Ok(EventResult::success_with(json!({"published": format!("{published:?}")})))
}

/// A follow-up the parent could not read is not lost without a word: the publishing handler
/// is told at once, as for a follow-up too large to send, and the attempt goes on.
pub(crate) fn too_deep_follow_up() {
    let bus = bus(config());
    let correlation = EventId::new();
    let result = run(&bus, corelet("publish_deep").with_correlation_id(correlation));
    assert!(result.success, "{result:?}");
    let published = result.data["published"].as_str().unwrap_or_default();
    assert!(
        published.starts_with("Err("),
        "the publish of a follow-up the parent cannot read succeeded: {published}"
    );
    assert!(published.contains("nested"), "{published}");
    bus.shutdown();
}
