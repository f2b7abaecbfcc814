//! Documentation twins: the code blocks of "Public APIs" (EventBus, Event, EventHandler,
//! EventFactory, TimerThread) and of "Quick Reference › Imports", one function per block,
//! named after its heading. (TimerThread › Examples is the `health_check` example.)
//!
//! Run with `cargo run -p busbar --example public_api`.

use std::error::Error;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

// Quick Reference › Imports. Core classes:
use busbar::{Event, EventBus, EventHandler};
// Execution modes:
use busbar::{EXECUTION_MODE_CMD, EXECUTION_MODE_CORELET, EXECUTION_MODE_SYNC, EXECUTION_MODE_THREAD};
// Results and context:
use busbar::{EventContext, EventResult, HandlerResult};
// Factory and timer:
use busbar::{EventFactory, TimerThread};
// Exceptions: busbar's errors are values. `NoHandlerAvailableError` comes inside
// `PublishError`; `EventExecutionError` from `EventResult::into_result`.
use busbar::{EventExecutionError, NoHandlerAvailableError, PublishError};
// Defaults of the Event signature:
use busbar::{DEFAULT_PRIORITY, DEFAULT_RETRY_COUNT, DEFAULT_TIMEOUT};

fn main() -> Result<(), Box<dyn Error>> {
    event_bus_constructor();
    event_bus_examples()?;
    event_signature();
    event_examples();
    event_handler_base()?;
    event_handler_implementation_example()?;
    event_factory_register();
    event_factory_examples()?;
    timer_thread()?;
    Ok(())
}

/// EventBus: `bus = EventBus()`.
fn event_bus_constructor() {
    let bus = EventBus::new();
    // A new bus has an empty factory: handlers come from `subscribe` or `bus.factory()`,
    // or the bus is built around a factory with `EventBus::with_factory`.
    assert!(bus.factory().event_types().is_empty());
    println!("EventBus::new(): a bus with no handlers yet");
}

/// EventBus › Examples: publish a simple event.
fn event_bus_examples() -> Result<(), Box<dyn Error>> {
    // Create event bus
    let bus = EventBus::new();

    // The documentation publishes without registering a handler, which is refused:
    let user_created =
        || Event::new("user.created").with_data(json!({"user_id": 123, "username": "john_doe"}));
    let Err(PublishError::NoHandlerAvailable(error)) = bus.publish(user_created()) else {
        return Err("publishing without a handler should be refused".into());
    };
    let error: NoHandlerAvailableError = error;
    println!("without a handler: {error}");

    // With a handler registered, publish a simple event
    bus.subscribe("user.created", |ctx: &EventContext| -> HandlerResult {
        Ok(EventResult::success_with(ctx.event().data()["username"].clone()))
    });
    let result = bus.publish(user_created())?.wait();
    println!("Event processed: {}", result.success);
    assert!(result.success);
    assert_eq!(result.data, "john_doe");
    Ok(())
}

/// Event: the constructor's parameters and their defaults.
fn event_signature() {
    let event = Event::new("any.type");
    assert_eq!(event.event_type(), "any.type");
    assert_eq!(event.data(), &Value::Null); // data: None
    assert_eq!(event.mode(), EXECUTION_MODE_SYNC); // mode: EXECUTION_MODE_SYNC
    assert_eq!(event.priority(), DEFAULT_PRIORITY); // priority: 5, higher runs first
    assert_eq!(event.timeout(), DEFAULT_TIMEOUT); // timeout: 30 s
    assert_eq!(event.retry_count(), DEFAULT_RETRY_COUNT); // retry_count: 0
    assert_eq!((DEFAULT_PRIORITY, DEFAULT_TIMEOUT.as_secs(), DEFAULT_RETRY_COUNT), (5, 30, 0));

    // Every parameter is a builder method:
    let event = Event::new("any.type")
        .with_data(json!({"k": "v"}))
        .with_mode(EXECUTION_MODE_THREAD)
        .with_priority(7)
        .with_timeout(Duration::from_secs_f64(2.5))
        .with_retry_count(1);
    assert_eq!(event.max_attempts(), 2);

    // The four modes (`corelet_isolation` and `command` run the last two):
    let modes = [EXECUTION_MODE_SYNC, EXECUTION_MODE_THREAD, EXECUTION_MODE_CORELET, EXECUTION_MODE_CMD];
    assert_eq!(modes.map(|mode| mode.as_str()), ["sync", "thread", "corelet", "cmd"]);
    println!("Event::new defaults: mode sync, priority 5, timeout 30 s, retry_count 0");
}

