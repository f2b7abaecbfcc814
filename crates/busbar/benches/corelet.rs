//! Corelet benchmarks: the round trip of one event beside a bare echo between two processes
//! (the floor any process isolation must pay), measured in the same run, and throughput with
//! two corelets.
//!
//! The round trip has three floors: the echo over two pipes and over a socketpair, and the
//! pipe echo driven from a bare worker thread that answers on a oneshot, which was the shape
//! of busbar's path before a waiting thread ran the exchange itself (publish handed the event
//! to a pool thread; the waiter was woken with the result).
//!
//! Run: `cargo bench -p busbar --bench corelet`. The last lines print the medians and the
//! ratios. The binary is its own corelet (its `main` calls `busbar::corelet_main` first) and its
//! own echo process (re-executed with [`ECHO_ROLE`] set).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::cell::Cell;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use busbar::{handler_fn, CoreletConfig, Event, EventBus, EventFactory, EventResult, ExecutionMode};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};

/// Environment variable that makes this binary an echo process (see [`serve_echo`]).
const ECHO_ROLE: &str = "BUSBAR_BENCH_ECHO";

/// Environment variable that makes this binary run that many round trips and exit, for
/// profilers (see [`profile`]).
const PROFILE_ROUNDS: &str = "BUSBAR_BENCH_PROFILE";

/// Names of the round-trip benchmarks, for the summary at the end.
const GROUP: &str = "corelet_round_trip";
const BUSBAR: &str = "busbar";
const PIPE_ECHO: &str = "floor: pipe echo";
const SOCKET_ECHO: &str = "floor: socketpair echo";
const THREAD_PIPE_ECHO: &str = "floor: worker thread + pipe echo";

thread_local! {
    /// How many round-trip benchmarks ran in this process, so that the summary never mixes in
    /// the estimates of an earlier run (a filter may skip some).
    static RAN: Cell<u32> = const { Cell::new(0) };
}

/// Counts a round-trip benchmark as run (criterion calls the closure only if it is selected).
fn ran() {
    RAN.with(|ran| ran.set(ran.get() + 1));
}

fn main() {
    busbar::corelet_main(&handlers()); // in a corelet child, never returns
    if std::env::var_os(ECHO_ROLE).is_some() {
        serve_echo();
    }
    if let Some(rounds) = std::env::var(PROFILE_ROUNDS).ok().and_then(|n| n.parse().ok()) {
        profile(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio();
}

criterion_group!(benches, round_trip, throughput);

fn handlers() -> EventFactory {
    let factory = EventFactory::new();
    factory.register_event_type("bench", || handler_fn(|_| Ok(EventResult::success())));
    factory
}

/// The event both benchmarks publish: a small payload.
fn event() -> Event {
    Event::new("bench").with_mode(ExecutionMode::Corelet).with_data(json!({"n": 1, "name": "bench"}))
}

/// One event at a time: publish, wait for the result. Beside it, the same bytes a corelet
/// request carries, echoed by another process over two pipes and over a socketpair.
fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);

    let mut config = CoreletConfig::default();
    config.pool_size = Some(1);
    let bus =
        EventBus::builder().threads(1).factory(handlers()).corelet(config).build().expect("valid settings");
    assert!(bus.publish(event()).expect("accepted").wait().success, "a corelet answers");
    group.bench_function(BUSBAR, |b| {
        ran();
        b.iter(|| black_box(bus.publish(event()).map(|h| h.wait().success)))
    });
    bus.shutdown();

    let request = request_frame(&event());
    let mut pipes = Echo::over_pipes();
    group.bench_function(PIPE_ECHO, |b| {
        ran();
        b.iter(|| black_box(pipes.round_trip(&request)))
    });
    drop(pipes);
    let mut socket = Echo::over_socketpair();
    group.bench_function(SOCKET_ECHO, |b| {
        ran();
        b.iter(|| black_box(socket.round_trip(&request)))
    });
    drop(socket);

    // A worker thread owns the echo; each round trip hands it the bytes through a channel and
    // waits on a oneshot for the reply's length.
    let (submit, jobs) = std::sync::mpsc::channel::<(Arc<Vec<u8>>, oneshot::Sender<usize>)>();
    let worker = std::thread::spawn(move || {
        let mut pipes = Echo::over_pipes();
        for (frame, reply) in jobs {
            let _ = reply.send(pipes.round_trip(&frame));
        }
    });
    let request = Arc::new(request);
    group.bench_function(THREAD_PIPE_ECHO, |b| {
        ran();
        b.iter(|| {
            let (reply, len) = oneshot::channel();
            let _ = submit.send((Arc::clone(&request), reply));
            black_box(len.recv())
        })
    });
    drop(submit);
    let _ = worker.join();
    group.finish();
}

