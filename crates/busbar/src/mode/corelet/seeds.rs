//! The fuzz seeds of the corelet targets (`fuzz/seeds/corelet_*`), written from busbar's own
//! message types so that they speak the current protocol.
//!
//! Rewrite them after a protocol change with
//! `cargo test -p busbar --lib write_fuzz_seeds -- --ignored`; `crate::__fuzz`'s tests check
//! that every seed decodes as the parent or the child decodes it.
#![cfg(test)]

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::wire::{Reply, Request, Returned};
use crate::__fuzz::{frames, hello, seed};
use crate::corelet::{encode, ChildMessage, PanicInfo, ParentMessage};
use crate::event::{CompactRef, Event};
use crate::mode::ExecutionMode;
use crate::result::{ErrorKind, EventResult};

/// The frame limit the seeds are encoded under: the default.
const LIMIT: u32 = 64 << 20;

/// The body of one message.
fn body(message: &impl Serialize) -> Vec<u8> {
    let frame = encode(message, LIMIT).expect("a seed message encodes");
    frame[4..].to_vec()
}

fn reply(reply: Reply<Returned>) -> Vec<u8> {
    body(&ChildMessage::<_, ()>::Reply { seq: 1, reply })
}

/// An event with every field set, as handlers publish and parents send them.
fn full_event() -> Event {
    let parent = Event::new("order.placed");
    let mut event = Event::new("user.registered")
        .with_data(json!({"email": "a@example.com", "n": [1, 2.5, null, true]}))
        .with_mode(ExecutionMode::Thread)
        .with_priority(5)
        .with_timeout(std::time::Duration::from_millis(1500))
        .with_retry_count(2)
        .with_header("tenant", "acme");
    event.inherit_from(crate::event::ParentLink::of(&parent));
    event
}

/// What a child may send after its greeting, by seed name.
fn child_messages() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let event = full_event();
    let publish = body(&ChildMessage::<(), _>::Publish { seq: 1, event: CompactRef(&event) });
    let returned = EventResult::success_with(json!({"transaction_id": "tx-1", "amount": 12.5}));
    let returned = reply(Reply::Returned(returned.into()));
    let panic = PanicInfo {
        message: "boom".to_owned(),
        location: Some("src/main.rs:1:1".to_owned()),
        backtrace: None,
    };
    vec![
        ("panic", vec![body(&ChildMessage::<(), ()>::Panic { seq: 1, panic })]),
        ("publish", vec![publish.clone()]),
        ("publish_then_reply", vec![publish, returned.clone()]),
        ("reply_error", vec![reply(Reply::Error { message: "card declined".to_owned(), permanent: true })]),
        ("reply_panicked", vec![reply(Reply::Panicked { message: "index out of bounds".to_owned() })]),
        (
            "reply_refused",
            vec![reply(Reply::Refused { kind: ErrorKind::InvalidInput, message: "bad data".to_owned() })],
        ),
        ("reply_returned", vec![returned]),
        ("reply_timed_out", vec![reply(Reply::TimedOut)]),
        ("too_large", vec![body(&ChildMessage::<(), ()>::TooLarge { seq: 1, len: 100, limit: 64 })]),
    ]
}

/// What a parent may send, by seed name.
fn parent_messages() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let event = full_event();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let execute = body(&ParentMessage::Execute { seq: 1, request: Request::new(&event, 1, deadline) });
    let shutdown = body(&ParentMessage::<()>::Shutdown);
    vec![("execute", vec![execute.clone()]), ("execute_shutdown", vec![execute, shutdown])]
}

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds").join(target)
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds_dir(target);
    std::fs::create_dir_all(&dir).expect("the seeds directory");
    std::fs::write(dir.join(name), bytes).expect("a seed file");
}

/// Writes the seeds of `corelet_messages` and `corelet_requests` (bodies as `__fuzz::bodies`
/// reads them) and of `corelet_frames` (a limit choice, then the raw stream of frames).
#[test]
#[ignore = "writes the fuzz seeds; run by hand after a protocol change"]
fn write_fuzz_seeds() {
    for (name, bodies) in child_messages() {
        write("corelet_messages", name, &seed(&bodies));
        let stream = frames(std::iter::once(&hello()[..]).chain(bodies.iter().map(Vec::as_slice)));
        // A limit choice of 100 gives 1 424 bytes, above every seed's frames.
        write("corelet_frames", name, &[&[0, 100][..], &stream].concat());
    }
    // A frame that announces more (327 680 bytes) than the largest limit the target can choose
    // (1 024 + 4 × 65 535 = 263 164 bytes).
    let large = [&[0xff, 0xff][..], &frames([&hello()[..]]), &[0x00, 0x05, 0x00, 0x00, 0x00]].concat();
    write("corelet_frames", "large_announced", &large);
    for (name, bodies) in parent_messages() {
        write("corelet_requests", name, &seed(&bodies));
    }
}

/// The seeds on disk are the ones this file writes, but for the event's id and times.
#[test]
fn the_seed_files_exist_for_every_scenario() {
    for (name, _) in child_messages() {
        for target in ["corelet_messages", "corelet_frames"] {
            assert!(seeds_dir(target).join(name).is_file(), "{target}/{name}: run write_fuzz_seeds");
        }
    }
    for (name, _) in parent_messages() {
        assert!(seeds_dir("corelet_requests").join(name).is_file(), "corelet_requests/{name}");
    }
}
