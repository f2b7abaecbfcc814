//! Floor of a thread-mode round trip: one bare worker thread fed by a channel, answering on a
//! oneshot.

use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use busbar::{Event, HandlerResult};

use super::Handler;
use crate::bench::Error;

type Request = (Event, oneshot::Sender<HandlerResult>);

/// The worker thread and the sending side of its channel.
pub(in crate::bench) struct BareWorker {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl BareWorker {
    pub(in crate::bench) fn new(handler: Handler) -> Result<BareWorker, Error> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let thread = thread::Builder::new().name("floor-worker".to_owned()).spawn(move || {
            for (event, reply) in inbox {
                let _ = reply.send(handler(&event));
            }
        })?;
        Ok(BareWorker { requests: Some(requests), thread: Some(thread) })
    }

    /// Hands `event` to the worker and waits for the handler's result.
    pub(in crate::bench) fn call(&self, event: Event) -> Result<HandlerResult, Error> {
        let (reply, result) = oneshot::channel();
        self.requests.as_ref().ok_or("the worker is gone")?.send((event, reply))?;
        Ok(result.recv()?)
    }
}

impl Drop for BareWorker {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
