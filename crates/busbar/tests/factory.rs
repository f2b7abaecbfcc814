//! `EventFactory`: one handler per worker thread per type, shared instances, registration.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use busbar::{
    handler_fn, Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, HandlerResult,
    PublishError,
};
use support::thread_event;

/// A handler that remembers the thread that built it and reports where it runs.
struct Pinned {
    built_on: ThreadId,
    ran_on: Arc<Mutex<HashSet<ThreadId>>>,
}

impl EventHandler for Pinned {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        let here = thread::current().id();
        self.ran_on.lock().unwrap().insert(here);
        if here == self.built_on {
            Ok(EventResult::success())
        } else {
            Ok(EventResult::failure("runs on a thread other than the one that built it"))
        }
    }
}

#[test]
fn one_per_worker() {
    let built = Arc::new(AtomicUsize::new(0));
    let ran_on = Arc::new(Mutex::new(HashSet::new()));
    let factory = EventFactory::new();
    let (counter, threads) = (Arc::clone(&built), Arc::clone(&ran_on));
    factory.register_event_type("pinned", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Pinned { built_on: thread::current().id(), ran_on: Arc::clone(&threads) }
    });
    let bus = EventBus::builder().threads(2).factory(factory).build().unwrap();

    let handles: Vec<_> = (0..1000).map(|_| bus.publish(thread_event("pinned")).unwrap()).collect();
    for handle in handles {
        let result = handle.wait();
        assert!(result.success, "{result:?}");
    }
    let built = built.load(Ordering::SeqCst);
    let threads = ran_on.lock().unwrap().len();
    assert!((1..=2).contains(&built), "built {built} handlers for 2 workers");
    assert_eq!(built, threads, "one handler for each worker that ran the type");
}

#[test]
fn sync_builds_once() {
    let built = Arc::new(AtomicUsize::new(0));
    let factory = EventFactory::new();
    let counter = Arc::clone(&built);
    factory.register_event_type("counted", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        handler_fn(|_| Ok(EventResult::success()))
    });
    let bus = EventBus::with_factory(factory);
    for _ in 0..100 {
        assert!(bus.publish(Event::new("counted")).unwrap().wait().success);
    }
    assert_eq!(built.load(Ordering::SeqCst), 1, "sync events share one instance");
}

/// A handler that reports its own address, to tell instances apart.
struct Identified;

impl EventHandler for Identified {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Ok(EventResult::success_with((std::ptr::from_ref(self) as usize).into()))
    }
}

#[test]
fn subscribe_shares() {
    let bus = EventBus::builder().threads(2).build().unwrap();
    bus.subscribe("shared", Identified);
    let handles: Vec<_> = (0..200)
        .map(|n| {
            let event = if n % 2 == 0 { thread_event("shared") } else { Event::new("shared") };
            bus.publish(event).unwrap()
        })
        .collect();
    let instances: HashSet<u64> = handles.into_iter().map(|h| h.wait().data.as_u64().unwrap()).collect();
    assert_eq!(instances.len(), 1, "one instance for every thread and mode");
}

/// A worker that runs two types in turn keeps its instance of each: switching types builds
/// nothing new.
#[test]
fn alternating_types_build_once_each() {
    let built = Arc::new(AtomicUsize::new(0));
    let factory = EventFactory::new();
    for event_type in ["left", "right"] {
        let counter = Arc::clone(&built);
        factory.register_event_type(event_type, move || {
            counter.fetch_add(1, Ordering::SeqCst);
            handler_fn(|ctx| Ok(EventResult::success_with(ctx.event().event_type().into())))
        });
    }
    let bus = EventBus::builder().threads(1).factory(factory).build().unwrap();
    for n in 0..100 {
        let event_type = if n % 2 == 0 { "left" } else { "right" };
        assert_eq!(bus.publish(thread_event(event_type)).unwrap().wait().data, event_type);
    }
    assert_eq!(built.load(Ordering::SeqCst), 2, "one instance per type on the one worker");
}

