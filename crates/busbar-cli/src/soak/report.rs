//! The soak's verdict: what it held, what it counted, what it sampled, and the bounds.

use busbar::BusStats;
use serde_json::{json, Value};

use super::load::{Tally, RESULT_BOUND};
use super::probe::Sample;

/// Everything the soak measured.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) duration_s: f64,
    pub(super) warm_up_s: f64,
    pub(super) rate: u32,
    /// Events `publish` accepted, warm-up included.
    pub(super) accepted: u64,
    /// Why `publish` refused events (it should refuse none).
    pub(super) refused: Vec<String>,
    /// Events accepted after the warm-up, and the time until `join()` returned after them.
    pub(super) measured_accepted: u64,
    pub(super) measured_s: f64,
    pub(super) tally: Tally,
    /// The bus's counters after the last `join()`.
    pub(super) stats: BusStats,
    /// Labelled samples: the warm-up first, then quarters, after join, after shutdown.
    pub(super) samples: Vec<(&'static str, Sample)>,
    pub(super) rss_growth_bound: u64,
    pub(super) descriptor_growth_bound: usize,
}

impl Report {
    /// Events per second from the end of the warm-up until `join()` returned.
    fn throughput(&self) -> f64 {
        self.measured_accepted as f64 / self.measured_s.max(f64::MIN_POSITIVE)
    }

    fn first(&self) -> Sample {
        self.samples[0].1
    }

    fn last(&self) -> Sample {
        self.samples[self.samples.len() - 1].1
    }

    /// The bounds, as the text and the JSON state them.
    fn bounds(&self) -> [String; 4] {
        [
            format!(
                "every accepted event resolves exactly once: results counted = accepted = bus's published = \
                 succeeded + failed, each handle within {} s",
                RESULT_BOUND.as_secs()
            ),
            format!("RSS after shutdown <= RSS after warm-up + {} MiB", self.rss_growth_bound >> 20),
            format!(
                "descriptors after shutdown <= descriptors after warm-up + {}",
                self.descriptor_growth_bound
            ),
            "child processes after shutdown = 0".to_owned(),
        ]
    }

    /// Every broken bound, in words; empty if the soak passed.
    pub(super) fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let (tally, stats) = (&self.tally, &self.stats);
        if !self.refused.is_empty() {
            failures.push(format!("{} events refused, first: {}", self.refused.len(), self.refused[0]));
        }
        if tally.lost > 0 {
            failures.push(format!(
                "{} events without a result after {} s",
                tally.lost,
                RESULT_BOUND.as_secs()
            ));
        }
        if tally.resolved != self.accepted {
            failures.push(format!("{} results for {} accepted events", tally.resolved, self.accepted));
        }
        let finished = stats.succeeded + stats.failed;
        if stats.published != self.accepted || finished != self.accepted || stats.in_flight != 0 {
            failures.push(format!(
                "bus counted {} published, {finished} finished, {} in flight for {} accepted",
                stats.published, stats.in_flight, self.accepted
            ));
        }
        if tally.unexpected > 0 {
            failures.push(format!("{} unexpected outcomes, e.g. {:?}", tally.unexpected, tally.examples));
        }
        let (first, last) = (self.first(), self.last());
        if last.rss_bytes > first.rss_bytes + self.rss_growth_bound {
            failures.push(format!("RSS grew from {} to {}", mib(first.rss_bytes), mib(last.rss_bytes)));
        }
        if last.descriptors > first.descriptors + self.descriptor_growth_bound {
            failures.push(format!("descriptors grew from {} to {}", first.descriptors, last.descriptors));
        }
        if last.children != 0 {
            failures
                .push(format!("{} child processes after shutdown ({} zombies)", last.children, last.zombies));
        }
        failures
    }

    /// Prints the report as text or as one JSON object.
    pub(super) fn print(&self, as_json: bool) {
        if as_json {
            println!("{:#}", self.to_json());
        } else {
            self.print_text();
        }
    }

    fn to_json(&self) -> Value {
        let stats = &self.stats;
        let failures = self.failures();
        json!({
            "duration_s": self.duration_s,
            "warm_up_s": self.warm_up_s,
            "rate": self.rate,
            "accepted": self.accepted,
            "refused": self.refused.len(),
            "throughput_per_s": self.throughput(),
            "results": &self.tally,
            "bus": {
                "published": stats.published, "succeeded": stats.succeeded, "failed": stats.failed,
                "timed_out": stats.timed_out, "panicked": stats.panicked, "crashed": stats.crashed,
                "in_flight": stats.in_flight, "corelet_spawns": stats.corelet_spawns,
                "corelet_crashes": stats.corelet_crashes, "corelet_kills": stats.corelet_kills,
                "replaced_workers": stats.replaced_workers,
            },
            "samples": self.samples.iter().map(|(label, sample)| json!({"at": label, "sample": sample})).collect::<Vec<_>>(),
            "bounds": self.bounds(),
            "passed": failures.is_empty(),
            "failures": failures,
        })
    }

    fn print_text(&self) {
        let (tally, stats) = (&self.tally, &self.stats);
        println!(
            "busbar soak: {:.0} s at {} events/s after a {:.1} s warm-up",
            self.duration_s, self.rate, self.warm_up_s
        );
        println!(
            "load held: {} events accepted ({} refused), {:.0} events/s from warm-up to join",
            self.accepted,
            self.refused.len(),
            self.throughput()
        );
        println!(
            "results: {} resolved, {} lost, {} unexpected; bus: {} published, {} succeeded + {} failed, {} in flight",
            tally.resolved, tally.lost, tally.unexpected, stats.published, stats.succeeded, stats.failed, stats.in_flight
        );
        let outcomes: Vec<String> = tally.by_outcome.iter().map(|(o, n)| format!("{o} {n}")).collect();
        println!("by outcome: {}", outcomes.join(", "));
        println!("by kind:");
        for (kind, outcomes) in &tally.by_kind {
            let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
            println!("  {kind:<16} {}", outcomes.join(", "));
        }
        println!(
            "faults survived: {} corelet crashes, {} corelet kills, {} corelet spawns, {} panics, {} timeouts",
            stats.corelet_crashes, stats.corelet_kills, stats.corelet_spawns, stats.panicked, stats.timed_out
        );
        println!("process samples:");
        println!(
            "  {:<15} {:>7} {:>10} {:>6} {:>8} {:>9}",
            "at", "time s", "RSS", "fds", "threads", "children"
        );
        for (label, s) in &self.samples {
            println!(
                "  {label:<15} {:>7.1} {:>10} {:>6} {:>8} {:>9}",
                s.at_s,
                mib(s.rss_bytes),
                s.descriptors,
                s.threads,
                s.children
            );
        }
        println!("bounds:");
        for bound in self.bounds() {
            println!("  {bound}");
        }
        let failures = self.failures();
        if failures.is_empty() {
            println!("PASSED: nothing lost, nothing grew past its bound");
        } else {
            for failure in &failures {
                println!("FAILED: {failure}");
            }
        }
    }
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
