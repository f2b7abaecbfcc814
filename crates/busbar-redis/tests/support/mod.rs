//! The harness of the distributed tests: a test runner, worker processes (this binary
//! re-executed in worker mode) and the handlers they run.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use busbar::{handler_fn, EventBus, EventFactory, EventResult, HandlerError, RetryBackoff};
use busbar_redis::{Broker, WorkerStats};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Set in a worker process's environment: its settings, as JSON.
const WORKER_ENV: &str = "BUSBAR_REDIS_TEST_WORKER";

/// A test: a name and a function that panics on failure.
pub(crate) type Test = (&'static str, fn());

/// Runs `tests` (those whose name contains the first command-line argument, if one is given)
/// and prints `N passed, N failed`; exits with 101 if any failed.
pub(crate) fn run(tests: &[Test]) {
    let filter: Option<String> = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if !busbar_redis::testsupport::RedisServer::is_installed() {
        println!(
            "SKIPPED: redis-server is not installed, and every distributed test needs one \
             (`apt-get install -y redis-server`, as .ci/redis does)"
        );
        println!("0 passed, 0 failed, {} skipped", tests.len());
        return;
    }
    let started = Instant::now();
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|filter| !name.contains(filter)) {
            continue;
        }
        println!("test {name} ...");
        let test_started = Instant::now();
        match panic::catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.1?})", test_started.elapsed());
            }
            Err(_) => {
                failed.push(*name);
                println!("test {name} ... FAILED ({:.1?})", test_started.elapsed());
            }
        }
    }
    println!("\nfinished in {:.1?}; failed: {failed:?}", started.elapsed());
    println!("{passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

/// The settings of a worker process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) concurrency: usize,
    pub(crate) visibility_ms: u64,
    pub(crate) backoff_ms: u64,
}

impl WorkerConfig {
    pub(crate) fn new(url: &str, namespace: &str) -> Self {
        WorkerConfig {
            url: url.to_owned(),
            namespace: namespace.to_owned(),
            concurrency: 4,
            visibility_ms: 30_000,
            backoff_ms: 0,
        }
    }
}

/// In a worker process (this binary started by [`WorkerProcess::spawn`]): runs a worker until
/// standard input closes, prints its stats, and exits. Elsewhere returns at once.
pub(crate) fn worker_main() {
    busbar::corelet_main(&handlers());
    let Ok(config) = std::env::var(WORKER_ENV) else { return };
    // Warnings (reconnects, reclaims, discarded outcomes) go to the test's output.
    tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_writer(std::io::stderr).init();
    let config: WorkerConfig = serde_json::from_str(&config).expect("worker settings");
    let bus = EventBus::builder().threads(config.concurrency).factory(handlers()).build().expect("bus");
    let backoff = match config.backoff_ms {
        0 => RetryBackoff::Immediate,
        ms => RetryBackoff::Fixed(Duration::from_millis(ms)),
    };
    let broker = Broker::new(&config.url)
        .expect("url")
        .namespace(&config.namespace)
        .io_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1));
    let worker = broker
        .worker(bus.clone())
        .concurrency(config.concurrency)
        .visibility_timeout(Duration::from_millis(config.visibility_ms))
        .retry_backoff(backoff)
        .start()
        .expect("start the worker");
    println!("ready {} {}", worker.name(), std::process::id());
    std::io::stdout().flush().expect("stdout");
    // The parent closes our standard input to stop us (or kills us).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let stats = worker.stats();
    worker.shutdown();
    bus.shutdown();
    println!("stats {}", serde_json::to_string(&stats_json(&stats)).expect("json"));
    std::process::exit(0);
}

fn stats_json(stats: &WorkerStats) -> serde_json::Value {
    json!({
        "fetched": stats.fetched, "succeeded": stats.succeeded, "retried": stats.retried,
        "dead_lettered": stats.dead_lettered, "malformed": stats.malformed,
        "reclaimed": stats.reclaimed, "lost": stats.lost,
    })
}

/// A worker process; killed (`SIGKILL`) when dropped unless stopped.
pub(crate) struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub(crate) name: String,
    pub(crate) pid: u32,
}

