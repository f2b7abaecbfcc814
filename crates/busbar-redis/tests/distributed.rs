//! The distributed mode end to end: each test starts its own `redis-server` on a free loopback
//! port, worker processes that are this binary re-executed in worker mode, and publishes from
//! this process.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use busbar::{ErrorKind, Event, EventHandle, EventId, EventResult, ExecutionMode};
use busbar_redis::testsupport::RedisServer;
use busbar_redis::{Broker, Publisher};
use serde_json::json;
use support::{lines, poll_until, TempDir, WorkerConfig, WorkerProcess};

fn main() {
    support::worker_main();
    support::run(&[
        ("fleet", fleet),
        ("modes", modes),
        ("sigkill", sigkill),
        ("renewed", renewed),
        ("retries", retries),
        ("restart", restart),
        ("unreachable", unreachable),
        ("garbage", garbage),
        ("priorities", priorities),
        ("delayed", delayed),
    ]);
}

fn broker(server: &RedisServer, namespace: &str) -> Broker {
    Broker::new(&server.url()).expect("url").namespace(namespace)
}

fn thread_event(event_type: &str) -> Event {
    Event::new(event_type).with_mode(ExecutionMode::Thread).with_timeout(Duration::from_secs(60))
}

/// Waits for a handle's result, failing the test after `bound`.
fn wait(handle: EventHandle, bound: Duration) -> EventResult {
    let id = handle.id();
    let mut handle = handle;
    handle.wait_timeout(bound).unwrap_or_else(|| panic!("no result for event {id} within {bound:?}")).clone()
}

/// Polls until the queue holds nothing waiting, running or delayed.
fn assert_idle(broker: &Broker) {
    assert!(
        poll_until(Duration::from_secs(30), || broker.queue_stats().expect("stats").is_idle()),
        "queue not idle: {:?}",
        broker.queue_stats()
    );
}

/// Item 1: two worker processes and one publisher; 10 000 events, each result delivered once.
fn fleet() {
    const EVENTS: usize = 10_000;
    let server = RedisServer::start(false);
    let config = WorkerConfig::new(&server.url(), "fleet");
    let workers = [WorkerProcess::spawn(&config), WorkerProcess::spawn(&config)];
    let broker = broker(&server, "fleet");
    let publisher = broker.publisher().expect("publisher");

    let started = Instant::now();
    let handles: Vec<EventHandle> = (0..EVENTS)
        .map(|i| publisher.publish(thread_event("echo").with_data(json!(i))).expect("published"))
        .collect();
    let published = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut pids = HashSet::new();
    let mut ids = HashSet::new();
    for (i, mut handle) in handles.into_iter().enumerate() {
        let id = handle.id();
        let result = handle.wait_deadline(deadline).unwrap_or_else(|| panic!("no result for event {i}"));
        assert!(result.success, "{result:?}");
        assert_eq!((result.event_id, result.attempts), (id, 1));
        assert_eq!(result.data["data"], i, "each handle gets its own event's result");
        pids.insert(result.data["pid"].as_u64().expect("pid"));
        assert!(ids.insert(id));
    }
    let elapsed = started.elapsed();
    println!("  {EVENTS} events: published in {published:.1?}, all results in {elapsed:.1?}");
    let worker_pids: HashSet<u64> = workers.iter().map(|worker| u64::from(worker.pid)).collect();
    assert_eq!(pids, worker_pids, "both worker processes ran events");

    assert_idle(&broker);
    let [a, b] = workers;
    let (a, b) = (a.stop(), b.stop());
    println!("  worker stats: {a}, {b}");
    // Every result was written exactly once (a settle that wrote one returns 1 and counts),
    // and each resolved a different handle.
    assert_eq!(a["succeeded"].as_u64().unwrap() + b["succeeded"].as_u64().unwrap(), EVENTS as u64);
    let stats = publisher.stats();
    assert_eq!(
        (stats.published, stats.results, stats.unmatched_results, stats.waiting),
        (EVENTS as u64, EVENTS as u64, 0, 0)
    );
    assert_eq!(broker.queue_stats().unwrap().dead, 0);
}

