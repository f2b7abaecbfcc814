//! Settings of a corelet pool, loadable from TOML or environment-derived maps.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::confine::AllowedPaths;
use super::frame::DEFAULT_MAX_FRAME;
use crate::unit;

/// Smallest accepted frame limit: enough for the handshake and an error reply.
const MIN_FRAME: u32 = 1 << 10;

/// Longest accepted `kill_grace`: a killed child's group gets this long after SIGTERM, and a
/// waiter that runs its own corelet event adds it to the attempt's timeout.
const MAX_KILL_GRACE: Duration = Duration::from_secs(10);

/// Longest accepted `idle_timeout`, `start_timeout` and `max_start_backoff`: longer would be
/// a mistake (and could not be added to the clock).
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Smallest accepted `memory_limit`: below this no program gets as far as greeting, and the
/// child would fail its handshake with a message that does not name the limit.
const MIN_MEMORY_LIMIT: u64 = 16 << 20;

/// How a bus starts, limits and retires its corelet processes.
///
/// Set it with [`EventBusBuilder::corelet`](crate::EventBusBuilder::corelet) or as the
/// `[corelet]` table of a [`BusConfig`](crate::BusConfig). Every field has a default, so an
/// empty table is valid. In TOML, durations are seconds or strings like `"250ms"`; sizes are
/// bytes or strings like `"512MiB"`. Unknown fields are rejected so that a misspelt limit is an
/// error rather than silently absent.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use busbar::{CoreletConfig, EventBus};
///
/// let mut corelet = CoreletConfig::default();
/// corelet.memory_limit = Some(512 << 20); // bytes of address space per child
/// corelet.max_requests = Some(1_000);     // recycle a child after 1 000 events
/// corelet.idle_timeout = Duration::from_secs(30);
/// let bus = EventBus::builder().corelet(corelet).build()?;
/// # drop(bus);
/// # Ok::<(), busbar::EventBusBuildError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CoreletConfig {
    /// Most children alive at once, at most 1024. Default: the number of logical cores.
    pub pool_size: Option<usize>,
    /// Address-space limit of each child (`RLIMIT_AS`), which bounds its memory.
    /// Default: none; at least 16 MiB.
    #[serde(deserialize_with = "unit::opt_bytes")]
    pub memory_limit: Option<u64>,
    /// CPU-time limit of each child in seconds (`RLIMIT_CPU`). The kernel counts it over the
    /// child's whole life, so the pool retires a child once it has used half of it: every
    /// request starts with at least half the budget. Default: none.
    pub cpu_seconds: Option<u64>,
    /// Open-descriptor limit of each child (`RLIMIT_NOFILE`). Default: none.
    pub open_files: Option<u64>,
    /// Niceness added to children's scheduling priority (positive is lower priority).
    /// Default: none, children run at the parent's priority.
    pub nice: Option<i32>,
    /// Retire a child after it served this many requests. Default: never.
    pub max_requests: Option<u64>,
    /// Retire a child whose resident memory exceeds this size after a request.
    /// Default: never.
    #[serde(deserialize_with = "unit::opt_bytes")]
    pub max_resident: Option<u64>,
    /// Retire a child that has had no request for this long. Default: 60 s.
    #[serde(deserialize_with = "unit::duration")]
    pub idle_timeout: Duration,
    /// How long a new child may take to start and greet. Default: 10 s.
    #[serde(deserialize_with = "unit::duration")]
    pub start_timeout: Duration,
    /// Between the polite signal (SIGTERM) and SIGKILL when a child's process group is
    /// killed. Default: 500 ms; at most 10 s.
    #[serde(deserialize_with = "unit::duration")]
    pub kill_grace: Duration,
    /// Wait after the first failed start before trying again; doubles with each further
    /// failure in a row. Default: 100 ms.
    #[serde(deserialize_with = "unit::duration")]
    pub start_backoff: Duration,
    /// Cap for the doubling wait after failed starts. Default: 30 s.
    #[serde(deserialize_with = "unit::duration")]
    pub max_start_backoff: Duration,
    /// Largest message body in either direction. Default: 64 MiB.
    #[serde(deserialize_with = "frame_limit")]
    pub max_frame_size: u32,
    /// Worker program to run instead of re-executing the current executable.
    pub program: Option<PathBuf>,
    /// Arguments for the worker program (also used with the current executable).
    pub args: Vec<String>,
    /// Where children's stdout and stderr go. Default: inherited from the parent.
    pub output: CoreletOutput,
    /// Names of the environment variables children keep; every other variable is removed.
    /// busbar's own `BUSBAR_CORELET_*` variables, which tell a child it is one, always pass.
    /// Default: `None`, children inherit the whole environment.
    pub env_allow: Option<Vec<String>>,
    /// Confines children's file-system access to these paths with landlock (see
    /// [`AllowedPaths`] for what is enforced and what happens where the kernel cannot).
    /// Default: `None`, no file-system confinement.
    pub allowed_paths: Option<AllowedPaths>,
}