impl WorkerProcess {
    /// Starts a worker process and waits until its worker runs.
    pub(crate) fn spawn(config: &WorkerConfig) -> WorkerProcess {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .env(WORKER_ENV, serde_json::to_string(config).expect("json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a worker process");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the worker's first line");
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("ready"), "worker did not start: {line:?}");
        let name = words.next().expect("name").to_owned();
        let pid = words.next().and_then(|pid| pid.parse().ok()).expect("pid");
        WorkerProcess { child, stdin, stdout, name, pid }
    }

    /// Kills the process with `SIGKILL`, as a crash would, and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Returns `true` while the process runs.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the worker gracefully and returns its stats.
    pub(crate) fn stop(mut self) -> serde_json::Value {
        drop(self.stdin.take());
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(stats) = line.strip_prefix("stats ") {
                let stats = serde_json::from_str(stats).expect("stats");
                let _ = self.child.wait();
                return stats;
            }
            line.clear();
        }
        panic!("worker {} exited without stats: {:?}", self.name, self.child.wait());
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.is_alive() {
            self.kill();
        }
    }
}

/// The handlers of the test workers.
fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("echo", || {
        handler_fn(|ctx| {
            Ok(EventResult::success_with(json!({
                "pid": std::process::id(),
                "attempt": ctx.attempt(),
                "data": ctx.event().data(),
                "correlation_id": ctx.event().correlation_id(),
                "causation_id": ctx.event().causation_id(),
                "headers": ctx.event().headers(),
            })))
        })
    });
    // Notes its start in `marker` (if given), then sleeps `ms` (only on the first attempt if
    // `only_first`).
    factory.register_event_type("sleep", || {
        handler_fn(|ctx| {
            let data = ctx.event().data();
            if let Some(marker) = data["marker"].as_str() {
                append(Path::new(marker), &format!("{} {}", std::process::id(), ctx.attempt()));
            }
            if ctx.attempt() == 1 || !data["only_first"].as_bool().unwrap_or(false) {
                std::thread::sleep(Duration::from_millis(data["ms"].as_u64().unwrap_or(0)));
            }
            Ok(EventResult::success_with(json!({"pid": std::process::id(), "attempt": ctx.attempt()})))
        })
    });
    // Fails attempts before `fail_until`; notes `pid attempt unix_ms` of each in `log`.
    factory.register_event_type("flaky", || {
        handler_fn(|ctx| {
            let data = ctx.event().data();
            let log = data["log"].as_str().unwrap_or_default();
            append(Path::new(log), &format!("{} {} {}", std::process::id(), ctx.attempt(), unix_ms()));
            if u64::from(ctx.attempt()) < data["fail_until"].as_u64().unwrap_or(0) {
                return Ok(EventResult::failure(format!(
                    "attempt {} failed on {}",
                    ctx.attempt(),
                    std::process::id()
                )));
            }
            Ok(EventResult::success_with(json!({"attempt": ctx.attempt()})))
        })
    });
    // Fails until the file `fix` exists.
    factory.register_event_type("fixable", || {
        handler_fn(|ctx| {
            if Path::new(ctx.event().data()["fix"].as_str().unwrap_or_default()).exists() {
                Ok(EventResult::success_with(json!({"attempt": ctx.attempt()})))
            } else {
                Ok(EventResult::failure(format!("not fixed yet (attempt {})", ctx.attempt())))
            }
        })
    });
    // Appends `label` to `log`.
    factory.register_event_type("note", || {
        handler_fn(|ctx| {
            let data = ctx.event().data();
            append(
                Path::new(data["log"].as_str().unwrap_or_default()),
                data["label"].as_str().unwrap_or_default(),
            );
            Ok(EventResult::success())
        })
    });
    factory
        .register_event_type("refuse", || handler_fn(|_| Err(HandlerError::permanent("refused for good"))));
    factory
}

/// Appends a line to a file (one `write` call, so lines of concurrent writers do not mix).
pub(crate) fn append(path: &Path, line: &str) {
    let mut file = OpenOptions::new().create(true).append(true).open(path).expect("open log");
    file.write_all(format!("{line}\n").as_bytes()).expect("append");
}

/// Reads a file's lines (none if it does not exist).
pub(crate) fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// A fresh temporary directory for a test's files, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("busbar-redis-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Polls `condition` every 10 ms until it holds or `bound` passes; returns whether it held.
pub(crate) fn poll_until(bound: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
