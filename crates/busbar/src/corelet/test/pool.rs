//! A pool of real children: round trips, crashes, timeouts, protocol errors, life cycle.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::child::config;
use crate::corelet::config::CoreletConfig;
use crate::corelet::error::{CoreletError, Payload};
use crate::corelet::json::Json;
use crate::corelet::message::{self, ParentMessage, PROTOCOL_VERSION};
use crate::corelet::pool::CoreletPool;
use crate::sys;
pub(super) use crate::test_support::{eventually, PATIENCE};

/// Builds a pool from `config`.
pub(super) fn pool(config: CoreletConfig) -> CoreletPool {
    CoreletPool::new(config).expect("valid pool configuration")
}

/// Runs `request` with a generous deadline, ignoring published events.
pub(super) fn run(pool: &CoreletPool, request: Value) -> Result<Value, CoreletError> {
    execute(pool, request, Some(Instant::now() + PATIENCE), &mut |_| {})
}

/// Runs `request` until `deadline`, passing published events to `on_publish`. The test
/// children's requests, replies and events are free-form JSON: they cross as JSON text.
pub(super) fn execute(
    pool: &CoreletPool,
    request: Value,
    deadline: Option<Instant>,
    on_publish: &mut dyn FnMut(Value),
) -> Result<Value, CoreletError> {
    pool.execute::<_, Json<Value>, Json<Value>>(&Json(request), deadline, &mut |Json(event)| {
        on_publish(event)
    })
    .map(|Json(reply)| reply)
}

/// Returns the pid of the child that serves the next request.
pub(super) fn pid(pool: &CoreletPool) -> u32 {
    let pid = run(pool, json!({"op": "pid"})).expect("pid request");
    pid.as_u64().expect("a pid") as u32
}

/// Returns `true` if `pid` names no running process: gone, or a zombie awaiting its reaper.
pub(super) fn is_gone(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "pid (comm) state ...": the state follows the last ')'.
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
}

#[test]
fn echo() {
    let pool = pool(config("entry"));
    let nested = (0..40).fold(json!("core"), |inner, n| json!({"level": n, "inner": [inner]}));
    let values = [
        json!(null),
        json!(true),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(2.5),
        json!("ünïcødé 🚌 עברית \u{0} \"quoted\" \\ \n"),
        json!({"": [], "a": {}, "emoji 🚌": "key"}),
        nested,
    ];
    for value in values {
        let reply = run(&pool, json!({"op": "echo", "value": value})).expect("echo");
        assert_eq!(reply, value);
    }
    let stats = pool.stats();
    assert_eq!(stats.spawns, 1, "one child served every request");
    assert_eq!(stats.live, 1);
}

#[test]
fn frame_limit() {
    let limit: u32 = 4 << 20;
    let pool = pool(CoreletConfig { max_frame_size: limit, ..config("entry") });
    let request = |len: usize| json!({"op": "echo", "value": "x".repeat(len)});
    let execute = |request| ParentMessage::Execute { seq: 1, request: Json(request) };
    // The text's length is a varint, as long for this probe as for a request near the limit.
    let probe = limit as usize * 3 / 4;
    let overhead = message::encode(&execute(request(probe)), limit).expect("fits").len() - 4 - probe;
    let fits = limit as usize - overhead;

    let exact = request(fits);
    let reply = run(&pool, exact.clone()).expect("a request of exactly the limit");
    assert_eq!(reply, exact["value"]);

    let error = run(&pool, request(fits + 1)).expect_err("one byte over the limit");
    assert!(
        matches!(error, CoreletError::TooLarge { what: Payload::Request, len, limit: l }
            if len == u64::from(limit) + 1 && l == limit),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "request of 4194305 bytes exceeds the corelet frame limit of 4194304 bytes"
    );

    let error = run(&pool, json!({"op": "grow", "len": limit})).expect_err("reply too large");
    assert!(matches!(error, CoreletError::TooLarge { what: Payload::Reply, .. }), "{error:?}");
    // Neither message got near the channel, so the child is still the first one.
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("echo"), 1);
    let stats = pool.stats();
    assert_eq!((stats.spawns, stats.kills, stats.crashes), (1, 0, 0));
}

#[test]
fn output() {
    let pool = pool(config("entry"));
    for n in 0..3 {
        let reply = run(&pool, json!({"op": "print", "value": n})).expect("print");
        assert_eq!(reply, n);
    }
}