/// Events run in their own mode on the worker; ids and headers travel.
fn modes() {
    let server = RedisServer::start(false);
    let worker = WorkerProcess::spawn(&WorkerConfig::new(&server.url(), "modes"));
    let publisher = broker(&server, "modes").publisher().expect("publisher");

    let parent = EventId::new();
    let chained = Event::new("echo")
        .with_correlation_id(parent)
        .with_causation_id(parent)
        .with_header("tenant", "acme");
    let sync = wait(publisher.publish(chained).unwrap(), Duration::from_secs(60));
    assert!(sync.success, "a sync event runs on the worker's pool: {sync:?}");
    assert_eq!(sync.data["pid"], worker.pid);
    assert_eq!(sync.data["correlation_id"], json!(parent));
    assert_eq!(sync.data["causation_id"], json!(parent));
    assert_eq!(sync.data["headers"], json!({"tenant": "acme"}));

    let corelet = Event::new("echo").with_mode(ExecutionMode::Corelet).with_data(json!("x"));
    let corelet = wait(publisher.publish(corelet).unwrap(), Duration::from_secs(60));
    assert!(corelet.success, "{corelet:?}");
    assert_ne!(corelet.data["pid"], worker.pid, "a corelet event runs in a child of the worker");

    let command = Event::new("shell")
        .with_mode(ExecutionMode::Cmd)
        .with_data(json!({"executable": "echo", "args": ["hello from", "a worker"]}));
    let command = wait(publisher.publish(command).unwrap(), Duration::from_secs(60));
    assert!(command.success, "{command:?}");
    assert_eq!(command.data["stdout"], "hello from a worker\n");
}

/// Item 2: a worker killed mid-event; the other one gets it after the visibility timeout.
fn sigkill() {
    let server = RedisServer::start(false);
    let mut config = WorkerConfig::new(&server.url(), "sigkill");
    config.visibility_ms = 1000;
    let mut workers = vec![WorkerProcess::spawn(&config), WorkerProcess::spawn(&config)];
    let broker = broker(&server, "sigkill");
    let publisher = broker.publisher().expect("publisher");
    let dir = TempDir::new("sigkill");
    let marker = dir.join("started");

    let event = thread_event("sleep")
        .with_retry_count(2)
        .with_data(json!({"ms": 120_000, "only_first": true, "marker": marker}));
    let handle = publisher.publish(event).unwrap();
    assert!(poll_until(Duration::from_secs(60), || !lines(&marker).is_empty()), "the event never started");
    let first: Vec<u32> = lines(&marker)[0].split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(first[1], 1, "attempt 1");
    let victim = workers.iter().position(|worker| worker.pid == first[0]).expect("a worker started it");
    let mut victim = workers.remove(victim);
    let survivor = workers.remove(0);
    victim.kill();
    let killed = Instant::now();

    let result = wait(handle, Duration::from_secs(90));
    let redelivered_after = killed.elapsed();
    println!("  redelivered and finished {redelivered_after:.1?} after the SIGKILL");
    assert!(result.success, "{result:?}");
    assert_eq!(result.attempts, 2, "the lost attempt counts once: {result:?}");
    assert_eq!(result.data["pid"], survivor.pid);
    assert_eq!(result.data["attempt"], 2);
    // Claims are renewed every third of the 1 s visibility timeout, so the message was idle
    // for at most about a third of it when its worker died: the rest must pass first.
    assert!(redelivered_after >= Duration::from_millis(250), "not before the visibility timeout");
    let starts = lines(&marker);
    assert_eq!(starts, [format!("{} 1", victim.pid), format!("{} 2", survivor.pid)]);

    assert_idle(&broker);
    let stats = survivor.stop();
    assert_eq!((stats["reclaimed"].as_u64(), stats["succeeded"].as_u64()), (Some(1), Some(1)), "{stats}");
    let publisher_stats = publisher.stats();
    assert_eq!((publisher_stats.results, publisher_stats.unmatched_results), (1, 0), "one result");
    assert_eq!(broker.queue_stats().unwrap().dead, 0);
}

