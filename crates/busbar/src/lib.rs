//! busbar is an event bus: a program publishes an [`Event`], and the bus runs the one handler
//! registered for the event's type, in the event's [`ExecutionMode`].
//!
//! # Hello, world!
//!
//! ```
//! use busbar::{handler_fn, Event, EventBus, EventResult};
//! use serde_json::json;
//!
//! let bus = EventBus::new();
//! bus.subscribe("greet", handler_fn(|ctx| {
//!     let name = ctx.event().data()["name"].as_str().unwrap_or("world");
//!     Ok(EventResult::success_with(json!(format!("Hello, {name}!"))))
//! }));
//!
//! let result = bus.publish(Event::new("greet").with_data(json!({"name": "busbar"})))?.wait();
//! assert_eq!(result.data, "Hello, busbar!");
//! bus.shutdown();
//! # Ok::<(), busbar::PublishError>(())
//! ```
//!
//! # Modes
//!
//! | mode | where the handler runs | [`publish`](EventBus::publish) returns | timeout is |
//! |---|---|---|---|
//! | [`Sync`](ExecutionMode::Sync) | the publishing thread | after the handler finished | cooperative, reported |
//! | [`Thread`](ExecutionMode::Thread) | a worker of a priority-ordered pool | at once | cooperative; the waiter is released at the deadline |
//! | [`Corelet`](ExecutionMode::Corelet) | a reusable, isolated child process | at once | hard: the process is killed |
//! | [`Cmd`](ExecutionMode::Cmd) | a command-line program (no handler needed) | at once | hard: its process group is killed |
//!
//! All modes share one attempt loop: retries, timeouts, panic capture and the final
//! [`EventResult`]. *This version runs `Sync` and `Thread` events; `Corelet` and `Cmd` events
//! are accepted and fail with [`ErrorKind::Unsupported`] until those modes land.*
//!
//! Thread-mode events run on a pool of `busbar-worker-N` threads (one per logical core by
//! default). Higher [priority](Event::with_priority) runs first; equal priorities run in
//! publish order. The queue is bounded: [`publish`](EventBus::publish) waits for room,
//! [`try_publish`](EventBus::try_publish) hands the event back.
//!
//! ```
//! use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
//!
//! let bus = EventBus::builder().threads(2).build()?;
//! bus.subscribe("image.process", handler_fn(|ctx| {
//!     let path = ctx.event().data()["path"].as_str().unwrap_or_default().to_owned();
//!     Ok(EventResult::success_with(path.into()))
//! }));
//!
//! let handles: Vec<_> = (0..5)
//!     .map(|i| {
//!         let event = Event::new("image.process")
//!             .with_data(serde_json::json!({"path": format!("/images/photo_{i}.jpg")}))
//!             .with_mode(ExecutionMode::Thread);
//!         bus.publish(event)
//!     })
//!     .collect::<Result<_, _>>()?;
//! bus.join(); // every accepted event has its result now
//! for (i, handle) in handles.into_iter().enumerate() {
//!     assert_eq!(handle.wait().data, format!("/images/photo_{i}.jpg"));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Retries and timeouts
//!
//! An attempt fails when the handler returns `Err` (an execution error), returns a result with
//! `success == false` (a business failure), panics, or runs past the event's timeout. With
//! [`retry_count`](Event::with_retry_count) `n`, at most `1 + n` attempts run; failures marked
//! [permanent](HandlerError::permanent) are not retried. The pause between attempts is set per
//! bus with [`RetryBackoff`].
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use busbar::{handler_fn, ErrorKind, Event, EventBus, EventResult};
//!
//! let bus = EventBus::new();
//! let calls = AtomicU32::new(0);
//! bus.subscribe("flaky", handler_fn(move |_| {
//!     if calls.fetch_add(1, Ordering::SeqCst) < 2 {
//!         Err("not yet".into())
//!     } else {
//!         Ok(EventResult::success())
//!     }
//! }));
//! let result = bus.publish(Event::new("flaky").with_retry_count(2))?.wait();
//! assert!(result.success);
//! assert_eq!(result.attempts, 3);
//!
//! bus.subscribe("boom", handler_fn(|_| panic!("out of cheese")));
//! let result = bus.publish(Event::new("boom"))?.wait();
//! assert_eq!(result.error_kind, Some(ErrorKind::Panic));
//! assert!(result.error_message.unwrap().contains("out of cheese"));
//! # Ok::<(), busbar::PublishError>(())
//! ```
//!
//! Rust cannot stop a running thread safely, so `Sync` and `Thread` timeouts are
//! *cooperative*: the handler's [`EventContext`] exposes the deadline and
//! [`is_cancelled`](EventContext::is_cancelled). A `Thread` waiter gets the timeout result at
//! the deadline even if the handler keeps running, and the pool replaces the stuck worker so
//! it keeps its capacity. For a hard limit, use `Corelet` mode.
//!
//! # Timers
//!
//! A [`TimerThread`] publishes a fresh copy of an event (new id, same type and data) after an
//! interval, once or periodically. Periodic firings lie on a fixed grid from the start, so
//! they do not drift; if the machine stalls, missed firings are skipped, not burst.
//! [`publish_after`](EventBus::publish_after) delays a single event and returns its handle;
//! [`schedule_cron`](EventBus::schedule_cron) fires at the times a cron expression matches,
//! in UTC. All timers of a bus share one `busbar-timer` thread, which never runs a handler:
//! fired events run on the worker pool. Dropping a timer stops it, and so does shutting the
//! bus down; [`shutdown`](EventBus::shutdown) waits for delayed events, [`shutdown_now`]
//! cancels them.
//!
//! [`shutdown_now`]: EventBus::shutdown_now
//!
//! ```
//! use std::sync::{mpsc, Mutex};
//! use std::time::Duration;
//! use busbar::{handler_fn, Event, EventBus, EventResult, TimerThread};
//!
//! let bus = EventBus::new();
//! let (tick, ticks) = mpsc::channel();
//! let tick = Mutex::new(tick);
//! bus.subscribe("system.health_check", handler_fn(move |_| {
//!     let _ = tick.lock().unwrap().send(());
//!     Ok(EventResult::success())
//! }));
//!
//! // Every 10 ms until stopped (or dropped).
//! let health = TimerThread::new(&bus, Duration::from_millis(10), Event::new("system.health_check"), false);
//! health.start();
//! for _ in 0..3 {
//!     ticks.recv_timeout(Duration::from_secs(10))?;
//! }
//! health.stop();
//!
//! // Once, after a delay: the handle resolves with the event's result.
//! let handle = bus.publish_after(Duration::from_millis(10), Event::new("system.health_check"))?;
//! assert!(handle.wait().success);
//!
//! // At 03:00 UTC every day.
//! let nightly = bus.schedule_cron("0 3 * * *", Event::new("system.health_check"))?;
//! assert!(nightly.is_running());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Rate limits
//!
//! [`register_rate_limit`](EventBus::register_rate_limit) caps how fast events of a type
//! start: at most `per_second` per second after an initial `burst`. Events over the limit are
//! delayed, not dropped: each reserves its start slot when published, a queued event waits
//! for its slot in the scheduler, a sync publisher sleeps until its slot. Waiting events are
//! in flight, so [`join`](EventBus::join) waits for them. Other event types are not slowed.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
//!
//! let bus = EventBus::builder().threads(2).build()?;
//! bus.subscribe("api.call", handler_fn(|_| Ok(EventResult::success())));
//! bus.register_rate_limit("api.call", 20.0, 2)?;
//!
//! let started = Instant::now();
//! for _ in 0..4 {
//!     bus.publish(Event::new("api.call").with_mode(ExecutionMode::Thread))?;
//! }
//! bus.join();
//! // Two at once (the burst), then one every 50 ms.
//! assert!(started.elapsed() >= Duration::from_millis(100));
//! let info = bus.rate_limit("api.call").expect("registered");
//! assert_eq!((info.per_second, info.burst, info.waiting), (20.0, 2, 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Context propagation
//!
//! Events published from a handler ([`EventContext::publish`], or any bus handle on the
//! handler's thread) inherit the chain's [correlation id](Event::correlation_id) and get the
//! parent's id as [causation id](Event::causation_id). Each attempt runs in a `busbar.attempt`
//! [`tracing`](https://docs.rs/tracing) span with the event's id, type, mode, attempt and
//! correlation id.
//!
//! # Configuration
//!
//! [`EventBus::builder`] sets threads, queue capacity and backoff in code; [`BusConfig`] loads
//! the same settings from TOML and `BUSBAR_*` environment variables.
//!
//! # Async
//!
//! An [`EventHandle`] can be awaited (it implements [`IntoFuture`](std::future::IntoFuture)):
//! `handle.await` works on any executor, and busbar depends on none.
//!
//! # Shutdown
//!
//! [`EventBus::shutdown`] finishes what was accepted; [`EventBus::shutdown_now`] cancels it;
//! dropping the last handle starts a graceful shutdown in the background. Every accepted event
//! ends with exactly one result, whatever happens.