/// Runs `rounds` round trips like the `busbar` benchmark, without criterion, and prints the
/// mean. Instruction counts per round trip come from two runs and a subtraction, e.g.
/// `BUSBAR_BENCH_PROFILE=2000 valgrind --tool=callgrind --trace-children=yes <bench binary>`
/// and the same with 4000: the difference of the totals, over 2000, for the parent and for
/// the child.
fn profile(rounds: u32) {
    let mut config = CoreletConfig::default();
    config.pool_size = Some(1);
    // Valgrind cannot re-execute /proc/self/exe (its own loader); the path it can.
    config.program = Some(std::env::current_exe().expect("own path"));
    let bus =
        EventBus::builder().threads(1).factory(handlers()).corelet(config).build().expect("valid settings");
    assert!(bus.publish(event()).expect("accepted").wait().success, "a corelet answers");
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        assert!(bus.publish(event()).expect("accepted").wait().success);
    }
    let each = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds.max(1));
    println!("{rounds} round trips: {each:.2} µs each");
    bus.shutdown();
}

/// Two corelets: a batch of events published at once, then waited for.
fn throughput(c: &mut Criterion) {
    const BATCH: u64 = 1_000;
    let mut group = c.benchmark_group("corelet_throughput");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let mut config = CoreletConfig::default();
    config.pool_size = Some(2);
    let bus =
        EventBus::builder().threads(2).factory(handlers()).corelet(config).build().expect("valid settings");
    group.bench_function("busbar, 2 corelets", |b| {
        b.iter_batched(
            || (0..BATCH).map(|_| event()).collect::<Vec<_>>(),
            |events| {
                let handles: Vec<_> = events.into_iter().map(|e| bus.publish(e).expect("accepted")).collect();
                handles.into_iter().all(|h| h.wait().success)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    bus.shutdown();
}

/// A frame as large as the corelet request the parent sends for `event`: a 4-byte big-endian
/// length, then the `execute` message in postcard, laid out as `corelet/message.rs`,
/// `mode/corelet/wire.rs` and `event/compact.rs` write it (the id as 16 bytes, the data as
/// JSON text, enums as variant indices; a fresh event has no links or headers).
fn request_frame(event: &Event) -> Vec<u8> {
    let created = event.created_at().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    let id = event.id();
    let compact = (
        id.as_uuid().as_bytes().as_slice(),
        event.event_type(),
        event.data().to_string(),
        event.mode() as u32,
        event.priority(),
        event.timeout().as_nanos() as u64,
        event.retry_count(),
        (created.as_secs(), created.subsec_nanos()),
        (None::<()>, None::<()>, std::collections::BTreeMap::<String, String>::new()),
    );
    let body = postcard::to_stdvec(&(0_u32, 1_u64, (compact, 1_u32, 30_000_u64))).expect("encodes");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A child process that echoes frames back, and this side's ends of its channel.
struct Echo {
    child: Child,
    to_child: Box<dyn Write>,
    from_child: Box<dyn Read>,
    reply: Vec<u8>,
}

impl Echo {
    /// An echo child reading one pipe (its stdin) and writing another (its stdout).
    fn over_pipes() -> Self {
        let mut child =
            echo_command().stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start echo");
        let to_child = Box::new(child.stdin.take().expect("piped stdin"));
        let from_child = Box::new(child.stdout.take().expect("piped stdout"));
        Echo { child, to_child, from_child, reply: Vec::new() }
    }

    /// An echo child reading and writing one end of a socketpair (as its stdin and stdout).
    fn over_socketpair() -> Self {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let stdin = OwnedFd::from(theirs.try_clone().expect("dup"));
        let child = echo_command().stdin(stdin).stdout(OwnedFd::from(theirs)).spawn().expect("start echo");
        let to_child = Box::new(ours.try_clone().expect("dup"));
        Echo { child, to_child, from_child: Box::new(ours), reply: Vec::new() }
    }

    /// Sends `frame` and reads the echo; returns its length.
    fn round_trip(&mut self, frame: &[u8]) -> usize {
        self.to_child.write_all(frame).expect("send to echo");
        read_frame(&mut self.from_child, &mut self.reply).expect("echo answers")
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_command() -> Command {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command.env(ECHO_ROLE, "1").stderr(Stdio::inherit());
    command
}

/// The echo process: reads frames from stdin and writes each back to stdout, until end-of-file.
///
/// Reads into one buffer kept across frames (one `read` per small frame) and answers with one
/// `write`: the least any length-prefixed exchange can do.
fn serve_echo() -> ! {
    let dup = |fd: std::io::Result<OwnedFd>| std::fs::File::from(fd.expect("dup a standard stream"));
    let mut input = dup(std::io::stdin().as_fd().try_clone_to_owned());
    let mut output = dup(std::io::stdout().as_fd().try_clone_to_owned());
    let mut buf = Vec::new();
    while let Some(len) = read_frame(&mut input, &mut buf) {
        if output.write_all(&buf[..len]).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

/// Reads one whole frame (header and body) into `buf`, growing it as needed; returns the frame's
/// length, or `None` at end-of-file.
///
/// Reads as much as the channel has, so a small frame costs one `read`; frames are never
/// pipelined here, so nothing past the frame arrives.
fn read_frame(from: &mut dyn Read, buf: &mut Vec<u8>) -> Option<usize> {
    let mut filled = 0;
    let mut want = 4;
    loop {
        if buf.len() < want.max(4096) {
            buf.resize(want.max(4096), 0);
        }
        let n = from.read(&mut buf[filled..]).ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        if filled >= 4 {
            want = 4 + u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        }
        if filled >= want {
            return Some(want);
        }
    }
}

/// Prints the round-trip medians from criterion's estimates, and busbar's ratio to each floor.
fn print_ratio() {
    if RAN.with(Cell::get) < 4 {
        return;
    }
    let median = |name: &str| -> Option<f64> {
        // Criterion's directory names replace `:` (among others) with `_`.
        let dir = criterion_dir()?.join(GROUP).join(name.replace(':', "_")).join("new/estimates.json");
        let estimates: Value = serde_json::from_slice(&std::fs::read(dir).ok()?).ok()?;
        estimates["median"]["point_estimate"].as_f64()
    };
    let Some(busbar) = median(BUSBAR) else {
        println!("corelet round trip: criterion's estimates not found; no ratio");
        return;
    };
    println!("corelet round trip, median: busbar {:.2} µs", busbar / 1e3);
    for floor in [PIPE_ECHO, SOCKET_ECHO, THREAD_PIPE_ECHO] {
        if let Some(floor_median) = median(floor) {
            let ratio = busbar / floor_median;
            println!("  {floor}: {:.2} µs, busbar / floor = {ratio:.2}", floor_median / 1e3);
        }
    }
    println!("  target (issue 3): busbar / pipe echo within 1.5");
}

/// Where criterion writes its estimates, found as criterion finds it: `CRITERION_HOME`, else
/// `criterion/` in the target directory (which holds this binary in `<target>/<profile>/deps/`
/// when cargo runs it), else `target/criterion`.
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    if std::env::var_os("CARGO").is_none() {
        return Some(PathBuf::from("target/criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}
