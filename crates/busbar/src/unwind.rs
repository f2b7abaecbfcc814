//! Catching handler panics at the boundary and turning them into data.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// Runs `f`, returning its value or the message of the panic it raised.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: a handler that panicked may
/// leave its own state half-updated, but the bus only keeps the panic message, and the
/// handler's author controls whether its state tolerates that (as with any `catch_unwind`
/// boundary in a thread pool).
// Inlined, always (a plain `#[inline]` was not taken): out of line, the handler's result is
// copied out of this frame into the caller's on every attempt, after a call of its own.
#[inline(always)]
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = panic_message(&*payload);
        drop_payload(payload);
        message
    })
}

/// Drops a panic payload inside a panic boundary of its own.
///
/// The payload is the handler's value (`panic_any(x)`), and its `Drop` is the handler's code:
/// a panic there must not escape to a worker (which would abort) or a sync publisher. A
/// payload of that second panic is leaked rather than dropped, ending the chain.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(second) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(second);
    }
}

/// Extracts the message of a panic payload (`panic!("...")` carries a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
