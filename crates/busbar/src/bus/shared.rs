//! The state every handle of one bus shares, and the operations behind `EventBus`'s methods.

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use super::flight::Flight;
use super::RunHere;
use crate::attempt;
use crate::backoff::RetryBackoff;
use crate::barrier;
use crate::context;
use crate::corelet::{ChildLink, CoreletConfig, CoreletPool, CoreletStats};
use crate::error::{InvalidEventError, NoHandlerAvailableError, PublishError};
use crate::event::{Event, MAX_TIMEOUT};
use crate::factory::{EventFactory, Registration};
use crate::handle::{EventHandle, ResultSender};
use crate::mode::cmd::{RunOptions, RunningCommands};
use crate::mode::{self, ExecutionMode};
use crate::pool::{Admission, Job, Pool, PushError, Started};
use crate::rate_limit::RateLimits;
use crate::result::{ErrorKind, EventResult};
use crate::stats::{BusStats, Counters};
use crate::tally::Step;
use crate::timer::{Refusal, Scheduler};

/// How long `close` waits, where the system refused its barrier, before the counts may be read:
/// far longer than a store takes to leave a CPU's store buffer.
const STORE_BUFFER_DRAIN: Duration = Duration::from_millis(1);

pub(crate) struct Shared {
    factory: EventFactory,
    pool: Pool,
    backoff: RetryBackoff,
    /// Set by any shutdown: publishing is refused from then on.
    closed: AtomicBool,
    /// Set by `shutdown_now`: contexts report cancellation, no more retries.
    killed: AtomicBool,
    /// Accepted queued events without a result yet. `join` waits for these and the sync events
    /// in flight (counted in `counters`, see [`Counters`]) to reach zero: see `in_flight()`.
    flight: Flight,
    idle_lock: Mutex<()>,
    idle: Condvar,
    /// Threads in `join` waiting for `in_flight()` to reach zero. Finishing an event wakes them
    /// only when it does, so neither the common case nor a draining queue costs a syscall per
    /// event.
    joiners: AtomicUsize,
    /// Threads in `join` inside sync handlers, waiting for a count above zero (their own
    /// events). Rare; woken on every finish.
    nested_joiners: AtomicUsize,
    /// Handlers whose threads wait in a nested `join`, summed over those joins. They cannot
    /// finish before their join returns, so a nested join does not wait for them: two sync
    /// handlers joining on two threads would otherwise wait for each other forever.
    blocked_in_join: AtomicUsize,
    counters: Counters,
    /// How cmd events run their programs.
    command_options: RunOptions,
    /// The programs of cmd events running now, for `shutdown_now` to kill.
    running_commands: RunningCommands,
    /// How corelet events' processes are started and limited.
    corelet_config: CoreletConfig,
    /// The corelet pool, created by the first corelet event (it starts a thread). A pool that
    /// cannot be set up is remembered as the reason, given to every corelet event.
    corelets: OnceLock<Result<CoreletPool, String>>,
    /// Set in a corelet child: events published there go to the parent's bus.
    forward: Option<ChildLink>,
    /// Serialises graceful shutdowns: a second caller waits for the first to finish.
    shutdown_lock: Mutex<()>,
    /// Timers, and accepted events held until their instant (`publish_after`, rate limits).
    scheduler: Scheduler,
    rate_limits: RateLimits,
}

thread_local! {
    /// The bus whose pool this thread works for (its `Shared` address), or 0.
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as a worker of `shared` for as long as the guard lives.
pub(crate) fn enter_worker(shared: &Arc<Shared>) -> WorkerGuard {
    WORKER_OF.with(|worker_of| worker_of.set(shared.address()));
    WorkerGuard
}

pub(crate) struct WorkerGuard;

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        WORKER_OF.with(|worker_of| worker_of.set(0));
    }
}

/// Why `accept` refused an event. The event itself stays with the caller, which puts it into
/// the [`PublishError`] only if there is one.
enum Rejection {
    Invalid(String),
    NoHandler,
    ShutDown,
}

