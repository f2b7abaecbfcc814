//! The count of accepted queued events that have no result yet.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Accepted queued events without a result yet, kept as two totals that only grow: events
/// that entered flight (counted by publishers) and events that left it (counted by whoever
/// resolved them, pool workers mostly).
///
/// One count that both sides add to and take from moves its cache line between the
/// publisher's CPU and the worker's twice per event; with a total per side on lines of their
/// own, each side writes only a line it already holds.
///
/// The totals wrap around at `usize::MAX`; their difference stays right as long as fewer
/// than `usize::MAX / 2` events are in flight at once.
#[derive(Default)]
pub(crate) struct Flight {
    entered: CachePadded<AtomicUsize>,
    left: CachePadded<AtomicUsize>,
}

// ORDERING: `SeqCst` throughout, for the protocol between finishing events and `join`
// described at `Shared::wake_joiners`.
impl Flight {
    /// Counts an accepted event, before it can run.
    pub(crate) fn enter(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts an event that has its result, or that was refused after `enter` after all.
    pub(crate) fn leave(&self) {
        self.left.fetch_add(1, Ordering::SeqCst);
    }

    /// Returns how many events are in flight, or possibly more (never fewer) if some enter
    /// meanwhile.
    pub(crate) fn count(&self) -> usize {
        // Left first, then entered: every event that had left by the first read had entered
        // before it, so the second read counts it too, and the difference never goes below
        // the true count.
        let left = self.left.load(Ordering::SeqCst);
        self.entered.load(Ordering::SeqCst).wrapping_sub(left)
    }
}

#[cfg(test)]
mod tests {
    use super::Flight;

    #[test]
    fn counts_what_entered_and_has_not_left() {
        let flight = Flight::default();
        assert_eq!(flight.count(), 0);
        flight.enter();
        flight.enter();
        flight.leave();
        assert_eq!(flight.count(), 1);
        flight.leave();
        assert_eq!(flight.count(), 0);
    }
}
