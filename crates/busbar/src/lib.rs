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
//! All four modes share one attempt loop: retries, timeouts, panic capture and the final
//! [`EventResult`]. They differ only in where an attempt runs. [Corelets](#corelets) and
//! [commands](#commands) have sections of their own below.
//!
//! Thread-mode events run on a pool of `busbar-worker-N` threads (one per logical core by
//! default). Higher [priority](Event::with_priority) runs first; equal priorities run in
//! publish order. The queue is bounded: [`publish`](EventBus::publish) waits for room,
//! [`try_publish`](EventBus::try_publish) hands the event back. Corelet and cmd events wait in
//! the same queue, and a worker supervises each while it runs.
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
//! `success == false` (a business failure), panics, runs past the event's timeout, or (in a
//! corelet) crashes its process. With [`retry_count`](Event::with_retry_count) `n`, at most
//! `1 + n` attempts run; failures marked [permanent](HandlerError::permanent) are not retried.
//! The pause between attempts is set per bus with [`RetryBackoff`].
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
//! it keeps its capacity. `Corelet` and `Cmd` timeouts are *hard*: at the deadline the process
//! group gets SIGTERM, a short grace, then SIGKILL. For a hard limit on handler code, use
//! `Corelet` mode.
//!
//! ```
//! use std::time::Duration;
//! use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
//!
//! let bus = EventBus::new();
//! bus.subscribe("polite.slow", handler_fn(|ctx| {
//!     while !ctx.is_cancelled() {
//!         std::thread::sleep(Duration::from_millis(1));
//!     }
//!     Ok(EventResult::success()) // too late: the bus reports a timeout
//! }));
//! let event = Event::new("polite.slow").with_mode(ExecutionMode::Thread).with_timeout(Duration::from_millis(20));
//! assert!(bus.publish(event)?.wait().is_timeout());
//! # Ok::<(), busbar::PublishError>(())
//! ```
//!
//! # Timers
//!
//! A [`TimerThread`] publishes a fresh copy of an event (new id, same type and data) after an
//! interval, once or periodically. Periodic firings lie on a fixed grid from the start, so
//! they do not drift; if the machine stalls, missed firings are skipped, not burst.
//! [`publish_after`](EventBus::publish_after) and [`publish_at`](EventBus::publish_at) delay a
//! single event and return its handle; [`schedule_cron`](EventBus::schedule_cron) fires at the
//! times a cron expression matches, in UTC. All timers of a bus share one `busbar-timer`
//! thread, which never runs a handler: fired events run on the worker pool. Dropping a timer
//! stops it, and so does shutting the bus down; [`shutdown`](EventBus::shutdown) waits for
//! delayed events, [`shutdown_now`] cancels them.
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
//! [`rate_limit`](EventBus::rate_limit) reports a limit and its current use.
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
//! # Corelets
//!
//! A `Corelet` event runs in a child process from the bus's pool, so a handler that crashes,
//! hangs or leaks cannot take the program down with it. The children are the program itself,
//! re-executed: **`main` calls [`corelet_main`] first**, with the same handler registrations
//! the bus uses. In a corelet child that call serves events and never returns; in the program
//! itself it returns at once.
//!
//! ```no_run
//! use std::time::Duration;
//! use busbar::{handler_fn, ErrorKind, Event, EventBus, EventFactory, EventResult, ExecutionMode};
//! use serde_json::json;
//!
//! /// The handlers, for both sides: the bus (which checks them at publish) and its children.
//! fn handlers() -> EventFactory {
//!     let factory = EventFactory::new();
//!     factory.register_event_type("payment.process", || handler_fn(|_| {
//!         Ok(EventResult::success_with(json!({"transaction_id": 789, "pid": std::process::id()})))
//!     }));
//!     factory.register_event_type("payment.crash", || handler_fn(|_| std::process::abort()));
//!     factory.register_event_type("payment.hang", || handler_fn(|_| loop {
//!         std::thread::sleep(Duration::from_secs(1));
//!     }));
//!     factory
//! }
//!
//! fn main() -> Result<(), busbar::PublishError> {
//!     busbar::corelet_main(&handlers()); // first: in a corelet child, this never returns
//!
//!     let bus = EventBus::with_factory(handlers());
//!     let corelet = |event_type| Event::new(event_type).with_mode(ExecutionMode::Corelet);
//!
//!     let paid = bus.publish(corelet("payment.process").with_data(json!({"amount": 99.99})))?.wait();
//!     assert!(paid.success);
//!     assert_ne!(paid.data["pid"], std::process::id()); // it ran in another process
//!
//!     let crashed = bus.publish(corelet("payment.crash"))?.wait();
//!     assert_eq!(crashed.error_kind, Some(ErrorKind::Crashed));
//!     assert!(crashed.error_message.unwrap().contains("SIGABRT"));
//!
//!     let hung = bus.publish(corelet("payment.hang").with_timeout(Duration::from_millis(300)))?.wait();
//!     assert!(hung.is_timeout()); // at the deadline: the child's process group was killed
//!
//!     assert!(bus.publish(corelet("payment.process"))?.wait().success); // the bus lives on
//!     bus.shutdown();
//!     Ok(())
//! }
//! ```
//!
//! What to expect:
//!
//! - **Reuse.** Children start on first use and serve one event at a time, up to
//!   `pool_size` in [`CoreletConfig`] (default: the bus's thread count). In a child a
//!   handler type is constructed once per process.
//! - **Who runs the exchange.** A thread that waits on a corelet event no worker has started
//!   runs the exchange with the child itself, so publishing one wakes no pool worker. An event
//!   nobody waits for starts on a worker that is watching the queue, or, when the pool sleeps,
//!   within about two milliseconds (the watchdog's sweep).
//! - **Crashes** (a signal, `abort`, `exit`) give a [`Crashed`](ErrorKind::Crashed) result
//!   naming the signal or exit code; the next attempt gets another process. A handler *panic*
//!   is a [`Panic`](ErrorKind::Panic) result with its message, and the child survives.
//! - **Timeouts** are hard: the child's process group (with anything the handler started) gets
//!   SIGTERM, [`kill_grace`](CoreletConfig::kill_grace), then SIGKILL.
//! - **Limits** per child come from [`CoreletConfig`]: address space, CPU seconds, open files,
//!   niceness; a child is retired after a number of events, above a resident size, or when idle.
//!   Children die with the program (a parent-death signal and end-of-file on their channel).
//! - **Data** travels on pipes of its own, so a handler may print freely: messages in a compact
//!   binary form, an event's and a result's data as JSON text inside them. An event larger than
//!   [`max_frame_size`](CoreletConfig::max_frame_size) fails with a clear
//!   [`InvalidInput`](ErrorKind::InvalidInput) result instead of reaching a child. Data nested
//!   deeper than JSON's parser takes (about 128 levels) is refused where it would be read: an
//!   event by the child, as `InvalidInput`; a handler's result fails the attempt permanently.
//! - **Follow-up events** a handler publishes through its context are sent to the parent and
//!   published on its bus, with correlation and causation ids. Their result stays there: the
//!   handle the child gets is already resolved, as [`Unsupported`](ErrorKind::Unsupported). A
//!   `Sync` follow-up runs on a pool thread of the parent, as a `Thread` event: the thread that
//!   receives it guards the child's deadline and runs no handler. Like any publish, the child
//!   checks that the type has a handler, so register follow-up types in the factory given to
//!   [`corelet_main`] too. Delayed publishing, [`publish_attempt`](EventBus::publish_attempt)
//!   and rate limits are refused in a child with an error saying why, and timers do not start
//!   there (logged): the child's bus is private to it and ends with it.
//! - [`stats`](EventBus::stats) counts live children, starts, crashes, kills and retirements.
//!
//! ```
//! use busbar::{CoreletConfig, EventBus};
//!
//! let mut limits = CoreletConfig::default();
//! limits.pool_size = Some(4);
//! limits.memory_limit = Some(256 << 20); // bytes of address space per child
//! limits.max_requests = Some(1_000);     // then a fresh child
//! let bus = EventBus::builder().corelet(limits).build()?;
//! assert_eq!(bus.stats().corelets, 0); // none start before the first corelet event
//! # Ok::<(), busbar::EventBusBuildError>(())
//! ```
//!
//! # Commands
//!
//! A `Cmd` event runs the program its data names; no handler is registered. The data is an
//! object: `executable` (required; a path, or a name looked up in `PATH`), `args` (strings),
//! `cwd`, `env` (an object of strings, added to the inherited environment), `stdin` (a string),
//! `stdout_file` and `stderr_file` (write there instead of capturing). The result's data holds
//! `returncode`, `stdout` and `stderr`, plus `signal` and `signal_name` if a signal killed the
//! program, and `stdout_truncated`/`stderr_truncated` and `stdout_lossy`/`stderr_lossy` when
//! output was longer than the bound (1 MiB per stream) or not UTF-8.
//!
//! No shell is ever involved: arguments reach the program verbatim. Exit code 0 is a success;
//! another code or a signal is a [`CommandFailed`](ErrorKind::CommandFailed) result carrying
//! the same data, retried while retries remain. Data that does not describe a command (an
//! unknown field, a missing `executable`) and programs, directories or files that cannot be
//! used are permanent [`InvalidInput`](ErrorKind::InvalidInput) failures. The program runs in
//! a process group of its own, which is killed at the deadline and by
//! [`shutdown_now`](EventBus::shutdown_now) (SIGKILL before it returns). When the program
//! exits, what it left in its group is killed too: a process meant to outlive the event must
//! have left the group (`setsid`) before the program exits, and should not keep its stdout or
//! stderr, which are read for at most 100 ms after the exit.
//!
//! ```
//! use busbar::{ErrorKind, Event, EventBus, ExecutionMode};
//! use serde_json::json;
//!
//! let bus = EventBus::new();
//! let command = |data| Event::new("run.command").with_mode(ExecutionMode::Cmd).with_data(data);
//!
//! let hello = bus.publish(command(json!({"executable": "echo", "args": ["hello", "$HOME"]})))?.wait();
//! assert!(hello.success);
//! assert_eq!(hello.data["returncode"], 0);
//! assert_eq!(hello.data["stdout"], "hello $HOME\n"); // no shell expanded `$HOME`
//!
//! let fed = bus.publish(command(json!({"executable": "cat", "stdin": "fed through stdin"})))?.wait();
//! assert_eq!(fed.data["stdout"], "fed through stdin");
//!
//! let failed = bus.publish(command(json!({"executable": "false"})))?.wait();
//! assert_eq!(failed.error_kind, Some(ErrorKind::CommandFailed));
//! assert_eq!(failed.data["returncode"], 1);
//!
//! let typo = bus.publish(command(json!({"executable": "echo", "arg": ["x"]})).with_retry_count(3))?.wait();
//! assert_eq!(typo.error_kind, Some(ErrorKind::InvalidInput));
//! assert_eq!(typo.attempts, 1); // permanent: not retried
//! # Ok::<(), busbar::PublishError>(())
//! ```
//!
//! # Context propagation
//!
//! Events published from a handler ([`EventContext::publish`], or any bus handle on the
//! handler's thread) inherit the chain's [correlation id](Event::correlation_id) and get the
//! parent's id as [causation id](Event::causation_id), in every mode (from a corelet, too).
//! Each attempt runs in a `busbar.attempt` [`tracing`](https://docs.rs/tracing) span with the
//! event's id, type, mode, attempt and correlation id.
//!
//! # Configuration
//!
//! [`EventBus::builder`] sets threads, queue capacity, backoff and corelet limits in code;
//! [`BusConfig`] loads the same settings from TOML (corelet limits in a `[corelet]` table) and
//! `BUSBAR_*` environment variables.
//!
//! # Async
//!
//! An [`EventHandle`] can be awaited (it implements [`IntoFuture`](std::future::IntoFuture)):
//! `handle.await` works on any executor, and busbar depends on none.
//!
//! ```
//! use busbar::{handler_fn, Event, EventBus, EventResult, ExecutionMode};
//!
//! let bus = EventBus::new();
//! bus.subscribe("ping", handler_fn(|_| Ok(EventResult::success_with("pong".into()))));
//! let handle = bus.publish(Event::new("ping").with_mode(ExecutionMode::Thread))?;
//! let result = pollster::block_on(async { handle.await }); // any executor will do
//! assert_eq!(result.data, "pong");
//! # Ok::<(), busbar::PublishError>(())
//! ```
//!
//! # Shutdown
//!
//! [`EventBus::shutdown`] finishes what was accepted (including delayed events), stops timers
//! and corelet children, and joins the threads; [`EventBus::shutdown_now`] cancels what is
//! queued or delayed, kills running corelets and commands, and returns promptly. Dropping the
//! last handle starts a graceful shutdown in the background. Every accepted event ends with
//! exactly one result, whatever happens.
//!
//! # Waiting
//!
//! A pool worker that has just finished a job, a thread waiting for a thread-mode result, and
//! either end of a corelet channel watch for up to 50 µs, yielding the CPU between looks,
//! before they sleep. On a virtual machine a thread asleep on an idle vCPU wakes tens of
//! microseconds late, against about two for a whole thread-mode round trip; while events keep
//! coming, watching keeps both sides awake. The price is at most those 50 µs of yielding per
//! wait, and a waiter whose watches keep finding nothing stops watching until a look now and
//! then finds answers coming quickly again; `busbar bench` and the README's Performance
//! section show what it buys.
//!
//! # Features and platforms
//!
//! busbar has no cargo features yet: everything above is always built. Corelet and cmd modes
//! use Linux interfaces (`/proc`, `pidfd`, `close_range`, the parent-death signal); busbar is
//! built and tested on Linux only.
//!
//! # Testing
//!
//! Code using sync, thread and cmd events tests like any other code. Corelet events need a
//! program whose `main` calls [`corelet_main`] first, and a test binary's `main` belongs to
//! libtest. Two ways out:
//!
//! - A test target without the harness: in `Cargo.toml`, `[[test]] name = "corelet"` with
//!   `harness = false`, and in `tests/corelet.rs` a plain `main` that calls [`corelet_main`]
//!   first, then runs its checks (panicking on failure). Examples are plain programs already
//!   and need only the first line.
//! - Point [`CoreletConfig::program`] at a binary that does call it, for example your own
//!   (`env!("CARGO_BIN_EXE_<name>")` in an integration test).
//!
//! ```no_run
//! // tests/corelet.rs, a target with `harness = false`
//! use busbar::{handler_fn, Event, EventBus, EventFactory, EventResult, ExecutionMode};
//!
//! fn handlers() -> EventFactory {
//!     let factory = EventFactory::new();
//!     factory.register_event_type("risky", || handler_fn(|_| Ok(EventResult::success())));
//!     factory
//! }
//!
//! fn main() {
//!     busbar::corelet_main(&handlers());
//!     let bus = EventBus::with_factory(handlers());
//!     let event = Event::new("risky").with_mode(ExecutionMode::Corelet);
//!     assert!(bus.publish(event).expect("accepted").wait().success);
//!     println!("corelet tests passed");
//! }
//! ```

