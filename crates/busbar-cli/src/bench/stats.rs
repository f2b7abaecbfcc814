//! Medians and percentiles of repeated measurements.

use std::time::{Duration, Instant};

use super::Error;

/// Calls per timed chunk in [`chunked_ns`] (a few hundred microseconds of sync publishing).
pub(super) const CHUNK: usize = 1_000;

/// Returns the median of `values` (the mean of the middle two for an even count); 0 if empty.
pub(super) fn median(values: &[f64]) -> f64 {
    let sorted = sorted(values);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Returns the `q`-quantile (0 ≤ q ≤ 1) of `values` by the nearest-rank method; 0 if empty.
pub(super) fn percentile(values: &[f64], q: f64) -> f64 {
    let sorted = sorted(values);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The p50 and p99 of one repetition's latencies.
#[derive(Clone, Copy, Debug)]
pub(super) struct Latency {
    pub(super) p50: f64,
    pub(super) p99: f64,
}

impl Latency {
    /// Summarises latencies in microseconds.
    pub(super) fn of(samples: &[f64]) -> Latency {
        Latency { p50: percentile(samples, 0.50), p99: percentile(samples, 0.99) }
    }

    /// The medians of the repetitions' p50s and p99s.
    pub(super) fn median_of(reps: &[Latency]) -> Latency {
        let p50: Vec<f64> = reps.iter().map(|rep| rep.p50).collect();
        let p99: Vec<f64> = reps.iter().map(|rep| rep.p99).collect();
        Latency { p50: median(&p50), p99: median(&p99) }
    }
}

/// Events (or runs) per second.
pub(super) fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// Microseconds in `elapsed`.
pub(super) fn micros(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e6
}

/// Runs `one` `events` times in chunks of [`CHUNK`]; the median ns per call over the chunks.
pub(super) fn chunked_ns(events: usize, mut one: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    let chunk = CHUNK.min(events.max(1));
    let mut per_call = Vec::with_capacity(events / chunk);
    for _ in 0..(events / chunk).max(1) {
        let start = Instant::now();
        for _ in 0..chunk {
            one()?;
        }
        per_call.push(start.elapsed().as_nanos() as f64 / chunk as f64);
    }
    Ok(median(&per_call))
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.5), 50.0);
        assert_eq!(percentile(&hundred, 0.99), 99.0);
        assert_eq!(percentile(&hundred, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
