//! Rate limits per event type: events are delayed, not dropped, so that at most `per_second`
//! start per second after an initial `burst`.
//!
//! Each event reserves its start slot when it is published (`gcra`). A queued event whose
//! slot is in the future is held by the bus's scheduler (`crate::timer`) and released to the
//! pool's queue at its slot; a sync event's publishing thread waits for its slot.
//!
//! Why not the `governor` crate? It *checks* a cell against the limit: a refused check says
//! "not until t", but reserves nothing, so fifty events published together would all be told
//! the same `t`, and each would have to check again (a thread or a scheduler wake-up per retry,
//! with no fairness between them). What busbar needs is the reservation: every event learns
//! its own future slot at once, so the scheduler can hold it without polling. That is the same
//! GCRA arithmetic governor uses, minus the lock-free state (a mutex per event type is not a
//! bottleneck next to a publish), in about ten lines.

mod gcra;
#[cfg(test)]
mod test;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use crate::event::MAX_TIMEOUT;
use gcra::Gcra;

/// A rate limit and how it is used right now, from
/// [`EventBus::rate_limit`](crate::EventBus::rate_limit).
///
/// # Examples
///
/// ```
/// use busbar::EventBus;
///
/// let bus = EventBus::new();
/// bus.register_rate_limit("api.call", 20.0, 5)?;
/// let info = bus.rate_limit("api.call").expect("registered");
/// assert_eq!((info.per_second, info.burst), (20.0, 5));
/// assert_eq!((info.last_second, info.waiting), (0, 0));
/// assert!(bus.rate_limit("other").is_none());
/// # Ok::<(), busbar::RateLimitError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RateLimitInfo {
    /// The steady rate: events allowed to start per second once the burst is spent.
    pub per_second: f64,
    /// How many events may start at once after a quiet period.
    pub burst: u32,
    /// Events whose start slot fell within the last second: the current throughput.
    pub last_second: u64,
    /// Events holding a slot still in the future: waiting to start.
    pub waiting: u64,
}

/// The error of [`EventBus::register_rate_limit`](crate::EventBus::register_rate_limit): the
/// limit cannot work as given.
///
/// # Examples
///
/// ```
/// use busbar::EventBus;
///
/// let bus = EventBus::new();
/// let err = bus.register_rate_limit("api.call", 0.0, 5).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid rate limit for `api.call`: `per_second` must be a positive, finite number \
///      of events per second, found 0"
/// );
/// let err = bus.register_rate_limit("api.call", 20.0, 0).unwrap_err();
/// assert_eq!(err.to_string(), "invalid rate limit for `api.call`: `burst` must be at least 1, found 0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitError {
    event_type: String,
    reason: String,
}

impl RateLimitError {
    pub(crate) fn new(event_type: &str, reason: String) -> Self {
        RateLimitError { event_type: event_type.to_owned(), reason }
    }

    /// Returns the event type the limit was for.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rate limit for `{}`: {}", self.event_type, self.reason)
    }
}

impl std::error::Error for RateLimitError {}

/// One event type's limit: its settings, its virtual clock and its recent slots.
struct Limit {
    per_second: f64,
    burst: u32,
    gcra: Gcra,
    /// Slots handed out, in order: those of the last second (for the throughput) and those
    /// still ahead (the waiting events). Reservations happen under this limit's lock with a
    /// fresh `now`, so slots only grow and the deque stays sorted.
    slots: VecDeque<Instant>,
}

impl Limit {
    /// Forgets slots older than a second.
    fn prune(&mut self, now: Instant) {
        let Some(horizon) = now.checked_sub(Duration::from_secs(1)) else { return };
        while self.slots.front().is_some_and(|&slot| slot <= horizon) {
            self.slots.pop_front();
        }
    }
}

/// The rate limits of one bus.
pub(crate) struct RateLimits {
    /// `false` while no limit is registered, so that publishing on a bus without limits (the
    /// common case) takes no lock here.
    any: AtomicBool,
    limits: RwLock<HashMap<String, Arc<Mutex<Limit>>, RandomState>>,
    /// Sync publishers waiting for their slot sleep on `wake`, so `shutdown_now` can rouse them.
    sleepers: Mutex<()>,
    wake: Condvar,
}

