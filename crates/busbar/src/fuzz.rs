//! Entry points for the fuzz targets in `fuzz/` at the repository root (feature `fuzzing`).
//!
//! busbar parses outside input in crate-private code: the bytes a corelet child sends its
//! parent (a child runs arbitrary handler code, so it may send anything), the requests a child
//! reads, and the data of cmd events. Each function here runs that code on arbitrary input the
//! way the bus does and asserts what must hold whatever the input; a panic is a finding. The
//! public parsers (`BusConfig`, `ExecutionMode`, `Event`) are fuzzed directly.
//!
//! Nothing here spawns a process or runs a command. Not part of the API: hidden, behind a
//! feature, and free to change.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::attempt::{self, Verdict};
use crate::corelet::{self, Channel, ChildMessage, CoreletError, Cut, Duplex, FrameError, Greeting, Payload};
use crate::deadline;
use crate::error::PublishError;
use crate::event::{CompactEvent, Event, ParentLink, MAX_TIMEOUT};
use crate::mode::{self, cmd::CommandSpec, ChildAnswer};
use crate::EventBus;

/// The most input a function here writes into a pipe before reading it back: what a pipe
/// holds by default (a pipe that holds less gets only as much, see [`fill`]), so that writing
/// never waits for the reader.
pub const MAX_STREAM: usize = 64 << 10;

/// Lays out `bodies` as frames: each gets the 4-byte big-endian length header it announces.
pub fn frames<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut stream = Vec::new();
    for body in bodies {
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        stream.extend_from_slice(&len.to_be_bytes());
        stream.extend_from_slice(body);
    }
    stream
}

/// Splits fuzz input into frame bodies: each is announced by a 2-byte big-endian length, and
/// the last is cut short where the input ends. (The protocol is binary, so no byte value is
/// free to separate bodies.)
pub fn bodies(mut input: &[u8]) -> Vec<&[u8]> {
    let mut bodies = Vec::new();
    while let Some((len, rest)) = input.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (body, rest) = rest.split_at(len);
        bodies.push(body);
        input = rest;
    }
    bodies
}

/// Lays out `bodies` as [`bodies`] reads them, for writing seeds.
pub fn seed(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut seed = Vec::new();
    for body in bodies {
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        seed.extend_from_slice(&len.to_be_bytes());
        seed.extend_from_slice(&body[..usize::from(len)]);
    }
    seed
}

/// Returns a child's greeting, as a frame body, for targets that start past the handshake.
pub fn hello() -> Vec<u8> {
    let hello = Greeting::Hello { protocol_version: corelet::PROTOCOL_VERSION, pid: 1 };
    serde_json::to_vec(&hello).unwrap_or_default()
}

/// Feeds `stream` to the parent's end of a corelet channel as a child's output, and handles
/// every message as the parent does: the greeting, then requests numbered from 1, whose
/// published events are checked for the parent's bus and whose answers go through the attempt
/// loop's judgement to a final result. Messages decode straight into busbar's reply and event
/// types, as in the parent; one that does not decode is where the parent would kill the child,
/// and so is every other protocol error: that is where this stops.
pub fn corelet_parent(limit: u32, stream: &[u8]) {
    let Some(mut channel) = parent_end_with(stream).and_then(|pipes| {
        let cut = Arc::new(Cut::new().ok()?);
        Channel::parent(pipes, limit, cut).ok()
    }) else {
        return;
    };
    // Every byte is already in the pipe and its writer is gone, so no read waits; the deadline
    // only keeps a bug from hanging the fuzzer.
    let deadline = Some(Instant::now() + Duration::from_secs(10));
    let mut next_body = || -> Option<Vec<u8>> {
        let body = match channel.read_frame(deadline) {
            Ok(body) => body,
            Err(error) => {
                check_frame_error(&error, limit);
                return None;
            }
        };
        assert!(
            body.len() <= limit as usize,
            "a frame body of {} bytes passed a limit of {limit}",
            body.len()
        );
        Some(body.to_vec())
    };
    match next_body().map(|body| corelet::decode_greeting(&body)) {
        Some(Ok(Greeting::Hello { protocol_version, .. }))
            if protocol_version == corelet::PROTOCOL_VERSION => {}
        Some(Err(error)) => {
            let _ = error.to_string();
            return;
        }
        _ => return,
    }
    let mut receive = || -> Option<ChildAnswer> {
        corelet::decode::<ChildAnswer>(&next_body()?).map_err(|error| error.to_string()).ok()
    };
    let bus = refusing_bus();
    let event = Arc::new(Event::new("fuzz").with_retry_count(2));
    let (mut seq, mut attempt, started) = (1_u64, 1_u32, Instant::now());
    while let Some(message) = receive() {
        // The parent's protocol checks name the message and its number.
        let (_name, number) = (message.name(), message.seq());
        if number != seq {
            return;
        }
        let answer = match message {
            ChildMessage::Publish { event: published, .. } => {
                publish_for_child(bus, &event, published);
                continue;
            }
            ChildMessage::Reply { reply, .. } => Ok(reply),
            ChildMessage::Panic { panic, .. } => Err(CoreletError::Panicked(panic)),
            ChildMessage::TooLarge { len, limit, .. } => {
                Err(CoreletError::TooLarge { what: Payload::Reply, len, limit })
            }
        };
        let outcome = mode::outcome_of_answer(answer);
        match attempt::judge(bus.shared(), &event, attempt, event.max_attempts(), outcome) {
            Verdict::Final(result) => {
                let result = attempt::finish(result, &event, attempt, started);
                assert!(result.attempts <= event.max_attempts());
                assert_eq!(result.success, result.error_kind.is_none(), "{result:?}");
                let _ = serde_json::to_vec(&result).map_err(|error| error.to_string());
                let _ = result.into_result().map_err(|error| error.to_string());
                attempt = 1;
            }
            Verdict::Retry(_) => attempt += 1,
        }
        seq += 1;
    }
}

