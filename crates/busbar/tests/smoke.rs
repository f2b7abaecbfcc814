//! Smoke test: thread mode end to end, including a timeout and a panic.

use std::time::Duration;

use busbar::{handler_fn, ErrorKind, Event, EventBus, EventResult, ExecutionMode};

#[test]
fn smoke() {
    let bus = EventBus::builder().threads(2).build().unwrap();
    bus.subscribe("ok", handler_fn(|_| Ok(EventResult::success_with(1.into()))));
    bus.subscribe(
        "stuck",
        handler_fn(|ctx| {
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(EventResult::success())
        }),
    );
    bus.subscribe("boom", handler_fn(|_| panic!("kaboom")));
    let thread = |t: &str| Event::new(t).with_mode(ExecutionMode::Thread);
    let stuck = bus.publish(thread("stuck").with_timeout(Duration::from_millis(200))).unwrap();
    let boom = bus.publish(thread("boom")).unwrap();
    let oks: Vec<_> = (0..100).map(|_| bus.publish(thread("ok")).unwrap()).collect();
    for h in oks {
        assert!(h.wait().success);
    }
    let stuck = stuck.wait();
    assert_eq!(stuck.error_kind, Some(ErrorKind::Timeout), "{stuck:?}");
    let boom = boom.wait();
    assert_eq!(boom.error_kind, Some(ErrorKind::Panic));
    assert!(boom.error_message.unwrap().contains("kaboom"));
    bus.join();
    let stats = bus.stats();
    assert_eq!(stats.published, 102);
    assert_eq!(stats.succeeded, 100);
    bus.shutdown();
    assert!(bus.publish(thread("ok")).unwrap_err().is_shut_down());
}