impl Rejection {
    fn into_error(self, event: Event) -> PublishError {
        match self {
            Rejection::Invalid(reason) => InvalidEventError::new(reason, event).into(),
            Rejection::NoHandler => NoHandlerAvailableError::new(event).into(),
            Rejection::ShutDown => PublishError::ShutDown(Box::new(event)),
        }
    }
}

impl Shared {
    pub(super) fn new(
        factory: EventFactory,
        threads: usize,
        queue_capacity: usize,
        backoff: RetryBackoff,
        mut corelet_config: CoreletConfig,
        command_options: RunOptions,
    ) -> Self {
        // "Default: the thread count" for the corelet pool.
        corelet_config.pool_size.get_or_insert(threads);
        Shared {
            factory,
            pool: Pool::new(threads, queue_capacity),
            backoff,
            closed: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            flight: Flight::default(),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
            joiners: AtomicUsize::new(0),
            nested_joiners: AtomicUsize::new(0),
            blocked_in_join: AtomicUsize::new(0),
            counters: Counters::new(),
            command_options,
            running_commands: RunningCommands::default(),
            corelet_config,
            corelets: OnceLock::new(),
            forward: None,
            shutdown_lock: Mutex::new(()),
            scheduler: Scheduler::new(),
            rate_limits: RateLimits::new(),
        }
    }