// Library paths handle every failure; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod attempt;
mod backoff;
mod bus;
mod config;
mod context;
mod corelet;
mod error;
mod event;
mod factory;
mod handle;
mod handler;
mod mode;
mod pool;
mod rate_limit;
mod result;
mod stats;
mod sys;
mod timer;
mod unwind;

pub use crate::backoff::RetryBackoff;
pub use crate::bus::{EventBus, EventBusBuildError, EventBusBuilder, DEFAULT_QUEUE_CAPACITY};
pub use crate::config::{BusConfig, ConfigError};
pub use crate::context::EventContext;
pub use crate::corelet::{CoreletConfig, CoreletOutput};
pub use crate::error::{
    EventExecutionError, InvalidEventError, NoHandlerAvailableError, ParseModeError, PayloadError,
    PublishError,
};
pub use crate::event::{Event, EventId, DEFAULT_PRIORITY, DEFAULT_RETRY_COUNT, DEFAULT_TIMEOUT, MAX_TIMEOUT};
pub use crate::factory::EventFactory;
pub use crate::handle::{EventFuture, EventHandle};
pub use crate::handler::{handler_fn, EventHandler, HandlerError, HandlerResult};
pub use crate::mode::cmd::CommandConfig;
pub use crate::mode::{
    corelet_main, ExecutionMode, EXECUTION_MODE_CMD, EXECUTION_MODE_CORELET, EXECUTION_MODE_SYNC,
    EXECUTION_MODE_THREAD,
};
pub use crate::rate_limit::{RateLimitError, RateLimitInfo};
pub use crate::result::{ErrorKind, EventResult};
pub use crate::stats::BusStats;
pub use crate::timer::{CronError, TimerThread};
