//! The parent's end of the corelet channel, fed raw bytes as a child's output: framing,
//! buffering, limits, then the messages. A child runs arbitrary code, so it may send anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // Two bytes choose the frame limit, from the smallest accepted (1 KiB) to well past the
    // channel's 64 KiB buffer, so that both of its read paths are reached.
    let Some((choice, stream)) = input.split_first_chunk::<2>() else { return };
    let limit = 1024 + u32::from(u16::from_be_bytes(*choice)) * 4;
    busbar::__fuzz::corelet_parent(limit, stream);
});