    pub(crate) fn factory(&self) -> &EventFactory {
        &self.factory
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn backoff(&self) -> &RetryBackoff {
        &self.backoff
    }

    pub(crate) fn command_options(&self) -> &RunOptions {
        &self.command_options
    }

    pub(crate) fn running_commands(&self) -> &RunningCommands {
        &self.running_commands
    }

    /// Makes this the bus of a corelet child: publishing forwards to the parent.
    pub(super) fn forward_to(&mut self, link: ChildLink) {
        self.forward = Some(link);
    }

    /// Returns the corelet pool, creating it on first use.
    pub(crate) fn corelets(&self) -> Result<&CoreletPool, &str> {
        let pool = self.corelets.get_or_init(|| {
            CoreletPool::new(self.corelet_config.clone())
                .map_err(|error| format!("cannot start corelets: {error}"))
        });
        let pool = pool.as_ref().map_err(String::as_str)?;
        // `shutdown_now` kills the pool it finds; one created while it looked (or after) it
        // cannot find. Both sides fence between their write (the pool, the kill flag) and their
        // read of the other's, so at least one of them sees the other: this one kills it here.
        fence(Ordering::SeqCst);
        if self.is_killed() {
            pool.kill_all();
        }
        Ok(pool)
    }

    /// How long a corelet gets between the graceful signal and SIGKILL.
    pub(crate) fn corelet_kill_grace(&self) -> Duration {
        self.corelet_config.kill_grace
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Returns how many accepted events have no result yet, or possibly more (never fewer) if
    /// sync events start meanwhile.
    pub(crate) fn in_flight(&self) -> usize {
        let sync = usize::try_from(self.counters.sync_in_flight()).unwrap_or(usize::MAX);
        self.flight.count().saturating_add(sync)
    }

    /// Identifies this bus in thread-local bookkeeping.
    pub(crate) fn address(&self) -> usize {
        self as *const Shared as usize
    }

    /// Why `what` is refused in a corelet child, or `None` in any other process.
    ///
    /// A child's own bus is private to it and ends with it: an event it held, or an attempt it
    /// ran, would be lost when the child is retired, and the parent's `join` and shutdown would
    /// never see it. Plain publishes are forwarded to the parent; these are refused.
    pub(crate) fn not_in_a_corelet(&self, what: &str) -> Option<String> {
        self.forward.as_ref().map(|_| {
            format!(
                "{what} is not available inside a corelet: the child's bus is private to it and \
                 ends with it; publish a follow-up (it runs on the parent's bus) and do this there"
            )
        })
    }

    /// Returns `true` if the current thread is one of this bus's pool workers.
    fn is_own_worker(&self) -> bool {
        WORKER_OF.with(Cell::get) == self.address()
    }

    pub(crate) fn publish(
        self: &Arc<Self>,
        mut event: Event,
        admission: Admission,
    ) -> Result<EventHandle, PublishError> {
        if let Some(link) = &self.forward {
            // In a corelet child: the parent's bus accepts it (or logs why not).
            // No handler check here: the event runs on the parent's bus, whose handlers may
            // differ from this process's (e.g. registered there with `subscribe`).
            return match self.check(&mut event) {
                Ok(()) => mode::forward_from_child(link, event),
                Err(rejection) => Err(rejection.into_error(event)),
            };
        }
        // The event stays where it is until it runs or is queued: a sync publish would
        // otherwise copy it in and out of every step's `Result`.
        let queued = event.mode().is_queued();
        if queued {
            // First, so that the fetches overlap the checks and lookups below.
            self.pool.queue.prepare_push();
        }
        let registration = match self.accept(&mut event, queued) {
            Ok(registration) => registration,
            Err(rejection) => return Err(rejection.into_error(event)),
        };
        // Reserved now, so that events published together get successive slots.
        let slot = self.rate_limits.reserve(event.event_type());
        if !queued {
            return Ok(self.run_sync(event, registration.as_deref(), slot));
        }
        match slot {
            Some(slot) => self.hold(event, registration, slot, true),
            None => self.enqueue(event, registration, admission),
        }
    }

    /// Runs an accepted sync event on this thread, after its rate-limit `slot` if it has one.
    fn run_sync(
        self: &Arc<Self>,
        event: Event,
        registration: Option<&Registration>,
        slot: Option<Instant>,
    ) -> EventHandle {
        // Not shared: the event runs on this thread, and `run_inline` keeps it in place.
        let result = match slot {
            Some(slot) if !self.rate_limits.wait_until(slot, || self.is_killed()) => {
                attempt::finish(attempt::cancelled(), &event, 0, Instant::now())
            }
            _ => attempt::run_inline(self, registration, event),
        };
        // Counted in flight by `accept`; this takes it out (see `Counters`).
        self.counters.record_sync_result(&result);
        self.wake_joiners_after_sync();
        EventHandle::ready(result)
    }

    /// Checks an event, links it to the handler running on this thread and counts it in
    /// flight: everything publishing does before the event can run.
    ///
    /// A `queued` event is counted in `flight` and published once queued; any other runs on
    /// this thread at once and is counted as a started sync event (published and in flight).
    fn accept(&self, event: &mut Event, queued: bool) -> Result<Option<Arc<Registration>>, Rejection> {
        self.check(event)?;
        let registration = match event.mode().needs_handler() {
            true => match self.factory.lookup(event.event_type()) {
                Some(registration) => Some(registration),
                None => return Err(Rejection::NoHandler),
            },
            false => None,
        };
        // Counted before it can run, so `join` never misses it.
        if queued {
            // A race with `close` is settled where the event is queued: under the queue's lock,
            // or by the scheduler for a held or delayed event.
            if self.is_closed() {
                return Err(Rejection::ShutDown);
            }
            self.flight.enter();
        } else {
            self.start_sync()?;
        }
        Ok(registration)
    }

    /// Counts a sync event as started (published and in flight), unless the bus is closed.
    ///
    /// A sync event meets no queue that `close` shuts, so this look at `closed` is all that
    /// refuses it, and it must not miss a shutdown whose `join` misses the event. Looking
    /// first and counting after left a gap: a `shutdown` between the two found nothing in
    /// flight and returned, and the event ran after it. So the publish first counts that it
    /// is checking (which `join` waits for, and `published` leaves out), then looks: a write
    /// and then a read, against `close`'s write of `closed` and then `join`'s read of the
    /// counts, paired through the asymmetric barrier as finishes and joiners are (see
    /// `wake_joiners`; `close` passes the heavy half). Either this sees the bus closed, or the
    /// shutdown's `join` sees the check and waits for it, and then for the event.
    fn start_sync(&self) -> Result<(), Rejection> {
        let counts = self.counters.sync_counts();
        counts.count(Step::CheckBegun);
        barrier::light();
        if self.is_closed() {
            counts.count(Step::CheckEnded);
            // A `join` may wait for this check, as for a finish.
            self.wake_joiners_after_sync();
            return Err(Rejection::ShutDown);
        }
        // Started before the check ends, so that the event is in flight throughout.
        counts.count(Step::Started);
        counts.count(Step::CheckEnded);
        Ok(())
    }

    /// [`accept`](Self::accept) for callers that queue the event, passing it on by value.
    fn accept_owned(&self, mut event: Event) -> Result<(Event, Option<Arc<Registration>>), PublishError> {
        match self.accept(&mut event, true) {
            Ok(registration) => Ok((event, registration)),
            Err(rejection) => Err(rejection.into_error(event)),
        }
    }

    /// Refuses a malformed event and links it to the handler running on this thread.
    ///
    /// Whether a handler exists is the caller's check: `accept` looks the handler up once and
    /// keeps it.
    fn check(&self, event: &mut Event) -> Result<(), Rejection> {
        if let Some(reason) = event.invalid_reason() {
            return Err(Rejection::Invalid(reason));
        }
        if let Some(parent) = context::current_parent() {
            event.inherit_from(parent);
        }
        Ok(())
    }

    fn enqueue(
        self: &Arc<Self>,
        event: Event,
        registration: Option<Arc<Registration>>,
        admission: Admission,
    ) -> Result<EventHandle, PublishError> {
        let (mut handle, reply) = EventHandle::pending(event.id());
        // A corelet event's waiter usually runs it itself (`RunHere`): no worker is woken for
        // it, and one that nobody takes starts at the watchdog's next sweep.
        let wake = match event.mode() {
            ExecutionMode::Corelet => {
                handle.allow_run_here(RunHere::new(self));
                Wake::Deferred
            }
            ExecutionMode::Thread => {
                handle.watch_for_result();
                Wake::Now
            }
            ExecutionMode::Sync | ExecutionMode::Cmd => Wake::Now,
        };
        self.enqueue_job(handle, Job::new(event, registration, reply), admission, wake)
    }

    /// Queues the job of an accepted event; `handle` is the caller's side of its result.
    fn enqueue_job(
        self: &Arc<Self>,
        handle: EventHandle,
        job: Job,
        mut admission: Admission,
        wake: Wake,
    ) -> Result<EventHandle, PublishError> {
        // A worker waiting for room that only workers can make would deadlock the pool.
        if self.is_own_worker() {
            admission = Admission::Force;
        }
        if let Err(error) = self.pool.ensure_started(self) {
            // Accepted, but nothing can run it: resolve it at once with the reason.
            self.counters.record_published();
            let message = format!("could not start the bus's worker threads: {error}");
            self.resolve(job, EventResult::failed(ErrorKind::Internal, message), None);
            return Ok(handle);
        }
        let pushed = match wake {
            Wake::Now => self.pool.queue.push(job, admission),
            Wake::Deferred => self.pool.queue.push_deferred(job, admission).map(|schedule_sweep| {
                if schedule_sweep {
                    self.pool.watchdog().expect_deferred();
                }
            }),
        };
        match pushed {
            Ok(()) => {
                self.counters.record_published();
                Ok(handle)
            }
            Err(refused) => {
                self.not_accepted();
                let (was_full, job) = match refused {
                    PushError::Full(job) => (true, job),
                    PushError::Closed(job) => (false, job),
                };
                // Nobody else holds the event yet, so this does not clone.
                let event = Box::new(job.into_event());
                Err(if was_full { PublishError::Full(event) } else { PublishError::ShutDown(event) })
            }
        }
    }

    /// Delivers the final result of a queued job.
    ///
    /// `started` is when its first attempt started, if one did.
    pub(crate) fn resolve(&self, job: Job, result: EventResult, started: Option<Instant>) {
        let ended = Instant::now();
        let started = started.or(job.resume.as_ref().map(|resume| resume.started)).unwrap_or(ended);
        self.resolve_at(job, result, started, ended);
    }

    /// [`resolve`](Self::resolve) for a caller that knows when the job's first attempt
    /// `started` and its last one `ended`: a worker reads the clock then anyway, to time the
    /// attempt, and reading it again here cost a clock read per event.
    pub(crate) fn resolve_at(&self, job: Job, result: EventResult, started: Instant, ended: Instant) {
        let result = attempt::finish_at(result, job.event(), job.attempts_made, started, ended);
        self.deliver(job.reply, result);
    }

    /// [`resolve_at`](Self::resolve_at) for a job whose attempt a worker started.
    pub(crate) fn resolve_started_at(
        &self,
        job: Started,
        result: EventResult,
        started: Instant,
        ended: Instant,
    ) {
        let result = attempt::finish_at(result, &job.event, job.attempts_made, started, ended);
        self.deliver(job.reply, result);
    }

    /// Counts a finished event's `result` and sends it to the event's handle.
    fn deliver(&self, reply: ResultSender, result: EventResult) {
        self.counters.record_result(&result);
        // The receiver may be gone (handle dropped): the event still counts as finished.
        let _ = reply.send(result);
        // Only now, so that after `join` every handle holds its result.
        self.leave_flight();
    }

    /// Counts one accepted queued event as finished and wakes joiners if any wait.
    fn leave_flight(&self) {
        self.flight.leave();
        self.wake_joiners();
    }

    /// Wakes joiners after an event left flight, if they wait for what is left.
    ///
    /// # How `join` never misses a finish
    ///
    /// A finishing event writes its count and then reads the joiner counts; a joiner writes
    /// its count and then reads the in-flight counts. With a full barrier between the write
    /// and the read on both sides, at least one of the two sees the other's write: either the
    /// finisher looks further, or the joiner sees the finish. The joiner then checks and waits
    /// under `idle_lock`, which the finisher takes to wake it, so nothing falls between its
    /// check and its wait.
    ///
    /// - A queued event's count is a `SeqCst` read-modify-write, itself a full barrier.
    /// - A sync event's count is a plain store into its thread's tally (see
    ///   [`SyncTallies`](crate::tally)), with the light half of an asymmetric barrier after
    ///   it (`wake_joiners_after_sync`); `join` passes the heavy half before it sleeps (see
    ///   `barrier`).
    ///
    /// A finisher that sees a joiner wakes it only when nothing is left in flight, so that a
    /// draining queue costs no syscall per event. Of two events finishing together, the one
    /// that reads the counts last sees both finishes, and so wakes the joiner: the sync tallies
    /// are read under their mutex, and each finisher's count comes before its read of them, so
    /// the later reader sees the earlier finisher's count whether it is in a tally or in
    /// `flight` (read after the tallies, see `in_flight()`). Reading the tallies without that
    /// lock would break this. `in_flight()` may count events that start meanwhile; if that keeps
    /// it from waking a joiner, their own finishing wakes it.
    fn wake_joiners(&self) {
        let wake = (self.joiners.load(Ordering::SeqCst) > 0 && self.in_flight() == 0)
            || self.nested_joiners.load(Ordering::SeqCst) > 0;
        if wake {
            self.notify_joiners();
        }
    }

    /// [`wake_joiners`](Self::wake_joiners) after a sync event's result was counted.
    fn wake_joiners_after_sync(&self) {
        barrier::light();
        self.wake_joiners();
    }

    fn notify_joiners(&self) {
        // Take the lock so a joiner between its check and its wait cannot miss this.
        let _guard = self.idle_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.idle.notify_all();
    }

    /// Takes back the count of an event that `accept` counted but that was refused after all
    /// (the queue closed or was full).
    ///
    /// It may be the last count: a `join` (a graceful shutdown's, say) that began in between
    /// waits for it to drop, so it wakes joiners exactly as a finished event does.
    fn not_accepted(&self) {
        self.leave_flight();
    }

    /// Waits until every accepted event has its result, except those whose handlers are
    /// running on this very thread (a sync handler calling `join` must not wait for itself)
    /// and, for a join inside a handler, those whose threads are in such a join too.
    pub(crate) fn join(&self) {
        if self.is_own_worker() {
            tracing::warn!(
                "busbar: join() called from a pool handler returns at once: \
                 it would wait for work that needs this worker"
            );
            return;
        }
        let own = context::handlers_running_here(self.address());
        let joiners = if own == 0 { &self.joiners } else { &self.nested_joiners };
        joiners.fetch_add(1, Ordering::SeqCst);
        // Whether this join passed the heavy half of the barrier sync finishers pass (see
        // `wake_joiners`); only a join about to sleep needs it. Should the system refuse it, a
        // finish may go unseen until the next check: check every millisecond rather than wait
        // for a wake-up that may not come.
        let mut paired: Option<bool> = None;
        let mut guard = self.idle_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if own > 0 {
            // Under the lock, so that a nested joiner between its check and its wait cannot
            // miss that it need not wait for these any more.
            self.blocked_in_join.fetch_add(own, Ordering::SeqCst);
            self.idle.notify_all();
        }
        // `blocked_in_join` includes `own`; a top-level join waits for everything.
        let bound = || if own == 0 { 0 } else { self.blocked_in_join.load(Ordering::SeqCst) };
        while self.in_flight() > bound() {
            guard = match paired {
                // Without the lock: finishers take it to wake joiners. Then look again.
                None => {
                    drop(guard);
                    paired = Some(barrier::heavy());
                    self.idle_lock.lock().unwrap_or_else(PoisonError::into_inner)
                }
                Some(true) => self.idle.wait(guard).unwrap_or_else(PoisonError::into_inner),
                Some(false) => {
                    let waited = self.idle.wait_timeout(guard, Duration::from_millis(1));
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        if own > 0 {
            self.blocked_in_join.fetch_sub(own, Ordering::SeqCst);
        }
        drop(guard);
        joiners.fetch_sub(1, Ordering::SeqCst);
    }

    /// Refuses new events; queued ones still run. Does not wait, but for the barrier below.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // The heavy half of the barrier a sync publish passes between counting its check and
        // looking at `closed` (see `start_sync`): a `join` after this sees every publish that
        // did not see the bus closed.
        if !barrier::heavy() {
            // The system refused it (it logs why): nothing then makes the publisher's count
            // visible before our read but the time its store takes to leave its CPU's store
            // buffer, nanoseconds. Wait far longer than that before anyone reads the counts.
            thread::sleep(STORE_BUFFER_DRAIN);
        }
        // Delayed events keep the queue open: the scheduler closes it after the last one.
        if self.scheduler.close() {
            self.pool.queue.close();
        }
    }

    pub(crate) fn shutdown(self: &Arc<Self>) {
        self.close();
        if self.is_own_worker() {
            tracing::warn!(
                "busbar: shutdown() called from one of the bus's own handlers does not wait for the pool"
            );
            return;
        }
        let _serialised = match self.shutdown_lock.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Another shutdown is under way. Wait for it to finish, unless this is a handler:
            // that shutdown may be waiting for this very handler to return.
            Err(TryLockError::WouldBlock) if context::handlers_running_here(self.address()) > 0 => {
                tracing::warn!(
                    "busbar: shutdown() called from a handler while another shutdown is under way \
                     returns at once: that shutdown may be waiting for this handler"
                );
                return;
            }
            Err(TryLockError::WouldBlock) => {
                self.shutdown_lock.lock().unwrap_or_else(PoisonError::into_inner)
            }
        };
        self.join();
        self.pool.stop_and_join();
        if let Some(Ok(corelets)) = self.corelets.get() {
            corelets.shutdown();
        }
        self.scheduler.stop_and_join();
    }

    pub(crate) fn shutdown_now(&self) {
        // Closed first: whoever sees a result cancelled by the kill also sees the bus shut
        // down (`is_shut_down`), and can tell it from a handler's own `Cancelled`.
        self.close();
        self.killed.store(true, Ordering::SeqCst);
        // Held events are cancelled below, so the queue need not stay open for them.
        self.pool.queue.close();
        self.rate_limits.wake_waiters();
        // The watchdog may be requeueing a timed-out attempt right now: stop it before draining.
        self.pool.stop_watchdog();
        for job in self.scheduler.cancel_held() {
            self.resolve(job, attempt::cancelled(), None);
        }
        for (job, started) in self.pool.cancel_all() {
            self.resolve(job, attempt::cancelled(), started);
        }
        // Pairs with the fence in `corelets`: a pool created meanwhile kills itself there.
        fence(Ordering::SeqCst);
        if let Some(Ok(corelets)) = self.corelets.get() {
            corelets.kill_all();
        }
        // Now, not when their attempts next look: a host that exits after this returns must
        // not leave them running.
        self.running_commands.kill_all();
        self.scheduler.stop_and_join();
    }

    pub(crate) fn stats(&self) -> BusStats {
        let corelets = match self.corelets.get() {
            Some(Ok(pool)) => pool.stats(),
            _ => CoreletStats::default(),
        };
        BusStats {
            corelets: corelets.live as u64,
            corelet_spawns: corelets.spawns,
            corelet_start_failures: corelets.start_failures,
            corelet_crashes: corelets.crashes,
            corelet_kills: corelets.kills,
            corelet_recycles: corelets.recycles + corelets.idle_exits,
            in_flight: self.in_flight() as u64,
            queued: self.pool.queue.len() as u64,
            workers: self.pool.live_workers() as u64,
            replaced_workers: self.pool.replaced_workers(),
            ..self.counters.snapshot()
        }
    }
}

// Timers, delayed events and rate-limited events: the bus's side of `crate::timer` and
// `crate::rate_limit`.
impl Shared {
    pub(crate) fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Whether `event_type` has a rate limit and its events waiting for a slot (held outside
    /// the queue), with the events queued, are as many as the queue holds: a periodic timer
    /// then skips its tick (released events enter the queue past its capacity).
    pub(crate) fn rate_limit_backlog_full(&self, event_type: &str) -> bool {
        self.rate_limits.info(event_type).is_some_and(|info| {
            let queued = self.pool.queue.len() as u64;
            info.waiting.saturating_add(queued) >= self.pool.queue.capacity() as u64
        })
    }

    pub(crate) fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    /// Publishes `event` to run on the pool, whatever its mode, at `at` or at its rate-limit
    /// slot if that is later. Timers fire through here with `at` = now.
    pub(crate) fn publish_at(
        self: &Arc<Self>,
        event: Event,
        at: Instant,
        admission: Admission,
    ) -> Result<EventHandle, PublishError> {
        if let Some(reason) = self.not_in_a_corelet("delayed publishing (`publish_after`, `publish_at`)") {
            return Err(InvalidEventError::new(reason, event).into());
        }
        let now = Instant::now();
        let delay = at.saturating_duration_since(now);
        if delay > MAX_TIMEOUT {
            let reason = format!("the delay of {delay:?} is longer than the maximum of one year");
            return Err(InvalidEventError::new(reason, event).into());
        }
        let (event, registration) = self.accept_owned(event)?;
        if at > now {
            // Its rate-limit slot is reserved when it is released, not now: a slot reserved
            // for the future would hold back the events published in between.
            return self.hold(event, registration, at, false);
        }
        match self.rate_limits.reserve(event.event_type()) {
            Some(slot) => self.hold(event, registration, slot, true),
            None => self.enqueue(event, registration, admission),
        }
    }

    /// Publishes `event` to run only attempt number `attempt`, on the pool whatever its mode
    /// (through its type's rate limit, if any); the bus does not retry it.
    pub(crate) fn publish_attempt(
        self: &Arc<Self>,
        event: Event,
        attempt: u32,
    ) -> Result<EventHandle, PublishError> {
        if let Some(reason) = self.not_in_a_corelet("`publish_attempt`") {
            return Err(InvalidEventError::new(reason, event).into());
        }
        if attempt == 0 {
            let reason = "attempt number 0; attempts are numbered from 1".to_owned();
            return Err(InvalidEventError::new(reason, event).into());
        }
        let (event, registration) = self.accept_owned(event)?;
        let slot = self.rate_limits.reserve(event.event_type());
        let (handle, reply) = EventHandle::pending(event.id());
        let job = Job::single_attempt(event, registration, reply, attempt);
        match slot {
            Some(slot) => self.hold_job(handle, job, slot, true),
            None => self.enqueue_job(handle, job, Admission::Block, Wake::Now),
        }
    }

    /// Hands an accepted event to the scheduler until `at`.
    fn hold(
        self: &Arc<Self>,
        event: Event,
        registration: Option<Arc<Registration>>,
        at: Instant,
        reserved: bool,
    ) -> Result<EventHandle, PublishError> {
        let (handle, reply) = EventHandle::pending(event.id());
        self.hold_job(handle, Job::new(event, registration, reply), at, reserved)
    }

    /// Hands the job of an accepted event to the scheduler until `at`.
    fn hold_job(
        self: &Arc<Self>,
        handle: EventHandle,
        job: Job,
        at: Instant,
        reserved: bool,
    ) -> Result<EventHandle, PublishError> {
        match self.scheduler.hold(self, job, at, reserved) {
            Ok(()) => {
                self.counters.record_published();
                Ok(handle)
            }
            Err((job, Refusal::Closing)) => {
                self.not_accepted();
                Err(PublishError::ShutDown(Box::new(job.into_event())))
            }
            Err((job, Refusal::InCorelet(reason))) => {
                self.not_accepted();
                Err(InvalidEventError::new(reason, job.into_event()).into())
            }
            Err((job, refusal @ Refusal::Spawn(_))) => {
                // Accepted, but nothing can hold it: resolve it at once with the reason.
                self.counters.record_published();
                self.resolve(job, EventResult::failed(ErrorKind::Internal, refusal.to_string()), None);
                Ok(handle)
            }
        }
    }

    /// Puts a job the scheduler held on the pool's queue, unless its rate limit makes it wait
    /// longer (`reserved`: it already waited for its slot).
    pub(crate) fn release(self: &Arc<Self>, job: Job, reserved: bool) {
        if !reserved {
            if let Some(slot) = self.rate_limits.reserve(job.event().event_type()) {
                // Refused once `shutdown_now` has cancelled the held jobs: this one was among
                // those the thread was releasing, where it could not find them.
                if let Some(job) = self.scheduler.hold_again(job, slot) {
                    self.resolve(job, attempt::cancelled(), None);
                }
                return;
            }
        }
        if let Err(error) = self.pool.ensure_started(self) {
            let message = format!("could not start the bus's worker threads: {error}");
            return self.resolve(job, EventResult::failed(ErrorKind::Internal, message), None);
        }
        // `Force`: the scheduler never waits for room. Only `shutdown_now` closes the queue
        // while the scheduler holds jobs; then the job is cancelled like the queued ones.
        if let Err(PushError::Closed(job) | PushError::Full(job)) =
            self.pool.queue.push(job, Admission::Force)
        {
            self.resolve(job, attempt::cancelled(), None);
        }
    }
}

/// Whether queueing a job wakes a sleeping worker for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    /// At once.
    Now,
    /// Not now: its waiter will most likely run it (a corelet event); if nobody does, the
    /// watchdog's next sweep wakes a worker (`JobQueue::push_deferred`).
    Deferred,
}
