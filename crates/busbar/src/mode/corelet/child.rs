//! The child side of corelet mode: [`corelet_main`] serves busbar events in a corelet process.

use std::sync::Arc;
use std::time::Duration;

use super::wire::{OwnedRequest, Reply, Returned};
use crate::attempt::Outcome;
use crate::bus::{EventBus, Shared};
use crate::corelet::{self, ChildLink, DecodeError, FrameError};
use crate::deadline;
use crate::error::{InvalidEventError, PublishError};
use crate::event::{CompactRef, Event};
use crate::factory::{EventFactory, HandlerCache};
use crate::handle::EventHandle;
use crate::mode::{self, HandlerSource};
use crate::result::{ErrorKind, EventResult};

/// Serves corelet events and exits if this process is a corelet; returns at once otherwise.
///
/// A bus runs corelet events by re-executing the program it runs in (or a configured worker
/// program) as a pool of child processes. Call this **first thing in `main`**, with a factory
/// holding the same handler registrations as the bus: in a corelet child it answers events
/// until the parent goes away and then exits the process; in the application itself it
/// returns immediately.
///
/// In the child, handlers run as in thread mode, with one handler instance per type per
/// process. Events they publish through their context are sent to the parent and published on
/// its bus (with correlation and causation ids); the handle returned in the child resolves at
/// once with an [`Unsupported`](ErrorKind::Unsupported) result saying so, because the result
/// is delivered on the parent's bus, not in the corelet.
///
/// # Examples
///
/// ```no_run
/// use busbar::{handler_fn, Event, EventBus, EventFactory, EventResult, ExecutionMode};
///
/// fn handlers() -> EventFactory {
///     let factory = EventFactory::new();
///     factory.register_event_type("risky", || handler_fn(|_| Ok(EventResult::success())));
///     factory
/// }
///
/// fn main() {
///     busbar::corelet_main(&handlers()); // in a corelet child, never returns
///
///     let bus = EventBus::with_factory(handlers());
///     let result = bus.publish(Event::new("risky").with_mode(ExecutionMode::Corelet)).unwrap().wait();
///     assert!(result.success);
/// }
/// ```
///
/// # Testing
///
/// A test binary's `main` belongs to libtest, so put corelet tests in a test target with
/// `harness = false` whose own `main` calls `corelet_main` first, or point
/// [`CoreletConfig::program`](crate::CoreletConfig::program) at a binary that does.
pub fn corelet_main(factory: &EventFactory) {
    let mut worker: Option<ChildWorker> = None;
    corelet::serve_if_corelet(|request: Result<OwnedRequest, DecodeError>, link| {
        let worker = worker.get_or_insert_with(|| ChildWorker::new(factory.clone(), link.clone()));
        worker.execute(request)
    });
}

/// What a corelet process keeps between requests.
struct ChildWorker {
    /// A bus whose publishing forwards to the parent (see [`forward_from_child`]).
    bus: EventBus,
    handlers: HandlerCache,
}

impl ChildWorker {
    fn new(factory: EventFactory, link: ChildLink) -> Self {
        ChildWorker { bus: EventBus::forwarding_to_parent(factory, link), handlers: HandlerCache::default() }
    }

    /// Runs one attempt of the requested event and says how it ended.
    ///
    /// A request that did not decode, or whose event is impossible (data that is not JSON,
    /// such as an event nested beyond serde_json's recursion limit), is refused, and the child
    /// serves on.
    fn execute(&mut self, request: Result<OwnedRequest, DecodeError>) -> Reply<Returned> {
        match checked(request) {
            Ok((event, attempt, timeout)) => Reply::from_outcome(self.run(event, attempt, timeout)),
            Err(message) => Reply::Refused { kind: ErrorKind::InvalidInput, message },
        }
    }

    fn run(&mut self, event: Event, attempt: u32, timeout: Duration) -> Outcome {
        let deadline = deadline::deadline_after(timeout);
        let shared: &Arc<Shared> = self.bus.shared();
        let registration = shared.factory().lookup(event.event_type());
        let _span = mode::attempt_span(&event, attempt).entered();
        // The context takes the event: nothing here needs it after the attempt.
        mode::run_in_process_owned(
            shared,
            &mut HandlerSource::Worker(&mut self.handlers),
            registration.as_deref(),
            event,
            attempt,
            deadline,
        )
    }
}

/// A request's event, attempt number and timeout, or why the child refuses it.
pub(super) fn checked(request: Result<OwnedRequest, DecodeError>) -> Result<(Event, u32, Duration), String> {
    let request = request.map_err(|error| format!("the corelet could not decode its request: {error}"))?;
    let timeout = request.timeout();
    let event =
        request.event.into_event().map_err(|error| format!("the corelet refused its request: {error}"))?;
    Ok((event, request.attempt, timeout))
}

/// Publishes `event` from inside a corelet: sends it to the parent, which publishes it on its
/// bus. The returned handle is already resolved (see [`corelet_main`]).
pub(crate) fn forward_from_child(link: &ChildLink, event: Event) -> Result<EventHandle, PublishError> {
    let id = event.id();
    // The parent parses the data's JSON text: data it could not parse would be dropped there,
    // after this publish had returned, so it is refused here, where the publisher hears of it.
    if corelet::json::too_deep(event.data()) {
        let reason = format!(
            "its data is nested more than {} levels deep, more than the parent process can read",
            corelet::json::MAX_DEPTH
        );
        return Err(InvalidEventError::new(reason, event).into());
    }
    match link.publish(&CompactRef(&event)) {
        Ok(()) => {
            let mut result = EventResult::failed(
                ErrorKind::Unsupported,
                format!(
                    "event {id} was published from a corelet: it runs on the parent's bus, which keeps its result"
                ),
            );
            result.event_id = id;
            Ok(EventHandle::ready(result))
        }
        Err(error @ FrameError::TooLarge { .. }) => Err(InvalidEventError::new(
            format!("it is too large to send to the parent process: {error}"),
            event,
        )
        .into()),
        // Not serving (a thread outliving its handler) or the parent is gone.
        Err(_) => Err(PublishError::ShutDown(Box::new(event))),
    }
}