/// Event › Examples: three events.
fn event_examples() {
    // Simple synchronous event
    let event = Event::new("data.process").with_data(json!({"values": [1, 2, 3]}));
    assert_eq!(event.mode(), EXECUTION_MODE_SYNC);

    // Background thread execution
    let event = Event::new("file.upload")
        .with_data(json!({"path": "/tmp/file.txt"}))
        .with_mode(EXECUTION_MODE_THREAD);
    assert_eq!(event.mode(), EXECUTION_MODE_THREAD);

    // High priority with retry
    let event = Event::new("critical.task")
        .with_data(json!({"task_id": 456}))
        .with_priority(10)
        .with_retry_count(3)
        .with_timeout(Duration::from_secs(60));
    assert_eq!((event.priority(), event.retry_count(), event.timeout()), (10, 3, Duration::from_secs(60)));
    println!(
        "Event examples: built data.process, file.upload (thread), critical.task (priority 10, 3 retries)"
    );
}

/// EventHandler: the base pattern — read the data, process it, return a result.
struct MyHandler;

impl EventHandler for MyHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        // Access event data
        let data = ctx.event().data();

        // Process logic here (`?` turns an error into a failed result)
        let result = process_data(data)?;

        // Return result
        Ok(EventResult::success_with(json!({"result": result})))
    }
}

/// The documentation's `process_data`: sums `values`.
fn process_data(data: &Value) -> Result<i64, &'static str> {
    let values = data["values"].as_array().ok_or("`values` must be an array")?;
    values.iter().map(|v| v.as_i64().ok_or("`values` must hold integers")).sum()
}

fn event_handler_base() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::new();
    bus.subscribe("data.process", MyHandler);
    let result = bus.publish(Event::new("data.process").with_data(json!({"values": [1, 2, 3]})))?.wait();
    println!("MyHandler: {}", result.data);
    assert_eq!(result.data, json!({"result": 6}));

    let failed = bus.publish(Event::new("data.process").with_data(json!({"values": "x"})))?.wait();
    let error: EventExecutionError = failed.into_result().err().ok_or("a bad payload should fail")?;
    assert_eq!(error.message(), "`values` must be an array");
    Ok(())
}

/// A notification service, as the documentation's handler receives one in its constructor.
trait NotificationService: Send + Sync {
    fn send(&self, user_id: u64, message: &str) -> Result<(), Box<dyn Error + Send + Sync>>;
}

/// A service that records what it sends and knows no user 0.
#[derive(Default)]
struct RecordingService {
    sent: Mutex<Vec<(u64, String)>>,
}

impl NotificationService for RecordingService {
    fn send(&self, user_id: u64, message: &str) -> Result<(), Box<dyn Error + Send + Sync>> {
        if user_id == 0 {
            return Err("unknown user 0".into());
        }
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).push((user_id, message.to_owned()));
        Ok(())
    }
}

/// EventHandler › Implementation Example: `UserNotificationHandler`.
///
/// "Always call `super().__init__()`" has no Rust counterpart: the trait has no state.
struct UserNotificationHandler {
    service: Arc<dyn NotificationService>,
}

impl UserNotificationHandler {
    fn new(service: Arc<dyn NotificationService>) -> Self {
        UserNotificationHandler { service }
    }

    fn notify(&self, data: &Value) -> Result<(), Box<dyn Error + Send + Sync>> {
        let user_id = data["user_id"].as_u64().ok_or("`user_id` is missing")?;
        let message = data["message"].as_str().ok_or("`message` is missing")?;
        // Send notification
        self.service.send(user_id, message)
    }
}

impl EventHandler for UserNotificationHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        match self.notify(ctx.event().data()) {
            // The documentation's `datetime.now().isoformat()`; seconds since 1970 here.
            Ok(()) => {
                let sent_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                Ok(EventResult::success_with(json!({"sent_at": sent_at})))
            }
            Err(e) => Ok(EventResult::failure(e.to_string())),
        }
    }
}

