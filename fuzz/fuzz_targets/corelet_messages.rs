//! The parent's handling of a child's messages: the input is split into frame bodies (each
//! announced by a 2-byte length, see `busbar::__fuzz::bodies`), framed correctly after a valid
//! greeting, so that the fuzzer spends its time on the messages, the replies and the events
//! they carry.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The default frame limit (64 MiB); the framing here is always within it.
const LIMIT: u32 = 64 << 20;

fuzz_target!(|input: &[u8]| {
    let hello = busbar::__fuzz::hello();
    let stream = busbar::__fuzz::frames(std::iter::once(&hello[..]).chain(busbar::__fuzz::bodies(input)));
    busbar::__fuzz::corelet_parent(LIMIT, &stream);
});
