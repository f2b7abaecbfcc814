//! Each attempt runs in a `busbar.attempt` tracing span carrying id, type, mode, attempt and
//! correlation id.
//!
//! This binary holds a single test on purpose. tracing-core 0.1.36 caches a callsite's interest
//! from the thread that first reaches it when only one dispatcher exists
//! (tokio-rs/tracing#3611): a sibling test running attempts without a subscriber could make
//! the span invisible to the scoped subscriber here.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use busbar::{handler_fn, Event, EventBus, EventResult};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

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
fn attempt() {
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
