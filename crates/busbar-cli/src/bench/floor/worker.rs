//! Floor of a thread-mode round trip: one bare worker thread fed by a channel, answering on a
//! oneshot. Both sides watch for a moment before they sleep, as busbar's do (see
//! [`super::watch`]).

use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use busbar::{Event, HandlerResult};

use super::{watch, Handler};
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
        let thread = thread::Builder::new().name("floor-worker".to_owned()).spawn(move || loop {
            let request = watch::watch_for(|| inbox.try_recv(), |error| *error == mpsc::TryRecvError::Empty);
            let Some((event, reply)) = request.or_else(|| inbox.recv().ok()) else { break };
            let _ = reply.send(handler(&event));
        })?;
        Ok(BareWorker { requests: Some(requests), thread: Some(thread) })
    }

    /// Hands `event` to the worker and waits for the handler's result.
    pub(in crate::bench) fn call(&self, event: Event) -> Result<HandlerResult, Error> {
        let (reply, result) = oneshot::channel();
        self.requests.as_ref().ok_or("the worker is gone")?.send((event, reply))?;
        let answer = watch::watch_for(|| result.try_recv(), |error| *error == oneshot::TryRecvError::Empty);
        match answer {
            Some(answer) => Ok(answer),
            None => Ok(result.recv()?),
        }
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
