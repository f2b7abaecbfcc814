//! Throughput of the distributed mode beside `redis-benchmark`'s XADD rate, on one private
//! `redis-server` in the same run.
//!
//! `cargo bench -p busbar-redis --bench throughput` (events: `BUSBAR_BENCH_EVENTS`, default
//! 20 000). Prints the redis-benchmark commands, the rates and their ratios. Under
//! `cargo test --all-targets` it runs with 300 events, as a smoke test.

use std::process::Command;
use std::time::{Duration, Instant};

use busbar::{handler_fn, Event, EventBus, EventHandle, EventResult, ExecutionMode};
use busbar_redis::testsupport::RedisServer;
use busbar_redis::{Broker, Publisher, Worker};

fn main() {
    if !RedisServer::is_installed() {
        println!(
            "SKIPPED: redis-server is not installed (`apt-get install -y redis-server`, as .ci/redis does)"
        );
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this as a quick smoke test.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let default_events = if measuring { 20_000 } else { 300 };
    let events: usize =
        std::env::var("BUSBAR_BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(default_events);
    let requests = |at_least: usize| if measuring { events.max(at_least) } else { events * 10 };
    let server = RedisServer::start(false);
    let broker = Broker::new(&server.url()).expect("url").namespace("bench");

    // What a busbar message weighs, so that redis-benchmark writes entries of the same size.
    let sample = serde_json::json!({"event": noop(0), "attempts": 0, "reply": {"stream": "bench:reply:0123456789abcdef0123456789abcdef", "ticket": 10_000}});
    let envelope = "x".repeat(sample.to_string().len());
    let xadd_50 = redis_benchmark(&server, 50, requests(100_000), &envelope);
    let xadd_1 = redis_benchmark(&server, 1, requests(50_000), &envelope);

    let bus = EventBus::builder().threads(2).build().expect("bus");
    bus.subscribe("noop", handler_fn(|_| Ok(EventResult::success())));
    let publisher = broker.publisher().expect("publisher");

    // Publishing alone, then two workers draining the queue.
    let started = Instant::now();
    let handles = publish(&publisher, events);
    let publish_rate = rate(events, started.elapsed());
    let started = Instant::now();
    let workers = start_workers(&broker, &bus);
    wait_all(handles);
    let drain_rate = rate(events, started.elapsed());

    // End to end: publishing while the workers run, until the last result is in.
    let started = Instant::now();
    let handles = publish(&publisher, events);
    wait_all(handles);
    let end_to_end_rate = rate(events, started.elapsed());
    for worker in workers {
        worker.shutdown();
    }
    bus.shutdown();

    println!();
    println!("busbar-redis throughput, {events} events, one redis-server {} on 127.0.0.1", redis_version());
    println!("  redis-benchmark XADD, 50 clients:  {xadd_50:>9.0} /s");
    println!("  redis-benchmark XADD, 1 client:    {xadd_1:>9.0} /s");
    println!(
        "  busbar publish (1 thread):         {publish_rate:>9.0} /s   {:.2} of XADD with 1 client",
        publish_rate / xadd_1
    );
    println!(
        "  busbar drain (2 workers, results): {drain_rate:>9.0} /s   {:.2} of XADD with 50 clients",
        drain_rate / xadd_50
    );
    println!(
        "  busbar end to end (publish→result):{end_to_end_rate:>9.0} /s   {:.2} of XADD with 50 clients",
        end_to_end_rate / xadd_50
    );
}

fn noop(i: usize) -> Event {
    Event::new("noop").with_mode(ExecutionMode::Thread).with_data(i.into())
}

fn publish(publisher: &Publisher, events: usize) -> Vec<EventHandle> {
    (0..events).map(|i| publisher.publish(noop(i)).expect("published")).collect()
}

fn start_workers(broker: &Broker, bus: &EventBus) -> Vec<Worker> {
    (0..2).map(|_| broker.worker(bus.clone()).concurrency(32).start().expect("worker")).collect()
}

fn wait_all(handles: Vec<EventHandle>) {
    for mut handle in handles {
        let result = handle.wait_timeout(Duration::from_secs(300)).expect("a result");
        assert!(result.success, "{result:?}");
    }
}

fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

/// Runs redis-benchmark's XADD with `clients` connections and returns its rate.
fn redis_benchmark(server: &RedisServer, clients: usize, requests: usize, envelope: &str) -> f64 {
    let port = server.port().to_string();
    let (clients, requests) = (clients.to_string(), requests.to_string());
    let args = ["-h", "127.0.0.1", "-p", &port, "-c", &clients, "-n", &requests, "--csv"];
    let command = ["XADD", "bench:xadd", "*", "v", "1", "envelope", envelope];
    // As a shell would take it: `*` quoted.
    println!(
        "$ redis-benchmark {} XADD bench:xadd '*' v 1 envelope <{} bytes>",
        args.join(" "),
        envelope.len()
    );
    let output =
        Command::new("redis-benchmark").args(args).args(command).output().expect("run redis-benchmark");
    let csv = String::from_utf8_lossy(&output.stdout);
    // "test","rps",...  then  "XADD ...","36101.08",...
    let line = csv.lines().nth(1).unwrap_or_else(|| panic!("no redis-benchmark result: {csv}"));
    let rps = line.split("\",\"").nth(1).and_then(|rps| rps.parse().ok());
    rps.unwrap_or_else(|| panic!("unreadable redis-benchmark result: {line}"))
}

fn redis_version() -> String {
    let output = Command::new("redis-server").arg("--version").output().expect("redis-server --version");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().find_map(|word| word.strip_prefix("v=")).unwrap_or("?").to_owned()
}
