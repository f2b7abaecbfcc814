//! Counters of what the bus did, and the snapshot users read: [`BusStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::result::{ErrorKind, EventResult};
use crate::tally::{Mine, Step, SyncTallies};

/// A snapshot of a bus's counters, from [`EventBus::stats`](crate::EventBus::stats).
///
/// Counters only grow. Every accepted event is counted once in `published` and, once it has
/// its result, once in `succeeded` or `failed` (and in at most one of the failure kinds), so
/// `published == succeeded + failed + in_flight` whenever no event is being accepted or
/// resolved at the same instant.
///
/// # Examples
///
/// ```
/// use busbar::{handler_fn, Event, EventBus, EventResult};
///
/// let bus = EventBus::new();
/// bus.subscribe("ok", handler_fn(|_| Ok(EventResult::success())));
/// bus.publish(Event::new("ok"))?.wait();
///
/// let stats = bus.stats();
/// assert_eq!(stats.published, 1);
/// assert_eq!(stats.succeeded, 1);
/// assert_eq!(stats.in_flight, 0);
/// # Ok::<(), busbar::PublishError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStats {
    /// Events accepted by `publish`.
    pub published: u64,
    /// Events that finished successfully.
    pub succeeded: u64,
    /// Events that finished with a failure of any kind.
    pub failed: u64,
    /// Failed events whose last attempt timed out.
    pub timed_out: u64,
    /// Failed events whose last attempt panicked.
    pub panicked: u64,
    /// Failed events whose last attempt crashed its process.
    pub crashed: u64,
    /// Events cancelled by `shutdown_now`.
    pub cancelled: u64,
    /// Attempts beyond the first (retries), over all finished events.
    pub retries: u64,
    /// Accepted events without a result yet (queued or running). A sync publish on another
    /// thread counts here while it checks whether the bus is closed, before it is accepted
    /// or refused.
    pub in_flight: u64,
    /// Events waiting in the queue.
    pub queued: u64,
    /// Worker threads in the pool (0 until the first queued event).
    pub workers: u64,
    /// Workers replaced because their handler ran past its deadline.
    pub replaced_workers: u64,
    /// Corelet processes alive now (idle or serving).
    pub corelets: u64,
    /// Corelet processes started.
    pub corelet_spawns: u64,
    /// Corelet processes that failed to start or to complete the handshake.
    pub corelet_start_failures: u64,
    /// Corelet processes that died by themselves (crash, exit, signal from elsewhere).
    pub corelet_crashes: u64,
    /// Corelet processes killed by the bus (at a deadline, for breaking the protocol, at
    /// `shutdown_now`).
    pub corelet_kills: u64,
    /// Corelet processes retired on purpose (request count, memory size, idle time).
    pub corelet_recycles: u64,
}

/// The live counters behind [`BusStats`].
///
/// Events that run on their publisher's thread (sync events) are counted apart, per thread
/// (see [`SyncTallies`]), and their part of the bus's in-flight count follows from those
/// counts: started and not yet succeeded or failed, plus publishes still looking whether the
/// bus is closed (see `Shared::start_sync`). Such an event then costs four plain stores (its
/// check begun and ended, started, finished) where counting it in flight, published, succeeded
/// and out of flight in shared counters would cost four locked operations, a large part of a
/// sync publish.
pub(crate) struct Counters {
    /// Written by publishers only.
    published: CachePadded<AtomicU64>,
    /// Written by whoever resolves queued events (pool workers, mostly; sync publishers too,
    /// for retries and failure kinds): on a cache line of their own, so that a publisher and a
    /// worker do not take one line from each other for every thread event.
    results: CachePadded<ResultCounters>,
    sync: SyncTallies,
}

#[derive(Default)]
struct ResultCounters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    panicked: AtomicU64,
    crashed: AtomicU64,
    cancelled: AtomicU64,
    retries: AtomicU64,
}

// ORDERING: counters are statistics; nothing is synchronised through them, so `Relaxed` is
// enough. Readers get a snapshot that may be a few events stale. The sync tallies are the
// exception: `join` waits on the in-flight count they give, with the protocol described at
// `Shared::wake_joiners`.
impl Counters {
    pub(crate) fn new() -> Self {
        Counters {
            published: CachePadded::default(),
            results: CachePadded::default(),
            sync: SyncTallies::new(),
        }
    }

    /// This thread's sync counts, for a publish to count its check and its start in a row
    /// (see `Shared::start_sync`): [`Step::Started`] counts a sync event as published, and in
    /// flight until its result is recorded with [`record_sync_result`](Self::record_sync_result).
    pub(crate) fn sync_counts(&self) -> Mine<'_> {
        self.sync.mine()
    }

    /// Records a sync event's result, which also takes it out of flight.
    pub(crate) fn record_sync_result(&self, result: &EventResult) {
        self.record_retries(result);
        if result.success {
            self.sync.count(Step::Succeeded);
            return;
        }
        self.record_failure_kind(result);
        self.sync.count(Step::Failed);
    }

    /// Returns how many sync events are in flight, or possibly more (never fewer) if some
    /// start meanwhile.
    pub(crate) fn sync_in_flight(&self) -> u64 {
        self.sync.in_flight()
    }

    pub(crate) fn record_published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_result(&self, result: &EventResult) {
        self.record_retries(result);
        if result.success {
            self.results.succeeded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.results.failed.fetch_add(1, Ordering::Relaxed);
        self.record_failure_kind(result);
    }

    fn record_retries(&self, result: &EventResult) {
        if result.attempts > 1 {
            self.results.retries.fetch_add(u64::from(result.attempts - 1), Ordering::Relaxed);
        }
    }

    fn record_failure_kind(&self, result: &EventResult) {
        let kind_counter = match result.error_kind {
            Some(ErrorKind::Timeout) => &self.results.timed_out,
            Some(ErrorKind::Panic) => &self.results.panicked,
            Some(ErrorKind::Crashed) => &self.results.crashed,
            Some(ErrorKind::Cancelled) => &self.results.cancelled,
            _ => return,
        };
        kind_counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> BusStats {
        // Each sum is of counters that only grow, so it only grows too.
        let sync = self.sync.totals();
        BusStats {
            published: self.published.load(Ordering::Relaxed) + sync.started,
            succeeded: self.results.succeeded.load(Ordering::Relaxed) + sync.succeeded,
            failed: self.results.failed.load(Ordering::Relaxed) + sync.failed,
            timed_out: self.results.timed_out.load(Ordering::Relaxed),
            panicked: self.results.panicked.load(Ordering::Relaxed),
            crashed: self.results.crashed.load(Ordering::Relaxed),
            cancelled: self.results.cancelled.load(Ordering::Relaxed),
            retries: self.results.retries.load(Ordering::Relaxed),
            ..BusStats::default()
        }
    }
}
