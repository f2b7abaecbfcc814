//! Tests that need a process of their own: leak counts, inherited descriptors, parent death.
//!
//! Each `#[test]` here re-runs this binary on an ignored `*_inner` test, alone in its process,
//! so that descriptors and children of tests running in parallel cannot disturb the counts.
//! The inner tests do nothing unless [`ISOLATED_ENV`] says they run isolated.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::json;

use super::child::{config, test_args};
use super::pool::{eventually, is_gone, pid, pool, run, PATIENCE};
use crate::corelet::error::CoreletError;
use crate::sys;

/// Set in the environment of an isolated inner test.
const ISOLATED_ENV: &str = "BUSBAR_TEST_ISOLATED";

/// Module path of this file as libtest names tests.
const HERE: &str = "corelet::test::isolated::";

/// Starts this test binary on the ignored test `name` of this file, alone in its process.
fn start_isolated(name: &str, stdout: Stdio) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(test_args(HERE, name))
        .env(ISOLATED_ENV, "1")
        .stdout(stdout)
        .spawn()
        .expect("re-run the test binary")
}

/// Runs the ignored test `name` isolated and asserts that it passed, within a hard bound.
fn run_isolated(name: &str) {
    // Its stdout only has libtest's chatter; failures and panics go to stderr (`--nocapture`).
    let mut child = start_isolated(name, Stdio::null());
    let start = Instant::now();
    let finished = eventually(|| matches!(child.try_wait(), Ok(Some(_))));
    if !finished {
        let _ = child.kill();
    }
    let status = child.wait().expect("reap the isolated test");
    assert!(finished, "{name} did not finish within {:?}", start.elapsed());
    assert!(status.success(), "{name} failed: {status}");
}

/// Returns `true` when running as an isolated inner test.
fn is_isolated() -> bool {
    std::env::var_os(ISOLATED_ENV).is_some()
}

/// Returns the pids of this process's children, zombies included, from `/proc`.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": fields after the last ')'.
        let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(me.as_str()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn crash_storm() {
    run_isolated("crash_storm_inner");
}

#[test]
#[ignore = "runs isolated, from `crash_storm`"]
fn crash_storm_inner() {
    if !is_isolated() {
        return;
    }
    let fds = sys::open_fd_count().expect("count descriptors");
    let pool = pool(config("entry"));
    for n in 0..1000 {
        let request = if n % 2 == 0 { json!({"op": "exit", "code": 3}) } else { json!({"op": "segfault"}) };
        let error = run(&pool, request).expect_err("a crash");
        assert!(matches!(error, CoreletError::Crashed { .. }), "{error:?}");
    }
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("echo"), 1);
    let stats = pool.stats();
    assert_eq!((stats.crashes, stats.spawns, stats.live), (1000, 1001, 1));
    assert_eq!(children().len(), 1, "only the live child is left");
    drop(pool);
    assert_eq!(children(), Vec::<u32>::new(), "no child, zombie or not, is left");
    assert_eq!(sys::open_fd_count().expect("count descriptors"), fds);
}

#[test]
fn inherited_descriptors() {
    run_isolated("inherited_descriptors_inner");
}

#[test]
#[ignore = "runs isolated, from `inherited_descriptors`"]
fn inherited_descriptors_inner() {
    if !is_isolated() {
        return;
    }
    // A descriptor someone opened without close-on-exec, as C libraries often do.
    let marker = std::env::temp_dir().join(format!("busbar-marker-{}", std::process::id()));
    let file = std::fs::File::create(&marker).expect("marker file");
    // SAFETY: fcntl with F_SETFD changes only the flags of a descriptor `file` owns.
    unsafe {
        libc::fcntl(file.as_raw_fd(), libc::F_SETFD, 0);
    }
    let pool = pool(config("entry"));
    let fds = run(&pool, json!({"op": "fds"})).expect("fds");
    let _ = std::fs::remove_file(&marker);
    let targets: Vec<&str> = fds.as_array().expect("a list").iter().filter_map(|fd| fd[1].as_str()).collect();
    let marker = marker.display().to_string();
    assert!(!targets.iter().any(|t| t.starts_with(&marker)), "the child inherited {marker}: {targets:?}");
    let pipes = targets.iter().filter(|t| t.starts_with("pipe:")).count();
    assert_eq!(pipes, 2, "the channel's two pipe ends are the only pipes: {targets:?}");
    assert!(!targets.iter().any(|t| t.starts_with("socket:")), "no socket inherited: {targets:?}");
}

/// A host running with stdin and stdout closed (a daemon started with `<&- >&-`): the
/// channel's descriptors and the pool's cut stay off 0, 1 and 2, so the host's prints do not
/// go into a request and the pool works.
#[test]
fn closed_standard_streams() {
    run_isolated("closed_standard_streams_inner");
}

#[test]
#[ignore = "runs isolated, from `closed_standard_streams`"]
fn closed_standard_streams_inner() {
    if !is_isolated() {
        return;
    }
    // SAFETY: this isolated process uses neither stream again but through `println!`, which
    // then fails quietly (or, if the numbers were reused, writes wherever they point).
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    let pool = pool(config("entry"));
    assert_eq!(run(&pool, json!({"op": "echo", "value": 1})).expect("first"), json!(1));
    // Only the two closed ones: stderr is whatever the test runner gave this process.
    for fd in 0..=1 {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|t| t.display().to_string());
        let target = target.unwrap_or_default();
        assert!(!target.starts_with("pipe:") && !target.contains("eventfd"), "fd {fd} is {target}");
    }
    println!("the host prints");
    assert_eq!(run(&pool, json!({"op": "echo", "value": 2})).expect("after a print"), json!(2));
    // Long enough that the parent stops watching and waits in `poll`, cut included.
    let burnt = run(&pool, json!({"op": "burn", "ms": 100})).expect("a wait in poll");
    assert!(burnt.as_f64().is_some_and(|seconds| seconds >= 0.1), "{burnt}");
}

#[test]
fn parent_death() {
    let mut parent = start_isolated("parent_death_inner", Stdio::piped());
    // libtest's own lines come first; the report follows once the corelet sleeps.
    let report = BufReader::new(parent.stdout.take().expect("piped stdout"))
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("corelet ").map(str::to_owned));
    let corelet: u32 =
        report.and_then(|pid| pid.trim().parse().ok()).expect("the parent reported its corelet's pid");
    parent.kill().expect("SIGKILL the parent");
    parent.wait().expect("reap the parent");
    assert!(eventually(|| is_gone(corelet)), "corelet {corelet} outlived its parent");
}

#[test]
#[ignore = "runs isolated, from `parent_death`"]
fn parent_death_inner() {
    if !is_isolated() {
        return;
    }
    let pool = pool(config("entry"));
    // Warm up, so the child that hangs is not the first one ever started.
    let _ = pid(&pool);
    let _ =
        super::pool::execute(&pool, json!({"op": "sleep"}), Some(Instant::now() + PATIENCE), &mut |event| {
            // The child is busy and will not read its channel: only the parent-death signal
            // can end it once we are killed.
            println!("corelet {}", event["sleeping"]);
        });
    panic!("the parent should have been killed while its corelet slept");
}
