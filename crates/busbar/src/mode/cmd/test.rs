#![cfg(test)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use std::{env, fs, process};

use serde_json::{json, Value};

use super::run::WITHOUT_PIDFD;
use super::*;
use crate::sys::ProcessLimits;
use crate::test_support::{eventually, PATIENCE};

mod hygiene;
mod spec;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    /// Creates an empty directory whose name includes `name`, this process and a counter.
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        // ORDERING: the counter only has to hand out distinct numbers.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = env::temp_dir().join(format!("busbar-cmd-{}-{n}-{name}", process::id()));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Returns the path of `name` inside the directory, as a string for JSON.
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("utf-8 temp path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Parses valid data.
fn spec(data: Value) -> CommandSpec {
    CommandSpec::from_value(&data).expect("valid spec")
}

/// Runs `data` with `options`, a deadline `limit` away and no cancellation.
fn run_with(data: Value, limit: Duration, options: &RunOptions) -> CommandOutcome {
    run(&spec(data), Instant::now() + limit, &|| false, options).expect("run")
}

/// Runs `data` with default options and expects it to end on its own.
fn exited(data: Value) -> CommandOutput {
    match run_with(data, PATIENCE, &RunOptions::default()) {
        CommandOutcome::Exited { output } => output,
        other => panic!("expected an exit, got {other:?}"),
    }
}

/// Returns the message of the error `data` fails validation with.
fn spec_error(data: Value) -> String {
    CommandSpec::from_value(&data).expect_err("invalid spec").to_string()
}

/// Returns the error running `data` fails with.
fn run_error(data: Value) -> CommandRunError {
    run(&spec(data), Instant::now() + PATIENCE, &|| false, &RunOptions::default()).expect_err("run fails")
}

/// Returns `true` if `pid` no longer names a live `sleep`: gone, a zombie waiting for init to
/// reap it, or reused by another program.
fn sleep_is_gone(pid: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", pid.trim())) else {
        return true;
    };
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !stat.contains("(sleep)") || state == Some('Z')
}

#[test]
fn exit_zero() {
    let output = exited(json!({"executable": "true"}));
    assert!(output.is_success());
    assert_eq!(
        output.to_json(),
        json!({
            "returncode": 0, "stdout": "", "stderr": "", "signal": null, "signal_name": null,
            "stdout_truncated": false, "stderr_truncated": false,
            "stdout_lossy": false, "stderr_lossy": false,
        })
    );
}

#[test]
fn exit_nonzero() {
    let output = exited(json!({
        "executable": "sh", "args": ["-c", "echo '  ' >&2; echo 'no such thing' >&2; exit 2"],
    }));
    assert!(!output.is_success());
    assert_eq!(output.returncode(), Some(2));
    assert_eq!(output.describe_failure(), "exited with code 2: no such thing");
}

#[test]
fn killed_by_signal() {
    let output = exited(json!({"executable": "sh", "args": ["-c", "kill -KILL $$"]}));
    assert_eq!(output.returncode(), None);
    assert_eq!(output.signal(), Some(libc::SIGKILL));
    assert_eq!(output.to_json()["signal_name"], "SIGKILL");
    assert_eq!(output.to_json()["returncode"], Value::Null);
    assert_eq!(output.describe_failure(), "killed by signal 9 (SIGKILL)");
}

#[test]
fn capture() {
    let output = exited(json!({"executable": "sh", "args": ["-c", "echo out; echo err >&2"]}));
    assert_eq!((output.stdout(), output.stderr()), ("out\n", "err\n"));
}

#[test]
fn stdin() {
    let output = exited(json!({"executable": "cat", "stdin": "hello\nworld"}));
    assert_eq!(output.stdout(), "hello\nworld");
    // No `stdin` means /dev/null, never the bus's own stdin.
    assert_eq!(exited(json!({"executable": "cat"})).stdout(), "");
}

#[test]
fn stdin_large() {
    // cat echoes while it is fed: feeding 4 MiB before reading anything would deadlock.
    let input = "0123456789abcdef".repeat(256 * 1024);
    let options = RunOptions { max_output_bytes: 8 << 20, ..RunOptions::default() };
    let outcome = run_with(json!({"executable": "cat", "stdin": input}), PATIENCE, &options);
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.output().stdout().len(), input.len());
}

