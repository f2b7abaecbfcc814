//! White-box tests of the corelet layer: frames, messages, units and settings here; real
//! children in `test/pool.rs` and `test/isolated.rs`, run from the entries in `test/child.rs`.
#![cfg(test)]
// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod child;
mod isolated;
mod pool;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::channel::Channel;
use super::config::{CoreletConfig, CoreletOutput};
use super::duplex::{Cut, Duplex};
use super::frame::{self, FrameError, Parsed};
use super::json::Json;
use super::message::{self, ChildMessage, Greeting, ParentHead, ParentMessage};
use super::panic;
use crate::unit::{parse_bytes, parse_duration};

/// Encodes `body` as a frame with a generous limit.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::start(&mut buf);
    buf.extend_from_slice(body);
    frame::seal(&mut buf, u32::MAX).expect("body fits");
    buf
}

/// Returns a parent channel with frame limit `limit`, and the raw pipes of its peer.
fn channel_pair(limit: u32) -> (Channel, Duplex) {
    channel_pair_with(limit, Arc::new(Cut::new().unwrap()))
}

/// [`channel_pair`] whose waits `cut` ends.
fn channel_pair_with(limit: u32, cut: Arc<Cut>) -> (Channel, Duplex) {
    let (ours, theirs) = Duplex::pair().unwrap();
    (Channel::parent(ours, limit, cut).unwrap(), theirs)
}

/// A deadline far enough away for a loaded machine.
fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(30))
}

#[test]
fn frame_header_is_big_endian_length() {
    assert_eq!(framed(b"abc"), b"\x00\x00\x00\x03abc");
}

#[test]
fn frame_parse() {
    assert_eq!(frame::parse(b"", 16).unwrap(), Parsed::Incomplete { frame_len: 4 });
    assert_eq!(frame::parse(b"\x00\x00", 16).unwrap(), Parsed::Incomplete { frame_len: 4 });
    assert_eq!(frame::parse(b"\x00\x00\x00\x05abc", 16).unwrap(), Parsed::Incomplete { frame_len: 9 });
    assert_eq!(frame::parse(b"\x00\x00\x00\x03abcdef", 16).unwrap(), Parsed::Complete { body_len: 3 });
    assert_eq!(frame::parse(b"\x00\x00\x00\x00", 16).unwrap(), Parsed::Complete { body_len: 0 });
    // "GET " read as a length is about 1.2 GB: a child printing HTTP at us. The verdict comes
    // from the header alone.
    assert!(matches!(
        frame::parse(b"GET ", frame::DEFAULT_MAX_FRAME),
        Err(FrameError::TooLarge { len: 0x4745_5420, .. })
    ));
}

#[test]
fn frame_round_trip() {
    let (mut channel, peer) = channel_pair(16);
    let mut bytes = framed(b"hello");
    bytes.extend(framed(b""));
    bytes.extend(framed(b"world"));
    (&*peer.write).write_all(&bytes).unwrap();
    drop(peer);
    assert_eq!(&*channel.read_frame(soon()).unwrap(), b"hello");
    assert_eq!(&*channel.read_frame(soon()).unwrap(), b"");
    assert_eq!(&*channel.read_frame(soon()).unwrap(), b"world");
    assert!(matches!(channel.read_frame(soon()), Err(FrameError::Closed)));
}

#[test]
fn frame_exact_limit() {
    let body = vec![7u8; 100];
    let mut buf = Vec::new();
    frame::start(&mut buf);
    buf.extend_from_slice(&body);
    frame::seal(&mut buf, 100).expect("a body of exactly the limit is allowed");
    let (mut channel, peer) = channel_pair(100);
    (&*peer.write).write_all(&buf).unwrap();
    assert_eq!(&*channel.read_frame(soon()).unwrap(), body);

    let mut over = vec![1, 2, 3];
    frame::start(&mut over);
    assert_eq!(over, [0; 4], "start empties the buffer");
    over.extend_from_slice(&[7u8; 101]);
    let error = frame::seal(&mut over, 100).unwrap_err();
    assert!(matches!(error, FrameError::TooLarge { len: 101, limit: 100 }));
    assert_eq!(error.to_string(), "frame of 101 bytes exceeds the limit of 100 bytes");
    // Read side: the same frame against a limit one byte short.
    (&*peer.write).write_all(&framed(&[7u8; 101])).unwrap();
    let error = channel.read_frame(soon()).unwrap_err();
    assert!(matches!(error, FrameError::TooLarge { len: 101, limit: 100 }));
}

