//! Cmd mode through the bus: programs run without a handler, without a shell, bounded and killed.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, process};

use busbar::{BusConfig, CommandConfig, ErrorKind, Event, EventBus, EventHandle, EventResult, ExecutionMode};
use serde_json::{json, Value};
use support::{eventually, PATIENCE};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        // ORDERING: the counter only hands out distinct numbers.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = env::temp_dir().join(format!("busbar-cmd-test-{}-{n}-{name}", process::id()));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// The path of `name` in the directory, as a string for JSON.
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A bus with two workers and the default cmd settings.
fn bus() -> EventBus {
    EventBus::builder().threads(2).build().unwrap()
}

/// A cmd event running what `data` describes.
fn cmd(data: Value) -> Event {
    Event::new("test.cmd").with_mode(ExecutionMode::Cmd).with_data(data)
}

/// Waits, boundedly, for the result of `handle`.
fn finish(mut handle: EventHandle) -> EventResult {
    handle.wait_timeout(PATIENCE).expect("a result within PATIENCE").clone()
}

/// Publishes `event` on a fresh default bus and waits for its result.
fn run(event: Event) -> EventResult {
    let bus = bus();
    let result = finish(bus.publish(event).unwrap());
    bus.shutdown();
    result
}

/// Reads a pid a test command wrote to `path`, once it is there.
fn read_pid(path: &str) -> u32 {
    let mut pid = None;
    assert!(
        eventually(|| {
            pid = fs::read_to_string(path).ok().and_then(|text| text.trim().parse().ok());
            pid.is_some()
        }),
        "no pid in {path}"
    );
    pid.unwrap()
}

/// Returns `true` once `pid` is no longer a live `name`: gone, a zombie waiting to be reaped
/// by init, or reused by another program.
fn is_gone(pid: u32, name: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "pid (comm) state ...": the state follows the last ')'.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !stat.contains(&format!("({name})")) || state == Some('Z')
}

/// Asserts a permanent invalid-input failure after one attempt, despite three retries
/// allowed, and returns its message.
fn refused(data: Value) -> String {
    let result = run(cmd(data).with_retry_count(3));
    assert!(!result.success, "{result:?}");
    assert_eq!(result.error_kind, Some(ErrorKind::InvalidInput), "{result:?}");
    assert_eq!(result.attempts, 1, "{result:?}");
    result.error_message.unwrap()
}

#[test]
fn exit_zero() {
    let result = run(cmd(json!({"executable": "true"})));
    assert!(result.success, "{result:?}");
    assert_eq!(result.error_kind, None);
    assert_eq!(result.attempts, 1);
    assert_eq!(result.data["returncode"], 0);
    assert_eq!(result.data["signal"], Value::Null);
    assert_eq!(result.into_result().unwrap()["stdout"], "");
}

#[test]
fn exit_nonzero() {
    let data = json!({"executable": "sh", "args": ["-c", "echo partial; echo 'disk full' >&2; exit 3"]});
    let result = run(cmd(data));
    assert!(!result.success);
    assert_eq!(result.error_kind, Some(ErrorKind::CommandFailed));
    assert_eq!(result.attempts, 1);
    // The data is there on failure too.
    assert_eq!(result.data["returncode"], 3);
    assert_eq!(result.data["stdout"], "partial\n");
    let message = result.error_message.unwrap();
    assert_eq!(message, "command `sh` exited with code 3: disk full");
}

#[test]
fn killed_by_signal() {
    let result = run(cmd(json!({"executable": "sh", "args": ["-c", "kill -KILL $$"]})));
    assert_eq!(result.error_kind, Some(ErrorKind::CommandFailed));
    assert_eq!(result.data["returncode"], Value::Null);
    assert_eq!(result.data["signal"], 9);
    assert_eq!(result.data["signal_name"], "SIGKILL");
}

#[test]
fn capture() {
    let data = json!({"executable": "sh", "args": ["-c", "echo to out; echo to err >&2"]});
    let result = run(cmd(data));
    assert!(result.success);
    assert_eq!(result.data["stdout"], "to out\n");
    assert_eq!(result.data["stderr"], "to err\n");
    for flag in ["stdout_truncated", "stderr_truncated", "stdout_lossy", "stderr_lossy"] {
        assert_eq!(result.data[flag], false, "{flag}");
    }
}