/// Feeds `stream` to a corelet child's end of the channel as the parent's output, and reads
/// the requests as the child does: a request whose payload does not decode is refused and the
/// child serves on; it stops at `Shutdown` or at the first message the child would exit on.
pub fn corelet_child(limit: u32, stream: &[u8]) {
    let Some((pipes, _parent_reader)) = child_end_with(stream) else { return };
    let Ok(mut channel) = Channel::child(pipes, limit) else { return };
    loop {
        let body = match channel.read_frame(None) {
            Ok(body) => body,
            Err(error) => {
                check_frame_error(&error, limit);
                return;
            }
        };
        assert!(
            body.len() <= limit as usize,
            "a frame body of {} bytes passed a limit of {limit}",
            body.len()
        );
        let request = match mode::decode_request(&body) {
            Ok(Some((_seq, request))) => request,
            Ok(None) => return,
            Err(error) => {
                let _ = error.to_string();
                return;
            }
        };
        match request {
            Ok((event, _attempt, timeout)) => {
                let _deadline = deadline::deadline_after(timeout);
                check_event(&event);
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
}

/// Reads `data` (JSON text) as a cmd event's data, as cmd mode does before running anything.
pub fn cmd_data(data: &[u8]) {
    let Ok(data) = serde_json::from_slice::<Value>(data) else { return };
    match CommandSpec::from_value(&data) {
        Ok(spec) => {
            assert!(!spec.executable().is_empty());
            assert!(!spec.executable().contains('\0'));
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("cmd event data: "), "{message}");
            // Input is quoted shortened, so a huge key cannot make a huge message.
            assert!(message.chars().count() < 400, "a message of {} characters", message.chars().count());
        }
    }
}

/// Checks what holds for any event that deserialized.
pub fn check_event(event: &Event) {
    assert!(!event.timeout().is_zero() && event.timeout() <= MAX_TIMEOUT, "{event:?}");
    assert!(event.max_attempts() >= 1);
    let _ = serde_json::to_vec(event).map_err(|error| error.to_string());
}

/// Returns the parent's end of a channel from which `stream` (cut to [`MAX_STREAM`] bytes,
/// what a pipe holds) can be read, followed by end-of-file.
fn parent_end_with(stream: &[u8]) -> Option<Duplex> {
    let (parent, child) = Duplex::pair().ok()?;
    fill(&child.write, stream)?;
    Some(parent)
}

/// Writes as much of `stream` into the empty pipe `write` as it holds without a reader, up to
/// [`MAX_STREAM`] bytes. A pipe holds 64 KiB by default, but less for a user over the
/// system's pipe-buffer quota; a write that waited for a reader would hang the fuzzer.
fn fill(write: &File, stream: &[u8]) -> Option<()> {
    let fd = write.as_raw_fd();
    let wanted = libc::c_int::try_from(MAX_STREAM).ok()?;
    // SAFETY: F_SETPIPE_SZ and F_GETPIPE_SZ take and return plain integers. A refusal to
    // grow the pipe is fine: its size is read back below.
    let holds = unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, wanted);
        libc::fcntl(fd, libc::F_GETPIPE_SZ)
    };
    let holds = usize::try_from(holds).ok()?;
    let mut write = write;
    write.write_all(&stream[..stream.len().min(MAX_STREAM).min(holds)]).ok()
}