/// Item 3: an event running over three visibility timeouts long is never redelivered.
fn renewed() {
    let server = RedisServer::start(false);
    let mut config = WorkerConfig::new(&server.url(), "renewed");
    config.visibility_ms = 1500;
    let workers = [WorkerProcess::spawn(&config), WorkerProcess::spawn(&config)];
    let broker = broker(&server, "renewed");
    let publisher = broker.publisher().expect("publisher");
    let dir = TempDir::new("renewed");
    let marker = dir.join("started");

    let event = thread_event("sleep").with_retry_count(3).with_data(json!({"ms": 5000, "marker": marker}));
    let result = wait(publisher.publish(event).unwrap(), Duration::from_secs(60));
    assert!(result.success, "{result:?}");
    assert_eq!(result.attempts, 1);
    assert!(result.duration >= Duration::from_secs(5));
    assert_eq!(lines(&marker).len(), 1, "started once: {:?}", lines(&marker));
    let [a, b] = workers;
    for stats in [a.stop(), b.stop()] {
        assert_eq!((stats["reclaimed"].as_u64(), stats["lost"].as_u64()), (Some(0), Some(0)), "{stats}");
    }
}

/// Item 4: retries with backoff, counted once across workers; dead letters listed and
/// re-published.
fn retries() {
    const BACKOFF_MS: u64 = 100;
    let server = RedisServer::start(false);
    let mut config = WorkerConfig::new(&server.url(), "retries");
    config.backoff_ms = BACKOFF_MS;
    config.concurrency = 2;
    let workers = [WorkerProcess::spawn(&config), WorkerProcess::spawn(&config)];
    let broker = broker(&server, "retries");
    let publisher = broker.publisher().expect("publisher");
    let dir = TempDir::new("retries");

    let logs: Vec<_> = (0..20).map(|i| dir.join(&format!("flaky-{i}"))).collect();
    let handles: Vec<_> = logs
        .iter()
        .map(|log| {
            let event =
                thread_event("flaky").with_retry_count(4).with_data(json!({"fail_until": 3, "log": log}));
            publisher.publish(event).unwrap()
        })
        .collect();
    let mut across_workers = 0;
    for (handle, log) in handles.into_iter().zip(&logs) {
        let result = wait(handle, Duration::from_secs(60));
        assert!(result.success, "{result:?}");
        assert_eq!((result.attempts, result.data["attempt"].as_u64()), (3, Some(3)));
        let attempts: Vec<Vec<u64>> =
            lines(log).iter().map(|line| line.split(' ').map(|n| n.parse().unwrap()).collect()).collect();
        assert_eq!(attempts.iter().map(|a| a[1]).collect::<Vec<_>>(), [1, 2, 3], "each attempt ran once");
        for pair in attempts.windows(2) {
            assert!(pair[1][2] >= pair[0][2] + BACKOFF_MS - 5, "retried after the backoff: {attempts:?}");
        }
        if attempts.iter().map(|a| a[0]).collect::<HashSet<_>>().len() > 1 {
            across_workers += 1;
        }
    }
    println!("  {across_workers} of 20 events had attempts on both workers");
    assert!(across_workers > 0, "attempts are shared between the workers");

    // Exhausted and permanent failures land in the dead-letter stream with their error.
    let fix = dir.join("fixed");
    let fixable = || thread_event("fixable").with_retry_count(2).with_data(json!({"fix": fix}));
    let failing: Vec<_> = (0..3).map(|_| publisher.publish(fixable()).unwrap()).collect();
    for handle in failing {
        let result = wait(handle, Duration::from_secs(60));
        assert_eq!((result.success, result.attempts), (false, 3), "{result:?}");
        assert_eq!(result.error_message.as_deref(), Some("not fixed yet (attempt 3)"));
    }
    let refused =
        wait(publisher.publish(thread_event("refuse").with_retry_count(5)).unwrap(), Duration::from_secs(60));
    assert_eq!((refused.attempts, refused.error_kind), (1, Some(ErrorKind::HandlerError)));
    assert!(refused.is_permanent());

    let letters = broker.dead_letters(100).unwrap();
    assert_eq!(letters.len(), 4, "{letters:?}");
    let (fixables, refusals): (Vec<_>, Vec<_>) =
        letters.iter().partition(|letter| letter.event().unwrap().event_type() == "fixable");
    for letter in &fixables {
        assert_eq!(letter.reason(), "failed 3 of 3 attempts");
        assert_eq!(letter.attempts(), 3);
        assert_eq!(letter.error_message(), Some("not fixed yet (attempt 3)"));
        assert_eq!(letter.error_kind(), Some(ErrorKind::BusinessFailure));
    }
    assert_eq!(refusals[0].reason(), "permanent failure");
    assert_eq!(refusals[0].error_message(), Some("refused for good"));

    fs::write(&fix, "").unwrap();
    for letter in &fixables {
        let result = wait(publisher.republish(letter).unwrap(), Duration::from_secs(60));
        assert!(result.success, "{result:?}");
        assert_eq!(result.attempts, 1, "a re-published event counts afresh");
        assert_eq!(result.event_id, letter.event().unwrap().id());
    }
    let gone = publisher.republish(fixables[0]).unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(broker.dead_letters(100).unwrap().len(), 1);
    assert!(broker.delete_dead_letter(refusals[0]).unwrap());
    assert_eq!(broker.queue_stats().unwrap().dead, 0);
    assert_idle(&broker);
    drop(workers);
}

