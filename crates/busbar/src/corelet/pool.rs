//! The pool: lends children to requests one at a time, replaces the dead, retires the old.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::config::{ConfigError, CoreletConfig};
use super::duplex::Cut;
use super::error::{CoreletError, StartError};
use super::keeper::Keeper;
use super::process::Corelet;
use super::spawn::Launch;
use super::stats::CoreletStats;

/// Longest pause of the keeper between two idle sweeps.
const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(60);

/// Default of `CoreletPool::check_idle_after`.
const CHECK_IDLE_AFTER: Duration = Duration::from_millis(1);

/// Shortest pause of the keeper between two idle sweeps.
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(10);

/// A pool of corelet children, each serving one request at a time.
///
/// Children are started lazily, on the first request that finds none idle, up to the pool size.
/// A child that crashed, timed out or broke the protocol is reaped and never lent again; the
/// next request starts a fresh one. Starts that fail in a row are spaced out exponentially, and
/// requests in the meantime fail at once with a [`StartError`] that says so.
///
/// Dropping the pool kills its children (see [`CoreletPool::kill_all`]).
#[derive(Debug)]
pub(crate) struct CoreletPool {
    /// State shared with the keeper's idle sweep.
    shared: Arc<Shared>,
    /// Starts and retires children.
    keeper: Keeper,
    /// Idle time after which `checkout` asks the kernel whether a child still lives.
    check_idle_after: Duration,
}

/// The part of the pool the keeper thread sees.
#[derive(Debug)]
struct Shared {
    /// The validated configuration.
    config: CoreletConfig,
    /// Most children at once.
    size: usize,
    /// What a child runs.
    launch: Arc<Launch>,
    /// Children and bookkeeping.
    state: Mutex<State>,
    /// Signalled whenever a slot frees up or the pool closes.
    changed: Condvar,
    /// Ends the waits of every child's channel: `kill_all` cuts it.
    cut: Arc<Cut>,
}

/// Everything behind the pool's lock.
///
/// Invariant: `idle.len() + busy <= size`, where `busy` counts children lent to requests and
/// starts in progress. Nothing run under the lock panics or calls user code, so a poisoned
/// lock still guards consistent data and is simply taken over.
#[derive(Debug, Default)]
struct State {
    /// Children waiting for a request, the most recently used last.
    idle: Vec<Corelet>,
    /// Slots taken by lent children and by starts in progress.
    busy: usize,
    /// Lease numbers of the lent children.
    lent: Vec<u64>,
    /// Threads waiting on `changed`; notifying nobody would still cost a system call.
    waiters: usize,
    /// Number of the next lease.
    next_lease: u64,
    /// Whether requests are still accepted.
    phase: Phase,
    /// Failed starts since the last successful one.
    failures: u32,
    /// No start is tried before this instant.
    retry_at: Option<Instant>,
    /// Why the latest start failed, repeated while backing off.
    last_failure: String,
    /// Counters for [`CoreletPool::stats`].
    stats: CoreletStats,
}

/// Life stage of a pool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting requests.
    #[default]
    Open,
    /// [`CoreletPool::shutdown`] ran: finishing what is running.
    Closing,
    /// [`CoreletPool::kill_all`] ran: running requests are cancelled.
    Killed,
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolBuildError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The current executable could not be found, or the keeper thread could not start.
    #[error("cannot set up the corelet pool: {0}")]
    Io(#[from] io::Error),
}

