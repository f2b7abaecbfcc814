//! Isolation: crashes, hard timeouts, many crashes in a row, handler output, a killed parent.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use busbar::{CoreletConfig, ErrorKind};
use serde_json::json;

use super::{bus, config, corelet, echo_pid, proc, recorded, run, DOOMED_PARENT};

/// How long a killed process may take to disappear: generous, for a loaded machine.
const GONE_BOUND: Duration = Duration::from_secs(10);

pub(crate) fn crash_segfault() {
    crashes_and_recovers("segfault", config(), "killed by signal 11 (SIGSEGV)");
}

pub(crate) fn crash_abort() {
    crashes_and_recovers("abort", config(), "killed by signal 6 (SIGABRT)");
}

pub(crate) fn crash_exit() {
    crashes_and_recovers("exit", config(), "exited with code 3");
}

/// Under an address-space limit a failed allocation aborts the child (Rust's allocation error
/// handler), which the bus reports as SIGABRT.
pub(crate) fn crash_out_of_memory() {
    let mut config = config();
    config.memory_limit = Some(256 << 20);
    crashes_and_recovers("hog", config, "killed by signal 6 (SIGABRT)");
}

/// Runs one `event_type` event, which must end as `Crashed` naming `cause`, then checks that the
/// next event on the bus succeeds in a fresh child.
fn crashes_and_recovers(event_type: &str, config: CoreletConfig, cause: &str) {
    let bus = bus(config);
    let result = run(&bus, corelet(event_type).with_retry_count(0));
    assert_eq!(result.error_kind, Some(ErrorKind::Crashed), "{result:?}");
    let message = result.error_message.as_deref().unwrap_or_default();
    assert!(message.contains(cause), "{message:?} should name {cause:?}");
    echo_pid(&bus);
    let stats = bus.stats();
    assert_eq!((stats.crashed, stats.corelet_crashes, stats.corelet_spawns), (1, 1, 2), "{stats:?}");
    bus.shutdown();
}

/// An infinite loop with a 1 s timeout: `Timeout` within the grace bound, and the child's
/// whole process group gone, including a grandchild that ignores SIGTERM.
pub(crate) fn timeout_kills_group() {
    let mut config = config();
    config.pool_size = Some(1);
    let bus = bus(config);
    // A warm child, so that the 1 s goes to the handler rather than to starting a process.
    let warm = echo_pid(&bus);
    let event = corelet("spin").with_timeout(Duration::from_secs(1));
    let id = event.id();
    let started = Instant::now();
    let result = run(&bus, event);
    let elapsed = started.elapsed();

    assert_eq!(result.error_kind, Some(ErrorKind::Timeout), "{result:?}");
    assert!(elapsed >= Duration::from_secs(1), "ended early: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(1) + GONE_BOUND, "late: {elapsed:?}");
    let report = recorded(id, 1).remove(0).0;
    let pid = report.data()["pid"].as_u64().expect("the corelet's pid") as u32;
    let grandchild = report.data()["grandchild"].as_u64().expect("the grandchild's pid") as u32;
    assert_eq!(u64::from(pid), warm, "the warm child ran the loop");
    assert!(proc::wait_gone(grandchild, GONE_BOUND), "grandchild {grandchild} survived the timeout");
    assert!(proc::wait_gone(pid, GONE_BOUND), "corelet {pid} survived the timeout");
    assert_eq!(proc::live_group_members(pid), Vec::<u32>::new(), "process group {pid} is not empty");

    assert_ne!(echo_pid(&bus), warm, "the next event gets a fresh child");
    let stats = bus.stats();
    assert_eq!((stats.timed_out, stats.corelet_kills), (1, 1), "{stats:?}");
    bus.shutdown();
}

/// 1 000 crashing events in a row: the bus lives on, no zombie children, no leaked descriptors.
pub(crate) fn thousand_crashes() {
    const CRASHES: u64 = 1_000;
    let bus = bus(config());
    echo_pid(&bus);
    // One child idle and nothing being retired: the pool is settled.
    assert_eq!(bus.stats().corelets, 1);
    let descriptors = proc::open_descriptors();

    let handles: Vec<_> = (0..CRASHES).map(|_| bus.publish(corelet("exit")).expect("accepted")).collect();
    for handle in handles {
        let result = handle.wait();
        assert_eq!(result.error_kind, Some(ErrorKind::Crashed), "{result:?}");
        assert!(
            result.error_message.as_deref().unwrap_or_default().contains("exited with code 3"),
            "{result:?}"
        );
    }
    echo_pid(&bus);

    let stats = bus.stats();
    assert_eq!((stats.crashed, stats.corelet_crashes), (CRASHES, CRASHES), "{stats:?}");
    // The crashes used the warm child and 999 fresh ones; the last echo started one more.
    assert_eq!((stats.corelet_spawns, stats.corelets), (CRASHES + 1, 1), "{stats:?}");
    assert_eq!(proc::zombie_children(), Vec::<u32>::new(), "zombie children");
    assert_eq!(proc::open_descriptors(), descriptors, "descriptors before and after the crashes");
    bus.shutdown();
    assert_eq!(proc::zombie_children(), Vec::<u32>::new(), "zombie children after shutdown");
}

/// A handler's prints on stdout and stderr, even ones that look like protocol frames, do not
/// reach the channel.
pub(crate) fn output() {
    let bus = bus(config());
    for n in 0..3 {
        let data = json!({"n": n, "text": "grüße"});
        let result = run(&bus, corelet("noisy").with_data(data.clone()));
        assert!(result.success, "{result:?}");
        assert_eq!(result.data, data);
    }
    bus.shutdown();
}

/// The parent this binary plays for [`parent_killed`]: starts a corelet event that hangs,
/// prints `corelet <pid>` once the corelet has reported its pid, and waits to be killed.
pub(crate) fn doomed_parent() -> ! {
    let bus = bus(config());
    let event = corelet("hang");
    let id = event.id();
    let handle = bus.publish(event).expect("accepted");
    let report = recorded(id, 1).remove(0).0;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "corelet {}", report.data()["pid"]);
    let _ = stdout.flush();
    // The event's timeout ends this if nobody kills us.
    let result = handle.wait();
    eprintln!("the doomed parent was not killed: {result:?}");
    std::process::exit(1);
}

/// Killing the parent with SIGKILL leaves no corelet running.
pub(crate) fn parent_killed() {
    let mut parent = Doomed(
        Command::new(std::env::current_exe().expect("own path"))
            .env(DOOMED_PARENT, "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the doomed parent"),
    );
    let stdout = parent.0.stdout.take().expect("piped stdout");
    let (line_sender, line) = mpsc::channel();
    // A thread reads, so that the wait for the line has a bound.
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_sender.send(line);
    });
    let line = line.recv_timeout(Duration::from_secs(60)).expect("the doomed parent reports its corelet");
    let pid: u32 = line
        .trim()
        .strip_prefix("corelet ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected report {line:?}"));
    assert!(proc::stat(pid).is_some_and(|stat| !stat.is_zombie()), "corelet {pid} runs before the kill");
    assert_eq!(proc::stat(pid).map(|stat| stat.ppid), Some(parent.0.id()), "{pid} is the parent's child");

    parent.0.kill().expect("SIGKILL the parent");
    parent.0.wait().expect("reap the parent");
    assert!(proc::wait_gone(pid, GONE_BOUND), "corelet {pid} outlived its parent");
}

/// The doomed parent, killed and reaped if the check fails before it does so itself.
struct Doomed(Child);

impl Drop for Doomed {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            proc::kill(self.0.id());
            let _ = self.0.wait();
        }
    }
}
