//! The handlers and event types the bench publishes, and their registration.

use busbar::{handler_fn, EventBus, EventBusBuilder, EventFactory, EventResult, HandlerResult};

use super::Error;

/// The event type of every measured event: a handler that does nothing and succeeds.
pub(super) const TRIVIAL: &str = "bench.trivial";

/// What the trivial handler does; busbar's handler and every floor call this same function.
#[inline(never)]
pub(super) fn trivial() -> HandlerResult {
    Ok(EventResult::success())
}

/// Registers the handlers that the bench's corelet events need.
///
/// The corelet children are this binary re-executed, so `main` must call this on the factory
/// it passes to `busbar::corelet_main`, before anything else; the bench's buses use the same
/// registrations (see [`factory`]).
pub(crate) fn register_handlers(factory: &EventFactory) {
    factory.register_event_type(TRIVIAL, || handler_fn(|_| trivial()));
}

/// A factory holding the bench's handlers.
pub(super) fn factory() -> EventFactory {
    let factory = EventFactory::new();
    register_handlers(&factory);
    factory
}

/// A bus with the bench's handlers and `threads` workers, configured further by `configure`.
pub(super) fn bus(
    threads: usize,
    configure: impl FnOnce(EventBusBuilder) -> EventBusBuilder,
) -> Result<EventBus, Error> {
    Ok(configure(EventBus::builder().threads(threads).factory(factory())).build()?)
}

/// Fails if any event the bus finished so far failed: a figure built on failures is wrong.
pub(super) fn expect_no_failures(bus: &EventBus) -> Result<(), Error> {
    let stats = bus.stats();
    if stats.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} of {} events failed: {stats:?}", stats.failed, stats.published).into())
    }
}

/// Fails on a failed busbar result inside a measurement loop.
pub(super) fn expect_success(result: &busbar::EventResult) -> Result<(), Error> {
    if result.success {
        Ok(())
    } else {
        Err(format!("busbar returned a failed result: {result:?}").into())
    }
}

/// Fails unless a floor's handler call returned a success.
pub(super) fn expect_handled(result: HandlerResult) -> Result<(), Error> {
    match result {
        Ok(result) => expect_success(&result),
        Err(error) => Err(error.into_inner()),
    }
}
