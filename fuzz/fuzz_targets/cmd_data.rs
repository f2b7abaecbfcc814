//! A cmd event's data, any JSON, read into the program to run (nothing is run).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    busbar::__fuzz::cmd_data(input);
});
