//! [`BusConfig`]: bus settings from TOML and the environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::corelet::CoreletConfig;
use crate::mode::cmd::CommandConfig;

use crate::backoff::RetryBackoff;
use crate::bus::DEFAULT_QUEUE_CAPACITY;

/// Settings for an [`EventBus`](crate::EventBus), loadable from TOML and environment variables.
///
/// Every field has a default, so a config file names only what it changes. Unknown keys are
/// errors (a typo should not be silently ignored). Because `BusConfig` is serde
/// `Deserialize`, an application can embed it in its own configuration file.
///
/// | TOML key | environment variable | default |
/// |---|---|---|
/// | `threads` | `BUSBAR_THREADS` | logical cores |
/// | `queue_capacity` | `BUSBAR_QUEUE_CAPACITY` | 100 000 |
/// | `retry_backoff` | `BUSBAR_RETRY_BACKOFF` (`immediate`, `fixed:<ms>`, `exponential:<initial ms>:<max ms>[:jitter]`) | `immediate` |
/// | `[corelet]` | — | see [`CoreletConfig`] |
/// | `[cmd]` | — | see [`CommandConfig`] |
///
/// In TOML, `retry_backoff` is a table: `{ kind = "immediate" }`,
/// `{ kind = "fixed", delay_ms = 50 }` or
/// `{ kind = "exponential", initial_ms = 10, max_ms = 1000, jitter = true }`.
///
/// # Examples
///
/// ```
/// use busbar::{BusConfig, EventBus, EventFactory, RetryBackoff};
///
/// let config = BusConfig::from_toml_str(r#"
///     threads = 2
///     queue_capacity = 5000
///     retry_backoff = { kind = "fixed", delay_ms = 20 }
/// "#)?
/// .with_env_vars([("BUSBAR_THREADS", "3")])?;
///
/// assert_eq!(config.threads, Some(3)); // the environment wins over the file
/// assert_eq!(config.queue_capacity, 5000);
/// assert_eq!(config.retry_backoff, RetryBackoff::Fixed(std::time::Duration::from_millis(20)));
/// let bus = EventBus::from_config(&config, EventFactory::new())?;
///
/// let err = BusConfig::from_toml_str("threads = 0").unwrap_err();
/// assert_eq!(err.to_string(), "invalid config: `threads` must be at least 1, found 0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BusConfig {
    /// Pool worker threads, 1 to 1024; `None` means one per logical core.
    pub threads: Option<usize>,
    /// How many events may wait in the queue.
    pub queue_capacity: usize,
    /// The pause between a failed attempt and its retry.
    #[serde(deserialize_with = "backoff_table::deserialize")]
    pub retry_backoff: RetryBackoff,
    /// How corelet processes are started, limited and retired (the `[corelet]` table).
    pub corelet: CoreletConfig,
    /// How cmd events run their programs (the `[cmd]` table).
    pub cmd: CommandConfig,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            threads: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retry_backoff: RetryBackoff::Immediate,
            corelet: CoreletConfig::default(),
            cmd: CommandConfig::default(),
        }
    }
}

impl BusConfig {
    /// Parses a configuration from TOML text.
    ///
    /// # Errors
    ///
    /// Fails on TOML syntax errors, unknown keys, values of the wrong type and invalid values;
    /// the message gives the line and column where it can.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: BusConfig = toml::from_str(text).map_err(|e| ConfigError::new(None, e.to_string()))?;
        config.checked(None)
    }

    /// Reads a configuration from a TOML file.
    ///
    /// # Errors
    ///
    /// As [`from_toml_str`](Self::from_toml_str), plus the file being unreadable; the message
    /// names the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(Some(path), format!("cannot read the file: {e}")))?;
        let config: BusConfig =
            toml::from_str(&text).map_err(|e| ConfigError::new(Some(path), e.to_string()))?;
        config.checked(Some(path))
    }

    /// Applies the `BUSBAR_*` variables of this process's environment over these settings.
    ///
    /// # Errors
    ///
    /// Fails if a variable is set to something that is not a valid value; the message names
    /// the variable, its value and what was expected.
    pub fn with_env(self) -> Result<Self, ConfigError> {
        self.with_env_vars(std::env::vars().filter(|(name, _)| name.starts_with("BUSBAR_")))
    }

    /// Applies `BUSBAR_*` variables from `vars` over these settings (testable [`with_env`](Self::with_env)).
    ///
    /// Variables that busbar does not know are ignored, since the environment is shared with
    /// the rest of the program.
    ///
    /// # Errors
    ///
    /// As [`with_env`](Self::with_env).
    pub fn with_env_vars<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref().trim());
            let bad = |expected: &str| {
                ConfigError::new(None, format!("environment variable {name}=`{value}`: expected {expected}"))
            };
            match name {
                // Ranges checked here too, so that the error names the variable.
                "BUSBAR_THREADS" => {
                    let threads = value.parse().ok().filter(|threads| (1..=MAX_THREADS).contains(threads));
                    self.threads = Some(threads.ok_or_else(|| bad("a whole number of threads, 1 to 1024"))?);
                }
                "BUSBAR_QUEUE_CAPACITY" => {
                    let capacity = value.parse().ok().filter(|&capacity| capacity >= 1);
                    self.queue_capacity =
                        capacity.ok_or_else(|| bad("a whole number of events, at least 1"))?;
                }
                "BUSBAR_RETRY_BACKOFF" => {
                    self.retry_backoff = parse_backoff(value).ok_or_else(|| {
                        bad("`immediate`, `fixed:<ms>` or `exponential:<initial ms>:<max ms>[:jitter]`, max ≥ initial")
                    })?;
                }
                _ => {}
            }
        }
        self.checked(None)
    }

    /// Returns a default configuration with the process environment applied.
    ///
    /// # Errors
    ///
    /// As [`with_env`](Self::with_env).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::default().with_env()
    }

    /// Checks that these settings can build a bus.
    ///
    /// The loaders call this; call it yourself for a `BusConfig` that was deserialized as part
    /// of your own configuration file ([`EventBus::from_config`](crate::EventBus::from_config)
    /// checks too, but cannot name your file).
    ///
    /// # Errors
    ///
    /// Fails if `threads` or `queue_capacity` is zero, or a corelet or cmd setting is out of
    /// range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(reason) = check(self.threads, self.queue_capacity, &self.retry_backoff) {
            return Err(ConfigError::new(None, reason));
        }
        self.corelet.validate().map_err(|error| ConfigError::new(None, error.to_string()))?;
        self.cmd.validate().map_err(|error| ConfigError::new(None, error.to_string()))
    }

    fn checked(self, path: Option<&Path>) -> Result<Self, ConfigError> {
        match self.validate() {
            Err(error) => Err(ConfigError { path: path.map(Path::to_owned), ..error }),
            Ok(()) => Ok(self),
        }
    }
}

