//! `busbar worker` runs the cmd events of a Redis queue and stops gracefully on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use busbar::{ErrorKind, Event, ExecutionMode};
use busbar_redis::testsupport::RedisServer;
use busbar_redis::Broker;
use serde_json::json;

#[test]
fn runs_cmd_events() {
    if !RedisServer::is_installed() {
        println!(
            "SKIPPED: redis-server is not installed (`apt-get install -y redis-server`, as .ci/redis does)"
        );
        return;
    }
    let server = RedisServer::start(false);
    let mut worker = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(["worker", "--redis", &server.url(), "--namespace", "cli", "--concurrency", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start busbar worker");
    let mut stderr = BufReader::new(worker.stderr.take().expect("piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("the worker's first line");
    assert!(line.contains("running the cmd events of queue `cli`"), "{line}");

    let broker = Broker::new(&server.url()).unwrap().namespace("cli");
    let publisher = broker.publisher().expect("publisher");
    let command = |executable: &str, args: &[&str]| {
        Event::new("shell")
            .with_mode(ExecutionMode::Cmd)
            .with_data(json!({"executable": executable, "args": args}))
    };
    let mut echo = publisher.publish(command("echo", &["hello", "fleet"])).unwrap();
    let mut failing = publisher.publish(command("false", &[]).with_retry_count(1)).unwrap();
    let echo = echo.wait_timeout(Duration::from_secs(60)).expect("a result").clone();
    assert!(echo.success, "{echo:?}");
    assert_eq!(echo.data["stdout"], "hello fleet\n");
    let failing = failing.wait_timeout(Duration::from_secs(60)).expect("a result").clone();
    assert_eq!((failing.error_kind, failing.attempts), (Some(ErrorKind::CommandFailed), 2));
    let letters = broker.dead_letters(10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason(), "failed 2 of 2 attempts");

    // SIGTERM: a graceful stop.
    // SAFETY: `kill` has no memory-safety preconditions; the pid is our unreaped child's.
    unsafe { libc::kill(worker.id() as libc::pid_t, libc::SIGTERM) };
    let status = worker.wait().expect("the worker exits");
    let rest: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    assert!(status.success(), "{status}: {rest:?}");
    assert!(rest.iter().any(|line| line.contains("stopped after 3 events")), "{rest:?}");
}
