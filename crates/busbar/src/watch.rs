//! Watching for a moment, without sleeping, for something that is about to happen.
//!
//! A thread that sleeps must be woken, and on a virtual machine waking a thread whose vCPU
//! went idle takes tens of microseconds: the hypervisor must run that vCPU again. A
//! thread-mode round trip takes about two. So, for [`WATCH_FOR`] before sleeping, a pool
//! worker that has just finished a job watches the queue, a waiter watches for its
//! thread-mode result, and both ends of a corelet channel watch for the other's next frame:
//! while events keep coming, no side sleeps and nobody needs waking. Waiters and channel ends
//! keep a [`WatchHabit`], so that one whose watches keep finding nothing stops spending CPU on
//! them; workers watch after every job (see `JobQueue::pop_after_work` for why).
//!
//! Measured with one worker and one publisher waiting for each result in turn
//! (`busbar bench --scenario thread-round-trip`, 2 vCPUs): without watching, each round trip
//! took either about 5 µs or about 65 µs for a whole run, depending on whether the two
//! threads shared a vCPU; once both sides slept between events they stayed in the slow mode.
//! Watching for 50 µs gave 1.8-2.0 µs in every run, and 1.6-1.7 µs pinned to one vCPU.
//! crossbeam's `Backoff` (spinning for a few microseconds, then a few yields) did not: it gives
//! up before an idle vCPU's wake-up completes, so the slow mode persisted.

use std::thread;
use std::time::{Duration, Instant};

/// How long a thread watches before it sleeps.
///
/// Longer than a wake-up of an idle vCPU (30-60 µs on the machine of the README's figures),
/// so that one slow wake-up does not put the other side to sleep too; short enough that a
/// thread with nothing coming spends little: at most this much, yielding to any other
/// thread that wants its CPU.
pub(crate) const WATCH_FOR: Duration = Duration::from_micros(50);

/// Calls `ready` until it returns `true` or [`WATCH_FOR`] has passed, and returns its last
/// answer.
///
/// Between rounds the thread yields its CPU rather than spinning in place: when the thread it
/// waits for shares that CPU, it runs at once.
pub(crate) fn watch_briefly(ready: impl FnMut() -> bool) -> bool {
    watch_briefly_from(Instant::now(), ready)
}

/// [`watch_briefly`] for a caller that has just read the clock: the window runs from `started`.
pub(crate) fn watch_briefly_from(started: Instant, mut ready: impl FnMut() -> bool) -> bool {
    loop {
        if ready() {
            return true;
        }
        if started.elapsed() >= WATCH_FOR {
            return false;
        }
        thread::yield_now();
    }
}

/// Consecutive watches that found nothing, after which a [`WatchHabit`] stops watching.
const GIVE_UP_AFTER: u32 = 3;

/// While a [`WatchHabit`] has given up, one wait in this many watches anyway, to notice when
/// watching would pay again.
const PROBE_EVERY: u32 = 8;

/// Whether watching has been paying off for one waiting party (a waiting thread, a corelet
/// channel end).
///
/// Watching is worth its CPU time only while what is awaited comes within the window: a
/// waiter for results that take a millisecond, or a channel end whose peer answers slowly,
/// would watch in vain each time. So after [`GIVE_UP_AFTER`] watches in a row that found
/// nothing, the party sleeps at once, watching only one wait in [`PROBE_EVERY`] to find out
/// whether answers come quickly again; one watch that pays brings it back.
#[derive(Debug, Default)]
pub(crate) struct WatchHabit {
    /// Watches in a row that found nothing.
    misses: u32,
    /// Waits since the last watch, while given up.
    skipped: u32,
}

impl WatchHabit {
    /// [`watch_briefly`] if watching has paid off lately; `false` at once if not.
    pub(crate) fn watch(&mut self, ready: impl FnMut() -> bool) -> bool {
        self.due() && self.record(watch_briefly(ready))
    }

    /// [`watch`](Self::watch) for a caller that has just read the clock (`now`).
    pub(crate) fn watch_from(&mut self, now: Instant, ready: impl FnMut() -> bool) -> bool {
        self.due() && self.record(watch_briefly_from(now, ready))
    }

    /// Whether to watch this time: always while watching pays, one wait in [`PROBE_EVERY`]
    /// once it has stopped paying.
    fn due(&mut self) -> bool {
        if self.misses >= GIVE_UP_AFTER {
            self.skipped += 1;
            if self.skipped < PROBE_EVERY {
                return false;
            }
            self.skipped = 0;
        }
        true
    }

    /// Counts a watch that `found` what it watched for, or not; returns `found`.
    fn record(&mut self, found: bool) -> bool {
        self.misses = if found { 0 } else { self.misses.saturating_add(1) };
        found
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn stops_watching_once_ready() {
        // `ready` is asked before the clock is read: a first `true` is taken however loaded
        // the machine is.
        let calls = Cell::new(0);
        let ready = watch_briefly(|| {
            calls.set(calls.get() + 1);
            true
        });
        assert!(ready);
        assert_eq!(calls.get(), 1, "no call after the first `true`");
        // A later `true` is taken if it comes within the window (a loaded machine may let the
        // window pass between two calls); never a call after it.
        let calls = Cell::new(0);
        let ready = watch_briefly(|| {
            calls.set(calls.get() + 1);
            calls.get() == 3
        });
        assert_eq!(ready, calls.get() == 3, "the last answer is returned");
        assert!(calls.get() <= 3, "no call after the first `true`");
    }

    #[test]
    fn gives_up_after_the_watch() {
        let started = Instant::now();
        assert!(!watch_briefly(|| false));
        assert!(started.elapsed() >= WATCH_FOR, "watched for the whole window first");
    }

    #[test]
    fn a_habit_stops_watching_in_vain_and_probes_now_and_then() {
        let mut habit = WatchHabit::default();
        let looks = Cell::new(0);
        let nothing = || {
            looks.set(looks.get() + 1);
            false
        };
        for _ in 0..GIVE_UP_AFTER {
            assert!(!habit.watch(nothing));
        }
        let before = looks.get();
        for _ in 1..PROBE_EVERY {
            assert!(!habit.watch(nothing));
        }
        assert_eq!(looks.get(), before, "given up: no look at all");
        assert!(!habit.watch(nothing));
        assert!(looks.get() > before, "the probe looks");
        // A probe that pays brings watching back.
        for _ in 1..PROBE_EVERY {
            habit.watch(nothing);
        }
        assert!(habit.watch(|| true), "the probe finds it");
        let before = looks.get();
        habit.watch(nothing);
        assert!(looks.get() > before, "watching again");
    }
}