#[test]
fn stdin_unread() {
    // The program exits without reading: the broken pipe is not an error.
    let input = "x".repeat(1 << 20);
    assert!(exited(json!({"executable": "true", "stdin": input})).is_success());
}

#[test]
fn cwd() {
    let dir = TempDir::new("cwd");
    let output = exited(json!({"executable": "pwd", "cwd": dir.0}));
    let reported = output.stdout().trim_end();
    assert_eq!(fs::canonicalize(reported).expect("pwd output"), fs::canonicalize(&dir.0).expect("temp dir"));
}

#[test]
fn env() {
    let output = exited(json!({
        "executable": "sh", "args": ["-c", r#"printf '%s|%s' "$BUSBAR_A" "${PATH:+inherited}""#],
        "env": {"BUSBAR_A": "a b $c ; `x`"},
    }));
    assert_eq!(output.stdout(), "a b $c ; `x`|inherited");
}

#[test]
fn redirect() {
    let dir = TempDir::new("redirect");
    let output = exited(json!({
        "executable": "sh", "args": ["-c", "echo out; echo err >&2"], "cwd": dir.0,
        "stdout_file": "out.txt", "stderr_file": dir.file("err.txt"),
    }));
    assert_eq!((output.stdout(), output.stderr()), ("", ""));
    let read = |name| fs::read_to_string(dir.0.join(name)).expect("output file");
    assert_eq!((read("out.txt"), read("err.txt")), ("out\n".into(), "err\n".into()));

    // One file for both streams keeps their order, like `>both.txt 2>&1`.
    exited(json!({
        "executable": "sh", "args": ["-c", "echo one; echo two >&2; echo three"],
        "stdout_file": dir.file("both.txt"), "stderr_file": dir.file("both.txt"),
    }));
    assert_eq!(read("both.txt"), "one\ntwo\nthree\n");
}

#[test]
fn metacharacters() {
    let tricky = "$(echo hi); rm -rf /tmp/x `id` | cat > y * \"' \n\\";
    let output = exited(json!({"executable": "printf", "args": ["%s", tricky]}));
    assert_eq!(output.stdout(), tricky);
}

#[test]
fn truncated() {
    let options = RunOptions { max_output_bytes: 1000, ..RunOptions::default() };
    // 5 MB is far more than a pipe holds: the child finishes only if the bus keeps reading.
    let data = json!({"executable": "sh", "args": ["-c", "head -c 5000000 /dev/zero; echo e >&2"]});
    let CommandOutcome::Exited { output } = run_with(data, PATIENCE, &options) else {
        panic!("expected an exit");
    };
    assert!(output.is_success());
    assert_eq!(output.stdout().len(), 1000);
    assert_eq!(output.to_json()["stdout_truncated"], true);
    assert_eq!(output.to_json()["stderr_truncated"], false);
    assert_eq!(output.stderr(), "e\n");
}

#[test]
fn endless_output() {
    // `yes` writes as fast as the bus reads; the deadline must still be noticed.
    let start = Instant::now();
    let outcome = run_with(json!({"executable": "yes"}), Duration::from_millis(300), &RunOptions::default());
    assert!(matches!(outcome, CommandOutcome::TimedOut { .. }), "{outcome:?}");
    assert!(start.elapsed() < PATIENCE);
    assert_eq!(outcome.output().stdout().len(), DEFAULT_MAX_OUTPUT_BYTES);
}

#[test]
fn non_utf8() {
    let output = exited(json!({"executable": "printf", "args": ["\\377abc"]}));
    assert_eq!(output.stdout(), "\u{FFFD}abc");
    assert_eq!(output.to_json()["stdout_lossy"], true);
    assert_eq!(output.to_json()["stderr_lossy"], false);

    // A bound that splits a character drops its first byte instead of reporting bad UTF-8.
    let options = RunOptions { max_output_bytes: 2, ..RunOptions::default() };
    let outcome = run_with(json!({"executable": "printf", "args": ["aé"]}), PATIENCE, &options);
    let json = outcome.output().to_json();
    assert_eq!(json["stdout"], "a");
    assert_eq!((json["stdout_lossy"].clone(), json["stdout_truncated"].clone()), (json!(false), json!(true)));
}

#[test]
fn timeout_kills_group() {
    // The deadline leaves sh ample time to start its grandchild and print its pid.
    let limit = Duration::from_secs(2);
    let start = Instant::now();
    let outcome = run_with(
        json!({"executable": "sh", "args": ["-c", "sleep 1000 & echo $!; wait"]}),
        limit,
        &RunOptions::default(),
    );
    let elapsed = start.elapsed();
    let CommandOutcome::TimedOut { output } = &outcome else {
        panic!("expected a timeout, got {outcome:?}");
    };
    assert!(elapsed >= limit && elapsed < limit + PATIENCE, "{elapsed:?}");
    assert_eq!(output.signal(), Some(libc::SIGTERM));
    assert_eq!(outcome.describe_failure(), "timed out; killed by signal 15 (SIGTERM)");
    let grandchild = output.stdout();
    assert!(!grandchild.trim().is_empty(), "sh printed no pid");
    assert!(eventually(|| sleep_is_gone(grandchild)), "{grandchild} survived");
}

/// Returns a cancel check that answers `true` once `path` holds a complete line.
fn when_written(path: String) -> impl Fn() -> bool {
    move || fs::read_to_string(&path).is_ok_and(|text| text.ends_with('\n'))
}

#[test]
fn cancel_kills_group() {
    let dir = TempDir::new("cancel");
    let pid_file = dir.file("pid");
    let data = json!({
        "executable": "sh", "args": ["-c", r#"sleep 1000 & echo $! > "$PID_FILE"; wait"#],
        "env": {"PID_FILE": pid_file},
    });
    let is_cancelled = when_written(pid_file.clone());
    let outcome =
        run(&spec(data), Instant::now() + PATIENCE, &is_cancelled, &RunOptions::default()).expect("run");
    assert!(matches!(outcome, CommandOutcome::Cancelled { .. }), "{outcome:?}");
    let grandchild = fs::read_to_string(&pid_file).expect("pid file");
    assert!(eventually(|| sleep_is_gone(&grandchild)), "{grandchild} survived");
}

#[test]
fn sigterm_ignored() {
    let dir = TempDir::new("ignore");
    let ready = dir.file("ready");
    let data = json!({
        "executable": "sh", "args": ["-c", r#"trap '' TERM; echo > "$READY"; sleep 1000"#],
        "env": {"READY": ready},
    });
    let options = RunOptions { kill_grace: Duration::from_millis(200), ..RunOptions::default() };
    let start = Instant::now();
    let outcome = run(&spec(data), Instant::now() + PATIENCE, &when_written(ready), &options).expect("run");
    assert!(matches!(outcome, CommandOutcome::Cancelled { .. }), "{outcome:?}");
    assert_eq!(outcome.output().signal(), Some(libc::SIGKILL));
    assert!(start.elapsed() < PATIENCE);
}

#[test]
fn leftovers_killed() {
    // The leader exits at once; its background child would hold stdout open for 1000 s.
    let start = Instant::now();
    let output = exited(json!({"executable": "sh", "args": ["-c", "sleep 1000 & echo $!"]}));
    assert!(output.is_success());
    assert!(start.elapsed() < PATIENCE);
    let grandchild = output.stdout();
    assert!(eventually(|| sleep_is_gone(grandchild)), "{grandchild} survived");
}

/// A process that left the group and keeps stdout open does not turn the program's exit into
/// a timeout: the result is the exit, with the output read so far, long before the deadline.
#[test]
fn escaped_grandchild_holding_stdout_does_not_hold_the_result() {
    // `setsid` (not a group leader) calls setsid() and execs `sleep`: `$!` is the sleep's pid.
    let script = "setsid sleep 1000 & echo $! >&2; sleep 0.3; echo hi; exit 0";
    let start = Instant::now();
    let outcome =
        run_with(json!({"executable": "sh", "args": ["-c", script]}), PATIENCE, &RunOptions::default());
    let CommandOutcome::Exited { output } = outcome else { panic!("{outcome:?}") };
    assert_eq!((output.returncode(), output.stdout()), (Some(0), "hi\n"));
    assert!(start.elapsed() < PATIENCE, "{:?}", start.elapsed());
    // The escaped `sleep` is not busbar's to kill; end it here.
    if let Ok(pid) = output.stderr().trim().parse::<libc::pid_t>() {
        // SAFETY: kill takes plain integers; the pid is the sleep this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[test]
fn deadline_passed() {
    let data = json!({"executable": "sleep", "args": ["1000"]});
    let outcome = run(&spec(data), Instant::now(), &|| false, &RunOptions::default()).expect("run");
    assert!(matches!(outcome, CommandOutcome::TimedOut { .. }), "{outcome:?}");
}

#[test]
fn without_pidfd() {
    WITHOUT_PIDFD.set(true);
    let output = exited(json!({"executable": "sh", "args": ["-c", "echo out; exit 3"]}));
    assert_eq!((output.returncode(), output.stdout()), (Some(3), "out\n"));
    let outcome = run_with(
        json!({"executable": "sleep", "args": ["1000"]}),
        Duration::from_millis(100),
        &RunOptions::default(),
    );
    assert!(matches!(outcome, CommandOutcome::TimedOut { .. }), "{outcome:?}");
    // Redirected output leaves no pipe at all: only the exit poll can notice the end.
    let dir = TempDir::new("nopidfd");
    let output =
        exited(json!({"executable": "true", "stdout_file": dir.file("o"), "stderr_file": dir.file("e")}));
    assert!(output.is_success());
    WITHOUT_PIDFD.set(false);
}

#[test]
fn limits() {
    let options = RunOptions {
        limits: ProcessLimits { open_files: Some(50), ..ProcessLimits::default() },
        die_with_parent: true,
        ..RunOptions::default()
    };
    let outcome = run_with(json!({"executable": "sh", "args": ["-c", "ulimit -n"]}), PATIENCE, &options);
    assert_eq!(outcome.output().stdout(), "50\n");
}

#[test]
fn missing_program() {
    let error = run_error(json!({"executable": "busbar-no-such-program"}));
    assert_eq!(
        error.to_string(),
        "cmd event: cannot run `busbar-no-such-program`: No such file or directory (os error 2)"
    );
    assert!(error.is_permanent());
    let error = run_error(json!({"executable": "/"}));
    assert!(error.to_string().starts_with("cmd event: cannot run `/`: "), "{error}");
    assert!(error.is_permanent());
}

#[test]
fn bad_cwd() {
    let error = run_error(json!({"executable": "true", "cwd": "/busbar/no/such/dir"}));
    assert_eq!(
        error.to_string(),
        "cmd event: cannot use `cwd` \"/busbar/no/such/dir\": No such file or directory (os error 2)"
    );
    assert!(error.is_permanent());
    let dir = TempDir::new("cwdfile");
    fs::write(dir.0.join("file"), "").expect("write file");
    let error = run_error(json!({"executable": "true", "cwd": dir.file("file")}));
    assert!(error.to_string().ends_with("Not a directory (os error 20)"), "{error}");
}

#[test]
fn bad_output_file() {
    let error = run_error(json!({"executable": "true", "stdout_file": "/busbar/no/such/dir/out"}));
    assert_eq!(
        error.to_string(),
        "cmd event: cannot open `stdout_file` \"/busbar/no/such/dir/out\": No such file or \
         directory (os error 2)"
    );
    assert!(error.is_permanent());
    let dir = TempDir::new("outdir");
    let error = run_error(json!({"executable": "true", "stderr_file": dir.0}));
    assert!(error.to_string().starts_with("cmd event: cannot open `stderr_file`"), "{error}");
    assert!(error.to_string().ends_with("Is a directory (os error 21)"), "{error}");
}

#[test]
fn path_is_not_a_shell() {
    // A program name with a space is one name, not a command line.
    let error = run_error(json!({"executable": "echo hi"}));
    assert!(error.to_string().starts_with("cmd event: cannot run `echo hi`"), "{error}");
}