// Library paths handle every failure; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod attempt;
mod backoff;
mod barrier;
mod bus;
mod clock;
mod config;
mod context;
mod corelet;
mod deadline;
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
mod tally;
#[cfg(test)]
mod test_support;
mod timer;
mod unit;
mod unwind;
mod watch;

// The fuzz targets in `fuzz/` need the crate-private parsers of outside input; only they
// enable this feature. Hidden, like crossbeam's macro support, and no part of the API. Built
// for the unit tests too, which check the fuzz seeds with it.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;

// `busbar bench` explains its sync row by the clock that times sync attempts, which only
// busbar knows; the CLI enables this feature to ask instead of repeating busbar's choice.
// Hidden like `__fuzz`, and no part of the API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod __bench {
    /// Returns `true` if sync attempts are timed with the CPU's counter, `false` if with the
    /// OS clock.
    pub fn sync_clock_reads_the_counter() -> bool {
        crate::clock::reads_the_counter()
    }

    /// Returns the Linux kernel's clock source, which decides that choice on Linux x86.
    pub fn kernel_clock_source() -> Option<String> {
        crate::clock::kernel_clock_source()
    }

    /// Returns `true` if a sync event's finish needs no fence before `join`'s check, because
    /// the process registered for `membarrier` (see `EventBusBuilder::build`).
    pub fn sync_finish_needs_no_fence() -> bool {
        crate::barrier::is_light()
    }
}

pub use crate::backoff::RetryBackoff;
pub use crate::bus::{EventBus, EventBusBuildError, EventBusBuilder, DEFAULT_QUEUE_CAPACITY};
pub use crate::config::{BusConfig, ConfigError};
pub use crate::context::EventContext;
pub use crate::corelet::{AllowedPaths, CoreletConfig, CoreletOutput};
pub use crate::error::{
    EventExecutionError, InvalidEventError, NoHandlerAvailableError, ParseModeError, PayloadError,
    PublishError,
};
pub use crate::event::{Event, EventId, DEFAULT_PRIORITY, DEFAULT_RETRY_COUNT, DEFAULT_TIMEOUT, MAX_TIMEOUT};
pub use crate::factory::EventFactory;
pub use crate::handle::{EventFuture, EventHandle, EventResolver};
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
