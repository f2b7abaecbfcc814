//! Cmd mode: the event's data names a program to run; no handler is needed.
//!
//! Not built yet: every cmd event fails with [`ErrorKind::Unsupported`], permanently
//! (no retries), so that callers see a clear error rather than a silent no-op.

use std::sync::Arc;
use std::time::Instant;

use crate::attempt::Outcome;
use crate::bus::Shared;
use crate::event::Event;
use crate::result::ErrorKind;

/// Runs one attempt of a cmd event.
pub(super) fn run(_shared: &Arc<Shared>, event: &Event, _attempt: u32, _deadline: Instant) -> Outcome {
    Outcome::refused(
        ErrorKind::Unsupported,
        format!(
            "cmd mode is not yet supported by this version of busbar (event type `{}`)",
            event.event_type()
        ),
    )
}