/// Failed publish calls that show the outage: the checker waits for them before restarting.
const OUTAGE_FAILURES: usize = 10;

/// Item 5: Redis restarted mid-run; nothing accepted is lost, and publishing while it is down
/// fails at once with a clear error.
fn restart() {
    const EVENTS: usize = 1500;
    let mut server = RedisServer::start(true);
    let mut config = WorkerConfig::new(&server.url(), "restart");
    config.visibility_ms = 5000;
    let workers = [WorkerProcess::spawn(&config), WorkerProcess::spawn(&config)];
    let broker =
        broker(&server, "restart").io_timeout(Duration::from_secs(2)).connect_timeout(Duration::from_secs(1));
    let publisher = broker.publisher().expect("publisher");

    let failed_calls = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let (publisher, failed_calls) = (publisher.clone(), Arc::clone(&failed_calls));
        std::thread::spawn(move || publish_through_outage(&publisher, EVENTS, &failed_calls))
    };
    assert!(poll_until(Duration::from_secs(60), || publisher.stats().published >= 300), "publishing started");
    server.stop();
    let asked = Instant::now();
    let refused = publisher.publish(Event::new("echo")).unwrap_err();
    println!("  with redis down, publish failed in {:.1?}: {refused}", asked.elapsed());
    assert!(asked.elapsed() < Duration::from_secs(10), "no hang");
    assert!(refused.is_unavailable(), "{refused:?}");
    assert!(refused.to_string().contains("is unavailable"), "{refused}");
    // Stay down while the publisher keeps failing and the workers lose their connections.
    assert!(poll_until(Duration::from_secs(30), || failed_calls.load(Ordering::SeqCst) >= OUTAGE_FAILURES));
    let (published_before, down_for) = (publisher.stats().published, asked.elapsed());
    server.restart();
    println!("  redis was down for {down_for:.1?}, after {published_before} events were accepted");

    let (handles, ambiguous) = feeder.join().expect("feeder");
    let failures = failed_calls.load(Ordering::SeqCst);
    println!("  {failures} publish calls failed during the outage and were retried ({ambiguous} ambiguous)");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut retried = 0;
    let accepted = handles.len();
    for (i, mut handle) in handles.into_iter().enumerate() {
        let result = handle.wait_deadline(deadline).unwrap_or_else(|| panic!("event {i} was lost"));
        assert!(result.success, "{result:?}");
        retried += usize::from(result.attempts > 1);
    }
    println!("  all {} accepted events have their result; {retried} needed a second attempt", accepted);
    assert_idle(&broker);
    // A call that failed ambiguously (the connection broke after the event was sent) may have
    // stored it: its retry then ran the event a second time, and that result matched nothing.
    let unmatched = publisher.stats().unmatched_results;
    assert!(unmatched <= ambiguous as u64, "{unmatched} unmatched results, {ambiguous} ambiguous failures");
    drop(workers);
}