#[test]
fn stdin() {
    let result = run(cmd(json!({"executable": "tr", "args": ["a-z", "A-Z"], "stdin": "shout\n"})));
    assert_eq!(result.data["stdout"], "SHOUT\n");
    // Without `stdin` the program reads /dev/null: `cat` ends at once.
    let result = run(cmd(json!({"executable": "cat"})));
    assert!(result.success);
    assert_eq!(result.data["stdout"], "");
}

#[test]
fn cwd() {
    let dir = TempDir::new("cwd");
    fs::write(dir.file("marker"), "").unwrap();
    let result = run(cmd(json!({"executable": "ls", "cwd": dir.path()})));
    assert_eq!(result.data["stdout"], "marker\n");
}

#[test]
fn env() {
    let data = json!({
        "executable": "sh",
        "args": ["-c", "echo \"$BUSBAR_GREETING $HOME\""],
        "env": {"BUSBAR_GREETING": "hello", "HOME": "/nowhere"},
    });
    // Added variables and replaced ones; the rest is inherited (PATH found `sh`).
    assert_eq!(run(cmd(data)).data["stdout"], "hello /nowhere\n");
}

#[test]
fn redirect() {
    let dir = TempDir::new("redirect");
    let data = json!({
        "executable": "sh",
        "args": ["-c", "echo out; echo err >&2"],
        "cwd": dir.path(),
        "stdout_file": "out.txt", // relative to cwd
        "stderr_file": dir.file("err.txt"),
    });
    let result = run(cmd(data));
    assert!(result.success);
    assert_eq!((&result.data["stdout"], &result.data["stderr"]), (&json!(""), &json!("")));
    assert_eq!(fs::read_to_string(dir.file("out.txt")).unwrap(), "out\n");
    assert_eq!(fs::read_to_string(dir.file("err.txt")).unwrap(), "err\n");

    // One file for both, like `>file 2>&1`: neither overwrites the other.
    let data = json!({
        "executable": "sh",
        "args": ["-c", "echo one; echo two >&2; echo three"],
        "stdout_file": dir.file("both.txt"),
        "stderr_file": dir.file("both.txt"),
    });
    assert!(run(cmd(data)).success);
    assert_eq!(fs::read_to_string(dir.file("both.txt")).unwrap(), "one\ntwo\nthree\n");
}

#[test]
fn metacharacters() {
    let args =
        ["$HOME", "a b", "; rm -rf /", "`id`", "$(echo hi)", "*", "'\"", "| cat", "&& false", "\\n", ""];
    let printf_args: Vec<&str> = ["[%s]\n"].into_iter().chain(args).collect();
    let result = run(cmd(json!({"executable": "printf", "args": printf_args})));
    let expected: String = args.iter().map(|arg| format!("[{arg}]\n")).collect();
    assert_eq!(result.data["stdout"], expected);
}

#[test]
fn timeout_kills_group() {
    let dir = TempDir::new("timeout");
    let pidfile = dir.file("pid");
    let timeout = Duration::from_millis(1500);
    let data = json!({
        "executable": "sh",
        "args": ["-c", "sleep 1000 & echo $! > \"$PIDFILE\"; wait"],
        "env": {"PIDFILE": pidfile},
    });
    let started = Instant::now();
    let result = run(cmd(data).with_timeout(timeout));
    let elapsed = started.elapsed();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(result.is_timeout());
    assert!(elapsed >= timeout && elapsed < timeout + PATIENCE, "took {elapsed:?}");
    // The grandchild went with the group.
    let grandchild = read_pid(&pidfile);
    assert!(eventually(|| is_gone(grandchild, "sleep")), "grandchild {grandchild} survived");
}

#[test]
fn kill_grace() {
    // The group ignores SIGTERM (an ignored signal stays ignored across exec), so only the
    // SIGKILL after the configured grace stops it. The grace is longer than the default 2 s,
    // so that only a configured grace can account for the time taken.
    let dir = TempDir::new("grace");
    let ready = dir.file("ready");
    let (timeout, grace) = (Duration::from_secs(1), Duration::from_secs(3));
    let mut config = CommandConfig::default();
    config.kill_grace = grace;
    let bus = EventBus::builder().threads(1).cmd(config).build().unwrap();
    let data = json!({
        "executable": "sh",
        "args": ["-c", "trap '' TERM; echo > \"$READY\"; sleep 1000"],
        "env": {"READY": ready},
    });
    let started = Instant::now();
    let result = finish(bus.publish(cmd(data).with_timeout(timeout)).unwrap());
    let elapsed = started.elapsed();
    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(Path::new(&ready).exists(), "sh was not ready by the deadline; the test proves nothing");
    assert!(elapsed >= timeout + grace && elapsed < timeout + grace + PATIENCE, "took {elapsed:?}");
}

