//! A corelet child's reading of its parent's messages: the input is split into frame bodies
//! (each announced by a 2-byte length, see `busbar::__fuzz::bodies`), framed correctly, and
//! decoded as requests, events and timeouts.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The default frame limit (64 MiB).
const LIMIT: u32 = 64 << 20;

fuzz_target!(|input: &[u8]| {
    let stream = busbar::__fuzz::frames(busbar::__fuzz::bodies(input));
    busbar::__fuzz::corelet_child(LIMIT, &stream);
});
