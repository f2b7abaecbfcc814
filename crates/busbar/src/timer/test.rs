#![cfg(test)]

use std::time::{Duration, Instant};

use super::ticker::next_tick;
use crate::{Event, EventBus, TimerThread};

const MS: Duration = Duration::from_millis(1);

#[test]
fn next_tick_keeps_the_grid() {
    let start = Instant::now();
    let due = start + 10 * MS;
    // On time, or late by less than an interval: the next grid point.
    assert_eq!(next_tick(due, 10 * MS, due), Some(start + 20 * MS));
    assert_eq!(next_tick(due, 10 * MS, due + 9 * MS), Some(start + 20 * MS));
    // Late by a whole interval or more: skip to the first grid point after now, no burst.
    assert_eq!(next_tick(due, 10 * MS, due + 10 * MS), Some(start + 30 * MS));
    assert_eq!(next_tick(due, 10 * MS, due + 35 * MS), Some(start + 50 * MS));
}

#[test]
fn grid_over_many_ticks() {
    // Firing late every time never moves the schedule.
    let start = Instant::now();
    let interval = 5 * MS;
    let mut due = start + interval;
    for _ in 0..199 {
        let woke = due + Duration::from_micros(700);
        due = next_tick(due, interval, woke).unwrap();
    }
    assert_eq!(due, start + 200 * interval);
}

#[test]
fn scheduler_starts_lazily() {
    let bus = EventBus::new();
    assert!(!bus.shared().scheduler().is_started());
    let timer = TimerThread::new(&bus, Duration::from_secs(3600), Event::new("later"), true);
    assert!(!bus.shared().scheduler().is_started(), "creating a timer starts nothing");
    timer.start();
    assert!(bus.shared().scheduler().is_started());
    bus.shutdown();
    assert!(!timer.is_running(), "the bus's shutdown stops its timers");
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TimerThread>();
    send_sync::<crate::RateLimitInfo>();
    send_sync::<crate::CronError>();
    send_sync::<crate::RateLimitError>();
}