impl RateLimits {
    pub(crate) fn new() -> Self {
        RateLimits {
            any: AtomicBool::new(false),
            limits: RwLock::new(HashMap::default()),
            sleepers: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Registers (or changes) the limit of `event_type`.
    ///
    /// Changing a limit keeps its clock: events already waiting keep their slots, and the new
    /// rate applies from the next reservation.
    pub(crate) fn register(
        &self,
        event_type: &str,
        per_second: f64,
        burst: u32,
    ) -> Result<(), RateLimitError> {
        if event_type.trim().is_empty() {
            let reason = "the event type is empty; expected a name such as `api.call`".to_owned();
            return Err(RateLimitError::new(event_type, reason));
        }
        let (interval, tolerance) =
            spacing(per_second, burst).map_err(|reason| RateLimitError::new(event_type, reason))?;
        let mut limits = self.limits.write().unwrap_or_else(PoisonError::into_inner);
        match limits.get(event_type) {
            Some(limit) => {
                let mut limit = lock(limit);
                limit.per_second = per_second;
                limit.burst = burst;
                limit.gcra.reconfigure(interval, tolerance);
            }
            None => {
                let limit =
                    Limit { per_second, burst, gcra: Gcra::new(interval, tolerance), slots: VecDeque::new() };
                limits.insert(event_type.to_owned(), Arc::new(Mutex::new(limit)));
            }
        }
        self.any.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Removes the limit of `event_type`; returns `false` if it had none. Waiting events keep
    /// their slots.
    pub(crate) fn remove(&self, event_type: &str) -> bool {
        let mut limits = self.limits.write().unwrap_or_else(PoisonError::into_inner);
        let removed = limits.remove(event_type).is_some();
        self.any.store(!limits.is_empty(), Ordering::SeqCst);
        removed
    }

    /// Returns the limit of `event_type` and its current use.
    pub(crate) fn info(&self, event_type: &str) -> Option<RateLimitInfo> {
        let limit = self.find(event_type)?;
        let mut limit = lock(&limit);
        let now = Instant::now();
        limit.prune(now);
        let started = limit.slots.partition_point(|&slot| slot <= now);
        Some(RateLimitInfo {
            per_second: limit.per_second,
            burst: limit.burst,
            last_second: started as u64,
            waiting: (limit.slots.len() - started) as u64,
        })
    }

    /// Reserves a start slot for an event of `event_type` arriving now.
    ///
    /// Returns the slot if it lies in the future (the event must wait), `None` if the event may
    /// start at once or its type has no limit.
    // Inlined: every publish asks, and without limits the answer is one load.
    #[inline]
    pub(crate) fn reserve(&self, event_type: &str) -> Option<Instant> {
        if !self.any.load(Ordering::SeqCst) {
            return None;
        }
        self.reserve_limited(event_type)
    }

    /// [`reserve`](Self::reserve) once some type has a limit.
    fn reserve_limited(&self, event_type: &str) -> Option<Instant> {
        let limit = self.find(event_type)?;
        let mut limit = lock(&limit);
        let now = Instant::now();
        limit.prune(now);
        let slot = limit.gcra.reserve(now);
        limit.slots.push_back(slot);
        (slot > now).then_some(slot)
    }

    /// Blocks the calling thread until `slot`; returns `false` early if `killed` turns true
    /// (after [`wake_waiters`](Self::wake_waiters)).
    pub(crate) fn wait_until(&self, slot: Instant, killed: impl Fn() -> bool) -> bool {
        let mut guard = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // Checked under the lock `wake_waiters` takes, so its wake-up cannot be missed.
            if killed() {
                return false;
            }
            let now = Instant::now();
            if now >= slot {
                return true;
            }
            guard = self.wake.wait_timeout(guard, slot - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Wakes every thread in [`wait_until`](Self::wait_until) to look at its `killed` flag.
    pub(crate) fn wake_waiters(&self) {
        let _guard = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.notify_all();
    }

    fn find(&self, event_type: &str) -> Option<Arc<Mutex<Limit>>> {
        self.limits.read().unwrap_or_else(PoisonError::into_inner).get(event_type).cloned()
    }
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limits = self.limits.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("RateLimits").field("event_types", &limits.keys().collect::<Vec<_>>()).finish()
    }
}

/// Returns the slot spacing and burst tolerance for a limit, or why it cannot work.
fn spacing(per_second: f64, burst: u32) -> Result<(Duration, Duration), String> {
    if !per_second.is_finite() || per_second <= 0.0 {
        return Err(format!(
            "`per_second` must be a positive, finite number of events per second, found {per_second}"
        ));
    }
    if burst == 0 {
        return Err("`burst` must be at least 1, found 0".to_owned());
    }
    let slowest = 1.0 / MAX_TIMEOUT.as_secs_f64();
    if per_second < slowest || per_second > 1e9 {
        return Err(format!(
            "`per_second` must be between one per year and 10^9 (one per nanosecond), found {per_second}"
        ));
    }
    // Rounded up: a spacing one nanosecond too long is harmless, one too short breaks the limit.
    let interval = Duration::from_nanos((1e9 / per_second).ceil() as u64);
    let tolerance = interval
        .checked_mul(burst - 1)
        .filter(|tolerance| *tolerance <= MAX_TIMEOUT)
        .ok_or_else(|| format!("a burst of {burst} at {per_second} per second spans more than a year"))?;
    Ok((interval, tolerance))
}

// No user code runs under these locks and every update leaves the state consistent, so a
// poisoned lock is still usable.
fn lock(limit: &Mutex<Limit>) -> MutexGuard<'_, Limit> {
    limit.lock().unwrap_or_else(PoisonError::into_inner)
}
