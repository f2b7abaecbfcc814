//! When an attempt times out: [`Deadline`], and the instants attempts time out at.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::clock::{self, Reading};

/// When an in-process attempt times out, as its [`EventContext`](crate::EventContext) holds it.
pub(crate) enum Deadline {
    /// An instant on the OS clock: a pool worker's attempt (the watchdog needs the instant
    /// before the handler starts) or a corelet child's (its parent set it).
    At(Instant),
    /// `timeout` after `started` on the attempt clock: a sync attempt's, which thereby reads
    /// no OS clock at all. Most handlers never ask for the instant; it is worked out the first
    /// time one does, and then stays fixed.
    After {
        /// When the attempt started.
        started: Reading,
        /// How long the attempt may take.
        timeout: Duration,
        /// The deadline on the OS clock, once asked for.
        instant: OnceLock<Instant>,
    },
}

impl Deadline {
    /// The deadline of an attempt that started at `started` and may take `timeout`.
    pub(crate) fn after(started: Reading, timeout: Duration) -> Self {
        Deadline::After { started, timeout, instant: OnceLock::new() }
    }

    /// Returns the deadline as an instant on the OS clock.
    pub(crate) fn instant(&self) -> Instant {
        match self {
            Deadline::At(instant) => *instant,
            Deadline::After { started, timeout, instant } => {
                *instant.get_or_init(|| deadline_from(clock::instant_of(*started), *timeout))
            }
        }
    }

    /// Returns `true` if an attempt that ended at `ended`, a reading of the attempt clock, ran
    /// past this deadline.
    ///
    /// Once the instant was asked for, the OS clock decides, as it did for whoever asked: a
    /// handler that waited for its deadline and then returned has overrun it, even where the
    /// two clocks differ by a hair. Until then the attempt clock does, with no OS clock read.
    pub(crate) fn passed_at(&self, ended: Reading) -> bool {
        match self {
            Deadline::At(instant) => Instant::now() >= *instant,
            Deadline::After { started, timeout, instant } => match instant.get() {
                Some(instant) => Instant::now() >= *instant,
                None => clock::elapsed(*started, ended) >= *timeout,
            },
        }
    }
}

// By hand: a reading's raw ticks mean nothing to a reader, and working the instant out here
// would fix it (see `passed_at`), so an `After` shows its timeout and the instant if known.
impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::At(instant) => f.debug_tuple("At").field(instant).finish(),
            Deadline::After { timeout, instant, .. } => f
                .debug_struct("After")
                .field("timeout", timeout)
                .field("instant", &instant.get())
                .finish_non_exhaustive(),
        }
    }
}

/// Returns the deadline of an attempt starting now.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    deadline_from(Instant::now(), timeout)
}

/// Returns the deadline of an attempt starting at `start`.
///
/// Timeouts are at most `MAX_TIMEOUT` (checked at publish), so the addition cannot overflow in
/// practice; if it ever did, a year from `start` is as good as forever.
pub(crate) fn deadline_from(start: Instant, timeout: Duration) -> Instant {
    start.checked_add(timeout).unwrap_or_else(|| start + crate::event::MAX_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;
    use crate::test_support::in_one_of_five_tries;

    #[test]
    fn a_deadline_after_a_reading_lies_its_timeout_after_it() {
        let minute = Duration::from_secs(60);
        in_one_of_five_tries(|| {
            let before = Instant::now();
            let deadline = Deadline::after(clock::now(), minute);
            let after = Instant::now();
            let instant = deadline.instant();
            // Within the clocks' agreement (far below a millisecond) of the start, plus the
            // timeout.
            let slack = Duration::from_millis(1);
            let range = (before + minute - slack)..=(after + minute + slack);
            if !range.contains(&instant) {
                return Err(format!("{instant:?} not in {range:?}"));
            }
            assert_eq!(deadline.instant(), instant, "asked again, the instant stays the same");
            Ok(())
        });
    }

    #[test]
    fn an_attempt_passes_its_deadline_only_once_its_timeout_elapsed() {
        let started = clock::now();
        let deadline = Deadline::after(started, Duration::from_secs(60));
        assert!(!deadline.passed_at(clock::now()));
        let short = Deadline::after(started, Duration::from_millis(1));
        // A condition, not a sleep used as synchronisation: wait until the clock shows it.
        while clock::elapsed(started, clock::now()) < Duration::from_millis(1) {
            thread::yield_now();
        }
        assert!(short.passed_at(clock::now()));
    }

    #[test]
    fn once_asked_for_the_instant_the_os_clock_decides() {
        let started = clock::now();
        let deadline = Deadline::after(started, Duration::from_millis(1));
        let instant = deadline.instant();
        while Instant::now() < instant {
            thread::yield_now();
        }
        // By the attempt clock, an attempt ending at its start reading has taken no time; the
        // OS clock, which the handler was shown, says the deadline passed, and decides.
        assert!(deadline.passed_at(started));
        let later = Deadline::after(clock::now(), Duration::from_secs(60));
        let _ = later.instant();
        assert!(!later.passed_at(clock::now()), "an OS-clock deadline a minute away has not passed");
    }

    #[test]
    fn printing_a_deadline_shows_its_timeout_and_fixes_nothing() {
        let deadline = Deadline::after(clock::now(), Duration::from_secs(60));
        let printed = format!("{deadline:?}");
        assert!(printed.contains("timeout: 60s") && printed.contains("instant: None"), "{printed}");
        assert!(matches!(&deadline, Deadline::After { instant, .. } if instant.get().is_none()));
        let _ = deadline.instant();
        assert!(format!("{deadline:?}").contains("instant: Some("), "{deadline:?}");
    }
}
