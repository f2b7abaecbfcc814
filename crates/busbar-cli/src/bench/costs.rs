//! The price, on this machine and in this run, of the primitives busbar's guarantees are made
//! of, for the notes under the table: how much of a ratio they account for.
//!
//! Each is timed the way the rows are (medians over chunks), so that a note's arithmetic uses
//! figures from the same run as the row it explains, not numbers from elsewhere.

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::stats::{chunked_ns, median};
use super::Error;

/// Nanoseconds per read of the OS's monotonic clock (`Instant::now`).
pub(super) fn clock_read_ns(calls: usize) -> Result<f64, Error> {
    chunked_ns(calls, || {
        black_box(Instant::now());
        Ok(())
    })
}

/// Nanoseconds per read of the CPU's counter through `quanta`, calibrated as busbar's is: the
/// clock busbar times sync attempts with where it trusts the counter.
pub(super) fn counter_read_ns(calls: usize) -> Result<f64, Error> {
    let clock = quanta::Clock::new();
    chunked_ns(calls, || {
        black_box(clock.raw());
        Ok(())
    })
}

/// Nanoseconds per locked read-modify-write of an atomic no other thread touches (the price
/// of a reference count or an event counter when there is no contention at all).
pub(super) fn locked_increment_ns(calls: usize) -> Result<f64, Error> {
    let counter = AtomicU64::new(0);
    chunked_ns(calls, || {
        black_box(&counter).fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

/// Times a cache line's trip to another thread and back: the measuring thread writes a value,
/// the answering thread this starts watches for it and writes an answer, and the measuring
/// thread sees the answer.
///
/// Both threads spin; each yields now and then, so that on a machine with one free CPU the
/// measurement slows down instead of stalling. The answering thread is started apart from the
/// measuring, so that a caller can start it where it wants it to run (see `super::placement`).
pub(super) struct LineAnswerer {
    line: Arc<PingPong>,
    thread: thread::JoinHandle<()>,
}

impl LineAnswerer {
    pub(super) fn start() -> Result<LineAnswerer, Error> {
        let line = Arc::new(PingPong::default());
        let other = Arc::clone(&line);
        let thread = thread::Builder::new().name("bench-ping-pong".into()).spawn(move || {
            let mut seen = 0;
            while let Some(value) = other.wait_for_ping(seen) {
                other.pong.store(value, Ordering::Release);
                seen = value;
            }
        })?;
        Ok(LineAnswerer { line, thread })
    }

    /// Nanoseconds per round trip, measured from the calling thread; then stops the answering
    /// thread.
    pub(super) fn round_trip_ns(self, round_trips: usize) -> Result<f64, Error> {
        let LineAnswerer { line, thread } = self;
        let mut per_trip = Vec::with_capacity(round_trips / 100 + 1);
        let mut value = 0;
        for _ in 0..(round_trips / 100).max(1) {
            let start = Instant::now();
            for _ in 0..100 {
                value += 1;
                line.ping.store(value, Ordering::Release);
                spin_until(|| line.pong.load(Ordering::Acquire) == value);
            }
            per_trip.push(start.elapsed().as_nanos() as f64 / 100.0);
        }
        line.done.store(true, Ordering::Release);
        thread.join().map_err(|_| "the ping-pong thread panicked")?;
        Ok(median(&per_trip))
    }
}

/// The two values of a [`LineAnswerer`]'s round trip, each written by one thread.
#[derive(Default)]
struct PingPong {
    ping: AtomicU64,
    pong: AtomicU64,
    done: AtomicBool,
}

impl PingPong {
    /// Waits for a ping newer than `seen`; `None` once the measurement is over.
    fn wait_for_ping(&self, seen: u64) -> Option<u64> {
        let mut ping = None;
        spin_until(|| {
            let value = self.ping.load(Ordering::Acquire);
            if value != seen {
                ping = Some(value);
            }
            ping.is_some() || self.done.load(Ordering::Acquire)
        });
        ping
    }
}

/// Spins until `ready`, yielding the CPU every few hundred looks.
fn spin_until(mut ready: impl FnMut() -> bool) {
    let mut looks = 0_u32;
    while !ready() {
        looks = looks.wrapping_add(1);
        if looks % 256 == 0 {
            thread::yield_now();
        } else {
            spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cost_is_measured_and_the_ping_pong_thread_ends() {
        assert!(clock_read_ns(1_000).expect("clock") > 0.0);
        assert!(locked_increment_ns(1_000).expect("atomic") > 0.0);
        // Returns only once the answering thread has been joined.
        assert!(LineAnswerer::start().and_then(|line| line.round_trip_ns(200)).expect("ping-pong") > 0.0);
    }
}
