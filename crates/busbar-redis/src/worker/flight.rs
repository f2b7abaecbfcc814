//! What a worker holds: the messages it took and has not settled, and the state its two
//! threads share.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use busbar::{EventBus, EventFuture, EventHandle, RetryBackoff};

use super::WorkerStats;
use crate::broker::Broker;
use crate::envelope::{Band, Envelope};
use crate::settle::{self, Settlement};

/// A message this worker took: running on the bus, or settled and waiting to be written.
pub(super) struct Delivery {
    pub(super) band: Band,
    pub(super) message_id: String,
    pub(super) run: Run,
}

/// Where a delivery stands.
pub(super) enum Run {
    /// An attempt runs on the bus.
    Attempt(Box<Attempt>),
    /// Decided; the recorder writes it.
    Settled(Box<Settlement>),
}

/// An attempt running on the bus.
pub(super) struct Attempt {
    envelope: Envelope,
    attempt: u32,
    /// When the event's first attempt started (Unix ms).
    started_ms: u64,
    /// Resolves with the attempt's result.
    future: EventFuture,
}

/// The state of a worker, shared by its handle and its two threads.
pub(crate) struct Shared {
    broker: Broker,
    bus: EventBus,
    name: String,
    concurrency: usize,
    visibility: Duration,
    backoff: RetryBackoff,
    /// Deliveries by key. The fetcher adds, the recorder removes once written.
    flight: Mutex<HashMap<u64, Delivery>>,
    /// Signalled when a delivery is removed, and when the worker stops.
    room: Condvar,
    next_key: AtomicU64,
    stopping: AtomicBool,
    fetcher_done: AtomicBool,
    /// Wakes the recorder: an attempt finished, a delivery was settled, or the worker stops.
    wake: mpsc::Sender<()>,
    /// The recorder's end of `wake`, taken by it when it starts.
    wakened: Mutex<Option<mpsc::Receiver<()>>>,
    counters: Counters,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) fetched: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) reclaimed: AtomicU64,
    pub(super) lost: AtomicU64,
}

