//! Execution modes: where one attempt of an event runs.
//!
//! The public part is [`ExecutionMode`]; the private part is [`run_attempt`], the single seam
//! through which the shared attempt loop (`crate::attempt`) runs an attempt in any mode, and
//! [`run_sync_attempt`], its `Sync` arm for a publisher that runs its own event and keeps the
//! event in the context it built rather than sharing it.

pub(crate) mod cmd;
mod corelet;
mod in_process;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::attempt::Outcome;
use crate::bus::Shared;
use crate::clock::{self, Reading};
use crate::context::EventContext;
use crate::error::ParseModeError;
use crate::event::Event;
use crate::factory::Registration;
use crate::result::ErrorKind;

pub use corelet::corelet_main;
pub(crate) use corelet::forward_from_child;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use corelet::{decode_request, outcome_of_answer, ChildAnswer};
pub(crate) use in_process::{run_owned as run_in_process_owned, HandlerSource};

/// Where an event's handler runs.
///
/// The four modes share one attempt loop (retry, timeout, panic capture, result) and differ
/// only in *where an attempt runs*:
///
/// | mode | where the handler runs | [`publish`](crate::EventBus::publish) returns | timeout is |
/// |---|---|---|---|
/// | [`Sync`](Self::Sync) | the publishing thread | after the handler finished | cooperative, reported |
/// | [`Thread`](Self::Thread) | a worker of the bus's priority-ordered pool | at once | cooperative; the waiter is released at the deadline |
/// | [`Corelet`](Self::Corelet) | a reusable, isolated child process | at once | hard: the process is killed |
/// | [`Cmd`](Self::Cmd) | a command-line program (no handler needed) | at once | hard: its process group is killed |
///
/// Modes parse from and print as `"sync"`, `"thread"`, `"corelet"` and `"cmd"`:
///
/// ```
/// use busbar::ExecutionMode;
///
/// let mode: ExecutionMode = "thread".parse()?;
/// assert_eq!(mode, ExecutionMode::Thread);
/// assert_eq!(mode.to_string(), "thread");
/// assert!("fast".parse::<ExecutionMode>().is_err());
/// # Ok::<(), busbar::ParseModeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// Runs the handler on the publishing thread; `publish` returns after it finished.
    #[default]
    Sync,
    /// Runs the handler on a worker of the bus's thread pool; `publish` returns at once.
    Thread,
    /// Runs the handler in an isolated, reusable child process.
    Corelet,
    /// Runs a command-line program described by the event's data; no handler is needed.
    Cmd,
}

/// The documentation's name for [`ExecutionMode::Sync`].
pub const EXECUTION_MODE_SYNC: ExecutionMode = ExecutionMode::Sync;
/// The documentation's name for [`ExecutionMode::Thread`].
pub const EXECUTION_MODE_THREAD: ExecutionMode = ExecutionMode::Thread;
/// The documentation's name for [`ExecutionMode::Corelet`].
pub const EXECUTION_MODE_CORELET: ExecutionMode = ExecutionMode::Corelet;
/// The documentation's name for [`ExecutionMode::Cmd`].
pub const EXECUTION_MODE_CMD: ExecutionMode = ExecutionMode::Cmd;

impl ExecutionMode {
    /// All modes, in the order of the table above.
    pub const ALL: [ExecutionMode; 4] = [Self::Sync, Self::Thread, Self::Corelet, Self::Cmd];

    /// Returns the mode's name as it parses and prints: `"sync"`, `"thread"`, `"corelet"`, `"cmd"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(busbar::ExecutionMode::Corelet.as_str(), "corelet");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Thread => "thread",
            Self::Corelet => "corelet",
            Self::Cmd => "cmd",
        }
    }

    /// Returns `true` if events of this mode need a registered handler.
    ///
    /// Only [`Cmd`](Self::Cmd) events run without one: the event's data names the program.
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::ExecutionMode;
    ///
    /// assert!(ExecutionMode::Thread.needs_handler());
    /// assert!(!ExecutionMode::Cmd.needs_handler());
    /// ```
    pub const fn needs_handler(self) -> bool {
        !matches!(self, Self::Cmd)
    }

    /// Returns `true` if `publish` returns before the event ran (every mode but `Sync`).
    pub(crate) const fn is_queued(self) -> bool {
        !matches!(self, Self::Sync)
    }

    /// Returns `true` if the handler runs in this process (`Sync`, `Thread`).
    pub(crate) const fn runs_in_process(self) -> bool {
        matches!(self, Self::Sync | Self::Thread)
    }

    /// Returns `true` if the attempt enforces its own deadline by killing a process.
    ///
    /// The pool's watchdog steps in only for cooperative attempts; for hard ones it is a
    /// backstop (see `pool::watchdog`).
    pub(crate) const fn has_hard_timeout(self) -> bool {
        matches!(self, Self::Corelet | Self::Cmd)
    }
}

