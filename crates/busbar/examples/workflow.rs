//! Documentation scenario: Usage Examples › Custom Implementation Example — a multi-step
//! workflow, validate → transform → save, in which each step publishes the next one through
//! its context.
//!
//! Every event of the chain shares the first event's correlation id, and each one's causation
//! id is the id of the event whose handler published it; the example prints and asserts both,
//! and the saved record's id. Unlike the documentation, each step passes the outcome of the
//! rest of the chain back up, so the publisher learns the final `saved_id` (and a failure in
//! a later step fails the whole workflow instead of being lost).
//!
//! Run with `cargo run -p busbar --example workflow`.

use std::sync::{Arc, Mutex, PoisonError};

use busbar::{
    Event, EventBus, EventContext, EventFactory, EventHandler, EventId, EventResult, HandlerResult,
};
use serde_json::{json, Value};

// Step 1: Data validation
struct ValidateDataHandler {
    trail: Trail,
}

impl EventHandler for ValidateDataHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        self.trail.record(ctx);
        let data = ctx.event().data();
        if !is_present(data.get("required_field")) {
            // Retrying cannot make the field appear: mark the failure permanent.
            return Ok(EventResult::failure("Missing required field").permanent());
        }

        // Trigger next step. `ctx.publish` (or `ctx.event_bus().publish`) makes it a child of
        // this event. It is a sync event, so the rest of the chain has run when it returns.
        let next_event = Event::new("data.transform").with_data(data.clone());
        let saved = ctx.publish(next_event)?.wait().into_result()?;
        Ok(EventResult::success_with(saved))
    }
}

// Step 2: Data transformation
struct TransformDataHandler {
    trail: Trail,
}

impl EventHandler for TransformDataHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        self.trail.record(ctx);
        let transformed = transform(ctx.event().data());

        // Trigger final step
        let next_event = Event::new("data.save").with_data(transformed);
        let saved = ctx.publish(next_event)?.wait().into_result()?;
        Ok(EventResult::success_with(saved))
    }
}

// Step 3: Save data
struct SaveDataHandler {
    trail: Trail,
    database: Arc<Database>,
}

impl EventHandler for SaveDataHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        self.trail.record(ctx);
        let saved_id = self.database.save(ctx.event().data().clone());
        Ok(EventResult::success_with(json!({"saved_id": saved_id})))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let trail = Trail::default();
    let database = Arc::new(Database::default());

    // Setup workflow. Each constructor gets its own clone of the shared trail and database.
    let factory = EventFactory::new();
    let t = trail.clone();
    factory.register_event_type("data.validate", move || ValidateDataHandler { trail: t.clone() });
    let t = trail.clone();
    factory.register_event_type("data.transform", move || TransformDataHandler { trail: t.clone() });
    let (t, db) = (trail.clone(), Arc::clone(&database));
    factory.register_event_type("data.save", move || SaveDataHandler {
        trail: t.clone(),
        database: Arc::clone(&db),
    });
    let bus = EventBus::with_factory(factory);

    // Start workflow
    let initial_event =
        Event::new("data.validate").with_data(json!({"required_field": "value", "other_data": 123}));
    let root_id = initial_event.id();
    let result = bus.publish(initial_event)?.wait();

    println!("workflow started by event {}", short(root_id));
    let steps = trail.take();
    for step in &steps {
        let caused_by = step.causation_id.map_or_else(|| "-".to_owned(), short);
        println!(
            "  {:<15} id {}  correlation {}  caused by {caused_by}",
            step.event_type,
            short(step.id),
            short(step.correlation_id)
        );
    }
    println!("result: success = {}, data = {}", result.success, result.data);
    println!("saved record: {}", database.rows()[0]);

    // The chain: one correlation id, each step caused by the one before.
    let types: Vec<&str> = steps.iter().map(|step| step.event_type.as_str()).collect();
    assert_eq!(types, ["data.validate", "data.transform", "data.save"]);
    assert!(steps.iter().all(|step| step.correlation_id == root_id));
    assert_eq!(steps[0].causation_id, None);
    assert_eq!(steps[1].causation_id, Some(steps[0].id));
    assert_eq!(steps[2].causation_id, Some(steps[1].id));
    assert!(result.success, "{result:?}");
    assert_eq!(result.data, json!({"saved_id": 123}));
    assert_eq!(database.rows(), [json!({"required_field": "VALUE", "other_data": 123, "transformed": true})]);

    // Without the required field the workflow stops at the first step.
    let result = bus.publish(Event::new("data.validate").with_data(json!({"other_data": 456})))?.wait();
    println!(
        "without required_field: success = {}, error = {}",
        result.success,
        result.error_message.as_deref().unwrap_or_default()
    );
    assert!(!result.success);
    assert_eq!(result.error_message.as_deref(), Some("Missing required field"));
    assert_eq!(trail.take().len(), 1, "only the validation step ran");
    assert_eq!(database.rows().len(), 1, "nothing more was saved");

    bus.shutdown();
    Ok(())
}

/// Returns `true` if a field is present and truthy in the documentation's (Python's) sense:
/// not missing, null, false, zero or empty.
fn is_present(field: Option<&Value>) -> bool {
    match field {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(fields)) => !fields.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// The documentation's `transform(data)`: upper-cases every string field and marks the record.
fn transform(data: &Value) -> Value {
    let mut record = data.as_object().cloned().unwrap_or_default();
    for value in record.values_mut() {
        if let Value::String(s) = value {
            *s = s.to_uppercase();
        }
    }
    record.insert("transformed".to_owned(), Value::Bool(true));
    Value::Object(record)
}

/// A stand-in for the documentation's `save_to_database`: rows in memory, ids from 123 (the
/// id the documentation's handler returns).
#[derive(Default)]
struct Database {
    rows: Mutex<Vec<Value>>,
}

impl Database {
    fn save(&self, row: Value) -> u64 {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.push(row);
        122 + rows.len() as u64
    }

    fn rows(&self) -> Vec<Value> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// One step of the workflow as its handler saw it.
#[derive(Clone, Debug)]
struct Step {
    event_type: String,
    id: EventId,
    correlation_id: EventId,
    causation_id: Option<EventId>,
}

/// The steps the handlers ran, in order; clones share one list.
#[derive(Clone, Default)]
struct Trail(Arc<Mutex<Vec<Step>>>);

impl Trail {
    fn record(&self, ctx: &EventContext) {
        let event = ctx.event();
        let step = Step {
            event_type: event.event_type().to_owned(),
            id: event.id(),
            correlation_id: event.correlation_id(),
            causation_id: event.causation_id(),
        };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(step);
    }

    /// Returns the steps recorded so far and starts a new list.
    fn take(&self) -> Vec<Step> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The first 8 hex digits of an id, enough to tell the steps apart on screen.
fn short(id: EventId) -> String {
    id.to_string()[..8].to_owned()
}
