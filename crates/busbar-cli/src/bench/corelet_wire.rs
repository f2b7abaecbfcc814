//! busbar's corelet messages, mirrored for the bench: the echo floor sends a frame as large as
//! busbar's request, and the round-trip note gives what encoding and decoding a request and
//! its reply cost alone. Written here from the protocol's description (no busbar code), in
//! postcard as busbar writes them: `corelet/message.rs` around `mode/corelet/wire.rs`, whose
//! event is in the compact form of `event/compact.rs`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Instant, UNIX_EPOCH};

use busbar::Event;
use serde_json::Value;

use super::stats::micros;
use super::Error;

/// A request's event: its fields in order, the id as 16 bytes, the data as JSON text, the
/// mode as its variant's index.
type CompactEvent<'a> = (
    &'a [u8],
    &'a str,
    &'a str,
    u32,
    i32,
    u64,
    u32,
    u64,
    u32,
    Option<()>,
    Option<()>,
    BTreeMap<String, String>,
);

/// `execute`: the message's variant index and number, then the request (the event, the
/// attempt, the milliseconds left).
type Execute<'a> = (u32, u64, (CompactEvent<'a>, u32, u64));

/// `reply`: the message's variant index and number, then the reply's (`returned`) and the
/// handler's result: success, data as JSON text (empty for none), error message and kind,
/// permanence.
type Reply<'a> = (u32, u64, u32, (bool, &'a str, Option<String>, Option<u32>, bool));

/// The body of the request busbar sends to run attempt 1 of `event`.
pub(super) fn request_body(event: &Event) -> Result<Vec<u8>, Error> {
    let created = event.created_at().duration_since(UNIX_EPOCH)?;
    let data = event.data().to_string();
    let id = event.id();
    let compact: CompactEvent<'_> = (
        id.as_uuid().as_bytes().as_slice(),
        event.event_type(),
        &data,
        event.mode() as u32,
        event.priority(),
        u64::try_from(event.timeout().as_nanos())?,
        event.retry_count(),
        created.as_secs(),
        created.subsec_nanos(),
        None,
        None,
        BTreeMap::new(),
    );
    let execute: Execute<'_> = (0, 1, (compact, 1, 29_999));
    Ok(postcard::to_stdvec(&execute)?)
}

/// Encodes and decodes `event`'s request and a successful reply without data, `round_trips`
/// times in one thread without I/O, and parses the event's data as the child does; µs each.
pub(super) fn codec_micros(event: &Event, round_trips: usize) -> Result<f64, Error> {
    let reply: Reply<'_> = (1, 1, 0, (true, "", None, None, false));
    let start = Instant::now();
    for _ in 0..round_trips {
        let request = request_body(black_box(event))?;
        let decoded: Execute<'_> = postcard::from_bytes(&request)?;
        black_box(serde_json::from_str::<Value>(decoded.2 .0 .2)?);
        let sent = postcard::to_stdvec(black_box(&reply))?;
        black_box(postcard::from_bytes::<Reply<'_>>(&sent)?);
    }
    Ok(micros(start.elapsed()) / round_trips as f64)
}
