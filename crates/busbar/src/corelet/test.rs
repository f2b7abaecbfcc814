//! White-box tests of the corelet layer: frames, messages, units and settings here; real
//! children in `test/pool.rs` and `test/isolated.rs`, run from the entries in `test/child.rs`.
#![cfg(test)]
// A failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod child;
mod isolated;
mod pool;

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::json;

use super::config::{CoreletConfig, Output};
use super::deadline::DeadlineStream;
use super::frame::{self, FrameError};
use super::message::{self, ChildMessage, ParentMessage};
use super::panic;
use super::unit::{parse_bytes, parse_duration};

/// Encodes `body` as a frame with a generous limit.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut buf = frame::start();
    buf.extend_from_slice(body);
    frame::seal(&mut buf, u32::MAX).expect("body fits");
    buf
}

#[test]
fn frame_round_trip() {
    let mut bytes = framed(b"hello");
    bytes.extend(framed(b""));
    bytes.extend(framed(b"world"));
    let mut reader = bytes.as_slice();
    assert_eq!(frame::read(&mut reader, 16).unwrap(), b"hello");
    assert_eq!(frame::read(&mut reader, 16).unwrap(), b"");
    assert_eq!(frame::read(&mut reader, 16).unwrap(), b"world");
    assert!(matches!(
        frame::read(&mut reader, 16),
        Err(FrameError::Closed)
    ));
}

#[test]
fn frame_header_is_big_endian_length() {
    assert_eq!(framed(b"abc"), b"\x00\x00\x00\x03abc");
}

#[test]
fn frame_exact_limit() {
    let body = vec![7u8; 100];
    let mut buf = frame::start();
    buf.extend_from_slice(&body);
    frame::seal(&mut buf, 100).expect("a body of exactly the limit is allowed");
    assert_eq!(frame::read(&mut buf.as_slice(), 100).unwrap(), body);

    let mut over = frame::start();
    over.extend_from_slice(&[7u8; 101]);
    let error = frame::seal(&mut over, 100).unwrap_err();
    assert!(matches!(
        error,
        FrameError::TooLarge {
            len: 101,
            limit: 100
        }
    ));
    assert_eq!(
        error.to_string(),
        "frame of 101 bytes exceeds the limit of 100 bytes"
    );
    // Read side: the same frame against a limit one byte short.
    let error = frame::read(&mut framed(&[7u8; 101]).as_slice(), 100).unwrap_err();
    assert!(matches!(
        error,
        FrameError::TooLarge {
            len: 101,
            limit: 100
        }
    ));
}

#[test]
fn frame_oversize_header_allocates_nothing() {
    /// A reader that fails the test if asked for more than the header.
    struct HeaderOnly(&'static [u8]);
    impl Read for HeaderOnly {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(!self.0.is_empty(), "read past the header");
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    // "GET " read as a length is about 1.2 GB: a child printing HTTP at us.
    let error = frame::read(&mut HeaderOnly(b"GET "), frame::DEFAULT_MAX_FRAME).unwrap_err();
    assert!(matches!(
        error,
        FrameError::TooLarge {
            len: 0x4745_5420,
            ..
        }
    ));
}

#[test]
fn frame_truncated() {
    let error = frame::read(&mut &b"\x00\x00"[..], 16).unwrap_err();
    assert!(matches!(
        error,
        FrameError::Truncated {
            expected: 4,
            received: 2
        }
    ));
    let error = frame::read(&mut &b"\x00\x00\x00\x05abc"[..], 16).unwrap_err();
    assert!(matches!(
        error,
        FrameError::Truncated {
            expected: 9,
            received: 7
        }
    ));
    assert_eq!(
        error.to_string(),
        "channel closed in the middle of a frame (7 of 9 bytes)"
    );
    assert!(matches!(
        frame::read(&mut &b""[..], 16),
        Err(FrameError::Closed)
    ));
}

#[test]
fn frame_read_error_kinds() {
    /// A reader that always fails with one kind of error.
    struct Failing(io::ErrorKind);
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
    }
    for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut] {
        assert!(matches!(
            frame::read(&mut Failing(kind), 16),
            Err(FrameError::Timeout)
        ));
    }
    assert!(matches!(
        frame::read(&mut Failing(io::ErrorKind::ConnectionReset), 16),
        Err(FrameError::Io(_))
    ));
}