/// Destination of a child's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoreletOutput {
    /// Children write where the parent writes.
    #[default]
    Inherit,
    /// Children's output is discarded.
    Null,
}

impl Default for CoreletConfig {
    fn default() -> Self {
        CoreletConfig {
            pool_size: None,
            memory_limit: None,
            cpu_seconds: None,
            open_files: None,
            nice: None,
            max_requests: None,
            max_resident: None,
            idle_timeout: Duration::from_secs(60),
            start_timeout: Duration::from_secs(10),
            kill_grace: Duration::from_millis(500),
            start_backoff: Duration::from_millis(100),
            max_start_backoff: Duration::from_secs(30),
            max_frame_size: DEFAULT_MAX_FRAME,
            program: None,
            args: Vec::new(),
            output: CoreletOutput::Inherit,
            env_allow: None,
            allowed_paths: None,
        }
    }
}

impl CoreletConfig {
    /// Checks values that deserialize but make no sense, naming the field at fault.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field: &'static str, expected: &'static str| Err(ConfigError { field, expected });
        if self.pool_size == Some(0) {
            return fail("pool_size", "at least 1");
        }
        if self.pool_size.is_some_and(|size| size > crate::config::MAX_THREADS) {
            return fail("pool_size", "at most 1024");
        }
        if self.max_requests == Some(0) {
            return fail("max_requests", "at least 1");
        }
        if self.open_files == Some(0) {
            return fail("open_files", "at least 1");
        }
        if self.cpu_seconds == Some(0) {
            return fail("cpu_seconds", "at least 1");
        }
        if self.nice.is_some_and(|n| !(-20..=19).contains(&n)) {
            return fail("nice", "between -20 and 19");
        }
        if self.max_frame_size < MIN_FRAME {
            return fail("max_frame_size", "at least 1 KiB");
        }
        if self.memory_limit.is_some_and(|bytes| bytes < MIN_MEMORY_LIMIT) {
            return fail("memory_limit", "at least 16 MiB");
        }
        if self.kill_grace > MAX_KILL_GRACE {
            return fail("kill_grace", "at most 10s");
        }
        for (field, value) in [
            ("idle_timeout", self.idle_timeout),
            ("start_timeout", self.start_timeout),
            ("max_start_backoff", self.max_start_backoff),
        ] {
            if value > MAX_WAIT {
                return fail(field, "at most one year");
            }
        }
        for (field, value) in [
            ("idle_timeout", self.idle_timeout),
            ("start_timeout", self.start_timeout),
            ("start_backoff", self.start_backoff),
        ] {
            if value.is_zero() {
                return fail(field, "greater than zero");
            }
        }
        if self.max_start_backoff < self.start_backoff {
            return fail("max_start_backoff", "at least start_backoff");
        }
        if self.allowed_paths.as_ref().is_some_and(|paths| paths.relative_path().is_some()) {
            return fail("allowed_paths", "absolute paths");
        }
        if let Some(names) = &self.env_allow {
            if names.iter().any(|name| name.is_empty() || name.contains(['=', '\0'])) {
                return fail("env_allow", "variable names without '=' or NUL");
            }
        }
        Ok(())
    }

    /// Returns the pool size, defaulting to the number of logical cores.
    pub(crate) fn pool_size(&self) -> usize {
        self.pool_size
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }
}

/// A configuration value outside its accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid corelet setting `{field}`: expected {expected}")]
pub(crate) struct ConfigError {
    /// The offending field.
    field: &'static str,
    /// What the field accepts.
    expected: &'static str,
}

/// Deserializes `max_frame_size`, which must fit the 32-bit frame header.
fn frame_limit<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let bytes = unit::bytes(deserializer)?;
    u32::try_from(bytes).map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid max_frame_size {bytes}: frames are at most {} bytes",
            u32::MAX
        ))
    })
}
