//! An `EventHandle` is a `Future`: async code awaits results on any executor.

mod support;

use std::future::{poll_fn, Future, IntoFuture};
use std::pin::Pin;
use std::task::Poll;

use busbar::{handler_fn, Event, EventBus, EventFuture, EventHandle, EventResult};
use support::{thread_event, Gate};

fn square_bus() -> EventBus {
    let bus = EventBus::builder().threads(2).build().unwrap();
    bus.subscribe(
        "square",
        handler_fn(|ctx| {
            let n = ctx.event().data().as_i64().unwrap();
            Ok(EventResult::success_with((n * n).into()))
        }),
    );
    bus
}

#[test]
fn thread_event_awaited() {
    let bus = square_bus();
    let handle = bus.publish(thread_event("square").with_data(7.into())).unwrap();
    let result = pollster::block_on(handle);
    assert_eq!(result.data, 49);
}

#[test]
fn sync_event_awaited() {
    let bus = square_bus();
    let handle = bus.publish(Event::new("square").with_data(3.into())).unwrap();
    let data = pollster::block_on(async { handle.await.data });
    assert_eq!(data, 9);
}

#[test]
fn woken_when_ready() {
    let bus = EventBus::builder().threads(1).build().unwrap();
    let gate = Gate::new();
    let _release = gate.opener();
    let held = gate.clone();
    bus.subscribe(
        "held",
        handler_fn(move |_| {
            held.wait();
            Ok(EventResult::success_with("released".into()))
        }),
    );
    let mut future = bus.publish(thread_event("held")).unwrap().into_future();
    let result = pollster::block_on(async {
        // The first poll must find nothing (the handler is held) and register the waker ...
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx).is_pending())).await;
        assert!(first, "pending while the handler is held");
        // ... which the result wakes, once the handler may finish.
        gate.open();
        future.await
    });
    assert_eq!(result.data, "released");
}

/// Awaits all handles concurrently and returns their results in order.
async fn join_all(handles: Vec<EventHandle>) -> Vec<EventResult> {
    let mut pending: Vec<Option<EventFuture>> =
        handles.into_iter().map(|handle| Some(handle.into_future())).collect();
    let mut results: Vec<Option<EventResult>> = pending.iter().map(|_| None).collect();
    poll_fn(|cx| {
        for (slot, result) in pending.iter_mut().zip(&mut results) {
            if let Some(handle) = slot {
                if let Poll::Ready(ready) = Pin::new(handle).poll(cx) {
                    *result = Some(ready);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[test]
fn join_several() {
    let bus = square_bus();
    let handles: Vec<_> =
        (0..50).map(|n| bus.publish(thread_event("square").with_data(n.into())).unwrap()).collect();
    let results = pollster::block_on(join_all(handles));
    let squares: Vec<i64> = results.iter().map(|result| result.data.as_i64().unwrap()).collect();
    assert_eq!(squares, (0..50).map(|n| n * n).collect::<Vec<_>>());
}
