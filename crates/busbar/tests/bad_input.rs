//! Bad input gets a clear error naming what was wrong, never a panic.

use std::time::Duration;

use busbar::{handler_fn, BusConfig, Event, EventBus, EventResult, ExecutionMode, PublishError, MAX_TIMEOUT};
use serde::Deserialize;
use serde_json::json;

fn bus() -> EventBus {
    let bus = EventBus::builder().threads(1).build().unwrap();
    bus.subscribe("ok", handler_fn(|_| Ok(EventResult::success())));
    bus
}

/// Publishes `event` in sync and thread mode and returns the error's reason and message.
fn refused(bus: &EventBus, event: Event) -> Vec<(String, String)> {
    [ExecutionMode::Sync, ExecutionMode::Thread]
        .into_iter()
        .map(|mode| match bus.publish(event.clone().with_mode(mode)) {
            Err(PublishError::InvalidEvent(err)) => (err.reason().to_owned(), err.to_string()),
            other => panic!("{mode}: expected an invalid event, got {other:?}"),
        })
        .collect()
}

#[test]
fn empty_type() {
    let bus = bus();
    for event_type in ["", "   "] {
        for (reason, _) in refused(&bus, Event::new(event_type)) {
            assert!(reason.contains("event type is empty"), "{reason}");
        }
    }
    assert_eq!(bus.stats().published, 0);
}

#[test]
fn timeout() {
    let bus = bus();
    for (reason, message) in refused(&bus, Event::new("ok").with_timeout(Duration::ZERO)) {
        assert!(reason.contains("timeout is zero") && reason.contains("expected a positive"), "{reason}");
        assert!(message.starts_with("invalid event `ok`: "), "{message}");
    }
    let absurd = MAX_TIMEOUT + Duration::from_secs(1);
    for (reason, _) in refused(&bus, Event::new("ok").with_timeout(absurd)) {
        assert!(reason.contains("longer than the maximum"), "{reason}");
    }
    for (reason, _) in refused(&bus, Event::new("ok").with_timeout(Duration::MAX)) {
        assert!(reason.contains("longer than the maximum"), "{reason}");
    }
    // The largest allowed timeout is accepted.
    assert!(bus.publish(Event::new("ok").with_timeout(MAX_TIMEOUT)).unwrap().wait().success);
}

#[test]
fn refused_event_comes_back() {
    let bus = bus();
    let event = Event::new("").with_data(json!({"keep": "me"}));
    let id = event.id();
    let back = bus.publish(event).unwrap_err().into_inner();
    assert_eq!((back.id(), back.data()["keep"].as_str()), (id, Some("me")));
}

#[test]
fn no_handler() {
    let bus = bus();
    for mode in [ExecutionMode::Sync, ExecutionMode::Thread, ExecutionMode::Corelet] {
        let err = bus.publish(Event::new("nobody.listens").with_mode(mode)).unwrap_err();
        assert!(matches!(err, PublishError::NoHandlerAvailable(_)), "{mode}: {err:?}");
        assert_eq!(err.to_string(), "no handler registered for event type `nobody.listens`");
    }
}

