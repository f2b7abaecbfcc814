//! Documentation scenario: Usage Examples › Advanced Usage - Background Processing — five
//! images processed on the bus's worker threads while the publisher carries on.
//!
//! Differences from the documentation: each image takes 20 ms instead of `time.sleep(2)`, so
//! the example stays fast; and the example goes on to collect the results, which the
//! documentation leaves out. The "Processing image" lines come from worker threads, so they
//! interleave with the "Submitted image" lines in an order that varies from run to run.
//!
//! Run with `cargo run -p busbar --example background_processing`.

use std::time::Duration;

use busbar::{
    Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, HandlerResult,
    EXECUTION_MODE_THREAD,
};
use serde_json::json;

/// How long "processing" one image takes (the documentation sleeps 2 s).
const PROCESSING_TIME: Duration = Duration::from_millis(20);

// Heavy processing handler
struct ImageProcessingHandler;

impl EventHandler for ImageProcessingHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        let image_path = ctx.event().data()["path"].as_str().ok_or("event data has no `path` string")?;
        println!("Processing image: {image_path}");
        std::thread::sleep(PROCESSING_TIME); // Simulate heavy processing
        Ok(EventResult::success_with(json!({"processed": true})))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Setup
    let factory = EventFactory::new();
    factory.register_event_type("image.process", || ImageProcessingHandler);
    let bus = EventBus::with_factory(factory);

    // Publish multiple events (non-blocking): `publish` returns a handle at once.
    let mut handles = Vec::new();
    for i in 0..5 {
        let event = Event::new("image.process")
            .with_data(json!({"path": format!("/images/photo_{i}.jpg")}))
            .with_mode(EXECUTION_MODE_THREAD); // Background execution
        handles.push(bus.publish(event)?);
        println!("Submitted image {i}");
    }

    println!("All images submitted, continuing with other work...");

    // Later: collect the results. `wait` blocks until that event has finished.
    for (i, handle) in handles.into_iter().enumerate() {
        let result = handle.wait();
        println!("Image {i}: success = {}, data = {}", result.success, result.data);
        assert!(result.success, "{result:?}");
        assert_eq!(result.data, json!({"processed": true}));
    }

    let stats = bus.stats();
    assert_eq!((stats.published, stats.succeeded), (5, 5));
    bus.shutdown();
    Ok(())
}
