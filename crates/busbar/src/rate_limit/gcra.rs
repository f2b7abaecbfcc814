//! The generic cell rate algorithm (GCRA), used to *reserve* start slots rather than to
//! accept or refuse events.
//!
//! The limiter keeps one instant, the theoretical arrival time (`tat`): where the next slot
//! would be if events had come at exactly the steady rate. An event arriving at `now` gets the
//! slot `max(now, tat - tolerance)`, and `tat` moves on by one interval from `max(tat, now)`.
//! With `tolerance = (burst - 1) × interval`, `burst` events arriving together all start at
//! once, and every later one waits one interval more than the one before it. In any window of
//! length `w`, at most `burst + w / interval` slots fall; for one second that is
//! `burst + per_second`.
//!
//! Each reservation moves `tat` forward, so events published together get successive slots.
//! That is the difference from a *check* ("would an event conform now, and if not, when?"):
//! checking tells every waiting event the same earliest instant.

use std::time::{Duration, Instant};

/// One event type's virtual clock.
#[derive(Debug)]
pub(crate) struct Gcra {
    /// The steady spacing of slots once the burst is spent: one second / `per_second`, rounded
    /// *up* to whole nanoseconds so rounding never lets more than `per_second` through.
    interval: Duration,
    /// How far ahead of the steady schedule a slot may be: `(burst - 1) × interval`.
    tolerance: Duration,
    /// The theoretical arrival time; `None` until the first reservation.
    tat: Option<Instant>,
}

impl Gcra {
    /// Creates a limiter with the given spacing and burst tolerance.
    pub(crate) fn new(interval: Duration, tolerance: Duration) -> Self {
        Gcra { interval, tolerance, tat: None }
    }

    /// Changes the rate and burst; slots already reserved stay where they are.
    pub(crate) fn reconfigure(&mut self, interval: Duration, tolerance: Duration) {
        self.interval = interval;
        self.tolerance = tolerance;
    }

    /// Reserves the start slot of an event arriving at `now` and returns it (`now` or later).
    pub(crate) fn reserve(&mut self, now: Instant) -> Instant {
        let tat = self.tat.map_or(now, |tat| tat.max(now));
        // An `Instant` cannot go below the clock's origin; a slot that early is simply `now`.
        let slot = tat.checked_sub(self.tolerance).map_or(now, |earliest| earliest.max(now));
        // `interval` is at most a year (checked at registration) and `tat` stays within the
        // waiting events' slots of `now`, so this does not overflow in practice; if it ever
        // did, the limit would stop advancing rather than panic.
        self.tat = Some(tat.checked_add(self.interval).unwrap_or(tat));
        slot
    }
}