#[test]
fn serialized_timeout() {
    let cases = [
        (r#"{"event_type": "x", "timeout": -1}"#, "greater than zero"),
        (r#"{"event_type": "x", "timeout": 0}"#, "greater than zero"),
        (r#"{"event_type": "x", "timeout": 1e12}"#, "at most"),
        (r#"{"event_type": "x", "timeout": "soon"}"#, "invalid type"),
    ];
    for (json, expected) in cases {
        let err = serde_json::from_str::<Event>(json).unwrap_err().to_string();
        assert!(err.contains(expected), "{json}: {err}");
    }
    // JSON has no infinity or NaN, TOML does.
    for toml in ["event_type = 'x'\ntimeout = inf", "event_type = 'x'\ntimeout = nan"] {
        let err = toml::from_str::<Event>(toml).unwrap_err().to_string();
        assert!(err.contains("finite number of seconds"), "{toml}: {err}");
    }
    let event: Event = serde_json::from_str(r#"{"event_type": "x", "timeout": 1.5}"#).unwrap();
    assert_eq!(event.timeout(), Duration::from_millis(1500));
}

#[test]
fn unknown_mode() {
    let err = "fast".parse::<ExecutionMode>().unwrap_err().to_string();
    assert_eq!(err, "unknown execution mode `fast`: expected one of `sync`, `thread`, `corelet`, `cmd`");
    assert_eq!("THREAD".parse::<ExecutionMode>(), Ok(ExecutionMode::Thread));
    assert!("".parse::<ExecutionMode>().is_err());

    let err =
        serde_json::from_str::<Event>(r#"{"event_type": "x", "mode": "fast"}"#).unwrap_err().to_string();
    assert!(err.contains("unknown variant `fast`") && err.contains("`thread`"), "{err}");
}

#[test]
fn serialized_event() {
    let err = serde_json::from_str::<Event>(r#"{"data": 1}"#).unwrap_err().to_string();
    assert!(err.contains("missing field `event_type`"), "{err}");
    let err = serde_json::from_str::<Event>(r#"{"event_type": "x", "priority": "high"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
    let err = serde_json::from_str::<Event>(r#"{"event_type": "x", "id": "not-a-uuid"}"#).unwrap_err();
    assert!(err.to_string().contains("UUID") || err.to_string().contains("uuid"), "{err}");
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // Only deserialized.
struct Order {
    id: u64,
    total: f64,
}

#[test]
fn payload() {
    let cases = [
        (json!({"id": "seven", "total": 1.0}), "invalid type: string \"seven\", expected u64"),
        (json!({"total": 1.0}), "missing field `id`"),
        (json!(null), "invalid type: null"),
    ];
    for (data, expected) in cases {
        let event = Event::new("order.created").with_data(data);
        let err = event.payload::<Order>().unwrap_err().to_string();
        assert!(err.contains("order.created") && err.contains(expected), "{err}");
    }
}

#[test]
fn config_text() {
    let cases = [
        ("threads = ", "TOML parse error"),
        ("thread = 2", "unknown field `thread`"),
        ("threads = \"two\"", "invalid type: string \"two\""),
        ("threads = -1", "invalid value: integer `-1`, expected usize"),
        ("threads = 0", "`threads` must be at least 1, found 0"),
        ("queue_capacity = 0", "`queue_capacity` must be at least 1, found 0"),
        ("retry_backoff = { kind = \"sometimes\" }", "unknown variant `sometimes`"),
        ("retry_backoff = { kind = \"fixed\" }", "missing field `delay_ms`"),
        (
            "retry_backoff = { kind = \"exponential\", initial_ms = 100, max_ms = 10 }",
            "the max (10ms) must be at least the initial pause (100ms)",
        ),
    ];
    for (text, expected) in cases {
        let err = BusConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(err.starts_with("invalid config: ") && err.contains(expected), "{text}: {err}");
    }
    assert!(BusConfig::from_toml_str("threads = 2").is_ok());
}

#[test]
fn config_env() {
    let cases = [
        ("BUSBAR_THREADS", "many", "a whole number of threads"),
        ("BUSBAR_THREADS", "-2", "a whole number of threads"),
        ("BUSBAR_THREADS", "0", "a whole number of threads, 1 to 1024"),
        ("BUSBAR_THREADS", "1000000000000", "a whole number of threads, 1 to 1024"),
        ("BUSBAR_QUEUE_CAPACITY", "0", "a whole number of events, at least 1"),
        ("BUSBAR_RETRY_BACKOFF", "exponential:100:10", "max ≥ initial"),
        ("BUSBAR_QUEUE_CAPACITY", "1e3", "a whole number of events"),
        ("BUSBAR_RETRY_BACKOFF", "sometimes", "`fixed:<ms>`"),
        ("BUSBAR_RETRY_BACKOFF", "fixed:soon", "`fixed:<ms>`"),
        ("BUSBAR_RETRY_BACKOFF", "exponential:1:2:3", "`exponential:<initial ms>:<max ms>[:jitter]`"),
    ];
    for (name, value, expected) in cases {
        let err = BusConfig::default().with_env_vars([(name, value)]).unwrap_err().to_string();
        assert!(err.contains(expected), "{name}={value}: {err}");
        assert!(err.contains(name) && err.contains(value), "{name}={value}: {err}");
    }
    // Variables busbar does not know are none of its business.
    assert!(BusConfig::default().with_env_vars([("BUSBAR_COLOUR", "blue")]).is_ok());
}

#[test]
fn config_file() {
    let missing = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("busbar-no-such-dir/busbar.toml");
    let err = BusConfig::from_file(&missing).unwrap_err();
    assert_eq!(err.path(), Some(missing.as_path()));
    let message = err.to_string();
    assert!(message.contains("cannot read the file") && message.contains("busbar.toml"), "{message}");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad_input");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "threads = 2\nqueue_capacity = \"big\"\n").unwrap();
    let message = BusConfig::from_file(&bad).unwrap_err().to_string();
    assert!(message.contains("bad.toml") && message.contains("line 2"), "{message}");
    assert!(message.contains("queue_capacity"), "{message}");

    // A directory is not a file.
    let message = BusConfig::from_file(&dir).unwrap_err().to_string();
    assert!(message.contains("cannot read the file"), "{message}");
}

#[test]
fn builder() {
    let err = EventBus::builder().threads(0).build().unwrap_err();
    assert_eq!(err.to_string(), "invalid bus configuration: `threads` must be at least 1, found 0");
    // A number meant for something else: refused, not a first publish that starts threads
    // until the system runs out.
    let err = EventBus::builder().threads(1 << 40).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid bus configuration: `threads` must be at most 1024, found 1099511627776"
    );
    assert!(EventBus::builder().threads(1024).build().is_ok());
    let backwards = busbar::RetryBackoff::Exponential {
        initial: Duration::from_secs(1),
        max: Duration::from_millis(1),
        jitter: false,
    };
    let err = EventBus::builder().retry_backoff(backwards).build().unwrap_err();
    assert!(err.to_string().contains("must be at least the initial pause"), "{err}");
    let err = EventBus::builder().queue_capacity(0).build().unwrap_err();
    assert!(err.to_string().contains("`queue_capacity` must be at least 1"), "{err}");
}

/// `error_kind` is public, but the bus's to set: a success a handler returned with one set is
/// delivered as a plain success, not as a result that says both (found by fuzzing the corelet
/// child's replies).
#[test]
fn a_success_carrying_an_error_kind_is_a_plain_success() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    bus.subscribe(
        "confused",
        handler_fn(|_| {
            let mut result = EventResult::success();
            result.error_kind = Some(busbar::ErrorKind::Timeout);
            Ok(result)
        }),
    );
    for mode in [ExecutionMode::Sync, ExecutionMode::Thread] {
        let result = bus.publish(Event::new("confused").with_mode(mode)).unwrap().wait();
        assert!(result.success, "{mode}: {result:?}");
        assert_eq!(result.error_kind, None, "{mode}: {result:?}");
    }
    bus.shutdown();
}