#[test]
fn reregister_replaces() {
    let bus = EventBus::builder().threads(2).build().unwrap();
    let version = |v: &'static str| move || handler_fn(move |_| Ok(EventResult::success_with(v.into())));
    bus.factory().register_event_type("versioned", version("v1"));
    let run = |bus: &EventBus| -> HashSet<String> {
        let handles: Vec<_> = (0..50)
            .map(|n| {
                let event = if n % 5 == 0 { Event::new("versioned") } else { thread_event("versioned") };
                bus.publish(event).unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.wait().data.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(run(&bus), HashSet::from(["v1".to_owned()]));
    // Workers that built a v1 handler must not keep using it.
    bus.factory().register_event_type("versioned", version("v2"));
    assert_eq!(run(&bus), HashSet::from(["v2".to_owned()]));
    bus.subscribe("versioned", handler_fn(|_| Ok(EventResult::success_with("v3".into()))));
    assert_eq!(run(&bus), HashSet::from(["v3".to_owned()]));
}

#[test]
fn registry() {
    let built = Arc::new(AtomicUsize::new(0));
    let factory = EventFactory::new();
    let counter = Arc::clone(&built);
    factory.register_event_type("order.created", move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Identified
    });
    factory.register_shared("order.shipped", Identified);

    assert!(factory.is_handler_available("order.created"));
    assert!(factory.is_handler_available("order.shipped"));
    assert!(!factory.is_handler_available("order.cancelled"));
    assert!(factory.create_handler("order.cancelled").is_none());

    assert!(factory.create_handler("order.created").is_some());
    assert!(factory.create_handler("order.created").is_some());
    assert_eq!(built.load(Ordering::SeqCst), 2, "create_handler builds a new instance each call");
    assert!(factory.create_handler("order.shipped").is_some());

    // A bus sees registrations made through any clone of its factory, before or after.
    let bus = EventBus::with_factory(factory.clone());
    bus.subscribe("order.paid", Identified);
    factory.register_event_type("order.refunded", || Identified);
    assert_eq!(factory.event_types(), ["order.created", "order.paid", "order.refunded", "order.shipped"]);
    assert_eq!(bus.factory().event_types(), factory.event_types());
    assert!(bus.publish(Event::new("order.refunded")).unwrap().wait().success);

    assert!(factory.unregister("order.refunded"));
    assert!(!factory.unregister("order.refunded"));
    let err = bus.publish(Event::new("order.refunded")).unwrap_err();
    assert!(matches!(err, PublishError::NoHandlerAvailable(_)), "{err:?}");
}

/// Counts its drops, to tell whether anything still holds the handler.
struct DropCounted(Arc<AtomicUsize>);

impl EventHandler for DropCounted {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Ok(EventResult::success())
    }
}

impl Drop for DropCounted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn publishing_keeps_no_unregistered_handler_alive() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let bus = EventBus::new();
    bus.subscribe("counted", DropCounted(Arc::clone(&dropped)));
    assert!(bus.publish(Event::new("counted")).unwrap().wait().success);
    assert!(bus.factory().unregister("counted"));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the handler is gone with its registration");
}

/// The same for thread events: the workers that ran the type let go of its registration, and
/// of what its constructor captured, once they wait for work.
#[test]
fn workers_keep_no_unregistered_registration_alive() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let bus = EventBus::builder().threads(2).build().unwrap();
    let token = DropCounted(Arc::clone(&dropped));
    bus.factory().register_event_type("counted", move || {
        // The constructor captures `token`: it lives as long as the registration.
        let _captured = &token;
        handler_fn(|_| Ok(EventResult::success()))
    });
    for _ in 0..200 {
        assert!(bus.publish(thread_event("counted")).unwrap().wait().success);
    }
    bus.join();
    assert!(bus.factory().unregister("counted"));
    // The workers let go when they next wait for work: a condition, with a generous bound.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while dropped.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the registration is gone with the work on it");
}

#[test]
fn a_new_factory_is_not_mistaken_for_a_dropped_one() {
    // Each bus (and factory) lives and dies in turn, so a later one may reuse an earlier
    // one's memory; each must still run its own handler.
    for n in 0..20_u64 {
        let bus = EventBus::new();
        bus.subscribe("which", handler_fn(move |_| Ok(EventResult::success_with(n.into()))));
        assert_eq!(bus.publish(Event::new("which")).unwrap().wait().data, n);
        bus.shutdown();
    }
}
