//! The clock that times sync attempts: the CPU's counter where it is reliable.
//!
//! A sync event reads a clock when its attempt starts (for the deadline and the duration) and
//! when it ends (for the timeout check and the duration), and nothing else on its path costs
//! as much. The OS's monotonic clock waits for every instruction before it and then scales the
//! counter under a sequence lock; reading the counter itself (`RDTSC` on x86-64, `CNTVCT` on
//! AArch64) does neither, and costs about half as much. `quanta` decides whether the counter is
//! reliable (an invariant TSC on x86-64), calibrates it against the OS clock once per process,
//! and falls back to the OS clock otherwise, so a [`Reading`] is always good for durations.
//!
//! Only durations come from here. An attempt's deadline as an [`Instant`], which a handler may
//! ask for, is worked out from a reading only when asked (see `context::Deadline`), and from
//! then on the OS clock decides whether the attempt overran it, as it does for the handler.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A reading of the attempt clock: counter ticks, or OS-clock nanoseconds where the counter is
/// not used. Only differences of two readings mean anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading(u64);

/// The process's attempt clock, calibrated by the first sync event.
///
/// One per process rather than one per bus: calibration takes about a millisecond (quanta
/// stops it at 200 ms on a machine too busy to agree sooner), and its result describes the
/// machine, not a bus. Calibrated lazily so that a program that never publishes a sync event
/// (a corelet child, a pool-only service) never pays for it.
fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Reads the attempt clock.
#[inline]
pub(crate) fn now() -> Reading {
    Reading(clock().raw())
}

/// Returns the time from `start` to `end`, or zero if `end` is not later (two readings taken
/// on different CPUs may disagree by a few ticks).
#[inline]
pub(crate) fn elapsed(start: Reading, end: Reading) -> Duration {
    clock().delta(start.0, end.0)
}

/// Returns the OS-clock instant at which `reading` was taken, as well as the clocks can tell
/// (to within a few hundred nanoseconds).
pub(crate) fn instant_of(reading: Reading) -> Instant {
    let since = elapsed(reading, now());
    let now = Instant::now();
    // Only a reading older than the OS clock's origin could fail, which none is.
    now.checked_sub(since).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    #[test]
    fn elapsed_time_agrees_with_the_os_clock() {
        let (start, os_start) = (now(), Instant::now());
        thread::sleep(Duration::from_millis(20));
        let (end, os_end) = (now(), Instant::now());
        let (ours, os) = (elapsed(start, end), os_end - os_start);
        // Calibration is good to a few parts per million; the bound only needs to catch a
        // wrong scale (ticks taken for nanoseconds, or a frequency off by a factor).
        let difference = ours.abs_diff(os);
        assert!(difference < os / 100, "counter {ours:?}, OS clock {os:?}");
    }

    #[test]
    fn a_reading_never_ends_before_it_starts() {
        let earlier = now();
        let later = now();
        assert_eq!(elapsed(later, earlier), Duration::ZERO);
    }

    #[test]
    fn a_reading_maps_back_to_the_instant_it_was_taken() {
        let before = Instant::now();
        let reading = now();
        let after = Instant::now();
        thread::sleep(Duration::from_millis(5));
        let instant = instant_of(reading);
        // The mapping goes through a second pair of readings; allow for its error, which is
        // far below a millisecond, and for the pair being taken a little apart.
        let slack = Duration::from_millis(1);
        assert!(
            instant + slack >= before && instant <= after + slack,
            "{instant:?} not in {before:?}..{after:?}"
        );
    }
}
