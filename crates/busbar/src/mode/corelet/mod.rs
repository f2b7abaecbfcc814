//! Corelet mode: the handler runs in an isolated, reusable child process.
//!
//! Not built yet: every corelet event fails with [`ErrorKind::Unsupported`], permanently
//! (no retries), so that callers see a clear error rather than a silent fallback to threads.

use std::sync::Arc;
use std::time::Instant;

use crate::attempt::Outcome;
use crate::bus::Shared;
use crate::event::Event;
use crate::result::ErrorKind;

/// Runs one attempt of a corelet event.
pub(super) fn run(_shared: &Arc<Shared>, event: &Event, _attempt: u32, _deadline: Instant) -> Outcome {
    Outcome::refused(
        ErrorKind::Unsupported,
        format!(
            "corelet mode is not yet supported by this version of busbar (event type `{}`)",
            event.event_type()
        ),
    )
}
