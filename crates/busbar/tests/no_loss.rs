//! No loss: every accepted event ends with exactly one result, and `stats()` agrees.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread;

use busbar::{handler_fn, ErrorKind, EventBus, EventId, EventResult, HandlerError};
use support::thread_event;

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 25_000;
const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;

#[test]
fn four_publishers() {
    // A queue much smaller than the total, so publishers wait for room at times.
    let bus = EventBus::builder().threads(2).queue_capacity(256).build().unwrap();
    let runs: Arc<Mutex<HashMap<EventId, u32>>> = Arc::default();
    let record = Arc::clone(&runs);
    bus.subscribe(
        "count",
        handler_fn(move |ctx| {
            *record.lock().unwrap().entry(ctx.event().id()).or_default() += 1;
            Ok(EventResult::success())
        }),
    );

    let handles: Vec<_> = thread::scope(|scope| {
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|_| {
                scope.spawn(|| {
                    (0..PER_PUBLISHER)
                        .map(|_| bus.publish(thread_event("count")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        publishers.into_iter().flat_map(|publisher| publisher.join().unwrap()).collect()
    });
    assert_eq!(handles.len(), TOTAL);

    bus.join();
    // `join` returned: every handle already holds its result.
    let mut ids = HashSet::with_capacity(TOTAL);
    for mut handle in handles {
        let id = handle.id();
        let result = handle.try_result().expect("resolved before join returned");
        assert!(result.success, "{result:?}");
        assert_eq!(result.event_id, id);
        assert_eq!(result.attempts, 1);
        assert!(ids.insert(id), "duplicate id {id}");
    }

    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), TOTAL, "every event ran");
    assert!(runs.values().all(|&n| n == 1), "no event ran twice");
    assert!(runs.keys().all(|id| ids.contains(id)), "and only the published ones");

    let stats = bus.stats();
    assert_eq!(stats.published, TOTAL as u64, "{stats:?}");
    assert_eq!(stats.succeeded, TOTAL as u64, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.queued, 0, "{stats:?}");
    bus.shutdown();
}

#[test]
fn stats_by_kind() {
    let bus = EventBus::builder().threads(2).queue_capacity(64).build().unwrap();
    // Event n succeeds, fails permanently, fails once then succeeds, or panics, by n % 4.
    bus.subscribe(
        "mixed",
        handler_fn(|ctx| match ctx.event().data().as_u64().unwrap() % 4 {
            0 => Ok(EventResult::success()),
            1 => Err(HandlerError::permanent("no")),
            2 if ctx.attempt() == 1 => Ok(EventResult::failure("not yet")),
            2 => Ok(EventResult::success()),
            _ => panic!("boom"),
        }),
    );
    let handles: Vec<_> = (0..40_u64)
        .map(|n| bus.publish(thread_event("mixed").with_data(n.into()).with_retry_count(1)).unwrap())
        .collect();
    bus.join();

    let mut kinds: HashMap<Option<ErrorKind>, u64> = HashMap::new();
    for handle in handles {
        *kinds.entry(handle.wait().error_kind).or_default() += 1;
    }
    assert_eq!(kinds[&None], 20);
    assert_eq!(kinds[&Some(ErrorKind::HandlerError)], 10);
    assert_eq!(kinds[&Some(ErrorKind::Panic)], 10);

    let stats = bus.stats();
    assert_eq!(stats.published, 40, "{stats:?}");
    assert_eq!(stats.succeeded, 20, "{stats:?}");
    assert_eq!(stats.failed, 20, "{stats:?}");
    assert_eq!(stats.panicked, 10, "{stats:?}");
    // One retry for each "not yet", one for each panic (retried, then panicking again).
    assert_eq!(stats.retries, 20, "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.succeeded + stats.failed, stats.published, "{stats:?}");
}
