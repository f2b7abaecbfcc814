#![cfg(test)]

use std::time::{Duration, Instant};

use super::gcra::Gcra;
use super::{spacing, RateLimits};

const MS: Duration = Duration::from_millis(1);

#[test]
fn burst_then_spacing() {
    let (interval, tolerance) = spacing(20.0, 5).unwrap();
    assert_eq!((interval, tolerance), (50 * MS, 200 * MS));
    let mut gcra = Gcra::new(interval, tolerance);
    let t0 = Instant::now();
    let slots: Vec<Duration> = (0..50).map(|_| gcra.reserve(t0) - t0).collect();
    assert!(slots[..5].iter().all(Duration::is_zero));
    for (i, slot) in slots.iter().enumerate().skip(5) {
        assert_eq!(*slot, (i as u32 - 4) * 50 * MS, "slot of event {i}");
    }
    assert_eq!(slots[49], 2250 * MS);
}

#[test]
fn quiet_period_restores_the_burst() {
    let mut gcra = Gcra::new(100 * MS, 200 * MS); // 10/s, burst 3
    let t0 = Instant::now();
    for _ in 0..3 {
        assert_eq!(gcra.reserve(t0), t0);
    }
    assert_eq!(gcra.reserve(t0), t0 + 100 * MS);
    let later = t0 + 10 * 1000 * MS;
    for _ in 0..3 {
        assert_eq!(gcra.reserve(later), later);
    }
    assert_eq!(gcra.reserve(later), later + 100 * MS);
}

#[test]
fn steady_arrivals_never_wait() {
    let mut gcra = Gcra::new(50 * MS, Duration::ZERO); // burst 1
    let t0 = Instant::now();
    for i in 0..100 {
        let now = t0 + i * 50 * MS;
        assert_eq!(gcra.reserve(now), now);
    }
}

#[test]
fn no_window_exceeds_rate_plus_burst() {
    let mut gcra = Gcra::new(50 * MS, 200 * MS);
    let t0 = Instant::now();
    // Irregular arrivals: clumps and gaps.
    let mut slots = Vec::new();
    for i in 0u32..400 {
        let now = t0 + (i / 7) * 130 * MS;
        slots.push(gcra.reserve(now));
    }
    for (i, start) in slots.iter().enumerate() {
        let in_window = slots[i..].iter().take_while(|slot| **slot <= *start + 1000 * MS).count();
        assert!(in_window <= 25, "{in_window} slots in the second from slot {i}");
    }
}

#[test]
fn spacing_rounds_up_and_refuses_nonsense() {
    assert_eq!(spacing(3.0, 1).unwrap().0, Duration::from_nanos(333_333_334));
    for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12, 1e10] {
        assert!(spacing(per_second, 1).is_err(), "{per_second}");
    }
    assert!(spacing(1.0, 0).is_err());
    assert!(spacing(1e-7, 5).is_err()); // a burst spanning more than a year
}

#[test]
fn info_counts_recent_and_waiting() {
    let limits = RateLimits::new();
    assert_eq!(limits.reserve("a"), None, "no limit registered");
    limits.register("a", 1.0, 2).unwrap();
    assert_eq!(limits.reserve("a"), None);
    assert_eq!(limits.reserve("a"), None);
    assert!(limits.reserve("a").is_some(), "the burst is spent");
    let info = limits.info("a").unwrap();
    assert_eq!((info.last_second, info.waiting), (2, 1));
    assert!(limits.remove("a"));
    assert!(!limits.remove("a"));
    assert_eq!(limits.reserve("a"), None);
    assert!(limits.register("", 1.0, 1).is_err());
}

#[test]
fn wait_until_gives_up_when_killed() {
    let limits = RateLimits::new();
    let far = Instant::now() + Duration::from_secs(3600);
    assert!(!limits.wait_until(far, || true));
    assert!(limits.wait_until(Instant::now(), || false));
}
