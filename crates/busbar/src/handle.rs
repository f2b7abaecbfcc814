//! [`EventHandle`]: the publisher's side of one event's result.

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::bus::RunHere;
use crate::event::EventId;
use crate::result::{ErrorKind, EventResult};
use crate::watch::{self, WatchHabit};

/// The sending half of an event's result, held by whoever will resolve the event.
pub(crate) type ResultSender = oneshot::Sender<EventResult>;

/// A handle to the result of a published event.
///
/// Every event the bus accepted ends with exactly one [`EventResult`], so waiting on a handle
/// never hangs forever: timeouts, crashes and [`shutdown_now`](crate::EventBus::shutdown_now)
/// all resolve it. Dropping a handle does not cancel the event; it still runs.
///
/// Async code can `.await` a handle (it implements [`IntoFuture`]) without busbar depending on
/// an async runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
///
/// let bus = EventBus::builder().threads(1).build()?;
/// bus.subscribe("square", handler_fn(|ctx| {
///     let n = ctx.event().data().as_i64().unwrap_or(0);
///     Ok(EventResult::success_with((n * n).into()))
/// }));
///
/// let mut handle = bus.publish(Event::new("square").with_data(7.into()).with_mode(ExecutionMode::Thread))?;
/// let result = handle.wait_timeout(Duration::from_secs(10)).expect("finished in time");
/// assert_eq!(result.data, 49);
/// assert_eq!(handle.wait().data, 49); // the result stays in the handle
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventHandle {
    id: EventId,
    state: State,
    /// Lets `wait` run the event on the waiting thread (see `crate::bus::RunHere`).
    run_here: Option<RunHere>,
    /// Whether `wait` watches for the result before it sleeps (see [`crate::watch`]).
    watch: bool,
}

enum State {
    Pending(oneshot::Receiver<EventResult>),
    Ready(EventResult),
    /// The result was moved out by the handle's future.
    Taken,
}

impl EventHandle {
    /// Creates a handle whose result is delivered later through the returned sender.
    pub(crate) fn pending(id: EventId) -> (EventHandle, ResultSender) {
        let (sender, receiver) = oneshot::channel();
        (EventHandle { id, state: State::Pending(receiver), run_here: None, watch: false }, sender)
    }

    /// Creates a handle that already holds its result (sync mode).
    pub(crate) fn ready(result: EventResult) -> EventHandle {
        EventHandle { id: result.event_id, state: State::Ready(result), run_here: None, watch: false }
    }

    /// Makes [`wait`](Self::wait) watch for the result for a moment before it sleeps: for a
    /// thread-mode event, whose result often comes within microseconds.
    ///
    /// Not for corelet and cmd events: their results need another process to run first, and
    /// a waiter watching for them would only take CPU time from that process.
    pub(crate) fn watch_for_result(&mut self) {
        self.watch = true;
    }

    /// Lets [`wait`](Self::wait) run the event's first attempt on the waiting thread if no
    /// worker has started it yet.
    pub(crate) fn allow_run_here(&mut self, run_here: RunHere) {
        self.run_here = Some(run_here);
    }

    /// Creates a pending handle for the event `id` and the [`EventResolver`] that delivers its
    /// result later.
    ///
    /// This is the hook for code that runs events somewhere other than an [`EventBus`]'s own
    /// pool, such as a transport that sends events to workers on other machines and receives
    /// their results: it hands the handle to its caller, keeps the resolver, and resolves it
    /// when the result arrives. The handle behaves like any other: `wait`, `wait_timeout`,
    /// `try_result` and `.await` all work.
    ///
    /// Whoever holds the resolver owns the promise that the handle gets a result: dropping it
    /// unresolved gives the handle an [`Internal`](ErrorKind::Internal) failure saying the
    /// result was lost, rather than leaving a waiter blocked forever.
    ///
    /// [`EventBus`]: crate::EventBus
    ///
    /// # Examples
    ///
    /// ```
    /// use busbar::{Event, EventHandle, EventResult};
    ///
    /// let event = Event::new("remote.job");
    /// let (handle, resolver) = EventHandle::with_resolver(event.id());
    /// std::thread::spawn(move || resolver.resolve(EventResult::success_with("done".into())));
    /// let result = handle.wait();
    /// assert_eq!(result.data, "done");
    /// assert_eq!(result.event_id, event.id());
    /// ```
    pub fn with_resolver(id: EventId) -> (EventHandle, EventResolver) {
        let (handle, sender) = Self::pending(id);
        (handle, EventResolver { id, sender })
    }