impl CoreletPool {
    /// Validates `config` and starts the keeper thread; no child is started yet.
    pub(crate) fn new(config: CoreletConfig) -> Result<Self, PoolBuildError> {
        config.validate()?;
        let launch = Arc::new(Launch::new(&config)?);
        let shared = Arc::new(Shared {
            size: config.pool_size(),
            launch: Arc::clone(&launch),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cut: Arc::new(Cut::new()?),
            config,
        });
        // Sweeping every quarter of the idle timeout retires an idle child between 1 and 1.25
        // idle timeouts after its last request.
        let period = (shared.config.idle_timeout / 4).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD);
        let keeper = Keeper::start(launch, period, {
            let shared = Arc::clone(&shared);
            move || shared.sweep_idle()
        })?;
        Ok(CoreletPool { shared, keeper, check_idle_after: CHECK_IDLE_AFTER })
    }

    /// Runs `request` in a child and returns its reply, waiting at most until `deadline`.
    ///
    /// The request is encoded straight from `Req` and the reply decoded straight into `Rep`
    /// (events into `Pub`); a child whose reply is not a `Rep` broke the protocol.
    ///
    /// Events the handler publishes meanwhile are passed to `on_publish`, on this thread, in
    /// the order they were published. If `on_publish` panics, the child is killed and the
    /// panic continues to the caller. If every child is busy, the call waits for one until
    /// `deadline`. At the deadline a running child's process group is killed.
    ///
    /// # Errors
    ///
    /// See [`CoreletError`]: timeouts, crashes, panics, oversized messages, protocol errors,
    /// failed starts, and a pool that is shut down.
    pub(crate) fn execute<Req, Rep, Pub>(
        &self,
        request: &Req,
        deadline: Option<Instant>,
        on_publish: &mut dyn FnMut(Pub),
    ) -> Result<Rep, CoreletError>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
        Pub: DeserializeOwned,
    {
        loop {
            let (mut corelet, lease) = self.checkout(deadline)?;
            let result =
                panic::catch_unwind(AssertUnwindSafe(|| corelet.execute(request, deadline, on_publish)));
            match result {
                Ok(result @ Err(CoreletError::Crashed { .. }))
                    if corelet.died_idle() && !corelet.was_fresh() =>
                {
                    // Found dead (the OOM killer, an outside `kill`) before the request
                    // reached it: counted as a crash, and the request goes to another child.
                    // Not a child that died before its first request, after greeting: that is
                    // how the program starts, every fresh child would do the same, and retrying
                    // here would start children in a loop until the deadline. The crash is the
                    // result (the event's own retries, with their backoff, may try again).
                    let _ = self.checkin(corelet, lease, result);
                }
                Ok(result) => return self.checkin(corelet, lease, result),
                Err(payload) => {
                    // `on_publish` panicked in the middle of a request: the child is out of
                    // step. Kill it and give the slot back before the panic continues.
                    corelet.abort();
                    let _ = self.checkin::<Rep>(corelet, lease, Err(CoreletError::Cancelled));
                    panic::resume_unwind(payload)
                }
            }
        }
    }

    /// Sets the idle time after which `checkout` checks that a child lives (tests reach both
    /// ways a dead idle child is found with it).
    #[cfg(test)]
    pub(crate) fn check_idle_after(mut self, idle: Duration) -> Self {
        self.check_idle_after = idle;
        self
    }

    /// Returns the pool's counters.
    pub(crate) fn stats(&self) -> CoreletStats {
        let state = self.shared.lock();
        CoreletStats { live: state.idle.len() + state.lent.len(), ..state.stats }
    }

    /// Refuses new requests, waits for running ones to finish, then asks every child to exit
    /// and reaps it. Idempotent.
    pub(crate) fn shutdown(&self) {
        let idle = {
            let mut state = self.shared.lock();
            if state.phase == Phase::Open {
                state.phase = Phase::Closing;
            }
            // Requests waiting for a slot must learn that none will come.
            self.shared.changed.notify_all();
            while state.busy > 0 {
                (state, _) = self.shared.wait(state, None);
            }
            std::mem::take(&mut state.idle)
        };
        for corelet in idle {
            corelet.retire();
        }
        self.keeper.stop();
    }

    /// Refuses new requests, kills every idle child, and ends running requests, which return
    /// [`CoreletError::Cancelled`] as soon as their threads have reaped their children.
    /// Returns without waiting for those threads. Idempotent.
    pub(crate) fn kill_all(&self) {
        let idle = {
            let mut state = self.shared.lock();
            state.phase = Phase::Killed;
            // Every wait on a child's channel returns at once; the lender then kills and
            // reaps its child.
            self.shared.cut.cut();
            self.shared.changed.notify_all();
            let idle = std::mem::take(&mut state.idle);
            state.stats.kills += idle.len() as u64;
            idle
        };
        for corelet in idle {
            corelet.kill_now();
        }
        self.keeper.stop();
    }

    /// Takes an idle child or starts one, waiting for a free slot until `deadline`.
    fn checkout(&self, deadline: Option<Instant>) -> Result<(Corelet, u64), CoreletError> {
        let mut state = self.shared.lock();
        loop {
            if state.phase != Phase::Open {
                return Err(CoreletError::ShutDown);
            }
            if let Some(corelet) = state.idle.pop() {
                // A child that just answered is alive but for a rare race, which `execute`
                // handles (a child found gone before its request arrived is replaced); one
                // idle for longer is checked, at the cost of a system call, so that a dead
                // child whose pipe a grandchild keeps open is not sent a request.
                if corelet.last_used().elapsed() < self.check_idle_after || corelet.is_reusable() {
                    state.busy += 1;
                    let lease = state.lend();
                    return Ok((corelet, lease));
                }
                // It died while idle (the OOM killer, an outside `kill`); dropping reaps it.
                state.stats.crashes += 1;
                continue;
            }
            if state.idle.len() + state.busy < self.shared.size {
                if let Some(retry_at) = state.retry_at {
                    if let Some(retry_in) = retry_at.checked_duration_since(Instant::now()) {
                        let error = StartError::backoff(state.failures, retry_in, state.last_failure.clone());
                        return Err(error.into());
                    }
                }
                state.busy += 1;
                drop(state);
                return self.start(deadline);
            }
            let timed_out;
            (state, timed_out) = self.shared.wait(state, deadline);
            if timed_out {
                return Err(CoreletError::Saturated { pool_size: self.shared.size });
            }
        }
    }

    /// Starts a child in a slot already counted in `busy`, and lends it.
    fn start(&self, deadline: Option<Instant>) -> Result<(Corelet, u64), CoreletError> {
        let config = &self.shared.config;
        let started = Instant::now().checked_add(config.start_timeout);
        // The start may not outlast the request that needs it.
        let greet_by = match (started, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let spawned = self.keeper.spawn();
        let spawned_ok = spawned.is_ok();
        let result = spawned.and_then(|spawned| {
            Corelet::greet(
                spawned,
                self.shared.launch.program(),
                greet_by,
                config.max_frame_size,
                config.kill_grace,
                Arc::clone(&self.shared.cut),
            )
        });
        let mut state = self.shared.lock();
        if spawned_ok {
            state.stats.spawns += 1;
        }
        match result {
            Ok(corelet) => {
                state.failures = 0;
                state.retry_at = None;
                if state.phase != Phase::Open {
                    state.release_slot(&self.shared.changed);
                    drop(state);
                    corelet.kill_now();
                    return Err(CoreletError::ShutDown);
                }
                let lease = state.lend();
                Ok((corelet, lease))
            }
            Err(error) if error.is_timeout() && deadline.is_some_and(|d| Instant::now() >= d) => {
                // The request ran out of time, not the child: no reason to back off.
                state.release_slot(&self.shared.changed);
                Err(CoreletError::Timeout)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                state.stats.start_failures += 1;
                let backoff = backoff(config, state.failures);
                state.retry_at = Instant::now().checked_add(backoff);
                state.last_failure = error.to_string();
                state.release_slot(&self.shared.changed);
                Err(error.into())
            }
        }
    }

    /// Returns a child after a request, keeping it, retiring it or letting it go.
    fn checkin<Rep>(
        &self,
        corelet: Corelet,
        lease: u64,
        result: Result<Rep, CoreletError>,
    ) -> Result<Rep, CoreletError> {
        let config = &self.shared.config;
        // A child that died unobserved after its reply is caught by `checkout`.
        let reusable = !corelet.is_reaped();
        let worn_out = reusable && is_worn_out(config, &corelet);
        let mut state = self.shared.lock();
        state.lent.retain(|id| *id != lease);
        state.release_slot(&self.shared.changed);
        let result = match result {
            // The child was not lost on its own: `kill_all` cut its channel.
            Err(CoreletError::Crashed { .. } | CoreletError::Protocol(_)) if state.phase == Phase::Killed => {
                state.stats.kills += 1;
                Err(CoreletError::Cancelled)
            }
            Err(error) => {
                if !reusable {
                    match error {
                        CoreletError::Crashed { .. } => state.stats.crashes += 1,
                        CoreletError::Timeout | CoreletError::Protocol(_) => {
                            state.stats.kills += 1;
                        }
                        _ => {}
                    }
                }
                Err(error)
            }
            ok => ok,
        };
        match (reusable, state.phase) {
            (true, Phase::Open) if !worn_out => state.idle.push(corelet),
            (true, Phase::Open | Phase::Closing) => {
                if worn_out {
                    state.stats.recycles += 1;
                }
                drop(state);
                self.keeper.retire(corelet);
            }
            (true, Phase::Killed) => {
                // `kill_all` ran while this request finished; the child goes like the others.
                state.stats.kills += 1;
                drop(state);
                corelet.kill_now();
            }
            // Already killed and reaped.
            (false, _) => drop(state),
        }
        result
    }
}

