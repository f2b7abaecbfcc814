//! Corelet mode end to end, through `EventBus::publish`.
//!
//! Crashes, timeouts, process hygiene, data, panics, follow-up events, stats and retries.
//! A `harness = false` target: `main` hands the handlers to `busbar::corelet_main` first, so
//! this binary is also the corelet worker program, then runs the named checks (arguments
//! filter them by name) and ends with `N passed, M failed`. One check re-executes the binary
//! as a parent process of its own ([`DOOMED_PARENT`]) to kill it.

mod confine;
mod exchange;
mod isolation;
mod proc;
mod run_here;
mod runner;

use std::process::ExitCode;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use busbar::{
    handler_fn, CoreletConfig, CoreletOutput, Event, EventBus, EventContext, EventFactory, EventId,
    EventResult, ExecutionMode, HandlerResult,
};
use runner::Check;
use serde_json::json;

/// Environment variable that makes this binary play the parent that `parent_killed` kills.
const DOOMED_PARENT: &str = "BUSBAR_TEST_DOOMED_PARENT";

fn main() -> ExitCode {
    busbar::corelet_main(&handlers()); // in a corelet child, never returns
    if std::env::var_os(DOOMED_PARENT).is_some() {
        isolation::doomed_parent();
    }
    // Before any thread starts, so that setting the environment races with nothing.
    std::env::set_var(confine::SECRET_VAR, "secret");
    std::env::set_var(confine::KEPT_VAR, "kept");
    runner::run(&[
        Check { name: "crash_segfault", run: isolation::crash_segfault },
        Check { name: "crash_abort", run: isolation::crash_abort },
        Check { name: "crash_exit", run: isolation::crash_exit },
        Check { name: "crash_out_of_memory", run: isolation::crash_out_of_memory },
        Check { name: "timeout_kills_group", run: isolation::timeout_kills_group },
        Check { name: "thousand_crashes", run: isolation::thousand_crashes },
        Check { name: "output", run: isolation::output },
        Check { name: "parent_killed", run: isolation::parent_killed },
        Check { name: "data_round_trip", run: exchange::data_round_trip },
        Check { name: "frame_limit", run: exchange::frame_limit },
        Check { name: "too_deep", run: exchange::too_deep },
        Check { name: "too_deep_result", run: exchange::too_deep_result },
        Check { name: "too_deep_follow_up", run: exchange::too_deep_follow_up },
        Check { name: "panic", run: exchange::panic },
        Check { name: "follow_up", run: exchange::follow_up },
        Check { name: "sync_follow_up_keeps_the_deadline", run: exchange::sync_follow_up_keeps_the_deadline },
        Check { name: "delayed_publish_in_child", run: exchange::delayed_publish_in_child },
        Check { name: "stats", run: exchange::stats },
        Check { name: "retry_fresh_child", run: exchange::retry_fresh_child },
        Check { name: "confinement", run: confine::confinement },
        Check { name: "waiter_runs_its_event", run: run_here::waiter_runs_its_event },
        Check { name: "waiters_retry_outlives_shutdown", run: run_here::waiters_retry_outlives_shutdown },
        Check { name: "unwaited_events_start", run: run_here::unwaited_events_start },
        Check { name: "child_deadline_after_a_wait", run: run_here::child_deadline_after_a_wait },
    ])
}

