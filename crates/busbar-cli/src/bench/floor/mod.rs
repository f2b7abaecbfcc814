//! The floors: minimal hand-written equivalents of what each mode does, with no busbar code.
//!
//! Each is what a program would write without an event bus. They run the same handler body
//! as busbar ([`trivial`](super::handlers::trivial)) on the same [`Event`]s, so the difference
//! is what busbar adds: its queue, bookkeeping, result delivery and guarantees.

pub(super) mod echo;
pub(super) mod pool;
pub(super) mod spawn;
pub(super) mod ticker;
mod watch;
pub(super) mod worker;

use std::sync::Arc;

use busbar::{Event, HandlerResult};

/// The handler a floor runs, shared by its threads.
pub(super) type Handler = Arc<dyn Fn(&Event) -> HandlerResult + Send + Sync>;

/// The floors' handler: the same function busbar's registered handler calls.
pub(super) fn trivial_handler() -> Handler {
    Arc::new(|_event: &Event| super::handlers::trivial())
}