impl Drop for CoreletPool {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl Shared {
    /// Locks the state; see [`State`] for why poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change until `deadline`; returns the guard and whether time ran out.
    ///
    /// Counts itself in `waiters` meanwhile: `release_slot` notifies only when someone waits.
    fn wait<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, State>, bool) {
        let left = match deadline {
            None => None,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) => Some(left),
                None => return (state, true),
            },
        };
        state.waiters += 1;
        let mut state = match left {
            None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            Some(left) => self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0,
        };
        state.waiters -= 1;
        // Spurious wake-ups and real changes look alike; the caller re-checks its condition.
        (state, false)
    }

    /// Retires children idle for longer than the idle timeout (on the keeper thread).
    fn sweep_idle(&self) {
        let timeout = self.config.idle_timeout;
        let expired: Vec<Corelet> = {
            let mut state = self.lock();
            let (expired, kept) =
                std::mem::take(&mut state.idle).into_iter().partition(|c| c.last_used().elapsed() >= timeout);
            state.idle = kept;
            state.stats.idle_exits += expired.len() as u64;
            expired
        };
        for corelet in expired {
            corelet.retire();
        }
    }
}

impl State {
    /// Records `corelet` as lent (its slot is already counted in `busy`); returns the lease
    /// number.
    fn lend(&mut self) -> u64 {
        let lease = self.next_lease;
        self.next_lease += 1;
        self.lent.push(lease);
        lease
    }