/// The handlers of the bus and of its corelets (the same registrations on both sides).
fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("echo", || {
        handler_fn(|ctx| {
            Ok(EventResult::success_with(json!({"pid": std::process::id(), "data": ctx.event().data()})))
        })
    });
    factory.register_event_type("segfault", || handler_fn(|_| segfault()));
    factory.register_event_type("abort", || {
        handler_fn(|_| {
            no_core_dumps();
            std::process::abort()
        })
    });
    factory.register_event_type("exit", || handler_fn(|_| std::process::exit(3)));
    factory.register_event_type("budget", || {
        handler_fn(|ctx| {
            let ms = ctx.event().data()["sleep_ms"].as_u64().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            Ok(EventResult::success_with(json!({"remaining_ms": ctx.remaining().as_millis() as u64})))
        })
    });
    factory.register_event_type("hog", || handler_fn(|_| hog()));
    factory.register_event_type("spin", || handler_fn(spin));
    factory.register_event_type("hang", || handler_fn(hang));
    factory.register_event_type("noisy", || handler_fn(noisy));
    factory.register_event_type("panic", || handler_fn(|_| panic!("boom in a corelet")));
    factory.register_event_type("inflate", || handler_fn(inflate));
    factory.register_event_type("chain", || handler_fn(chain));
    factory.register_event_type("crash_once", || handler_fn(crash_once));
    factory.register_event_type("record", || handler_fn(record));
    factory.register_event_type("confined", || handler_fn(confine::confined));
    factory.register_event_type("gate", || handler_fn(run_here::gate));
    factory.register_event_type("where_am_i", || handler_fn(run_here::where_am_i));
    factory.register_event_type("thread_of", || handler_fn(run_here::thread_of));
    factory.register_event_type("fail_until_released", || handler_fn(run_here::fail_until_released));
    factory.register_event_type("publish_then_spin", || handler_fn(exchange::publish_then_spin));
    factory.register_event_type("blocked_in_parent", || handler_fn(exchange::blocked_in_parent));
    factory.register_event_type("delay_in_child", || handler_fn(exchange::delay_in_child));
    factory.register_event_type("deep_result", || handler_fn(exchange::deep_result));
    factory.register_event_type("publish_deep", || handler_fn(exchange::publish_deep));
    factory
}

/// Keeps a crash from writing a core file: a test run should not fill the disk.
fn no_core_dumps() {
    let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit only reads the struct it is given.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
}

/// Writes to a page that may not be touched: a real invalid memory access, SIGSEGV.
fn segfault() -> ! {
    no_core_dumps();
    // SAFETY: mmap with a null hint and an anonymous private mapping touches no memory of ours.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap failed");
    // SAFETY: deliberately not safe: the page is mapped without access rights, so this write
    // faults and the kernel kills the process with SIGSEGV, which is what the check wants.
    unsafe { page.cast::<u64>().write_volatile(1) };
    unreachable!("wrote to a PROT_NONE page")
}

