//! Panics as data: catching a handler's panic in the child and carrying it to the parent.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use serde::{Deserialize, Serialize};

/// What a panic said, where it happened and, if backtraces are enabled, how it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PanicInfo {
    /// The panic message, or a placeholder for payloads that are not strings.
    pub(crate) message: String,
    /// `file:line:column` of the panic, when the hook saw it.
    pub(crate) location: Option<String>,
    /// The backtrace, captured only when `RUST_BACKTRACE` asks for one.
    pub(crate) backtrace: Option<String>,
}

impl fmt::Display for PanicInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        Ok(())
    }
}

thread_local! {
    /// Location and backtrace of the latest panic on this thread, left by [`record_panic`]
    /// for [`catch`], which only gets the payload from `catch_unwind`.
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// Guards the one-time hook installation.
static HOOK: Once = Once::new();

/// Installs a panic hook that records the location (and backtrace) of each panic for
/// [`catch`], then runs the hook that was there before, so the panic still reaches stderr.
///
/// Idempotent. Only corelet children call it: it changes process-wide state.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            record_panic(info.location());
            previous(info);
        }));
    });
}

/// Stores where the current panic happened, and its backtrace, in [`LAST_PANIC`].
// Takes the location rather than the hook's info so as not to name `PanicHookInfo`, which
// is newer than the crate's minimum Rust version (its older name is deprecated).
fn record_panic(location: Option<&panic::Location<'_>>) {
    let location = location.map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
    let backtrace = Backtrace::capture();
    let backtrace = (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
    // `try_with` because a panic during thread teardown must not panic again here.
    let _ = LAST_PANIC.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((location, backtrace));
        }
    });
}

/// Runs `f`, turning a panic into a [`PanicInfo`].
///
/// `f` is treated as unwind-safe: after a panic the caller keeps using the handler, as a
/// thread-mode worker does, and state the handler left half-updated is the handler's business.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, PanicInfo> {
    LAST_PANIC.with(|last| last.borrow_mut().take());
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let (location, backtrace) =
            LAST_PANIC.with(|last| last.borrow_mut().take()).map_or((None, None), |(location, backtrace)| {
                (Some(location).filter(|l| !l.is_empty()), backtrace)
            });
        let message = payload_message(payload.as_ref());
        crate::unwind::drop_payload(payload);
        PanicInfo { message, location, backtrace }
    })
}

/// Extracts the message of a panic payload (`&str` or `String`, as `panic!` makes them).
fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