#[test]
fn publish() {
    let pool = pool(config("entry"));
    let mut events = Vec::new();
    let reply =
        execute(&pool, json!({"op": "publish", "count": 3}), Some(Instant::now() + PATIENCE), &mut |event| {
            events.push(event)
        })
        .expect("publish");
    assert_eq!(reply, json!({"published": 3}));
    assert_eq!(events, [json!({"n": 0}), json!({"n": 1}), json!({"n": 2})]);
}

#[test]
fn panic() {
    let pool = pool(config("entry"));
    let before = pid(&pool);
    let error = run(&pool, json!({"op": "panic"})).expect_err("a panic");
    let CoreletError::Panicked(info) = &error else {
        panic!("expected a panic, got {error:?}");
    };
    assert_eq!(info.message, "boom in a corelet");
    let location = info.location.as_deref().expect("a location");
    assert!(location.contains("test/child.rs"), "{location}");
    assert!(error.to_string().starts_with("corelet handler panicked: boom in a corelet at "));
    assert_eq!(pid(&pool), before, "the child survived its handler's panic");
}

#[test]
fn crashes() {
    let pool = pool(config("entry"));
    let cases = [
        (json!({"op": "segfault"}), "killed by signal 11 (SIGSEGV)"),
        (json!({"op": "abort"}), "killed by signal 6 (SIGABRT)"),
        (json!({"op": "exit", "code": 3}), "exited with code 3"),
    ];
    for (request, cause) in cases {
        let before = pid(&pool);
        let error = run(&pool, request).expect_err("a crash");
        assert!(
            matches!(&error, CoreletError::Crashed { description } if description.starts_with(cause)),
            "{error:?}"
        );
        assert!(error.to_string().starts_with(&format!("corelet crashed: {cause}")));
        assert!(is_gone(before));
        assert_ne!(pid(&pool), before, "the next request got a fresh child");
    }
    let stats = pool.stats();
    assert_eq!((stats.crashes, stats.spawns, stats.live), (3, 4, 1));
}

/// A child that closes its channel and lives on is stopped, and the message says so rather
/// than naming busbar's own SIGTERM as the cause.
#[test]
fn closed_channel_while_running() {
    let pool = pool(config("entry"));
    let before = pid(&pool);
    let error = run(&pool, json!({"op": "close_channel"})).expect_err("a broken channel");
    let expected =
        "closed its channel but kept running, so busbar stopped it (killed by signal 15 (SIGTERM))";
    assert!(matches!(&error, CoreletError::Crashed { description } if description == expected), "{error:?}");
    assert!(is_gone(before));
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("the next child answers"), json!(1));
}

/// A child that closes its channel before greeting and lives on is reported as such, not by
/// busbar's own SIGTERM.
#[test]
fn closed_channel_before_greeting() {
    let pool = pool(CoreletConfig { pool_size: Some(1), ..config("entry_close_then_live") });
    let error = run(&pool, json!({"op": "echo", "value": 1})).expect_err("no greeting");
    let message = error.to_string();
    assert!(message.contains("closed its channel but kept running, so busbar stopped it"), "{message}");
    assert!(message.contains("before greeting"), "{message}");
}

/// A request larger than a pipe holds, sent to a child that died idle, goes to another child
/// as a small one does: the child read none of the part that was written before its death
/// was seen.
#[test]
fn large_request_to_a_child_that_died_idle() {
    let pool = pool(config("entry")).check_idle_after(Duration::MAX);
    let dead = pid(&pool);
    // SAFETY: kill takes plain integers; `dead` is our own child, not reaped yet.
    unsafe { libc::kill(dead as libc::pid_t, libc::SIGKILL) };
    assert!(eventually(|| sys::pid_has_exited(dead).unwrap_or(false)), "the child died");
    let large = "x".repeat(200 << 10);
    let reply = run(&pool, json!({"op": "echo", "value": large})).expect("another child answers");
    assert_eq!(reply.as_str().map(str::len), Some(200 << 10));
    assert_eq!(pool.stats().spawns, 2, "the request went to a second child");
}

/// A child whose open-files limit leaves no descriptor spare still claims its channel: the
/// two it inherits are kept as they are, not duplicated (which a limit of 4 refused).
#[test]
fn tiny_open_files_limit() {
    let pool = pool(CoreletConfig { open_files: Some(4), ..config("entry") });
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("it serves"), json!(1));
}

