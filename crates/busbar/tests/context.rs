//! Context propagation: chains share a correlation id, and attempts run in tracing spans.

use std::collections::HashMap;
use std::fmt;
use std::sync::{mpsc, Arc, Mutex};

use busbar::{handler_fn, Event, EventBus, EventId, EventResult, ExecutionMode, HandlerError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

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

/// A tracing layer that records the name and fields of every new span.
#[derive(Clone, Default)]
struct SpanRecorder {
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
}

#[derive(Debug)]
struct RecordedSpan {
    name: &'static str,
    fields: HashMap<String, String>,
}

impl<S: Subscriber> Layer<S> for SpanRecorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.spans.lock().unwrap().push(RecordedSpan { name: attrs.metadata().name(), fields: fields.0 });
    }
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

#[test]
fn attempt_span() {
    let bus = EventBus::new();
    // Fails its first attempt, then publishes a child and succeeds.
    bus.subscribe(
        "parent",
        handler_fn(|ctx| {
            if ctx.attempt() == 1 {
                return Err("first attempt fails".into());
            }
            let child = ctx.publish(Event::new("child"))?.wait();
            Ok(EventResult::success_with(child.data))
        }),
    );
    bus.subscribe(
        "child",
        handler_fn(|ctx| Ok(EventResult::success_with(ctx.event().id().to_string().into()))),
    );

    let recorder = SpanRecorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let parent = Event::new("parent").with_retry_count(1);
    let parent_id = parent.id().to_string();
    let result = tracing::subscriber::with_default(subscriber, || bus.publish(parent).unwrap().wait());
    assert!(result.success, "{result:?}");
    let child_id = result.data.as_str().unwrap().to_owned();

    let spans = recorder.spans.lock().unwrap();
    let attempts: Vec<&HashMap<String, String>> =
        spans.iter().filter(|span| span.name == "busbar.attempt").map(|span| &span.fields).collect();
    let expected = [(&parent_id, "parent", "1"), (&parent_id, "parent", "2"), (&child_id, "child", "1")];
    assert_eq!(attempts.len(), expected.len(), "{spans:?}");
    for (fields, (id, event_type, attempt)) in attempts.iter().zip(expected) {
        assert_eq!(fields["id"], *id, "{fields:?}");
        assert_eq!(fields["type"], event_type, "{fields:?}");
        assert_eq!(fields["mode"], "sync", "{fields:?}");
        assert_eq!(fields["attempt"], attempt, "{fields:?}");
        assert_eq!(fields["correlation_id"], parent_id, "the chain's id: {fields:?}");
    }
}
