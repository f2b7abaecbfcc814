//! [`CommandConfig`]: how a bus runs the programs of cmd events.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::run::{RunOptions, DEFAULT_KILL_GRACE, DEFAULT_MAX_OUTPUT_BYTES};
use crate::sys::ProcessLimits;

use crate::unit;

/// The largest accepted [`CommandConfig::max_output_bytes`]: 1 GiB.
const MAX_OUTPUT_BYTES: usize = 1 << 30;

/// The longest accepted [`CommandConfig::kill_grace`]: 10 s.
///
/// A stop has to end well within the 30 s the pool's watchdog allows a hard-timeout attempt
/// past its deadline (`pool::worker`); past that the waiter would get its result from the
/// watchdog while the command still ran.
const MAX_KILL_GRACE: Duration = Duration::from_secs(10);

/// How a bus runs the programs of [`Cmd`](crate::ExecutionMode::Cmd) events: how much output
/// a result keeps, how a command is stopped, and the limits it runs under.
///
/// Set it with [`EventBusBuilder::cmd`](crate::EventBusBuilder::cmd) or as the `[cmd]` table
/// of a [`BusConfig`](crate::BusConfig). Every field has a default, so an empty table is
/// valid; an unknown field is an error, so that a misspelt limit is not silently absent. In
/// TOML, sizes are bytes or strings like `"64KiB"`, durations are seconds or strings like
/// `"250ms"`.
///
/// | field | default | accepted |
/// |---|---|---|
/// | `max_output_bytes` | 1 MiB | 1 byte to 1 GiB |
/// | `kill_grace` | 2 s | 0 to 10 s |
/// | `memory_limit` | none | at least 1 byte |
/// | `cpu_seconds` | none | at least 1 |
/// | `open_files` | none | at least 1 |
/// | `nice` | none | -20 to 19 |
///
/// Any of the four limits makes the bus start commands with fork and a hook in the child
/// instead of the cheaper posix_spawn; `true` then starts about 10% slower.
///
/// # Examples
///
/// Output past the bound is dropped, and the result says so:
///
/// ```
/// use busbar::{CommandConfig, Event, EventBus, ExecutionMode};
/// use serde_json::json;
///
/// let mut cmd = CommandConfig::default();
/// cmd.max_output_bytes = 5;
/// let bus = EventBus::builder().cmd(cmd).build()?;
///
/// let event = Event::new("greet")
///     .with_mode(ExecutionMode::Cmd)
///     .with_data(json!({"executable": "echo", "args": ["hello, world"]}));
/// let result = bus.publish(event)?.wait();
/// assert!(result.success);
/// assert_eq!(result.data["stdout"], "hello");
/// assert_eq!(result.data["stdout_truncated"], true);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The same settings as a `[cmd]` table, and what an absurd one is told:
///
/// ```
/// use std::time::Duration;
/// use busbar::BusConfig;
///
/// let config = BusConfig::from_toml_str(r#"
///     [cmd]
///     max_output_bytes = "64KiB"
///     kill_grace = "500ms"
///     nice = 5
/// "#)?;
/// assert_eq!(config.cmd.max_output_bytes, 64 * 1024);
/// assert_eq!(config.cmd.kill_grace, Duration::from_millis(500));
/// assert_eq!(config.cmd.nice, Some(5));
///
/// let err = BusConfig::from_toml_str("[cmd]\nkill_grace = \"1h\"").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid config: invalid cmd setting `kill_grace`: expected at most 10s, found 3600s",
/// );
/// # Ok::<(), busbar::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CommandConfig {
    /// The most bytes of stdout, and separately of stderr, that a result keeps. The rest is
    /// read and dropped, and the result's `stdout_truncated` or `stderr_truncated` is `true`.
    /// There is no unlimited: send large output to a file with `stdout_file`. Default: 1 MiB.
    #[serde(deserialize_with = "output_bytes")]
    pub max_output_bytes: usize,
    /// How long a command that is being stopped (at its deadline, or by
    /// [`shutdown_now`](crate::EventBus::shutdown_now)) has between SIGTERM and SIGKILL to
    /// its process group. Zero sends SIGKILL right after SIGTERM. Default: 2 s.
    #[serde(deserialize_with = "unit::duration")]
    pub kill_grace: Duration,
    /// Address-space limit of each command (`RLIMIT_AS`), which bounds its memory.
    /// Default: none.
    #[serde(deserialize_with = "unit::opt_bytes")]
    pub memory_limit: Option<u64>,
    /// CPU-time limit of each command in seconds (`RLIMIT_CPU`); a command that uses it up is
    /// killed by SIGXCPU, which its result names. Default: none.
    pub cpu_seconds: Option<u64>,
    /// Open-descriptor limit of each command (`RLIMIT_NOFILE`). Default: none.
    pub open_files: Option<u64>,
    /// Niceness added to each command's scheduling priority (positive is lower priority;
    /// negative needs privileges, and without them every command fails to start).
    /// Default: none, commands run at the bus's priority.
    pub nice: Option<i32>,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            kill_grace: DEFAULT_KILL_GRACE,
            memory_limit: None,
            cpu_seconds: None,
            open_files: None,
            nice: None,
        }
    }
}

impl CommandConfig {
    /// Checks values that deserialize but make no sense, naming the field at fault.
    pub(crate) fn validate(&self) -> Result<(), CommandConfigError> {
        let fail = |field, expected, found: String| Err(CommandConfigError { field, expected, found });
        if self.max_output_bytes == 0 {
            return fail("max_output_bytes", "at least 1 (to keep no output, set `stdout_file`)", "0".into());
        }
        if self.max_output_bytes > MAX_OUTPUT_BYTES {
            return fail("max_output_bytes", "at most 1 GiB", self.max_output_bytes.to_string());
        }
        if self.kill_grace > MAX_KILL_GRACE {
            return fail("kill_grace", "at most 10s", format!("{:?}", self.kill_grace));
        }
        for (field, value) in [
            ("memory_limit", self.memory_limit),
            ("cpu_seconds", self.cpu_seconds),
            ("open_files", self.open_files),
        ] {
            if value == Some(0) {
                return fail(field, "at least 1", "0".into());
            }
        }
        if let Some(nice) = self.nice.filter(|nice| !(-20..=19).contains(nice)) {
            return fail("nice", "between -20 and 19", nice.to_string());
        }
        Ok(())
    }

    /// Returns the options the runner takes.
    pub(crate) fn run_options(&self) -> RunOptions {
        RunOptions {
            max_output_bytes: self.max_output_bytes,
            kill_grace: self.kill_grace,
            limits: ProcessLimits {
                address_space: self.memory_limit,
                cpu_seconds: self.cpu_seconds,
                open_files: self.open_files,
                nice: self.nice,
            },
            ..RunOptions::default()
        }
    }
}

/// A [`CommandConfig`] value outside its accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cmd setting `{field}`: expected {expected}, found {found}")]
pub(crate) struct CommandConfigError {
    /// The offending field.
    field: &'static str,
    /// What the field accepts.
    expected: &'static str,
    /// The value it has.
    found: String,
}

/// Deserializes `max_output_bytes`: a size that must fit in memory's address range.
fn output_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let bytes = unit::bytes(deserializer)?;
    usize::try_from(bytes).map_err(|_| {
        serde::de::Error::custom(format!("invalid max_output_bytes {bytes}: expected at most 1 GiB"))
    })
}