/// The most pool worker threads a bus accepts: more is a mistake (a number meant for
/// something else), and starting them would take the first publish a very long time.
pub(crate) const MAX_THREADS: usize = 1024;

/// Returns what is wrong with these settings, if anything (shared with the builder).
pub(crate) fn check(threads: Option<usize>, queue_capacity: usize, backoff: &RetryBackoff) -> Option<String> {
    if let RetryBackoff::Exponential { initial, max, .. } = *backoff {
        if max < initial {
            return Some(format!(
                "`retry_backoff`: the max ({max:?}) must be at least the initial pause ({initial:?})"
            ));
        }
    }
    if threads == Some(0) {
        return Some("`threads` must be at least 1, found 0".to_owned());
    }
    if let Some(threads) = threads.filter(|&threads| threads > MAX_THREADS) {
        return Some(format!("`threads` must be at most {MAX_THREADS}, found {threads}"));
    }
    if queue_capacity == 0 {
        return Some("`queue_capacity` must be at least 1, found 0".to_owned());
    }
    None
}

fn parse_backoff(text: &str) -> Option<RetryBackoff> {
    let mut parts = text.split(':');
    let ms = |part: Option<&str>| part?.parse().ok().map(Duration::from_millis);
    let backoff = match parts.next()? {
        "immediate" => RetryBackoff::Immediate,
        "fixed" => RetryBackoff::Fixed(ms(parts.next())?),
        "exponential" => {
            let initial = ms(parts.next())?;
            // A maximum below the first pause would make the first pause the maximum.
            let max = ms(parts.next()).filter(|&max| max >= initial)?;
            let jitter = match parts.next() {
                None => false,
                Some("jitter") => true,
                Some(_) => return None,
            };
            RetryBackoff::Exponential { initial, max, jitter }
        }
        _ => return None,
    };
    parts.next().is_none().then_some(backoff)
}

/// A configuration that could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    path: Option<PathBuf>,
    message: String,
}

impl ConfigError {
    fn new(path: Option<&Path>, message: String) -> Self {
        ConfigError { path: path.map(Path::to_owned), message }
    }

    /// Returns the file the error is in, if it came from a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "invalid config file `{}`: {}", path.display(), self.message.trim_end()),
            None => write!(f, "invalid config: {}", self.message.trim_end()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `RetryBackoff` as a TOML/JSON table with millisecond fields.
mod backoff_table {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    use crate::backoff::RetryBackoff;

    #[derive(Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Table {
        Immediate,
        Fixed {
            delay_ms: u64,
        },
        Exponential {
            initial_ms: u64,
            max_ms: u64,
            #[serde(default)]
            jitter: bool,
        },
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RetryBackoff, D::Error> {
        Ok(match Table::deserialize(deserializer)? {
            Table::Immediate => RetryBackoff::Immediate,
            Table::Fixed { delay_ms } => RetryBackoff::Fixed(Duration::from_millis(delay_ms)),
            Table::Exponential { initial_ms, max_ms, jitter } => RetryBackoff::Exponential {
                initial: Duration::from_millis(initial_ms),
                max: Duration::from_millis(max_ms),
                jitter,
            },
        })
    }
}
