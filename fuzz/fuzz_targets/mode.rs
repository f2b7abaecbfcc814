//! Execution mode names, as `FromStr` and as serde reads them.
#![no_main]

use busbar::ExecutionMode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    match text.parse::<ExecutionMode>() {
        Ok(mode) => {
            assert!(mode.as_str().eq_ignore_ascii_case(text.trim()), "{text:?} parsed as {mode}");
            assert_eq!(mode.to_string().parse::<ExecutionMode>(), Ok(mode));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    // Serde is exact: only the lowercase names.
    if let Ok(mode) = serde_json::from_value::<ExecutionMode>(serde_json::Value::String(text.to_owned())) {
        assert_eq!(mode.as_str(), text);
    }
});