impl fmt::Display for ExecutionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionMode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseModeError::new(s))
    }
}

/// Runs one attempt of `event` in the event's mode: the seam every mode shares.
///
/// `registration` is the handler registered for the event's type when it was published (`None`
/// for modes that need none); `handlers` is where in-process modes find their instance of it:
/// the worker's own cache on a pool thread, the registration's shared instance elsewhere. Every attempt
/// runs inside a `busbar.attempt` tracing span carrying the event's id, type, mode, attempt
/// and correlation id.
///
/// Also returns when the attempt ended, so that the caller can time the event without reading
/// the clock again (an in-process attempt reads it anyway, to tell whether it overran).
pub(crate) fn run_attempt(
    shared: &Arc<Shared>,
    handlers: &mut HandlerSource<'_>,
    registration: Option<&Registration>,
    event: &Arc<Event>,
    attempt: u32,
    deadline: Instant,
) -> (Outcome, Instant) {
    let Some(_entered) = enter_attempt(shared, event, attempt) else {
        return (Outcome::Cancelled, Instant::now());
    };
    match event.mode() {
        ExecutionMode::Sync | ExecutionMode::Thread => {
            in_process::run(shared, handlers, registration, event, attempt, deadline)
        }
        ExecutionMode::Corelet | ExecutionMode::Cmd => {
            (run_elsewhere(shared, event, attempt, deadline), Instant::now())
        }
    }
}

/// [`run_attempt`] for an event that runs in another process (`Corelet`, `Cmd`). Such an
/// attempt only reads the event, so a caller that holds it lends it rather than share it: a
/// waiter running its own corelet event saves an allocation and a copy per round trip.
pub(crate) fn run_attempt_elsewhere(
    shared: &Arc<Shared>,
    event: &Event,
    attempt: u32,
    deadline: Instant,
) -> Outcome {
    let Some(_entered) = enter_attempt(shared, event, attempt) else {
        return Outcome::Cancelled;
    };
    run_elsewhere(shared, event, attempt, deadline)
}

/// Enters the attempt's tracing span, or returns `None` if the bus was killed.
///
/// The last moment to honour `shutdown_now` before a program or child starts: a worker (or
/// waiter) may have taken the job just before the bus was killed. In-process attempts check
/// again in `run_in_context`, which the sync path reaches without this seam.
fn enter_attempt(shared: &Shared, event: &Event, attempt: u32) -> Option<tracing::span::EnteredSpan> {
    let entered = attempt_span(event, attempt).entered();
    (!shared.is_killed()).then_some(entered)
}

fn run_elsewhere(shared: &Arc<Shared>, event: &Event, attempt: u32, deadline: Instant) -> Outcome {
    match event.mode() {
        ExecutionMode::Corelet => corelet::run_attempt(shared, event, attempt, deadline),
        ExecutionMode::Cmd => cmd::run_attempt(shared, event, deadline),
        // Not reached: callers pass only events for which `runs_in_process` is false.
        ExecutionMode::Sync | ExecutionMode::Thread => Outcome::refused(
            ErrorKind::Internal,
            "busbar bug: an in-process event was run as one that runs in another process",
        ),
    }
}

/// Runs one attempt of a sync-mode event on the calling thread, with the context its publisher
/// built (it holds the event and stays the same for every attempt): `run_attempt`'s `Sync` arm
/// without sharing the event. Also returns when the attempt ended, on the attempt clock.
// Inlined into `run_inline`, its only caller, for the reason given at `run_in_context`.
#[inline]
pub(crate) fn run_sync_attempt(
    shared: &Shared,
    registration: Option<&Registration>,
    ctx: &EventContext,
) -> (Outcome, Reading) {
    let _entered = attempt_span(ctx.event(), ctx.attempt()).entered();
    let Some(registration) = registration else {
        return (in_process::no_handler(ctx.event()), clock::now());
    };
    let ran = in_process::run_in_context(shared, &mut HandlerSource::Caller, registration, ctx);
    let ended = clock::now();
    (ran.judged(ctx.overran(ended)), ended)
}

/// The span every attempt runs in: `busbar.attempt`, with the event's id, type, mode, attempt
/// and correlation id.
// Inlined: with no subscriber interested, `info_span!` is a few loads, cheaper than returning
// a `Span` through memory.
#[inline(always)]
pub(crate) fn attempt_span(event: &Event, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        "busbar.attempt",
        id = %event.id(),
        r#type = event.event_type(),
        mode = event.mode().as_str(),
        attempt,
        correlation_id = %event.correlation_id(),
    )
}