impl Counters {
    pub(super) fn count(&self, kind: settle::Kind) {
        let counter = match kind {
            settle::Kind::Succeeded => &self.succeeded,
            settle::Kind::Retried => &self.retried,
            settle::Kind::DeadLettered => &self.dead_lettered,
            settle::Kind::Released => return,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl Shared {
    pub(super) fn new(
        broker: Broker,
        bus: EventBus,
        name: String,
        concurrency: usize,
        visibility: Duration,
        backoff: RetryBackoff,
    ) -> Self {
        let (wake, wakened) = mpsc::channel();
        Shared {
            broker,
            bus,
            name,
            concurrency,
            visibility,
            backoff,
            flight: Mutex::new(HashMap::new()),
            room: Condvar::new(),
            next_key: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            fetcher_done: AtomicBool::new(false),
            wake,
            wakened: Mutex::new(Some(wakened)),
            counters: Counters::default(),
        }
    }

    pub(super) fn broker(&self) -> &Broker {
        &self.broker
    }

    pub(super) fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn visibility(&self) -> Duration {
        self.visibility
    }

    pub(super) fn backoff(&self) -> &RetryBackoff {
        &self.backoff
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops taking messages; the attempts in hand still finish and are settled.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _guard = self.lock();
        self.room.notify_all();
        self.notify_recorder();
    }

    pub(super) fn set_fetcher_done(&self) {
        self.fetcher_done.store(true, Ordering::SeqCst);
        self.notify_recorder();
    }

    /// Returns `true` once the fetcher stopped and nothing is left to settle: the recorder's
    /// cue to exit.
    pub(super) fn is_drained(&self) -> bool {
        self.fetcher_done.load(Ordering::SeqCst) && self.lock().is_empty()
    }

    pub(super) fn take_wakened(&self) -> Option<mpsc::Receiver<()>> {
        self.wakened.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn notify_recorder(&self) {
        // The recorder may have exited; then nobody needs waking.
        let _ = self.wake.send(());
    }

    /// Waits until fewer than `concurrency` deliveries are in hand, the worker stops, or
    /// `deadline` passes; returns how many more may be taken.
    pub(super) fn wait_for_room(&self, deadline: Instant) -> usize {
        let mut flight = self.lock();
        loop {
            let free = self.concurrency.saturating_sub(flight.len());
            let now = Instant::now();
            if free > 0 || self.is_stopping() || now >= deadline {
                return free;
            }
            flight = self.room.wait_timeout(flight, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Waits `pause`, or less if the worker stops (a pause between retries of Redis).
    pub(super) fn pause(&self, pause: Duration) {
        let deadline = Instant::now() + pause;
        let mut flight = self.lock();
        while !self.is_stopping() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            flight = self.room.wait_timeout(flight, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Returns `true` if this worker holds message `message_id` of `band`'s stream.
    pub(super) fn holds(&self, band: Band, message_id: &str) -> bool {
        self.lock().values().any(|delivery| delivery.band == band && delivery.message_id == message_id)
    }

    /// Takes on an attempt that runs on the bus: it is renewed until settled.
    pub(super) fn track_attempt(
        self: &Arc<Self>,
        band: Band,
        message_id: String,
        envelope: Envelope,
        attempt: u32,
        started_ms: u64,
        handle: EventHandle,
    ) {
        let key = self.next_key.fetch_add(1, Ordering::SeqCst);
        let future = handle.into_future();
        let run = Run::Attempt(Box::new(Attempt { envelope, attempt, started_ms, future }));
        let mut flight = self.lock();
        flight.insert(key, Delivery { band, message_id, run });
        // Polled under the lock, so the recorder cannot poll it at the same time. If it
        // already finished, the poll wakes the recorder.
        self.poll(key, &mut flight);
    }

    /// Takes on a message whose outcome is already decided; the recorder writes it.
    pub(super) fn track_settled(&self, band: Band, message_id: String, settlement: Settlement) {
        let key = self.next_key.fetch_add(1, Ordering::SeqCst);
        self.lock().insert(key, Delivery { band, message_id, run: Run::Settled(Box::new(settlement)) });
        self.notify_recorder();
    }

    /// Polls every running attempt and settles those that finished.
    pub(super) fn poll_attempts(self: &Arc<Self>) {
        let mut flight = self.lock();
        let keys: Vec<u64> = flight.keys().copied().collect();
        for key in keys {
            self.poll(key, &mut flight);
        }
    }

    /// Polls delivery `key` if it is a running attempt, with a waker that wakes the recorder;
    /// decides its settlement if it finished.
    fn poll(self: &Arc<Self>, key: u64, flight: &mut HashMap<u64, Delivery>) {
        let Some(delivery) = flight.get_mut(&key) else { return };
        let Run::Attempt(running) = &mut delivery.run else { return };
        let Attempt { envelope, attempt, started_ms, future } = &mut **running;
        let waker = Waker::from(Arc::new(Wakeup { shared: Arc::downgrade(self) }));
        if let Poll::Ready(result) = Pin::new(future).poll(&mut Context::from_waker(&waker)) {
            // A cancelled result while the bus is shutting down is the shutdown's.
            let stopping = self.bus.is_shut_down();
            let settlement = Settlement::decide(
                envelope,
                *attempt,
                result,
                *started_ms,
                &self.backoff,
                &self.name,
                stopping,
            );
            delivery.run = Run::Settled(Box::new(settlement));
            self.notify_recorder();
        }
    }

    /// Removes settled deliveries once written, and makes room for the fetcher.
    pub(super) fn remove(&self, keys: &[u64]) {
        let mut flight = self.lock();
        for key in keys {
            flight.remove(key);
        }
        self.room.notify_all();
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<u64, Delivery>> {
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn stats(&self) -> WorkerStats {
        let counters = &self.counters;
        WorkerStats {
            fetched: counters.fetched.load(Ordering::SeqCst),
            succeeded: counters.succeeded.load(Ordering::SeqCst),
            retried: counters.retried.load(Ordering::SeqCst),
            dead_lettered: counters.dead_lettered.load(Ordering::SeqCst),
            malformed: counters.malformed.load(Ordering::SeqCst),
            reclaimed: counters.reclaimed.load(Ordering::SeqCst),
            lost: counters.lost.load(Ordering::SeqCst),
            running: self.lock().len() as u64,
        }
    }
}

/// Wakes the recorder when an attempt's result arrives. Holds the worker weakly: a result
/// arriving after the worker is gone wakes nobody.
struct Wakeup {
    shared: std::sync::Weak<Shared>,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.notify_recorder();
        }
    }
}
