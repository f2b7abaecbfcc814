//! Context propagation: events published from handlers share a correlation id, name their cause.

use std::sync::mpsc;

use busbar::{handler_fn, Event, EventBus, EventId, EventResult, ExecutionMode, HandlerError};

/// What a handler saw of its event.
#[derive(Debug)]
struct Seen {
    event_type: String,
    id: EventId,
    correlation_id: EventId,
    causation_id: Option<EventId>,
}

/// How a handler publishes its follow-up event.
#[derive(Clone, Copy, Debug)]
enum Via {
    Context,
    Bus,
}

/// Runs the chain one → two → three, each step in the given mode and each follow-up
/// published the given way, and returns what the handlers saw, in chain order.
fn run_chain(modes: [ExecutionMode; 3], via: [Via; 2], root: Event) -> Vec<Seen> {
    let bus = EventBus::builder().threads(2).build().unwrap();
    let (seen, saw) = mpsc::channel();
    let steps = ["one", "two", "three"];
    for (step, event_type) in steps.into_iter().enumerate() {
        let seen = seen.clone();
        bus.subscribe(
            event_type,
            handler_fn(move |ctx| {
                let event = ctx.event();
                seen.send(Seen {
                    event_type: event.event_type().to_owned(),
                    id: event.id(),
                    correlation_id: event.correlation_id(),
                    causation_id: event.causation_id(),
                })?;
                if let Some(next) = steps.get(step + 1) {
                    let next = Event::new(*next).with_mode(modes[step + 1]);
                    let published = match via[step] {
                        Via::Context => ctx.publish(next),
                        Via::Bus => ctx.event_bus().publish(next),
                    };
                    let _child = published.map_err(HandlerError::permanent)?;
                }
                Ok(EventResult::success())
            }),
        );
    }
    let result = bus.publish(root.with_mode(modes[0])).unwrap().wait();
    assert!(result.success, "{result:?}");
    // Each follow-up was accepted before its parent finished, so `join` covers the chain,
    // and each handler reported before it finished.
    bus.join();
    let mut seen: Vec<Seen> = saw.try_iter().collect();
    seen.sort_by_key(|s| steps.iter().position(|step| *step == s.event_type));
    assert_eq!(seen.len(), 3, "{modes:?} {via:?}: {seen:?}");
    seen
}

#[test]
fn chain() {
    use ExecutionMode::{Sync, Thread};
    let cases = [
        ([Thread, Sync, Thread], [Via::Context, Via::Bus]),
        ([Sync, Thread, Sync], [Via::Bus, Via::Context]),
        ([Thread, Thread, Thread], [Via::Bus, Via::Bus]),
        ([Sync, Sync, Sync], [Via::Context, Via::Context]),
    ];
    for (modes, via) in cases {
        let root = Event::new("one");
        let root_id = root.id();
        let [one, two, three] = <[Seen; 3]>::try_from(run_chain(modes, via, root)).unwrap();
        let case = format!("{modes:?} {via:?}");
        assert_eq!(one.id, root_id, "{case}");
        assert_eq!(one.causation_id, None, "{case}");
        assert_eq!(two.causation_id, Some(one.id), "{case}");
        assert_eq!(three.causation_id, Some(two.id), "{case}");
        for step in [&one, &two, &three] {
            assert_eq!(step.correlation_id, root_id, "{case}: {step:?}");
        }
        assert!(one.id != two.id && two.id != three.id, "{case}");
    }
}

#[test]
fn given_correlation_id() {
    let correlation = EventId::new();
    let root = Event::new("one").with_correlation_id(correlation);
    let seen = run_chain([ExecutionMode::Thread; 3], [Via::Context, Via::Bus], root);
    assert!(seen.iter().all(|step| step.correlation_id == correlation), "{seen:?}");
}
