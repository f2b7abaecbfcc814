//! A timer's state, shared by its [`TimerThread`](super::TimerThread) handle and the
//! scheduler, and what happens when it fires.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::cron::CronSchedule;
use super::scheduler::Refusal;
use crate::bus::Shared;
use crate::error::PublishError;
use crate::event::Event;
use crate::pool::Admission;

/// How long a cron timer sleeps at most before it looks at the wall clock again, so that a
/// clock set forward or back delays a firing by at most this much.
const CRON_RECHECK: Duration = Duration::from_secs(60);

/// When a timer fires.
#[derive(Debug)]
pub(crate) enum Schedule {
    /// Every `interval` from the start, or once after it.
    Every { interval: Duration, run_once: bool },
    /// At the times a cron expression matches, in UTC.
    Cron(Box<CronSchedule>),
}

/// What the scheduler should do with a timer after a firing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wake it again at this instant.
    At(Instant),
    /// It is finished or stopped; drop the entry.
    Done,
}

#[derive(Debug, Default)]
struct TickerState {
    /// Bumped by every start and stop. The scheduler's entries carry the generation they were
    /// made for, so a stopped (or restarted) timer's old entry is recognised and dropped when
    /// it comes due: `stop` never searches the heap.
    generation: u64,
    running: bool,
    /// Firings so far, including those whose publish failed (but not one refused because the
    /// bus shut down).
    ticks: u64,
    /// The instant the next firing is scheduled for, while running.
    next: Option<Instant>,
    /// For cron timers: the wall-clock time of the next firing.
    cron_next: Option<DateTime<Utc>>,
    /// The last publish failed. Only the first failure of a streak is a warning, so that a
    /// fast timer without a handler does not flood the log.
    failing: bool,
}

/// A timer: its event, its schedule and its state.
///
/// The state's lock is held while the timer fires, so [`stop`](Self::stop) returning means no
/// firing is under way or will follow.
#[derive(Debug)]
pub(crate) struct Ticker {
    event: Event,
    schedule: Schedule,
    state: Mutex<TickerState>,
}

impl Ticker {
    pub(crate) fn new(event: Event, schedule: Schedule) -> Self {
        Ticker { event, schedule, state: Mutex::new(TickerState::default()) }
    }

    pub(crate) fn event(&self) -> &Event {
        &self.event
    }