/// A child killed from outside while idle is replaced, and the request it never received
/// runs in the next one, whether `checkout` finds it dead (it checks children idle for a
/// while) or sending the request does (it does not check children that just answered).
#[test]
fn died_while_idle() {
    for check_after in [Duration::ZERO, Duration::MAX] {
        let pool = pool(config("entry")).check_idle_after(check_after);
        let dead = pid(&pool);
        // SAFETY: kill takes plain integers; `dead` is our unreaped child, so its pid is ours.
        unsafe { libc::kill(dead as libc::pid_t, libc::SIGKILL) };
        // Not `is_gone`: a child's main thread shows as a zombie while its other threads are
        // still exiting, and until they are, its pipe is open and a request sent to it
        // goes through (the child then dies mid-request, a plain crash).
        // `waitid` reports it once the whole child has exited; it stays unreaped for the pool.
        assert!(eventually(|| sys::pid_has_exited(dead).unwrap_or(false)), "the child died");
        let next = pid(&pool);
        assert_ne!(next, dead, "checked after {check_after:?}");
        let stats = pool.stats();
        assert_eq!((stats.crashes, stats.spawns, stats.live), (1, 2, 1), "checked after {check_after:?}");
    }
}

/// A program that greets and then leaves before its first request is not restarted in a loop
/// until the deadline: the request fails as a crash after one start.
#[test]
fn a_child_that_leaves_after_greeting_is_not_restarted_in_a_loop() {
    let pool = pool(CoreletConfig { pool_size: Some(1), ..config("entry_greet_then_leave") });
    for _ in 0..3 {
        let error = run(&pool, json!({"op": "echo", "value": 1})).expect_err("no answer");
        assert!(matches!(error, CoreletError::Crashed { .. }), "{error:?}");
    }
    assert_eq!(pool.stats().spawns, 3, "one start per request");
}

#[test]
fn memory_limit() {
    let pool = pool(CoreletConfig { memory_limit: Some(1 << 30), ..config("entry") });
    let error = run(&pool, json!({"op": "hog"})).expect_err("an allocation failure");
    // Rust aborts when an allocation fails.
    assert!(
        matches!(&error, CoreletError::Crashed { description } if description.contains("SIGABRT")),
        "{error:?}"
    );
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("echo"), 1);
}

#[test]
fn cpu_limit() {
    let pool = pool(CoreletConfig { cpu_seconds: Some(1), ..config("entry") });
    // Half the lifetime budget spent: the child is retired rather than trusted with more.
    let first = pid(&pool);
    run(&pool, json!({"op": "burn", "ms": 600})).expect("burn");
    assert_eq!(pool.stats().recycles, 1);
    assert_ne!(pid(&pool), first);
    // A fresh child that spins past its budget dies of SIGXCPU.
    let error = run(&pool, json!({"op": "spin"})).expect_err("a CPU-limit kill");
    assert!(
        matches!(&error, CoreletError::Crashed { description } if description.contains("SIGXCPU")),
        "{error:?}"
    );
}

#[test]
fn timeout() {
    let pool = pool(config("entry"));
    let mut grandchild = None;
    let start = Instant::now();
    let error = execute(
        &pool,
        json!({"op": "spin", "grandchild": true}),
        Some(start + Duration::from_secs(1)),
        &mut |event| grandchild = event["grandchild"].as_u64(),
    )
    .expect_err("a timeout");
    let elapsed = start.elapsed();
    assert!(matches!(error, CoreletError::Timeout), "{error:?}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    // Deadline, plus the kill grace (unused here: SIGTERM kills a spinning child), plus
    // slack for a loaded machine.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    let grandchild = grandchild.expect("the handler announced its grandchild") as u32;
    assert!(eventually(|| is_gone(grandchild)), "grandchild {grandchild} survived");
    assert_eq!(pool.stats().kills, 1);
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("echo"), 1);
}

#[test]
fn deadline_passed_before_sending() {
    let pool = pool(config("entry"));
    let before = pid(&pool);
    let error =
        execute(&pool, json!({"op": "pid"}), Some(Instant::now()), &mut |_| {}).expect_err("no time left");
    assert!(matches!(error, CoreletError::Timeout), "{error:?}");
    assert_eq!(pid(&pool), before, "an unsent request harms no child");
    assert_eq!(pool.stats().kills, 0);
}