#[test]
fn frame_larger_than_the_buffer() {
    let limit = 8 << 20;
    let (mut channel, peer) = channel_pair(limit);
    let body: Vec<u8> = (0..limit).map(|n| n as u8).collect();
    let sealed = framed(&body);
    std::thread::scope(|scope| {
        // The pipe holds far less than the frame: the writer needs a reader.
        scope.spawn(|| {
            (&*peer.write).write_all(&sealed).unwrap();
            (&*peer.write).write_all(&framed(b"next")).unwrap();
        });
        assert_eq!(&*channel.read_frame(soon()).unwrap(), body);
        assert_eq!(&*channel.read_frame(soon()).unwrap(), b"next");
    });
}

#[test]
fn frame_truncated() {
    let (mut channel, peer) = channel_pair(16);
    (&*peer.write).write_all(b"\x00\x00").unwrap();
    drop(peer);
    let error = channel.read_frame(soon()).unwrap_err();
    assert!(matches!(error, FrameError::Truncated { expected: 4, received: 2 }));

    let (mut channel, peer) = channel_pair(16);
    (&*peer.write).write_all(b"\x00\x00\x00\x05abc").unwrap();
    drop(peer);
    let error = channel.read_frame(soon()).unwrap_err();
    assert!(matches!(error, FrameError::Truncated { expected: 9, received: 7 }));
    assert_eq!(error.to_string(), "channel closed in the middle of a frame (7 of 9 bytes)");

    // Also when the frame is read past the buffer, into its own allocation.
    let (mut channel, peer) = channel_pair(1 << 20);
    (&*peer.write).write_all(b"\x00\x10\x00\x00abc").unwrap();
    drop(peer);
    assert!(matches!(
        channel.read_frame(soon()),
        Err(FrameError::Truncated { expected: 0x10_0004, received: 7 })
    ));
}

#[test]
fn frame_garbage_bodies_are_decode_errors() {
    // Empty, an unknown message, a message cut short, JSON where postcard belongs.
    for body in [&b""[..], b"\x09", b"\x01\x05", b"{\"reply\":{\"seq\":1}}"] {
        let error = message::decode::<ChildMessage<Json<Value>, Json<Value>>>(body).unwrap_err();
        assert!(error.to_string().starts_with("malformed message ("), "{body:?}: {error}");
    }
    // Bytes after a whole message are an error, not ignored.
    let mut reply = message::encode(&ChildMessage::<_, ()>::Reply { seq: 1, reply: 7u32 }, 64).unwrap();
    reply.push(0);
    let error = message::decode::<ChildMessage<u32, ()>>(&reply[4..]).unwrap_err();
    assert_eq!(error.to_string(), "1 bytes follow the message");
    // A payload of the wrong type is an error too, not a default.
    let reply = message::encode(&ChildMessage::<_, ()>::Reply { seq: 1, reply: Json("text") }, 64).unwrap();
    assert!(message::decode::<ChildMessage<Json<Value>, ()>>(&reply[4..]).is_ok());
    assert!(message::decode::<ChildMessage<Json<u32>, ()>>(&reply[4..]).is_err());
}