    pub(crate) fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Schedules the first firing, unless the timer runs already.
    pub(crate) fn start(self: &Arc<Self>, shared: &Arc<Shared>) {
        let mut state = self.lock();
        if state.running {
            return;
        }
        let now = Instant::now();
        let first = match &self.schedule {
            Schedule::Every { interval, .. } => now.checked_add(*interval),
            Schedule::Cron(cron) => {
                state.cron_next = cron.next_after(Utc::now());
                state.cron_next.map(|at| wake_for(at, now))
            }
        };
        let Some(first) = first else {
            tracing::warn!(
                r#type = self.event.event_type(),
                "busbar: timer not started: it would never fire"
            );
            return;
        };
        state.generation += 1;
        // The scheduler's lock is taken inside this timer's lock, never the other way round.
        match shared.scheduler().add_timer(shared, Arc::clone(self), state.generation, first) {
            Ok(()) => {
                state.running = true;
                state.next = Some(first);
            }
            Err(reason @ Refusal::Closing) => {
                tracing::info!(r#type = self.event.event_type(), "busbar: timer not started: {reason}");
            }
            Err(reason @ (Refusal::Spawn(_) | Refusal::InCorelet(_))) => {
                tracing::error!(r#type = self.event.event_type(), "busbar: timer not started: {reason}");
            }
        }
    }

    /// Stops the timer; waits for a firing under way. Idempotent.
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        if state.running {
            state.generation += 1;
            state.running = false;
            state.next = None;
        }
    }

    /// Stops the timer because its bus shut down, unless it was stopped or restarted since
    /// the scheduler's entry was made. Returns `true` if it was running.
    pub(crate) fn stop_for_shutdown(&self, generation: u64) -> bool {
        let mut state = self.lock();
        if state.generation != generation || !state.running {
            return false;
        }
        state.running = false;
        state.next = None;
        tracing::debug!(r#type = self.event.event_type(), "busbar: timer stopped: the bus was shut down");
        true
    }

    pub(crate) fn is_running(&self) -> bool {
        self.lock().running
    }

    pub(crate) fn ticks(&self) -> u64 {
        self.lock().ticks
    }

    /// The instant of the next firing, while running.
    pub(crate) fn next_firing(&self) -> Option<Instant> {
        self.lock().next
    }

    /// Fires the timer for the entry of `generation` due at `due`, and says when to wake it next.
    ///
    /// Called by the scheduler thread, never under the scheduler's lock.
    pub(crate) fn fire(&self, shared: &Arc<Shared>, generation: u64, due: Instant) -> Next {
        let mut state = self.lock();
        if state.generation != generation || !state.running {
            return Next::Done; // stopped or restarted since this entry was made
        }
        let now = Instant::now();
        if let Schedule::Cron(_) = self.schedule {
            // The wall clock decides; the monotonic wake-up was only an estimate of it.
            if let Some(at) = state.cron_next.filter(|at| *at > Utc::now()) {
                state.next = Some(wake_for(at, now));
                return Next::At(wake_for(at, now));
            }
        }
        if !self.publish(shared, &mut state) {
            state.running = false;
            state.next = None;
            return Next::Done;
        }
        let next = match &self.schedule {
            Schedule::Every { run_once: true, .. } => None,
            Schedule::Every { interval, run_once: false } => next_tick(due, *interval, now),
            Schedule::Cron(cron) => {
                // After the time just due, or after now if the clock jumped: missed times are skipped.
                let after = state.cron_next.map_or_else(Utc::now, |at| at.max(Utc::now()));
                state.cron_next = cron.next_after(after);
                state.cron_next.map(|at| wake_for(at, now))
            }
        };
        state.next = next;
        match next {
            Some(next) => Next::At(next),
            None => {
                state.running = false;
                Next::Done
            }
        }
    }

    /// Publishes a fresh copy of the event. Returns `false` if the timer must stop: its bus
    /// shut down. Other failures (no handler, invalid event) are logged and the timer keeps
    /// ticking, since a handler may be registered later.
    fn publish(&self, shared: &Arc<Shared>, state: &mut TickerState) -> bool {
        // The scheduler thread must never wait for room in the queue. A periodic timer faster
        // than its handlers must not grow the queue without bound: its tick is refused like a
        // `try_publish` when the queue is full, or when the events of its type waiting for a
        // rate-limit slot (held outside the queue) and the queued ones fill it, and logged
        // below with the other failed firings. A run-once or cron firing is queued past the
        // capacity instead: it is one of few, and dropping it would lose the only run.
        let periodic = matches!(self.schedule, Schedule::Every { run_once: false, .. });
        if periodic && shared.rate_limit_backlog_full(self.event.event_type()) {
            state.ticks += 1;
            if !std::mem::replace(&mut state.failing, true) {
                tracing::warn!(
                    r#type = self.event.event_type(),
                    "busbar: a timer's tick was skipped: its events wait for rate-limit slots as many as the queue holds; the timer keeps ticking"
                );
            }
            return true;
        }
        let admission = if periodic { Admission::Try } else { Admission::Force };
        match shared.publish_at(self.event.fresh_copy(), Instant::now(), admission) {
            Ok(_handle) => {
                state.ticks += 1;
                state.failing = false;
                true
            }
            Err(PublishError::ShutDown(_)) => {
                tracing::info!(
                    r#type = self.event.event_type(),
                    "busbar: timer stopped: the bus was shut down"
                );
                false
            }
            Err(error) => {
                state.ticks += 1;
                if !std::mem::replace(&mut state.failing, true) {
                    tracing::warn!(%error, "busbar: a timer's event was not published; the timer keeps ticking");
                } else {
                    tracing::debug!(%error, "busbar: a timer's event was not published");
                }
                true
            }
        }
    }

    // Only bus code runs under this lock and every update leaves the state consistent, so a
    // poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, TickerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Returns the firing after the one due at `due`, for a periodic timer: `due + interval`.
///
/// The schedule is a fixed grid from the start, `start + k × interval`, so wake-up latency
/// never accumulates. If the scheduler fell behind by a whole interval or more (a stalled
/// machine, thousands of timers due together), the ticks it missed are skipped rather than
/// fired in a burst: the next firing is the first grid point after `now`. `None` if the clock
/// cannot represent it.
pub(crate) fn next_tick(due: Instant, interval: Duration, now: Instant) -> Option<Instant> {
    let next = due.checked_add(interval)?;
    if next > now {
        return Some(next);
    }
    let missed = now.saturating_duration_since(due).as_nanos() / interval.as_nanos().max(1);
    tracing::debug!(missed, "busbar: a periodic timer fell behind; skipping the missed ticks");
    let offset = interval.as_nanos().checked_mul(missed + 1)?;
    let offset = Duration::new(u64::try_from(offset / 1_000_000_000).ok()?, (offset % 1_000_000_000) as u32);
    due.checked_add(offset)
}

/// Returns the instant at which to wake for the wall-clock time `at`: its estimate on the
/// monotonic clock, but no later than [`CRON_RECHECK`] from now.
fn wake_for(at: DateTime<Utc>, now: Instant) -> Instant {
    let until = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(CRON_RECHECK);
    now + until
}