fn event_handler_implementation_example() -> Result<(), Box<dyn Error>> {
    let service = Arc::new(RecordingService::default());
    let factory = EventFactory::new();
    let shared: Arc<dyn NotificationService> = service.clone();
    factory.register_event_type("user.notify", move || UserNotificationHandler::new(Arc::clone(&shared)));
    let bus = EventBus::with_factory(factory);

    let sent =
        bus.publish(Event::new("user.notify").with_data(json!({"user_id": 7, "message": "hi"})))?.wait();
    let refused =
        bus.publish(Event::new("user.notify").with_data(json!({"user_id": 0, "message": "hi"})))?.wait();
    println!(
        "UserNotificationHandler: sent = {} ({}), to user 0: {}",
        sent.success,
        sent.data,
        refused.error_message.as_deref().unwrap_or("")
    );
    assert!(sent.success && sent.data["sent_at"].as_u64().is_some());
    assert_eq!(refused.error_message.as_deref(), Some("unknown user 0"));
    assert_eq!(*service.sent.lock().unwrap_or_else(PoisonError::into_inner), [(7, "hi".to_owned())]);
    Ok(())
}

struct UserCreatedHandler;

impl EventHandler for UserCreatedHandler {
    fn execute(&self, _ctx: &EventContext) -> HandlerResult {
        Ok(EventResult::success())
    }
}

/// EventFactory: `factory.register_event_type("user.created", UserCreatedHandler)`.
///
/// Python passes the class; busbar takes a constructor, called once per worker thread.
fn event_factory_register() {
    let factory = EventFactory::new();
    factory.register_event_type("user.created", || UserCreatedHandler);
    assert!(factory.is_handler_available("user.created"));
    println!("EventFactory: registered {:?}", factory.event_types());
}

/// The three order handlers of the documentation, as one handler type with a status.
struct OrderHandler {
    status: &'static str,
}

impl EventHandler for OrderHandler {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        let order = ctx.event().data()["order_id"].clone();
        Ok(EventResult::success_with(json!({"order_id": order, "status": self.status})))
    }
}

/// EventFactory › Examples: register several handlers; the bus creates them when events arrive.
fn event_factory_examples() -> Result<(), Box<dyn Error>> {
    // Create factory
    let factory = EventFactory::new();

    // Register multiple handlers
    factory.register_event_type("order.created", || OrderHandler { status: "created" });
    factory.register_event_type("order.cancelled", || OrderHandler { status: "cancelled" });
    factory.register_event_type("order.shipped", || OrderHandler { status: "shipped" });
    assert_eq!(factory.event_types(), ["order.cancelled", "order.created", "order.shipped"]);
    assert!(factory.create_handler("order.created").is_some());
    assert!(factory.create_handler("order.returned").is_none());

    // Factory automatically creates handlers when events arrive
    let bus = EventBus::with_factory(factory);
    for event_type in ["order.created", "order.shipped"] {
        let result = bus.publish(Event::new(event_type).with_data(json!({"order_id": 1})))?.wait();
        println!("{event_type}: {}", result.data);
        assert_eq!(result.data["status"], &event_type["order.".len()..]);
    }
    Ok(())
}

/// TimerThread: `TimerThread(event_bus, interval_seconds, event, run_once)`, then `start()`.
///
/// The interval is a `Duration` (the documentation's float seconds), and `run_once` has no
/// default: Rust has no default arguments. The documentation's interval is 60 s; 20 ms here.
fn timer_thread() -> Result<(), Box<dyn Error>> {
    let bus = EventBus::new();
    let (tick, ticks) = mpsc::channel();
    let tick = Mutex::new(tick);
    bus.subscribe("system.health_check", move |ctx: &EventContext| -> HandlerResult {
        let _ = tick.lock().unwrap_or_else(PoisonError::into_inner).send(ctx.event().id());
        Ok(EventResult::success())
    });

    let interval = Duration::from_millis(20);
    let event = Event::new("system.health_check");
    let original = event.id();
    let started = Instant::now();
    let timer = TimerThread::new(&bus, interval, event, false);
    timer.start();

    let first = ticks.recv_timeout(Duration::from_secs(10))?;
    let second = ticks.recv_timeout(Duration::from_secs(10))?;
    timer.stop(); // dropping the timer would stop it too
    assert!(started.elapsed() >= interval * 2, "a periodic timer fires once per interval");
    // Each firing publishes a fresh copy: same type and data, a new id.
    assert!(first != original && second != original && first != second);
    println!("TimerThread: fired {} times every {interval:?}, then stopped", timer.ticks());
    Ok(())
}
