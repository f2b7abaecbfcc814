//! A corelet child's reading of its parent's messages: the input is split at NUL bytes into
//! frame bodies, framed correctly, and decoded as requests, events and timeouts.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The default frame limit (64 MiB).
const LIMIT: u32 = 64 << 20;

fuzz_target!(|input: &[u8]| {
    let stream = busbar::__fuzz::frames(input.split(|&b| b == 0));
    busbar::__fuzz::corelet_child(LIMIT, &stream);
});
