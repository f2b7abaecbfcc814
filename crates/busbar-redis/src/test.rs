//! White-box tests of the pure parts: reading envelopes, priority bands, and what follows from
//! an attempt's result.
#![cfg(test)]

use std::collections::HashMap;
use std::time::Duration;

use busbar::{ErrorKind, Event, EventResult, RetryBackoff};

use crate::envelope::{decode, Band, Envelope, Reply};
use crate::settle::{Kind, Settlement};

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, redis::Value> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), redis::Value::BulkString(value.as_bytes().to_vec())))
        .collect()
}

fn envelope(retry_count: u32) -> Envelope {
    let reply = Reply { stream: "ns:reply:p".to_owned(), ticket: 7 };
    Envelope::new(Event::new("job").with_retry_count(retry_count), Some(reply))
}

#[test]
fn round_trip() {
    let sent = envelope(2);
    let json = sent.to_json().unwrap();
    let read = decode(&fields(&[("v", "1"), ("envelope", &json)])).unwrap();
    assert_eq!(read.event.id(), sent.event.id());
    assert_eq!(read.reply, sent.reply);
    assert_eq!(read.attempts, 0);
}

#[test]
fn unreadable() {
    let missing = decode(&fields(&[("hello", "world")])).unwrap_err();
    assert!(missing.reason.contains("no `v` field"), "{}", missing.reason);
    let json = envelope(0).to_json().unwrap();
    let newer = decode(&fields(&[("v", "2"), ("envelope", &json)])).unwrap_err();
    assert_eq!(newer.reason, "unsupported envelope version `2`: this worker reads version 1");
    assert_eq!(newer.reply.map(|reply| reply.ticket), Some(7), "the publisher can still be told");
    let garbage = decode(&fields(&[("v", "1"), ("envelope", "{")])).unwrap_err();
    assert!(garbage.reason.starts_with("malformed envelope: "), "{}", garbage.reason);
    let no_envelope = decode(&fields(&[("v", "1")])).unwrap_err();
    assert_eq!(no_envelope.reason, "malformed message: no `envelope` field");
}

#[test]
fn bands() {
    assert_eq!(
        [Band::of(9), Band::of(6), Band::of(5), Band::of(4), Band::of(-3)],
        [Band::High, Band::High, Band::Normal, Band::Low, Band::Low]
    );
}

fn decide(envelope: &Envelope, attempt: u32, result: EventResult) -> Settlement {
    let backoff = RetryBackoff::Fixed(Duration::from_millis(250));
    Settlement::decide(envelope, attempt, result, 0, &backoff, "w", false)
}

#[test]
fn cancelled_is_released_only_when_the_worker_stops() {
    let cancelled = || {
        let mut result = EventResult::failure("the user cancelled the upload");
        result.error_kind = Some(ErrorKind::Cancelled);
        result
    };
    let backoff = RetryBackoff::Fixed(Duration::from_millis(250));
    // The worker's bus is shutting down: back to the queue, uncounted.
    let stopping = Settlement::decide(&envelope(0), 1, cancelled(), 0, &backoff, "w", true);
    assert_eq!(stopping.kind(), Kind::Released);
    // A handler's own `Cancelled`: a failure like any other, final with no retries left.
    assert_eq!(decide(&envelope(0), 1, cancelled()).kind(), Kind::DeadLettered);
    assert_eq!(decide(&envelope(3), 1, cancelled()).kind(), Kind::Retried);
}

#[test]
fn success_is_final() {
    let settlement = decide(&envelope(3), 1, EventResult::success());
    assert_eq!(settlement.kind(), Kind::Succeeded);
}

#[test]
fn failure_with_retries_left_is_retried() {
    let settlement = decide(&envelope(3), 2, EventResult::failure("no"));
    assert_eq!(settlement.kind(), Kind::Retried);
    let debug = format!("{settlement:?}");
    assert!(debug.contains("attempts: 2"), "the next message counts two attempts: {debug}");
    assert!(debug.contains("250ms"), "after the backoff: {debug}");
}

#[test]
fn last_and_permanent_failures_are_dead_letters() {
    let exhausted = decide(&envelope(1), 2, EventResult::failure("no"));
    assert_eq!(exhausted.kind(), Kind::DeadLettered);
    assert!(format!("{exhausted:?}").contains("failed 2 of 2 attempts"));
    let permanent = decide(&envelope(5), 1, EventResult::failure("never").permanent());
    assert_eq!(permanent.kind(), Kind::DeadLettered);
    assert!(format!("{permanent:?}").contains("permanent failure"));
}

#[test]
fn cancelled_is_released_uncounted() {
    let mut cancelled = EventResult::failure("shutting down");
    cancelled.error_kind = Some(ErrorKind::Cancelled);
    let mut sent = envelope(0);
    sent.attempts = 1;
    let backoff = RetryBackoff::Fixed(Duration::from_millis(250));
    let settlement = Settlement::decide(&sent, 2, cancelled, 0, &backoff, "w", true);
    assert_eq!(settlement.kind(), Kind::Released);
    assert!(format!("{settlement:?}").contains("attempts: 1"));
}