#[test]
fn message_encoding() {
    let request = json!({"a": [1, "two", null], "ü": "ß"});
    let owned =
        message::encode(&ParentMessage::Execute { seq: 7, request: Json(request.clone()) }, 1024).unwrap();
    let mut reused = vec![9; 3];
    message::encode_into(&mut reused, &ParentMessage::Execute { seq: 7, request: Json(&request) }, 1024)
        .unwrap();
    assert_eq!(reused, owned, "borrowed and owned payloads encode alike, into any buffer");
    let decoded: ParentMessage<Json<Value>> = message::decode(&owned[4..]).unwrap();
    assert!(matches!(decoded, ParentMessage::Execute { seq: 7, request: Json(r) } if r == request));

    let mut hello = Vec::new();
    message::encode_greeting_into(&mut hello, &Greeting::Hello { protocol_version: 1, pid: 42 }, 1024)
        .unwrap();
    assert_eq!(
        &hello[4..],
        br#"{"hello":{"protocol_version":1,"pid":42}}"#,
        "the handshake's shape is frozen across protocol versions"
    );
    assert!(matches!(
        message::decode_greeting(&hello[4..]),
        Ok(Greeting::Hello { protocol_version: 1, pid: 42 })
    ));
    assert!(matches!(
        message::encode(&ParentMessage::Execute { seq: 1, request: "x".repeat(100) }, 64),
        Err(FrameError::TooLarge { limit: 64, .. })
    ));
}

/// The child decodes a request's head (which message, which request) apart from the request
/// after it: the two must encode alike up to the request.
#[test]
fn a_parent_message_starts_with_its_head() {
    let execute = message::encode(&ParentMessage::Execute { seq: 300, request: Json("x") }, 64).unwrap();
    let (head, rest) = message::decode_head::<ParentHead>(&execute[4..]).unwrap();
    assert!(matches!(head, ParentHead::Execute { seq: 300 }), "{head:?}");
    assert_eq!(message::decode::<Json<String>>(rest).unwrap(), Json("x".to_owned()));
    let shutdown = message::encode(&ParentMessage::<()>::Shutdown, 64).unwrap();
    assert!(matches!(message::decode::<ParentHead>(&shutdown[4..]), Ok(ParentHead::Shutdown)));
    // A request that is not what the child expects is its error, with the request's number.
    let decoded = super::child::decode_request::<Json<u32>>(&execute[4..]).unwrap();
    assert!(matches!(decoded, Some((300, Err(_)))), "{decoded:?}");
}

#[test]
fn channel_deadline() {
    let (mut channel, _peer) = channel_pair(16);
    let start = Instant::now();
    let error = channel.read_frame(Some(start + Duration::from_millis(100))).unwrap_err();
    assert!(matches!(error, FrameError::Timeout), "{error:?}");
    assert!(start.elapsed() >= Duration::from_millis(100));
    // A passed deadline fails at once.
    let error = channel.read_frame(Some(start)).unwrap_err();
    assert!(matches!(error, FrameError::Timeout), "{error:?}");
    // A peer that does not read blocks writes only until the deadline.
    let big = framed(&[0u8; 15]);
    let error = loop {
        if let Err(error) = channel.write_frame(&big, Some(Instant::now() + Duration::from_millis(50))) {
            break error;
        }
    };
    assert!(matches!(error, FrameError::Timeout), "{error:?}");
}

#[test]
fn channel_reports_a_dead_peer() {
    let (mut channel, peer) = channel_pair(64);
    drop(peer);
    let frame = message::encode(&ParentMessage::<()>::Shutdown, 64).unwrap();
    // No SIGPIPE (the parent keeps a reader of its own pipe): the write lands in the pipe,
    // which tells that none of it was read, and the read sees the peer gone.
    channel.write_frame(&frame, None).expect("the pipe takes the frame");
    assert_eq!(channel.unread(), Some(frame.len()), "nobody read the frame");
    let error = channel.read_frame(None).unwrap_err();
    assert!(matches!(error, FrameError::Closed), "{error:?}");
    // A frame larger than the pipe holds waits for room only until the peer is seen gone,
    // and none of it was delivered: nobody read the part written.
    let huge = framed(&vec![0u8; 1 << 20]);
    let (mut channel, peer) = channel_pair(2 << 20);
    drop(peer);
    let error = channel.write_frame(&huge, None).unwrap_err();
    assert!(matches!(error, FrameError::Closed), "{error:?}");
}

#[test]
fn channel_cut_from_another_thread() {
    let cut = Arc::new(Cut::new().unwrap());
    let (mut channel, _peer) = channel_pair_with(64, Arc::clone(&cut));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Give the reader a moment to block; correctness does not depend on it.
            std::thread::sleep(Duration::from_millis(20));
            cut.cut();
        });
        assert!(matches!(channel.read_frame(None), Err(FrameError::Cut)));
    });
    // A wait that begins after the cut ends at once too.
    let (mut late, _peer) = channel_pair_with(64, cut);
    assert!(matches!(late.read_frame(None), Err(FrameError::Cut)));
}