#[test]
fn protocol_errors() {
    let pool = pool(config("entry_raw"));
    let cases = [
        ("garbage", "undecodable message"),
        ("oversize", "exceeds the limit"),
        // A greeting (JSON) during a request is named as such, not as postcard's bare error.
        ("hello", "sent `hello` during a request"),
    ];
    for (op, reason) in cases {
        let error = run(&pool, json!({"op": op})).expect_err("a protocol error");
        assert!(matches!(&error, CoreletError::Protocol(r) if r.contains(reason)), "{op}: {error:?}");
        assert!(error
            .to_string()
            .starts_with("corelet protocol error, the child was killed: the child sent "));
        assert_eq!(run(&pool, json!({"op": "echo", "value": op})).expect("echo"), op);
    }
    // A second reply to one request would answer the next one with stale data.
    assert_eq!(run(&pool, json!({"op": "stale"})).expect("first reply"), "stale");
    let error = run(&pool, json!({"op": "echo", "value": 1})).expect_err("stale reply");
    assert!(
        matches!(&error, CoreletError::Protocol(r)
            if r.contains("sent `reply` for request 2 during request 3")),
        "{error:?}"
    );
    let error = run(&pool, json!({"op": "truncate"})).expect_err("a half frame, then exit");
    assert!(
        matches!(&error, CoreletError::Crashed { description } if description == "exited with code 0"),
        "{error:?}"
    );
    let stats = pool.stats();
    assert_eq!((stats.kills, stats.crashes, stats.spawns), (4, 1, 5));
}

#[test]
fn version_mismatch() {
    let pool = pool(config("entry_version_zero"));
    let error = run(&pool, json!({"op": "pid"})).expect_err("a refused child");
    let CoreletError::Start(start) = &error else {
        panic!("expected a start error, got {error:?}");
    };
    assert!(start.is_version_mismatch(), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("speaks protocol version 0, this process speaks {PROTOCOL_VERSION}")),
        "{error}"
    );
    let stats = pool.stats();
    assert_eq!((stats.live, stats.spawns, stats.start_failures), (0, 1, 1));
}

#[test]
fn start_failures_back_off() {
    let pool = pool(CoreletConfig {
        program: Some("/nonexistent/busbar-worker".into()),
        start_backoff: Duration::from_secs(5),
        ..config("entry")
    });
    let error = run(&pool, json!({})).expect_err("no such program");
    assert!(matches!(&error, CoreletError::Start(e) if !e.is_backoff()), "{error:?}");
    assert!(
        error.to_string().starts_with("failed to start corelet `/nonexistent/busbar-worker`: "),
        "{error}"
    );
    for _ in 0..50 {
        let error = run(&pool, json!({})).expect_err("still no such program");
        if let CoreletError::Start(e) = &error {
            if e.is_backoff() {
                assert!(error.to_string().contains("after 1 failed start(s) in a row"));
                assert!(error.to_string().contains("/nonexistent/busbar-worker"));
            }
        }
    }
    // With a 5 s pause after the first failure and 10 s after the second, fifty quick
    // requests try at most twice even on a stalled machine.
    let stats = pool.stats();
    assert!(stats.start_failures <= 2, "{stats:?}");
    assert_eq!(stats.spawns, 0);
}

#[test]
fn handshake_failures() {
    let exits = pool(CoreletConfig {
        program: Some("/bin/sh".into()),
        args: vec!["-c".into(), "exit 4".into()],
        ..config("entry")
    });
    let error = run(&exits, json!({})).expect_err("no greeting");
    assert!(
        error.to_string().contains("failed its handshake: it exited with code 4 before greeting"),
        "{error}"
    );

    let silent = pool(CoreletConfig {
        program: Some("/bin/sh".into()),
        args: vec!["-c".into(), "sleep 1000".into()],
        start_timeout: Duration::from_millis(300),
        ..config("entry")
    });
    let error = run(&silent, json!({})).expect_err("no greeting");
    assert!(matches!(&error, CoreletError::Start(e) if e.is_timeout()), "{error:?}");
    assert!(error.to_string().contains("sent no greeting within"), "{error}");
}

#[test]
fn recycle() {
    let pool = pool(CoreletConfig { max_requests: Some(3), ..config("entry") });
    let pids: Vec<u32> = (0..7).map(|_| pid(&pool)).collect();
    assert_eq!(pids[0], pids[2]);
    assert_ne!(pids[2], pids[3]);
    assert_eq!(pids[3], pids[5]);
    assert_ne!(pids[5], pids[6]);
    let stats = pool.stats();
    assert_eq!((stats.spawns, stats.recycles), (3, 2));
    assert!(eventually(|| is_gone(pids[0]) && is_gone(pids[3])));

    let pool = pool_with_tiny_resident_limit();
    let (a, b) = (pid(&pool), pid(&pool));
    assert_ne!(a, b, "a child above max_resident is retired after its request");
    assert_eq!(pool.stats().recycles, 2);
}

/// A pool whose children are always above their resident-memory limit.
fn pool_with_tiny_resident_limit() -> CoreletPool {
    pool(CoreletConfig { max_resident: Some(1), ..config("entry") })
}

