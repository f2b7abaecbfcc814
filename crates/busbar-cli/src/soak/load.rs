//! The soak's load: its handlers, the mix of events, and the tally of their results.

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Duration;

use busbar::{
    handler_fn, Event, EventContext, EventFactory, EventHandle, EventResult, ExecutionMode, HandlerResult,
};
use serde::Serialize;
use serde_json::json;

/// Longest the tally waits for one event's result before counting it lost.
pub(super) const RESULT_BOUND: Duration = Duration::from_secs(60);

/// Timeout of the events meant to time out: a corelet killed, a command killed, a cooperative
/// handler told to stop.
const SHORT: Duration = Duration::from_millis(100);

/// Timeout of every other event: ample, so that only the faults meant to happen happen.
const LONG: Duration = Duration::from_secs(30);

/// Registers the soak's handlers in `factory` (the bus's and the corelet children's).
pub(crate) fn register_handlers(factory: &EventFactory) {
    factory.register_event_type("soak.ok", || {
        handler_fn(|ctx| Ok(EventResult::success_with(json!(ctx.attempt()))))
    });
    factory.register_event_type("soak.fail", || {
        handler_fn(|_| Ok(EventResult::failure("soak: business failure")))
    });
    factory.register_event_type("soak.error", || {
        handler_fn(|_| Err(std::io::Error::other("soak: handler error").into()))
    });
    factory.register_event_type("soak.panic", || handler_fn(|_| -> HandlerResult { panic!("soak: panic") }));
    factory.register_event_type("soak.cooperate", || handler_fn(cooperate));
    factory.register_event_type("soak.abort", || handler_fn(|_| abort()));
    factory.register_event_type("soak.hang", || handler_fn(|_| hang()));
}

/// Works in 1 ms steps until the bus raises the cancellation flag at the deadline.
fn cooperate(ctx: &EventContext) -> HandlerResult {
    while !ctx.is_cancelled() {
        thread::sleep(Duration::from_millis(1));
    }
    Ok(EventResult::success())
}

/// Aborts the corelet (SIGABRT), without a core file: a soak must not fill the disk.
fn abort() -> HandlerResult {
    let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit only reads the struct it is given.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    std::process::abort()
}

/// Blocks forever without using the CPU, until the bus kills the corelet.
fn hang() -> HandlerResult {
    loop {
        thread::park();
    }
}

/// One kind of event in the mix, and the outcome it must end with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    /// Name in the report, `mode.what`.
    pub(super) name: &'static str,
    mode: ExecutionMode,
    /// Handler type, or for cmd events the executable.
    target: &'static str,
    /// Arguments of a cmd event.
    args: &'static [&'static str],
    timeout: Duration,
    /// `"success"` or the error kind the result must carry.
    pub(super) expected: &'static str,
}

const fn kind(
    name: &'static str,
    mode: ExecutionMode,
    target: &'static str,
    timeout: Duration,
    expected: &'static str,
) -> Kind {
    Kind { name, mode, target, args: &[], timeout, expected }
}

use ExecutionMode::{Cmd, Corelet, Sync, Thread};

/// The mix, published in this order over and over: 40 events, of which 15 are faults.
pub(super) const MIX: [Kind; 40] = {
    let ok_sync = kind("sync.ok", Sync, "soak.ok", LONG, "success");
    let ok_thread = kind("thread.ok", Thread, "soak.ok", LONG, "success");
    let ok_corelet = kind("corelet.ok", Corelet, "soak.ok", LONG, "success");
    let cmd_true = kind("cmd.true", Cmd, "true", LONG, "success");
    [
        ok_sync,
        ok_thread,
        ok_corelet,
        cmd_true,
        kind("sync.fail", Sync, "soak.fail", LONG, "business_failure"),
        ok_thread,
        ok_thread,
        kind("thread.panic", Thread, "soak.panic", LONG, "panic"),
        ok_corelet,
        kind("corelet.abort", Corelet, "soak.abort", LONG, "crashed"),
        ok_sync,
        kind("thread.error", Thread, "soak.error", LONG, "handler_error"),
        cmd_true,
        kind("cmd.false", Cmd, "false", LONG, "command_failed"),
        ok_thread,
        kind("sync.panic", Sync, "soak.panic", LONG, "panic"),
        ok_corelet,
        kind("thread.timeout", Thread, "soak.cooperate", SHORT, "timeout"),
        ok_thread,
        Kind {
            name: "cmd.sleep",
            mode: Cmd,
            target: "sleep",
            args: &["5"],
            timeout: SHORT,
            expected: "timeout",
        },
        ok_sync,
        ok_corelet,
        kind("corelet.hang", Corelet, "soak.hang", SHORT, "timeout"),
        ok_thread,
        kind("sync.error", Sync, "soak.error", LONG, "handler_error"),
        cmd_true,
        kind("thread.fail", Thread, "soak.fail", LONG, "business_failure"),
        ok_thread,
        kind("sync.timeout", Sync, "soak.cooperate", Duration::from_millis(5), "timeout"),
        ok_corelet,
        ok_thread,
        kind("corelet.panic", Corelet, "soak.panic", LONG, "panic"),
        cmd_true,
        ok_sync,
        ok_thread,
        kind("corelet.fail", Corelet, "soak.fail", LONG, "business_failure"),
        ok_thread,
        cmd_true,
        ok_corelet,
        ok_sync,
    ]
};

impl Kind {
    /// A fresh event of this kind.
    pub(super) fn event(&self) -> Event {
        let event = if self.mode == Cmd {
            Event::new("soak.command").with_data(json!({"executable": self.target, "args": self.args}))
        } else {
            Event::new(self.target)
        };
        event.with_mode(self.mode).with_timeout(self.timeout)
    }
}

/// Results by kind and outcome, and the events that never resolved.
#[derive(Debug, Default, Serialize)]
pub(super) struct Tally {
    /// Events whose handle produced a result.
    pub(super) resolved: u64,
    /// Events whose handle gave no result within [`RESULT_BOUND`].
    pub(super) lost: u64,
    /// Results whose outcome was not the one their kind must end with.
    pub(super) unexpected: u64,
    /// `kind -> outcome -> count`.
    pub(super) by_kind: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// `outcome -> count` over all kinds.
    pub(super) by_outcome: BTreeMap<&'static str, u64>,
    /// A few unexpected results, for the report.
    pub(super) examples: Vec<String>,
}

impl Tally {
    /// Waits for each handle in the order they were published and counts its result, until
    /// the publisher hangs up.
    pub(super) fn collect(handles: &Receiver<(usize, EventHandle)>) -> Self {
        let mut tally = Tally::default();
        for (slot, mut handle) in handles {
            let kind = &MIX[slot];
            let Some(result) = handle.wait_timeout(RESULT_BOUND) else {
                tally.lost += 1;
                continue;
            };
            tally.resolved += 1;
            let outcome = result.error_kind.map_or("success", |kind| kind.as_str());
            *tally.by_kind.entry(kind.name).or_default().entry(outcome).or_default() += 1;
            *tally.by_outcome.entry(outcome).or_default() += 1;
            if outcome != kind.expected {
                tally.unexpected += 1;
                if tally.examples.len() < 5 {
                    tally.examples.push(format!("{}: {:?}", kind.name, result.error_message));
                }
            }
        }
        tally
    }
}