    /// Gives back a slot and wakes the waiters (for a free slot, or for `busy` to reach zero).
    fn release_slot(&mut self, changed: &Condvar) {
        debug_assert!(self.busy > 0, "released a corelet slot that was not taken");
        self.busy -= 1;
        if self.waiters > 0 {
            changed.notify_all();
        }
    }
}

/// Returns `true` if `corelet` should be retired rather than serve again.
///
/// The CPU limit (`RLIMIT_CPU`) counts over a child's whole life, not per request. Retiring a
/// child once it has used half its CPU seconds guarantees every request at least the other
/// half, instead of killing an innocent request that happens to cross a budget spent by others.
fn is_worn_out(config: &CoreletConfig, corelet: &Corelet) -> bool {
    config.max_requests.is_some_and(|max| corelet.served() >= max)
        || config.max_resident.is_some_and(|max| corelet.resident_bytes().is_ok_and(|bytes| bytes > max))
        || config.cpu_seconds.is_some_and(|limit| {
            corelet.cpu_time().is_ok_and(|used| used.as_secs_f64() * 2.0 >= limit as f64)
        })
}

/// Returns the pause after `failures` failed starts in a row: doubling from `start_backoff`,
/// capped at `max_start_backoff`.
fn backoff(config: &CoreletConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    config.start_backoff.saturating_mul(1 << doublings).min(config.max_start_backoff)
}
