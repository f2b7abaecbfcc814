#![cfg(test)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::test_support::{eventually, PATIENCE};

/// Spawns `sh -c script` configured by `configure_child`, with stdout piped.
fn spawn_sh(script: &str, limits: &ProcessLimits, die_with_parent: bool) -> Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).stdout(Stdio::piped());
    configure_child(&mut cmd, limits, die_with_parent);
    cmd.spawn().expect("spawn sh")
}

/// Reads all of the child's stdout and reaps it.
fn output_of(mut child: Child) -> String {
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("piped stdout"), &mut out)
        .expect("read stdout");
    assert!(child.wait().expect("wait").success());
    out
}

/// Reads one line from the child's stdout, leaving the pipe open.
fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read line");
    line.trim().to_owned()
}

/// Returns `true` if `pid` no longer names a live `sleep`: gone, a zombie waiting for init to
/// reap it, or reused by another program.
fn sleep_is_gone(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The format is "pid (comm) state ...": the state follows the last ')'.
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    !stat.contains("(sleep)") || state == Some(Some('Z'))
}

#[test]
fn describe_code() {
    let status = Command::new("sh").args(["-c", "exit 3"]).status().expect("run sh");
    assert_eq!(describe_exit(status), "exited with code 3");
}

#[test]
fn describe_signal() {
    let status = Command::new("sh").args(["-c", "kill -SEGV $$"]).status().expect("run sh");
    // A core dump, if the machine allows one, adds a suffix.
    let description = describe_exit(status);
    assert!(description.starts_with("killed by signal 11 (SIGSEGV)"), "{description}");
}

#[test]
fn signal_names() {
    assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
    assert_eq!(signal_name(libc::SIGXCPU), "SIGXCPU");
    assert_eq!(signal_name(0), "unknown signal");
    assert_eq!(signal_name(-4), "unknown signal");
    assert_eq!(signal_name(1000), "unknown signal");
}

#[test]
fn terminate_kills_grandchild() {
    let mut child = spawn_sh("sleep 1000 & echo $!; wait", &ProcessLimits::default(), false);
    let grandchild: u32 = first_line(&mut child).parse().expect("grandchild pid");
    assert!(!has_exited(&child).expect("has_exited"));

    let status = terminate_group(&mut child, PATIENCE).expect("terminate");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert!(eventually(|| sleep_is_gone(grandchild)), "grandchild {grandchild} survived");
}

#[test]
fn sigterm_ignored() {
    let mut child = spawn_sh("trap '' TERM; echo ready; sleep 1000", &ProcessLimits::default(), false);
    // Only once the trap is set does SIGTERM get ignored.
    assert_eq!(first_line(&mut child), "ready");
    let grace = Duration::from_millis(200);
    let start = Instant::now();
    let status = terminate_group(&mut child, grace).expect("terminate");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(start.elapsed() >= grace);
    assert!(start.elapsed() < PATIENCE);
}

#[test]
fn terminate_after_exit() {
    let mut child = spawn_sh("exit 4", &ProcessLimits::default(), false);
    assert!(eventually(|| has_exited(&child).expect("has_exited")));
    // has_exited did not reap it, so the real status is still there.
    let status = terminate_group(&mut child, PATIENCE).expect("terminate");
    assert_eq!(status.code(), Some(4));
    // A second call finds it reaped and returns the recorded status without signalling.
    let again = terminate_group(&mut child, PATIENCE).expect("terminate again");
    assert_eq!(again.code(), Some(4));
}

#[test]
fn own_group() {
    // Field 5 of /proc/<pid>/stat is the process group id.
    let script = "read -r _pid _comm _state _ppid pgid _rest < /proc/$$/stat; echo $pgid";
    let child = spawn_sh(script, &ProcessLimits::default(), false);
    let pid = child.id();
    let pgid = output_of(child);
    assert_eq!(pgid.trim(), pid.to_string());
}

#[test]
fn limits_applied() {
    let script = "ulimit -n; ulimit -t; ulimit -v; nice";
    let base = output_of(spawn_sh(script, &ProcessLimits::default(), false));
    let base_nice: i32 = base.lines().nth(3).and_then(|nice| nice.parse().ok()).expect("niceness");

    let limits = ProcessLimits {
        address_space: Some(4 << 30),
        cpu_seconds: Some(100),
        open_files: Some(64),
        nice: Some(3),
    };
    let out = output_of(spawn_sh(script, &limits, true));
    let lines: Vec<&str> = out.lines().collect();
    let expected_nice = (base_nice + 3).min(19).to_string();
    assert_eq!(lines, ["64", "100", "4194304", expected_nice.as_str()]);
}

#[test]
fn cpu_limit() {
    // The soft limit brings SIGXCPU, which names the cause, before the hard limit's SIGKILL.
    let limits = ProcessLimits { cpu_seconds: Some(1), ..ProcessLimits::default() };
    let mut child = spawn_sh("while :; do :; done", &limits, false);
    let stopped = eventually(|| has_exited(&child).expect("has_exited"));
    let status = terminate_group(&mut child, Duration::ZERO).expect("reap");
    assert!(stopped, "the CPU limit did not stop the loop");
    assert_eq!(status.signal(), Some(libc::SIGXCPU), "{status}");
}

#[test]
fn limit_clamped_to_hard() {
    // Asking for more descriptors than the hard limit allows tightens nothing and fails nothing.
    let limits = ProcessLimits { open_files: Some(u64::MAX), ..ProcessLimits::default() };
    let hard = output_of(spawn_sh("ulimit -Hn", &ProcessLimits::default(), false));
    let out = output_of(spawn_sh("ulimit -n", &limits, false));
    assert_eq!(out, hard);
}

#[test]
fn dies_with_spawning_thread() {
    // PR_SET_PDEATHSIG fires when the spawning *thread* exits: this is both the proof that the
    // signal is set up and the gotcha callers must design around.
    let mut child = thread::spawn(|| spawn_sh("exec sleep 1000", &ProcessLimits::default(), true))
        .join()
        .expect("spawning thread");
    let died = eventually(|| has_exited(&child).expect("has_exited"));
    let status = terminate_group(&mut child, Duration::ZERO).expect("reap");
    assert!(died, "child outlived the thread that spawned it");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

#[test]
fn fd_count() {
    assert!(open_fd_count().expect("count descriptors") >= 3);
}

#[test]
fn signal_without_group() {
    // Without configure_child there is no group of that id; the child alone gets the signal.
    let mut child = Command::new("sleep").arg("1000").spawn().expect("spawn sleep");
    signal_group(&child, libc::SIGKILL).expect("signal");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

#[test]
fn a_cpu_time_limit_is_seen() {
    // SAFETY: the forked child makes only system calls (setrlimit, getrlimit, _exit), which
    // are safe after fork in a multi-threaded process; it never returns into the test.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let limit = libc::rlimit { rlim_cur: 100, rlim_max: 101 };
        // SAFETY: setrlimit reads `limit`, a valid rlimit; _exit ends the child at once.
        unsafe {
            let limited = libc::setrlimit(libc::RLIMIT_CPU, &limit) == 0 && cpu_time_limited();
            libc::_exit(if limited { 0 } else { 1 });
        }
    }
    let mut status = 0;
    // SAFETY: waitpid writes only to `status`; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child saw no limit: {status}");
}