#[test]
fn panic_capture() {
    panic::install_hook();
    let info = panic::catch(|| -> () { std::panic::panic_any(String::from("it broke")) }).unwrap_err();
    assert_eq!(info.message, "it broke");
    let location = info.location.as_deref().expect("the hook saw the location");
    assert!(location.contains("test.rs"), "{location}");
    assert!(info.to_string().starts_with("it broke at "));
    let info = panic::catch(|| std::panic::panic_any(7_u8)).unwrap_err();
    assert_eq!(info.message, "panic with a non-string payload");
    assert_eq!(panic::catch(|| 5).unwrap(), 5);
}

#[test]
fn units() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("1.5 s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("5").unwrap_err().contains("expected a number with a unit"));
    assert!(parse_duration("fast").is_err());
    assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
    assert_eq!(parse_bytes("4096"), Ok(4096));
    assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
    assert!(parse_bytes("1.5GiB").unwrap_err().contains("not a whole number"));
    assert!(parse_bytes("1GB").unwrap_err().contains("KiB, MiB"));
    assert!(parse_bytes("99999999999TiB").unwrap_err().contains("too large"));
}

#[test]
fn config_from_toml() {
    let config: CoreletConfig = toml::from_str(
        r#"
        pool_size = 3
        memory_limit = "1GiB"
        cpu_seconds = 10
        nice = 5
        idle_timeout = "90s"
        kill_grace = 0.25
        max_frame_size = "1MiB"
        output = "null"
        "#,
    )
    .unwrap();
    assert_eq!(config.pool_size, Some(3));
    assert_eq!(config.memory_limit, Some(1 << 30));
    assert_eq!(config.idle_timeout, Duration::from_secs(90));
    assert_eq!(config.kill_grace, Duration::from_millis(250));
    assert_eq!(config.max_frame_size, 1 << 20);
    assert_eq!(config.output, CoreletOutput::Null);
    assert_eq!(config.start_timeout, CoreletConfig::default().start_timeout);
    config.validate().unwrap();

    let error = toml::from_str::<CoreletConfig>("pool_sise = 3").unwrap_err();
    assert!(error.to_string().contains("unknown field `pool_sise`"), "{error}");
    let error = toml::from_str::<CoreletConfig>("max_frame_size = \"8GiB\"").unwrap_err();
    assert!(error.to_string().contains("frames are at most"), "{error}");

    let zero = CoreletConfig { pool_size: Some(0), ..CoreletConfig::default() };
    assert_eq!(
        zero.validate().unwrap_err().to_string(),
        "invalid corelet setting `pool_size`: expected at least 1"
    );
    let tiny = CoreletConfig { max_frame_size: 10, ..CoreletConfig::default() };
    assert!(tiny.validate().is_err());
    assert!(CoreletConfig::default().validate().is_ok());

    // Values no child could work with, or that could not be added to the clock.
    let rejected = |config: CoreletConfig| config.validate().unwrap_err().to_string();
    let default = CoreletConfig::default;
    assert_eq!(
        rejected(CoreletConfig { kill_grace: Duration::MAX, ..default() }),
        "invalid corelet setting `kill_grace`: expected at most 10s"
    );
    assert_eq!(
        rejected(CoreletConfig { memory_limit: Some(0), ..default() }),
        "invalid corelet setting `memory_limit`: expected at least 16 MiB"
    );
    assert_eq!(
        rejected(CoreletConfig { max_start_backoff: Duration::MAX, ..default() }),
        "invalid corelet setting `max_start_backoff`: expected at most one year"
    );
    assert_eq!(
        rejected(CoreletConfig { idle_timeout: Duration::from_secs(u64::MAX), ..default() }),
        "invalid corelet setting `idle_timeout`: expected at most one year"
    );
    let edge =
        CoreletConfig { kill_grace: Duration::from_secs(10), memory_limit: Some(16 << 20), ..default() };
    assert!(edge.validate().is_ok());
}