#[test]
fn missing_executable() {
    let message = refused(json!({"args": ["-l"]}));
    assert!(message.contains("`executable` is missing"), "{message}");
    let message = refused(json!({"executable": null}));
    assert!(message.contains("`executable` is missing"), "{message}");
    let message = refused(json!({"executable": ""}));
    assert!(message.contains("`executable` must not be empty"), "{message}");
    let message = refused(json!({"executable": ["ls"]}));
    assert!(message.contains("`executable` must be a string, found array"), "{message}");
}

#[test]
fn not_an_object() {
    let message = refused(json!("ls -l"));
    assert!(
        message.contains("expected an object with at least an `executable` string, found string"),
        "{message}"
    );
    let message = refused(Value::Null);
    assert!(message.contains("found null"), "{message}");
    let message = refused(json!({"executable": "ls", "arg": ["-l"]}));
    assert!(message.contains("unknown field `arg`"), "{message}");
}

#[test]
fn args_not_strings() {
    let message = refused(json!({"executable": "ls", "args": "-l"}));
    assert!(message.contains("`args` must be an array of strings, found string"), "{message}");
    let message = refused(json!({"executable": "ls", "args": ["-l", 2]}));
    assert!(message.contains("`args` must be an array of strings, found number at index 1"), "{message}");
    let message = refused(json!({"executable": "ls", "env": {"A": 1}}));
    assert!(message.contains("`env` must be an object of strings, found number at key `A`"), "{message}");
}

