//! The clock that times sync attempts: the CPU's counter where it is trustworthy.
//!
//! A sync event reads a clock when its attempt starts (for the deadline and the duration) and
//! when it ends (for the timeout check and the duration), and nothing else on its path costs
//! as much. The OS's monotonic clock waits for every instruction before it and then scales the
//! counter under a sequence lock; reading the counter itself (`RDTSC` on x86-64, `CNTVCT` on
//! AArch64) does neither, and costs about half as much. `quanta` reads and scales it, and
//! calibrates it against the OS clock.
//!
//! The counter is used only where it runs at one rate and agrees across CPUs: quanta asks the
//! CPU for an invariant TSC, and on Linux the kernel must also have kept the TSC as its own
//! clock source, which it gives up when it finds the CPUs' counters out of step. Elsewhere a
//! [`Reading`] is the OS clock's, so a reading is good for durations either way. The kernel's
//! choice is read once, when the clock is set up: should it give the TSC up later, busbar
//! keeps reading the counter, and a difference of two readings taken on CPUs out of step may
//! be off (one that runs backwards reads as zero).
//!
//! Only durations come from here. An attempt's deadline as an [`Instant`], which a handler may
//! ask for, is worked out from a reading only when asked (see [`crate::deadline::Deadline`]),
//! and from then on the OS clock decides whether the attempt overran, as it does for the
//! handler.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A reading of the attempt clock: counter ticks, or nanoseconds of the OS clock where the
/// counter is not used. Only differences of two readings mean anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading(u64);

/// What the attempt clock reads.
enum Source {
    /// The CPU's counter, calibrated.
    Counter(quanta::Clock),
    /// The OS clock, as nanoseconds since `origin`.
    Os { origin: Instant },
}

/// The process's attempt clock.
///
/// One per process rather than one per bus: calibration takes about a millisecond (quanta
/// stops it at 200 ms on a machine too busy to agree sooner), and its result describes the
/// machine, not a bus. [`calibrate`] runs it when a bus is built, so that it never lands
/// inside an attempt's time (a thread handler's first sync publish, say).
fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| match counter_is_trustworthy() {
        true => Source::Counter(quanta::Clock::new()),
        false => Source::Os { origin: Instant::now() },
    })
}

/// Sets the attempt clock up, calibrating the counter if it is used; at once if done before.
pub(crate) fn calibrate() {
    source();
}

/// Whether the OS keeps the CPU's counter as its own clock source (on Linux, where the kernel
/// stops doing so when it finds the counters unstable or out of step between CPUs).
#[cfg(all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64")))]
fn counter_is_trustworthy() -> bool {
    kernel_clock_source().as_deref() == Some("tsc")
}

/// Elsewhere quanta's own check (an invariant TSC on x86; AArch64's counter is one for all
/// CPUs by the architecture) is all there is to go on.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64"))))]
fn counter_is_trustworthy() -> bool {
    true
}

/// The Linux kernel's clock source (`tsc`, `kvm-clock`, ...), or `None` where it cannot be
/// read (or on another OS).
#[cfg_attr(
    not(any(feature = "bench", all(target_os = "linux", any(target_arch = "x86", target_arch = "x86_64")))),
    allow(dead_code)
)]
pub(crate) fn kernel_clock_source() -> Option<String> {
    let path = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    std::fs::read_to_string(path).ok().map(|source| source.trim().to_owned())
}

/// Returns `true` if the attempt clock reads the CPU's counter, `false` if the OS clock.
#[cfg(feature = "bench")]
pub(crate) fn reads_the_counter() -> bool {
    matches!(source(), Source::Counter(_))
}

/// Reads the attempt clock.
#[inline]
pub(crate) fn now() -> Reading {
    source().now()
}

/// Returns the time from `start` to `end`, or zero if `end` is not later.
#[inline]
pub(crate) fn elapsed(start: Reading, end: Reading) -> Duration {
    source().elapsed(start, end)
}

impl Source {
    #[inline]
    fn now(&self) -> Reading {
        match self {
            Source::Counter(counter) => Reading(counter.raw()),
            // Nanoseconds fit a `u64` for 584 years of a process's life.
            Source::Os { origin } => Reading(origin.elapsed().as_nanos() as u64),
        }
    }

    #[inline]
    fn elapsed(&self, start: Reading, end: Reading) -> Duration {
        match self {
            Source::Counter(counter) => counter.delta(start.0, end.0),
            Source::Os { .. } => Duration::from_nanos(end.0.saturating_sub(start.0)),
        }
    }
}

/// Returns the OS-clock instant at which `reading` was taken, as well as the two clocks can
/// tell (to within a microsecond or so, unless this thread is preempted in between).
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
    use crate::test_support::in_one_of_five_tries;

    /// Both sources, whichever this machine uses.
    fn sources() -> [Source; 2] {
        [Source::Counter(quanta::Clock::new()), Source::Os { origin: Instant::now() }]
    }

    #[test]
    fn elapsed_time_agrees_with_the_os_clock() {
        for source in sources() {
            in_one_of_five_tries(|| {
                let (start, os_start) = (source.now(), Instant::now());
                thread::sleep(Duration::from_millis(20));
                let (end, os_end) = (source.now(), Instant::now());
                let (ours, os) = (source.elapsed(start, end), os_end - os_start);
                // Calibration is good to a few parts per million; the bound only needs to
                // catch a wrong scale (ticks taken for nanoseconds, or a frequency off by a
                // factor).
                let close = ours.abs_diff(os) < os / 100;
                close.then_some(()).ok_or_else(|| format!("read {ours:?}, OS clock {os:?}"))
            });
        }
    }

    #[test]
    fn a_reading_never_ends_before_it_starts() {
        for source in sources() {
            let (earlier, later) = (Reading(1_000_000), Reading(2_000_000));
            assert!(source.elapsed(earlier, later) > Duration::ZERO);
            assert_eq!(source.elapsed(later, earlier), Duration::ZERO, "backwards reads as zero");
        }
    }

    #[test]
    fn a_reading_maps_back_to_the_instant_it_was_taken() {
        in_one_of_five_tries(|| {
            let before = Instant::now();
            let reading = now();
            let after = Instant::now();
            thread::sleep(Duration::from_millis(5));
            let instant = instant_of(reading);
            // The mapping goes through a second pair of readings; allow for its error, far
            // below a millisecond.
            let slack = Duration::from_millis(1);
            let close = instant + slack >= before && instant <= after + slack;
            close.then_some(()).ok_or_else(|| format!("{instant:?} not in {before:?}..{after:?}"))
        });
    }
}