#[test]
fn idle_children_exit() {
    let pool = pool(CoreletConfig { idle_timeout: Duration::from_millis(200), ..config("entry") });
    let child = pid(&pool);
    assert!(eventually(|| pool.stats().live == 0));
    assert_eq!(pool.stats().idle_exits, 1);
    assert!(eventually(|| is_gone(child)));
    assert_ne!(pid(&pool), child, "a request after an idle exit starts a new child");
}

#[test]
fn shutdown() {
    let pool = pool(config("entry"));
    let child = pid(&pool);
    pool.shutdown();
    assert!(is_gone(child), "shutdown reaps the children before it returns");
    assert!(matches!(run(&pool, json!({"op": "pid"})), Err(CoreletError::ShutDown)));
    pool.shutdown();
    assert_eq!(pool.stats().live, 0);
}

#[test]
fn kill_all_cancels_running_requests() {
    let pool = pool(CoreletConfig { pool_size: Some(1), ..config("entry") });
    let (started, running) = mpsc::channel();
    thread::scope(|scope| {
        let sleeper = scope.spawn(|| {
            execute(&pool, json!({"op": "sleep"}), Some(Instant::now() + PATIENCE), &mut |e| {
                let _ = started.send(e["sleeping"].as_u64());
            })
        });
        let child = running.recv_timeout(PATIENCE).expect("the handler started").expect("a pid") as u32;

        // The only child is busy: another request waits for it until its deadline.
        let start = Instant::now();
        let error =
            execute(&pool, json!({"op": "pid"}), Some(start + Duration::from_millis(300)), &mut |_| {})
                .expect_err("no free child");
        assert!(matches!(error, CoreletError::Saturated { pool_size: 1 }), "{error:?}");
        assert!(start.elapsed() >= Duration::from_millis(300));

        let start = Instant::now();
        pool.kill_all();
        let result = sleeper.join().expect("the requesting thread");
        assert!(matches!(result, Err(CoreletError::Cancelled)), "{result:?}");
        assert!(start.elapsed() < PATIENCE);
        assert!(is_gone(child));
    });
    assert!(matches!(run(&pool, json!({"op": "pid"})), Err(CoreletError::ShutDown)));
}

/// A freed child slot wakes whoever waits for one: a request waiting for the only child gets
/// it when the running request ends, not at its own deadline, and `shutdown` returns when the
/// last running request ends. (Found by `tests/properties_corelet.rs`: releasing a slot woke
/// nobody, so a bus's `shutdown` after `shutdown_now` waited forever.)
#[test]
fn freed_slot_wakes_waiters() {
    let pool = pool(CoreletConfig { pool_size: Some(1), ..config("entry") });
    for shutting_down in [false, true] {
        let (started, running) = mpsc::channel();
        thread::scope(|scope| {
            // Holds the only child for a second, then is killed at its deadline.
            let sleeper = scope.spawn(|| {
                execute(
                    &pool,
                    json!({"op": "sleep"}),
                    Some(Instant::now() + Duration::from_secs(1)),
                    &mut |_| {
                        let _ = started.send(());
                    },
                )
            });
            running.recv_timeout(PATIENCE).expect("the handler started");
            let start = Instant::now();
            if shutting_down {
                pool.shutdown();
            } else {
                assert!(run(&pool, json!({"op": "pid"})).is_ok(), "the waiter got the freed slot");
            }
            assert!(start.elapsed() < PATIENCE, "woken when the slot was freed: {:?}", start.elapsed());
            let result = sleeper.join().expect("the requesting thread");
            assert!(matches!(result, Err(CoreletError::Timeout)), "{result:?}");
        });
    }
}

#[test]
fn children_outlive_the_thread_that_needed_them() {
    let pool = pool(config("entry"));
    // The parent-death signal follows the thread that forked a child. Children are forked by
    // the pool's keeper, so a request thread that ends takes no child with it.
    let first = thread::scope(|scope| scope.spawn(|| pid(&pool)).join().expect("thread"));
    assert_eq!(pid(&pool), first);
}

#[test]
fn panicking_publish_callback() {
    let pool = pool(CoreletConfig { pool_size: Some(1), ..config("entry") });
    let child = pid(&pool);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        execute(&pool, json!({"op": "publish", "count": 1}), Some(Instant::now() + PATIENCE), &mut |_| {
            panic!("the caller's callback broke")
        })
    }));
    assert!(caught.is_err(), "the panic reaches the caller");
    assert!(is_gone(child), "the child, out of step, was killed");
    // The slot came back: the pool of one still serves.
    assert_ne!(pid(&pool), child);
    assert_eq!(pool.stats().live, 1);
}
