//! Floor of a periodic timer: the calling thread sleeps until each scheduled instant.

use std::thread;
use std::time::{Duration, Instant};

/// Fires `count` times every `interval` from one interval after now; returns the first
/// scheduled instant and when each firing actually happened.
pub(in crate::bench) fn tick(interval: Duration, count: usize) -> (Instant, Vec<Instant>) {
    let first = Instant::now() + interval;
    let mut fired = Vec::with_capacity(count);
    for scheduled in (0..count).map(|k| first + interval * k as u32) {
        let now = Instant::now();
        if scheduled > now {
            thread::sleep(scheduled - now);
        }
        fired.push(Instant::now());
    }
    (first, fired)
}