#[test]
fn frame_garbage_bodies_are_decode_errors() {
    for body in [
        &b""[..],
        b"not json",
        b"\xff\xfe",
        b"{\"reply\":",
        b"{\"launch\":{}}",
    ] {
        assert!(
            message::decode::<ChildMessage>(body).is_err(),
            "{body:?} decoded"
        );
    }
    // Parent messages reject unknown fields: a child never guesses.
    assert!(message::decode::<ParentMessage>(br#"{"execute":{"request":1,"x":2}}"#).is_err());
}

#[test]
fn message_encoding() {
    let request = json!({"a": [1, "two", null], "ü": "ß"});
    let owned = message::encode(
        &ParentMessage::Execute {
            request: request.clone(),
        },
        1024,
    )
    .unwrap();
    assert_eq!(message::encode_execute(&request, 1024).unwrap(), owned);
    let body = frame::read(&mut owned.as_slice(), 1024).unwrap();
    let decoded: ParentMessage = message::decode(&body).unwrap();
    assert!(matches!(decoded, ParentMessage::Execute { request: r } if r == request));

    let hello = message::encode(
        &ChildMessage::Hello {
            protocol_version: 1,
            pid: 42,
        },
        1024,
    )
    .unwrap();
    assert_eq!(
        &hello[4..],
        br#"{"hello":{"protocol_version":1,"pid":42}}"#,
        "the handshake's shape is frozen across protocol versions"
    );
    assert!(matches!(
        message::encode_execute(&json!("x".repeat(100)), 64),
        Err(FrameError::TooLarge { limit: 64, .. })
    ));
}

#[test]
fn deadline_stream_times_out() {
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(100);
    let error = frame::read(&mut DeadlineStream::new(&ours, Some(deadline)), 16).unwrap_err();
    assert!(matches!(error, FrameError::Timeout), "{error:?}");
    assert!(start.elapsed() >= Duration::from_millis(100));
    // A passed deadline fails at once.
    let error = frame::read(&mut DeadlineStream::new(&ours, Some(start)), 16).unwrap_err();
    assert!(matches!(error, FrameError::Timeout), "{error:?}");
}

#[test]
fn deadline_stream_reports_a_dead_peer() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(theirs);
    let frame = message::encode(&ParentMessage::Shutdown, 64).unwrap();
    // EPIPE, not SIGPIPE: the test process survives to see the error.
    let error = frame::write(&mut DeadlineStream::new(&ours, None), &frame).unwrap_err();
    assert!(matches!(error, FrameError::Io(ref e) if e.kind() == io::ErrorKind::BrokenPipe));
}

#[test]
fn panic_capture() {
    panic::install_hook();
    let info =
        panic::catch(|| -> () { std::panic::panic_any(String::from("it broke")) }).unwrap_err();
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
    assert!(parse_duration("5")
        .unwrap_err()
        .contains("expected a number with a unit"));
    assert!(parse_duration("fast").is_err());
    assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
    assert_eq!(parse_bytes("4096"), Ok(4096));
    assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
    assert!(parse_bytes("1.5GiB")
        .unwrap_err()
        .contains("not a whole number"));
    assert!(parse_bytes("1GB").unwrap_err().contains("KiB, MiB"));
    assert!(parse_bytes("99999999999TiB")
        .unwrap_err()
        .contains("too large"));
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
    assert_eq!(config.output, Output::Null);
    assert_eq!(config.start_timeout, CoreletConfig::default().start_timeout);
    config.validate().unwrap();

    let error = toml::from_str::<CoreletConfig>("pool_sise = 3").unwrap_err();
    assert!(
        error.to_string().contains("unknown field `pool_sise`"),
        "{error}"
    );
    let error = toml::from_str::<CoreletConfig>("max_frame_size = \"8GiB\"").unwrap_err();
    assert!(error.to_string().contains("frames are at most"), "{error}");

    let zero = CoreletConfig {
        pool_size: Some(0),
        ..CoreletConfig::default()
    };
    assert_eq!(
        zero.validate().unwrap_err().to_string(),
        "invalid corelet setting `pool_size`: expected at least 1"
    );
    let tiny = CoreletConfig {
        max_frame_size: 10,
        ..CoreletConfig::default()
    };
    assert!(tiny.validate().is_err());
    assert!(CoreletConfig::default().validate().is_ok());
}