/// Returns the child's end of a channel from which `stream` (cut to [`MAX_STREAM`] bytes) can
/// be read, followed by end-of-file, and the read end of the pipe it answers on, which must
/// live while it answers (a pipe without a reader raises `SIGPIPE`, which a fuzzer does not
/// ignore).
fn child_end_with(stream: &[u8]) -> Option<(Duplex, File)> {
    let (parent, child) = Duplex::pair().ok()?;
    fill(&parent.write, stream)?;
    let (reader, _writer) = parent.into_parts().ok()?;
    Some((child, reader))
}

/// Checks a frame error from a channel whose input simply ended.
fn check_frame_error(error: &FrameError, limit: u32) {
    match error {
        FrameError::Closed | FrameError::Truncated { .. } => {}
        FrameError::TooLarge { len, limit: reported } => {
            assert_eq!(*reported, limit);
            assert!(*len > u64::from(limit), "{error}");
        }
        // No deadline passes, nothing publishes or cuts, and the pipes stay open.
        FrameError::Timeout | FrameError::NotServing | FrameError::Cut | FrameError::Io(_) => {
            panic!("unexpected {error}")
        }
    }
    let _ = error.to_string();
}

/// A bus that is shut down: publishing on it runs every check an event passes before it could
/// run, then refuses it, so that no event found by the fuzzer ever runs.
fn refusing_bus() -> &'static EventBus {
    static BUS: OnceLock<EventBus> = OnceLock::new();
    BUS.get_or_init(|| {
        let bus = EventBus::new();
        bus.shutdown();
        bus
    })
}

/// Does what the parent does with an event a handler published in the child.
fn publish_for_child(bus: &EventBus, parent: &Event, published: CompactEvent) {
    let mut event = match published.into_event() {
        Ok(event) => event,
        Err(reason) => {
            let _ = reason;
            return;
        }
    };
    check_event(&event);
    event.inherit_from(ParentLink::of(parent));
    match bus.publish(event) {
        Err(PublishError::InvalidEvent(error)) => {
            let _ = error.to_string();
        }
        Err(PublishError::NoHandlerAvailable(_) | PublishError::ShutDown(_)) => {}
        other => panic!("a shut-down bus did not refuse an event: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the seeds of a fuzz target (`fuzz/seeds/<target>/`), each with its name.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds").join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
            })
            .collect();
        seeds.sort();
        seeds
    }

    /// The message seeds speak the current protocol, so that the fuzzer starts from messages
    /// the parent accepts rather than from ones it rejects at once.
    #[test]
    fn message_seeds_decode_as_the_parent_decodes() {
        for (name, seed) in seeds("corelet_messages") {
            let bodies = bodies(&seed);
            assert!(!bodies.is_empty(), "seed {name} is empty");
            for body in &bodies {
                if let Err(error) = corelet::decode::<ChildAnswer>(body) {
                    panic!("seed {name}: {error}");
                }
            }
            corelet_parent(64 << 20, &frames(std::iter::once(&hello()[..]).chain(bodies)));
        }
    }

    #[test]
    fn request_seeds_decode_as_the_child_decodes() {
        for (name, seed) in seeds("corelet_requests") {
            let bodies = bodies(&seed);
            assert!(!bodies.is_empty(), "seed {name} is empty");
            for body in &bodies {
                match mode::decode_request(body) {
                    Ok(Some((_, Ok((event, _, _))))) => check_event(&event),
                    Ok(None) => {}
                    Ok(Some((_, Err(error)))) => panic!("seed {name}: {error}"),
                    Err(error) => panic!("seed {name}: {error}"),
                }
            }
            corelet_child(64 << 20, &frames(bodies));
        }
    }

    /// The frame seeds start past a greeting of the current protocol.
    #[test]
    fn frame_seeds_greet_in_the_current_protocol() {
        for (name, seed) in seeds("corelet_frames") {
            let greeting = seed.get(6..).and_then(|stream| {
                let len = u32::from_be_bytes(seed.get(2..6)?.try_into().ok()?) as usize;
                stream.get(..len)
            });
            let greeting = corelet::decode_greeting(greeting.unwrap_or_default());
            assert!(
                matches!(greeting, Ok(Greeting::Hello { protocol_version, .. }) if protocol_version == corelet::PROTOCOL_VERSION),
                "seed {name}: {greeting:?}"
            );
        }
    }

    #[test]
    fn bodies_read_what_seed_writes() {
        let written = [b"abc".to_vec(), Vec::new(), vec![0; 300]];
        assert_eq!(bodies(&seed(&written)), written.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // A length past the end takes what is left.
        assert_eq!(bodies(&[0, 9, 1, 2]), [&[1, 2][..]]);
        assert!(bodies(&[7]).is_empty());
    }
}