    /// Returns the id of the event.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Returns `true` if the result is available.
    pub fn is_finished(&mut self) -> bool {
        self.try_result().is_some()
    }

    /// Returns the result if it is available, without blocking.
    pub fn try_result(&mut self) -> Option<&EventResult> {
        if let State::Pending(receiver) = &self.state {
            match receiver.try_recv() {
                Ok(result) => self.state = State::Ready(result),
                Err(oneshot::TryRecvError::Empty) => return None,
                Err(oneshot::TryRecvError::Disconnected) => self.state = State::Ready(self.lost()),
            }
        }
        self.ready_ref()
    }

    /// Blocks until the result is available or `timeout` has passed.
    ///
    /// Returns `None` on timeout; the handle can be waited on again. A corelet event may run
    /// on the waiting thread as with [`wait`](Self::wait), if its attempt is sure to end
    /// within `timeout` (its own timeout, the corelet's kill grace and a second to spare).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<&EventResult> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            // Too far in the future to represent: that is waiting without a deadline.
            None => {
                self.run_here_if_next(None);
                self.block();
                self.ready_ref()
            }
        }
    }

    /// Blocks until the result is available or `deadline` is reached.
    ///
    /// Returns `None` if the deadline passed first; the handle can be waited on again. A
    /// corelet event may run on the waiting thread, as with
    /// [`wait_timeout`](Self::wait_timeout).
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<&EventResult> {
        self.run_here_if_next(Some(deadline));
        if let State::Pending(receiver) = &self.state {
            if let Some(result) = watched(self.watch, receiver, Some(deadline)) {
                self.state = State::Ready(result);
                return self.ready_ref();
            }
            match receiver.recv_deadline(deadline) {
                Ok(result) => self.state = State::Ready(result),
                Err(oneshot::RecvTimeoutError::Timeout) => return None,
                Err(oneshot::RecvTimeoutError::Disconnected) => self.state = State::Ready(self.lost()),
            }
        }
        self.ready_ref()
    }

    /// Blocks until the result is available and returns it.
    ///
    /// For a [`Corelet`](crate::ExecutionMode::Corelet) event that no worker has started yet
    /// and that is next in line, the waiting thread sends the event to the corelet and reads
    /// the answer itself instead of waiting for a worker to do it: the round trip then costs
    /// no hand-off between threads. Nothing else changes (priority order, timeout, isolation,
    /// the result); a retry goes back to the pool.
    pub fn wait(mut self) -> EventResult {
        let id = self.id;
        self.run_here_if_next(None);
        match self.state {
            State::Ready(result) => result,
            State::Pending(receiver) => match watched(self.watch, &receiver, None) {
                Some(result) => result,
                None => receiver.recv().unwrap_or_else(|_| lost(id)),
            },
            State::Taken => taken(id),
        }
    }

    /// Runs the event on this thread if it may (see [`wait`](Self::wait)) and can end by
    /// `wait_until`.
    fn run_here_if_next(&mut self, wait_until: Option<Instant>) {
        if let (Some(run_here), State::Pending(_)) = (&self.run_here, &self.state) {
            if run_here.run_if_next(self.id, wait_until) {
                self.run_here = None;
            }
        }
    }

    /// Blocks until a pending result arrives and stores it in the handle.
    fn block(&mut self) {
        if let State::Pending(receiver) = &self.state {
            let watched = watched(self.watch, receiver, None);
            let result = watched.unwrap_or_else(|| receiver.recv_ref().unwrap_or_else(|_| lost(self.id)));
            self.state = State::Ready(result);
        }
    }

    fn ready_ref(&self) -> Option<&EventResult> {
        match &self.state {
            State::Ready(result) => Some(result),
            State::Pending(_) | State::Taken => None,
        }
    }

    fn lost(&self) -> EventResult {
        lost(self.id)
    }
}

/// The other half of a handle made by [`EventHandle::with_resolver`]: delivers the event's
/// result to the handle.
///
/// Resolving consumes the resolver, so a handle gets at most one result. A resolver can be
/// sent to another thread; resolving happens-before the handle's waiter returns with the
/// result.
pub struct EventResolver {
    id: EventId,
    sender: ResultSender,
}

impl EventResolver {
    /// Returns the id of the event this resolver delivers the result of.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Delivers `result` to the handle and wakes whoever waits on it.
    ///
    /// The result's [`event_id`](EventResult::event_id) is set to this resolver's event id.
    /// If the handle was dropped, the result is discarded.
    pub fn resolve(self, mut result: EventResult) {
        result.event_id = self.id;
        // The handle may be gone; the result is then nobody's concern.
        let _ = self.sender.send(result);
    }
}

