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
///
/// Publishers also count the events that entered but were refused after all (the queue was
/// closed or full), which gives the number of queued events published without a count of its
/// own: one atomic operation per event fewer.
#[derive(Default)]
pub(crate) struct Flight {
    entered: CachePadded<Entered>,
    left: CachePadded<AtomicUsize>,
}

/// What publishers count.
#[derive(Default)]
struct Entered {
    total: AtomicUsize,
    refused: AtomicUsize,
}

// ORDERING: `SeqCst` throughout, for the protocol between finishing events and `join`
// described at `Shared::wake_joiners`.
impl Flight {
    /// Counts an accepted event, before it can run.
    pub(crate) fn enter(&self) {
        self.entered.total.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts an event that has its result.
    pub(crate) fn leave(&self) {
        self.left.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts an event that was refused after [`enter`](Self::enter) after all: it leaves
    /// flight, and was not published.
    pub(crate) fn refuse(&self) {
        self.entered.refused.fetch_add(1, Ordering::SeqCst);
        self.leave();
    }

    /// Returns how many events entered and were not refused: the queued events published.
    pub(crate) fn published(&self) -> u64 {
        // Refused first: every refusal counted by then had entered before it.
        let refused = self.entered.refused.load(Ordering::SeqCst);
        self.entered.total.load(Ordering::SeqCst).wrapping_sub(refused) as u64
    }

    /// Returns how many events are in flight, or possibly more (never fewer) if some enter
    /// meanwhile.
    pub(crate) fn count(&self) -> usize {
        // Left first, then entered: every event that had left by the first read had entered
        // before it, so the second read counts it too, and the difference never goes below
        // the true count.
        let left = self.left.load(Ordering::SeqCst);
        self.entered.total.load(Ordering::SeqCst).wrapping_sub(left)
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

    #[test]
    fn an_event_refused_after_entering_leaves_and_was_not_published() {
        let flight = Flight::default();
        flight.enter();
        flight.enter();
        flight.refuse();
        assert_eq!((flight.count(), flight.published()), (1, 1));
        flight.leave();
        assert_eq!((flight.count(), flight.published()), (0, 1));
    }
}