/// Publishes `count` events, retrying each until Redis takes it and counting failed calls;
/// returns the handles and how many failed calls were ambiguous.
fn publish_through_outage(
    publisher: &Publisher,
    count: usize,
    failures: &AtomicUsize,
) -> (Vec<EventHandle>, usize) {
    let mut handles = Vec::with_capacity(count);
    let mut ambiguous = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut i = 0;
    // Past `count` until the outage was seen: on a loaded machine the checker may notice the
    // first 300 events late, and a feeder done before the server stopped would test nothing.
    while i < count || failures.load(Ordering::SeqCst) < OUTAGE_FAILURES {
        i += 1;
        let mut event = thread_event("sleep").with_retry_count(2).with_data(json!({"ms": 2, "i": i}));
        loop {
            match publisher.publish(event) {
                Ok(handle) => break handles.push(handle),
                Err(error) => {
                    assert!(error.is_unavailable(), "{error}");
                    assert!(Instant::now() < deadline, "redis never came back");
                    failures.fetch_add(1, Ordering::SeqCst);
                    ambiguous += usize::from(error.is_ambiguous());
                    event = error.into_inner();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    (handles, ambiguous)
}

/// With nothing listening, or a server that never answers, calls fail within their timeouts.
fn unreachable() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let asked = Instant::now();
    let error = Broker::new(&format!("redis://127.0.0.1:{port}/")).unwrap().publisher().unwrap_err();
    assert!(error.is_unavailable() && asked.elapsed() < Duration::from_secs(10), "{error}");
    println!("  nothing listening: {error}");

    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let asked = Instant::now();
    let broker = Broker::new(&url)
        .unwrap()
        .connect_timeout(Duration::from_millis(300))
        .io_timeout(Duration::from_millis(300));
    let error = broker.publisher().unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(asked.elapsed() < Duration::from_secs(10), "bounded by the timeouts: {:?}", asked.elapsed());
    println!("  silent server: failed in {:.1?}: {error}", asked.elapsed());
}

/// Item 6: garbage and unknown versions go to the dead-letter stream with a reason; the worker
/// keeps running.
fn garbage() {
    let server = RedisServer::start(false);
    let mut worker = WorkerProcess::spawn(&WorkerConfig::new(&server.url(), "bad"));
    let broker = broker(&server, "bad");
    let publisher = broker.publisher().expect("publisher");
    let mut redis = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let xadd = |redis: &mut redis::Connection, fields: &[(&[u8], &[u8])]| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg("bad:queue:normal").arg("*");
        for (name, value) in fields {
            cmd.arg(*name).arg(*value);
        }
        cmd.query::<String>(redis).unwrap();
    };
    let newer = json!({"event": {"event_type": "echo"}, "reply": {"stream": "bad:reply:test", "ticket": 7}});
    xadd(&mut redis, &[(b"hello", b"world")]);
    xadd(&mut redis, &[(b"v", b"2"), (b"envelope", newer.to_string().as_bytes())]);
    xadd(&mut redis, &[(b"v", b"1"), (b"envelope", b"not json")]);
    xadd(&mut redis, &[(b"v", b"1"), (b"envelope", br#"{"event": {"event_type": "echo", "timeout": 0}}"#)]);
    xadd(&mut redis, &[(b"\xff", b"\xfe\x00binary")]);
    // Valid events with reply addresses that are not reply streams: one names a band stream
    // (the result must not be written there, nor the stream set to expire), one a key of
    // another type (the settlement must not fail with it). Both run; their results go nowhere.
    let aimed_at_queue =
        json!({"event": {"event_type": "echo"}, "reply": {"stream": "bad:queue:high", "ticket": 1}});
    xadd(&mut redis, &[(b"v", b"1"), (b"envelope", aimed_at_queue.to_string().as_bytes())]);
    redis::cmd("SET").arg("bad:reply:not-a-stream").arg("x").query::<()>(&mut redis).unwrap();
    let wrong_type =
        json!({"event": {"event_type": "echo"}, "reply": {"stream": "bad:reply:not-a-stream", "ticket": 2}});
    xadd(&mut redis, &[(b"v", b"1"), (b"envelope", wrong_type.to_string().as_bytes())]);
    // A delayed member this crate did not write: dead-lettered, not a stop to promotion.
    redis::cmd("ZADD").arg("bad:delayed").arg(0).arg("?not a member").query::<()>(&mut redis).unwrap();

    let result = wait(publisher.publish(Event::new("echo")).unwrap(), Duration::from_secs(60));
    assert!(result.success, "the worker keeps running: {result:?}");
    assert!(poll_until(Duration::from_secs(30), || broker.dead_letters(10).unwrap().len() == 6));
    let letters = broker.dead_letters(10).unwrap();
    println!("  reasons: {:#?}", letters.iter().map(|letter| letter.reason()).collect::<Vec<_>>());
    let find = |prefix: &str| {
        let found: Vec<_> = letters.iter().filter(|letter| letter.reason().starts_with(prefix)).collect();
        assert!(!found.is_empty(), "no dead letter whose reason starts with {prefix:?}");
        found
    };
    let no_version = find("malformed message: no `v` field");
    assert_eq!(no_version.len(), 2);
    let hello = BTreeMap::from([("hello".to_owned(), "world".to_owned())]);
    assert!(no_version.iter().any(|letter| letter.raw_fields() == Some(&hello)));
    find("unsupported envelope version `2`: this worker reads version 1");
    find("malformed envelope: expected ident");
    find("malformed envelope: timeout must be greater than zero seconds");
    find("malformed envelope: expected value");
    assert!(letters.iter().all(|letter| letter.event().is_none()));
    let ttl: i64 = redis::cmd("PTTL").arg("bad:queue:high").query(&mut redis).unwrap();
    assert!(ttl < 0, "a band stream was set to expire: {ttl} ms");

    // The sender of the newer envelope was told, so it does not wait forever.
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg("bad:reply:test").arg("-").arg("+").query(&mut redis).unwrap();
    assert_eq!(reply.ids.len(), 1);
    let told: EventResult = serde_json::from_str(&reply.ids[0].get::<String>("result").unwrap()).unwrap();
    assert_eq!(told.error_kind, Some(ErrorKind::InvalidInput));

    assert!(worker.is_alive());
    assert_idle(&broker);
    let stats = worker.stop();
    assert_eq!(stats["malformed"].as_u64(), Some(6), "{stats}");
}

/// Higher priority bands are taken first.
fn priorities() {
    let server = RedisServer::start(false);
    let mut config = WorkerConfig::new(&server.url(), "priorities");
    config.concurrency = 1;
    let worker = WorkerProcess::spawn(&config);
    let publisher = broker(&server, "priorities").publisher().expect("publisher");
    let dir = TempDir::new("priorities");
    let (marker, log) = (dir.join("started"), dir.join("order"));

    // Occupy the worker's one slot, then queue low before high.
    let blocker =
        publisher.publish(thread_event("sleep").with_data(json!({"ms": 500, "marker": marker}))).unwrap();
    assert!(poll_until(Duration::from_secs(60), || !lines(&marker).is_empty()));
    let note = |label: &str, priority: i32| {
        let event =
            thread_event("note").with_priority(priority).with_data(json!({"label": label, "log": log}));
        publisher.publish(event).unwrap()
    };
    let mut handles: Vec<_> = (0..5).map(|i| note(&format!("low-{i}"), 1)).collect();
    handles.extend((0..5).map(|i| note(&format!("normal-{i}"), 5)));
    handles.extend((0..5).map(|i| note(&format!("high-{i}"), 9)));
    assert!(wait(blocker, Duration::from_secs(60)).success);
    for handle in handles {
        assert!(wait(handle, Duration::from_secs(60)).success);
    }
    let order = lines(&log);
    let expected: Vec<String> = ["high", "normal", "low"]
        .iter()
        .flat_map(|band| (0..5).map(move |i| format!("{band}-{i}")))
        .collect();
    assert_eq!(order, expected);
    drop(worker);
}

/// Delayed publishing works across the fleet: any worker moves the event when it is due.
fn delayed() {
    let server = RedisServer::start(false);
    let worker = WorkerProcess::spawn(&WorkerConfig::new(&server.url(), "delayed"));
    let broker = broker(&server, "delayed");
    let publisher = broker.publisher().expect("publisher");
    let published = Instant::now();
    let later = publisher
        .publish_after(Duration::from_millis(800), thread_event("echo").with_data(json!("later")))
        .unwrap();
    let sooner = publisher.publish(thread_event("echo").with_data(json!("sooner"))).unwrap();
    assert_eq!(wait(sooner, Duration::from_secs(60)).data["data"], "sooner");
    let stats = broker.queue_stats().unwrap();
    if published.elapsed() < Duration::from_millis(600) {
        assert_eq!(stats.delayed, 1, "still waiting in the delayed set: {stats:?}");
    }
    let result = wait(later, Duration::from_secs(60));
    let waited = published.elapsed();
    println!("  a 800 ms delay took {waited:.1?}");
    assert_eq!(result.data["data"], "later");
    assert!(waited >= Duration::from_millis(790), "{waited:?}");
    drop(worker);
}