/// Allocates and touches memory until an allocation fails (under `memory_limit`, it will).
fn hog() -> HandlerResult {
    no_core_dumps();
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 16 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Starts a grandchild that ignores SIGTERM, reports both pids, then loops forever.
fn spin(ctx: &EventContext) -> HandlerResult {
    let grandchild = std::process::Command::new("sh").args(["-c", "trap '' TERM; exec sleep 600"]).spawn()?;
    ctx.publish(
        Event::new("record").with_data(json!({"pid": std::process::id(), "grandchild": grandchild.id()})),
    )?;
    loop {
        std::hint::spin_loop();
    }
}

/// Reports its pid, then blocks forever without using the CPU.
fn hang(ctx: &EventContext) -> HandlerResult {
    ctx.publish(Event::new("record").with_data(json!({"pid": std::process::id()})))?;
    loop {
        std::thread::park();
    }
}

/// Writes to stdout and stderr, including text that looks like protocol frames, then answers.
fn noisy(ctx: &EventContext) -> HandlerResult {
    use std::io::Write;
    let fake_reply = r#"{"reply":{"seq":1,"reply":{"returned":{"success":false}}}}"#;
    let mut out = std::io::stdout().lock();
    out.write_all(&(fake_reply.len() as u32).to_be_bytes())?;
    writeln!(out, "{fake_reply}")?;
    writeln!(out, "noisy handler: plain stdout line")?;
    out.flush()?;
    eprintln!("noisy handler: stderr line {fake_reply}");
    Ok(EventResult::success_with(ctx.event().data().clone()))
}

/// Returns a string of `data["len"]` bytes.
fn inflate(ctx: &EventContext) -> HandlerResult {
    let len = ctx.event().data()["len"].as_u64().unwrap_or_default() as usize;
    Ok(EventResult::success_with(json!("x".repeat(len))))
}

/// Publishes two follow-up events to the parent: through the context and through its bus.
fn chain(ctx: &EventContext) -> HandlerResult {
    let first =
        ctx.publish(Event::new("record").with_mode(ExecutionMode::Thread).with_data(json!({"n": 1})))?;
    let second = ctx
        .event_bus()
        .publish(Event::new("record").with_mode(ExecutionMode::Thread).with_data(json!({"n": 2})))?;
    // The results live on the parent's bus; here the handles say so.
    let local = [first.wait(), second.wait()].map(|result| result.error_kind.map(|kind| kind.as_str()));
    Ok(EventResult::success_with(json!({"pid": std::process::id(), "local": local})))
}

/// Crashes on the first attempt after reporting its pid; answers with its pid afterwards.
fn crash_once(ctx: &EventContext) -> HandlerResult {
    if ctx.attempt() == 1 {
        ctx.publish(Event::new("record").with_data(json!({"pid": std::process::id()})))?;
        std::process::exit(3);
    }
    Ok(EventResult::success_with(json!({"pid": std::process::id(), "attempt": ctx.attempt()})))
}

/// Follow-up events the parent-side `record` handler ran for, with the pid of the process that
/// ran it.
static RECORDED: Mutex<Vec<(Event, u32)>> = Mutex::new(Vec::new());
static RECORDED_CHANGED: Condvar = Condvar::new();

/// Runs in the parent: keeps the event for the check that waits for it.
fn record(ctx: &EventContext) -> HandlerResult {
    RECORDED.lock().unwrap_or_else(PoisonError::into_inner).push((ctx.event().clone(), std::process::id()));
    RECORDED_CHANGED.notify_all();
    Ok(EventResult::success())
}

/// Waits (30 s at most) until `count` events of the chain `correlation` were recorded and
/// returns them in the order they ran.
fn recorded(correlation: EventId, count: usize) -> Vec<(Event, u32)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = RECORDED.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let found: Vec<_> = all.iter().filter(|(e, _)| e.correlation_id() == correlation).cloned().collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if found.len() >= count || left.is_zero() {
            assert_eq!(found.len(), count, "recorded events of chain {correlation}");
            return found;
        }
        all = RECORDED_CHANGED.wait_timeout(all, left).unwrap_or_else(PoisonError::into_inner).0;
    }
}

/// The corelet settings the checks start from: two children whose output goes where ours does.
fn config() -> CoreletConfig {
    let mut config = CoreletConfig::default();
    config.pool_size = Some(2);
    config.output = CoreletOutput::Inherit;
    config
}

/// A bus with two worker threads, these handlers and `config`.
fn bus(config: CoreletConfig) -> EventBus {
    EventBus::builder().threads(2).factory(handlers()).corelet(config).build().expect("valid settings")
}

/// A corelet event with a generous timeout.
fn corelet(event_type: &str) -> Event {
    Event::new(event_type).with_mode(ExecutionMode::Corelet).with_timeout(Duration::from_secs(60))
}

/// Publishes `event` and waits for its result.
fn run(bus: &EventBus, event: Event) -> EventResult {
    bus.publish(event).expect("accepted").wait()
}

/// Runs an `echo` event, asserts it succeeded, and returns the pid of the corelet that ran it.
fn echo_pid(bus: &EventBus) -> u64 {
    let result = run(bus, corelet("echo"));
    assert!(result.success, "{result:?}");
    let pid = result.data["pid"].as_u64().expect("a pid");
    assert_ne!(pid, u64::from(std::process::id()), "ran in another process");
    pid
}
