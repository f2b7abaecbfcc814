//! A worker for an application's own handlers, as in the README: run it on any machine that
//! reaches Redis, as many times as needed.
//!
//! `cargo run -p busbar-redis --example worker -- redis://127.0.0.1:6379/ [seconds]` runs it for
//! `seconds` (default 10), then stops it gracefully.

use std::time::Duration;

use busbar::{handler_fn, EventBus, EventFactory, EventResult, RetryBackoff};
use busbar_redis::Broker;

fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("video.encode", || {
        handler_fn(|ctx| {
            let path = ctx.event().data()["path"].as_str().unwrap_or_default();
            Ok(EventResult::success_with(format!("{path}.webm").into()))
        })
    });
    factory
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First, for corelet events: in a corelet child this serves events and never returns.
    busbar::corelet_main(&handlers());

    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let seconds: u64 = args.next().and_then(|seconds| seconds.parse().ok()).unwrap_or(10);

    let bus = EventBus::builder().threads(4).factory(handlers()).build()?;
    let worker = Broker::new(&url)?
        .namespace("media")
        .worker(bus.clone())
        .concurrency(4) // match the bus's threads
        .visibility_timeout(Duration::from_secs(30))
        .retry_backoff(RetryBackoff::Exponential {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: true,
        })
        .start()?;
    println!("worker {} runs the `media` queue for {seconds} s", worker.name());
    std::thread::sleep(Duration::from_secs(seconds));
    let stats = worker.stats();
    worker.shutdown(); // stops taking events, finishes and records the ones in hand
    bus.shutdown();
    println!("ran {} events ({} succeeded)", stats.fetched, stats.succeeded);
    Ok(())
}