impl fmt::Debug for EventResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventResolver").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Watches for the result if the handle should (see [`EventHandle::watch_for_result`]) and
/// `deadline` leaves time to; `None` if it did not or nothing came.
fn watched(
    should_watch: bool,
    receiver: &oneshot::Receiver<EventResult>,
    deadline: Option<Instant>,
) -> Option<EventResult> {
    let time_to_watch = deadline
        .is_none_or(|deadline| deadline.saturating_duration_since(Instant::now()) >= watch::WATCH_FOR);
    if should_watch && time_to_watch {
        watch_for_result(receiver)
    } else {
        None
    }
}

/// Watches `receiver` for a result that is about to arrive (see [`crate::watch`]).
///
/// `None` if nothing came in time, or if the sender is gone (the caller's blocking receive
/// then says so).
fn watch_for_result(receiver: &oneshot::Receiver<EventResult>) -> Option<EventResult> {
    let mut result = None;
    let mut look = || match receiver.try_recv() {
        Ok(arrived) => {
            result = Some(arrived);
            true
        }
        Err(oneshot::TryRecvError::Empty) => false,
        Err(oneshot::TryRecvError::Disconnected) => true,
    };
    // `try_with`: a thread-local destructor may wait on a handle after this thread's habit is
    // gone; it then sleeps at once.
    let _gone = WAITING.try_with(|habit| habit.borrow_mut().watch(&mut look));
    result
}

thread_local! {
    /// Whether watching for results has paid off lately on this thread (see [`WatchHabit`]).
    static WAITING: RefCell<WatchHabit> = RefCell::new(WatchHabit::default());
}

/// The result of an event whose sender vanished without resolving it.
///
/// Every path that drops a job resolves it first, so this is a bug in busbar; the handle
/// reports it instead of blocking forever.
fn lost(id: EventId) -> EventResult {
    let mut result = EventResult::failed(ErrorKind::Internal, "the bus lost this event's result".to_owned());
    result.event_id = id;
    result
}

fn taken(id: EventId) -> EventResult {
    let mut result = EventResult::failed(
        ErrorKind::Internal,
        "the result was already taken by awaiting this handle's future".to_owned(),
    );
    result.event_id = id;
    result
}

impl IntoFuture for EventHandle {
    type Output = EventResult;
    type IntoFuture = EventFuture;

    /// Turns the handle into a future of its result, so async code can write `handle.await`.
    fn into_future(self) -> EventFuture {
        EventFuture { handle: self }
    }
}

/// The future of an event's result: what `handle.await` waits on.
///
/// [`EventHandle`] implements [`IntoFuture`] rather than `Future` itself, so that discarding a
/// handle (`let _ = bus.publish(event)?;`, the fire-and-forget pattern) is not mistaken for
/// forgetting to await a future.
///
/// # Examples
///
/// ```
/// use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
///
/// let bus = EventBus::new();
/// bus.subscribe("ping", handler_fn(|_| Ok(EventResult::success_with("pong".into()))));
/// let handle = bus.publish(Event::new("ping").with_mode(ExecutionMode::Thread))?;
/// let result = pollster::block_on(async { handle.await });
/// assert_eq!(result.data, "pong");
/// # Ok::<(), busbar::PublishError>(())
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct EventFuture {
    handle: EventHandle,
}

impl Future for EventFuture {
    type Output = EventResult;

    /// Resolves to the result. Polling again after it resolved yields an `Internal` failure
    /// saying the result was already taken, rather than panicking.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<EventResult> {
        let handle = &mut self.handle;
        let id = handle.id;
        match &mut handle.state {
            State::Pending(receiver) => match Pin::new(receiver).poll(cx) {
                Poll::Ready(result) => {
                    handle.state = State::Taken;
                    Poll::Ready(result.unwrap_or_else(|_| lost(id)))
                }
                Poll::Pending => Poll::Pending,
            },
            State::Ready(_) | State::Taken => match std::mem::replace(&mut handle.state, State::Taken) {
                State::Ready(result) => Poll::Ready(result),
                _ => Poll::Ready(taken(id)),
            },
        }
    }
}

impl fmt::Debug for EventHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Pending(_) => "pending",
            State::Ready(_) => "ready",
            State::Taken => "taken",
        };
        f.debug_struct("EventHandle").field("id", &self.id).field("state", &state).finish()
    }
}
