//! The configuration loader: TOML text, then `BUSBAR_*` environment variables over it.
//!
//! The input is TOML up to a line `---`; each line after it is `NAME=value`, applied with
//! `with_env_vars` (names are tried with and without a `BUSBAR_` prefix).
#![no_main]

use busbar::BusConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let (toml, env) = text.split_once("\n---\n").unwrap_or((text, ""));
    let config = match BusConfig::from_toml_str(toml) {
        Ok(config) => config,
        Err(error) => {
            let _ = error.to_string();
            BusConfig::default()
        }
    };
    config.validate().expect("a loaded config is valid");
    let vars: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = if name.starts_with("BUSBAR_") { name.to_owned() } else { format!("BUSBAR_{name}") };
            (name, value.to_owned())
        })
        .collect();
    match config.with_env_vars(vars) {
        Ok(config) => config.validate().expect("a config with the environment applied is valid"),
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("invalid config"), "{message}");
        }
    }
});