#[test]
fn no_such_program() {
    let message = refused(json!({"executable": "busbar-no-such-program"}));
    assert!(message.contains("cannot run `busbar-no-such-program`"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    // Found but not executable.
    let dir = TempDir::new("noexec");
    fs::write(dir.file("script"), "#!/bin/sh\n").unwrap();
    let message = refused(json!({"executable": dir.file("script")}));
    assert!(message.contains("Permission denied"), "{message}");
}

#[test]
fn bad_cwd() {
    let dir = TempDir::new("badcwd");
    let message = refused(json!({"executable": "true", "cwd": dir.file("missing")}));
    assert!(
        message.contains("cannot use `cwd`") && message.contains("No such file or directory"),
        "{message}"
    );
    fs::write(dir.file("file"), "").unwrap();
    let message = refused(json!({"executable": "true", "cwd": dir.file("file")}));
    assert!(message.contains("cannot use `cwd`") && message.contains("Not a directory"), "{message}");

    // A directory this process may not enter. Privileged users (root in a container) may enter
    // any directory, so the case only applies when the permission bits are honoured.
    let locked = dir.file("locked");
    fs::create_dir(&locked).unwrap();
    set_mode(&locked, 0o000);
    if fs::read_dir(&locked).is_err() {
        let message = refused(json!({"executable": "true", "cwd": locked}));
        assert!(message.contains("cannot use `cwd`") && message.contains("Permission denied"), "{message}");
    }
    set_mode(&locked, 0o700);
}

/// Sets the permission bits of `path`.
fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn bad_output_file() {
    let dir = TempDir::new("badout");
    let message = refused(json!({"executable": "true", "stdout_file": dir.file("missing/out.txt")}));
    assert!(message.contains("cannot open `stdout_file`") && message.contains("No such file"), "{message}");
    let message = refused(json!({"executable": "true", "stderr_file": dir.path()}));
    assert!(message.contains("cannot open `stderr_file`") && message.contains("Is a directory"), "{message}");
    // Nothing ran: the file that could be opened was not written by a program.
    let message = refused(json!({
        "executable": "touch", "args": [dir.file("ran")],
        "stdout_file": dir.file("ok.txt"), "stderr_file": dir.file("missing/err.txt"),
    }));
    assert!(message.contains("`stderr_file`"), "{message}");
    assert!(!Path::new(&dir.file("ran")).exists());
}

/// An output file that is a FIFO nobody reads fails at once and clearly: opening it for
/// writing would otherwise block the worker before the event's deadline applied.
#[test]
fn unread_fifo_output_file() {
    let dir = TempDir::new("fifo");
    let fifo = dir.file("fifo");
    let path = std::ffi::CString::new(fifo.clone()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path, which outlives the call.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "{}", std::io::Error::last_os_error());
    let event =
        cmd(json!({"executable": "true", "stdout_file": fifo})).with_timeout(Duration::from_secs(600));
    let message = run(event).error_message.unwrap_or_default();
    assert!(
        message.contains("cannot open `stdout_file`") && message.contains("a FIFO without a reader"),
        "{message}"
    );
}

#[test]
fn truncated() {
    let mut config = CommandConfig::default();
    config.max_output_bytes = 1000;
    let bus = EventBus::builder().threads(1).cmd(config).build().unwrap();
    // 200 000 bytes on stdout, far more than a pipe holds: the program must not block.
    let data = json!({"executable": "sh", "args": ["-c", "yes | head -c 200000; echo small >&2"]});
    let result = finish(bus.publish(cmd(data)).unwrap());
    assert!(result.success, "{result:?}");
    assert_eq!(result.data["stdout"], "y\n".repeat(500));
    assert_eq!(result.data["stdout_truncated"], true);
    assert_eq!(result.data["stderr"], "small\n");
    assert_eq!(result.data["stderr_truncated"], false);
}

#[test]
fn non_utf8() {
    let result = run(cmd(json!({"executable": "printf", "args": ["ok \\377\\n"]})));
    assert!(result.success);
    assert_eq!(result.data["stdout"], "ok \u{FFFD}\n");
    assert_eq!(result.data["stdout_lossy"], true);
}

#[test]
fn retried() {
    let dir = TempDir::new("retry");
    let counter = dir.file("counter");
    let data = json!({"executable": "sh", "args": ["-c", "echo x >> \"$1\"; exit 1", "sh", counter]});
    let result = run(cmd(data).with_retry_count(2));
    assert_eq!(result.error_kind, Some(ErrorKind::CommandFailed));
    assert_eq!(result.attempts, 3);
    assert_eq!(fs::read_to_string(&counter).unwrap(), "x\nx\nx\n");

    // A later success ends the retries.
    let data = json!({
        "executable": "sh",
        "args": ["-c", "echo x >> \"$1\"; [ $(wc -l < \"$1\") -ge 2 ]", "sh", dir.file("second")],
    });
    let result = run(cmd(data).with_retry_count(5));
    assert!(result.success, "{result:?}");
    assert_eq!(result.attempts, 2);
}

#[test]
fn shutdown_now_kills() {
    let dir = TempDir::new("shutdown");
    let (leader, grandchild) = (dir.file("leader"), dir.file("grandchild"));
    let bus = bus();
    let data = json!({
        "executable": "sh",
        "args": ["-c", "sleep 1000 & echo $! > \"$2\"; echo $$ > \"$1\"; wait", "sh", leader, grandchild],
    });
    let handle = bus.publish(cmd(data).with_timeout(Duration::from_secs(600))).unwrap();
    let (leader, grandchild) = (read_pid(&leader), read_pid(&grandchild));

    let started = Instant::now();
    bus.shutdown_now();
    let result = finish(handle);
    assert_eq!(result.error_kind, Some(ErrorKind::Cancelled), "{result:?}");
    assert!(result.is_cancelled());
    assert!(started.elapsed() < PATIENCE);
    assert!(eventually(|| is_gone(leader, "sh")), "sh {leader} survived");
    assert!(eventually(|| is_gone(grandchild, "sleep")), "sleep {grandchild} survived");
}

/// `shutdown_now` kills a running command's group before it returns, without the grace a
/// stopping attempt gives: a host that exits right after must not leave it running. The
/// command ignores SIGTERM and the grace is 10 s, so only that kill can end it within 5 s.
#[test]
fn shutdown_now_kills_before_returning() {
    let dir = TempDir::new("kill-now");
    let pid_file = dir.file("pid");
    let mut config = CommandConfig::default();
    config.kill_grace = Duration::from_secs(10);
    let bus = EventBus::builder().threads(1).cmd(config).build().unwrap();
    let data = json!({
        "executable": "sh",
        "args": ["-c", "trap '' TERM; echo $$ > \"$1\"; exec sleep 1000", "sh", pid_file],
    });
    let handle = bus.publish(cmd(data).with_timeout(Duration::from_secs(600))).unwrap();
    let pid = read_pid(&pid_file);
    bus.shutdown_now();
    let bound = Instant::now() + Duration::from_secs(5);
    while !is_gone(pid, "sleep") {
        assert!(Instant::now() < bound, "sleep {pid} outlived shutdown_now by 5 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(finish(handle).is_cancelled());
}

#[test]
fn limits() {
    let data = json!({"executable": "sh", "args": ["-c", "ulimit -n; ulimit -t; ulimit -v; nice"]});
    // Niceness adds to the bus's own, which depends on how the tests were started.
    let unlimited = run(cmd(data.clone())).data["stdout"].as_str().unwrap().to_owned();
    let base_nice: i32 = unlimited.lines().nth(3).unwrap().parse().unwrap();

    let mut config = CommandConfig::default();
    config.open_files = Some(64);
    config.cpu_seconds = Some(100);
    config.memory_limit = Some(4 << 30);
    config.nice = Some(3);
    let bus = EventBus::builder().threads(1).cmd(config).build().unwrap();
    let result = finish(bus.publish(cmd(data)).unwrap());
    let nice = (base_nice + 3).min(19);
    assert_eq!(result.data["stdout"], format!("64\n100\n4194304\n{nice}\n"), "{result:?}");
}

#[test]
fn config_table() {
    let config = BusConfig::from_toml_str(
        r#"
        [cmd]
        max_output_bytes = 4096
        kill_grace = 0.25
        cpu_seconds = 60
        "#,
    )
    .unwrap();
    assert_eq!(config.cmd.max_output_bytes, 4096);
    assert_eq!(config.cmd.kill_grace, Duration::from_millis(250));
    assert_eq!(config.cmd.cpu_seconds, Some(60));
    assert_eq!(config.cmd.open_files, None);
    assert_eq!(BusConfig::from_toml_str("[cmd]").unwrap().cmd, CommandConfig::default());

    // The table reaches the bus.
    let bus = EventBus::from_config(&config, busbar::EventFactory::new()).unwrap();
    let data = json!({"executable": "head", "args": ["-c", "10000", "/dev/zero"]});
    let result = finish(bus.publish(cmd(data)).unwrap());
    assert_eq!(result.data["stdout"].as_str().unwrap().len(), 4096);
    assert_eq!(result.data["stdout_truncated"], true);
}

#[test]
fn config_errors() {
    let error = |toml: &str| BusConfig::from_toml_str(toml).unwrap_err().to_string();
    assert_eq!(
        error("[cmd]\nmax_output_bytes = 0"),
        "invalid config: invalid cmd setting `max_output_bytes`: expected at least 1 (to keep no \
         output, set `stdout_file`), found 0"
    );
    assert_eq!(
        error("[cmd]\nmax_output_bytes = \"2GiB\""),
        "invalid config: invalid cmd setting `max_output_bytes`: expected at most 1 GiB, found 2147483648"
    );
    assert_eq!(
        error("[cmd]\nkill_grace = 60"),
        "invalid config: invalid cmd setting `kill_grace`: expected at most 10s, found 60s"
    );
    assert_eq!(
        error("[cmd]\nnice = 40"),
        "invalid config: invalid cmd setting `nice`: expected between -20 and 19, found 40"
    );
    assert_eq!(
        error("[cmd]\nopen_files = 0"),
        "invalid config: invalid cmd setting `open_files`: expected at least 1, found 0"
    );
    for (toml, expected) in [
        ("[cmd]\nmax_output = 10", "unknown field `max_output`"),
        ("[cmd]\nkill_grace = \"soon\"", "invalid duration \"soon\""),
        ("[cmd]\nkill_grace = -1", "must not be negative"),
        ("[cmd]\nmax_output_bytes = \"1.5MiB\"", "not a whole number"),
    ] {
        let message = error(toml);
        assert!(message.contains(expected), "{toml:?}: {message}");
    }

    let mut config = CommandConfig::default();
    config.kill_grace = Duration::from_secs(11);
    let error = EventBus::builder().cmd(config).build().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid bus configuration: invalid cmd setting `kill_grace`: expected at most 10s, found 11s"
    );
}
