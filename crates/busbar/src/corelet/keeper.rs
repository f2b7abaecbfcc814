//! The keeper thread: the one thread that starts a pool's children, and the one that retires
//! them without holding up requests.
//!
//! Children are started here, never on the threads that run requests, because of how Linux
//! delivers the parent-death signal: it fires when the *thread* that forked the child exits,
//! not when the process does. Request threads may come and go (a thread pool can replace a
//! stuck worker); the keeper lives exactly as long as the pool, so a child dies with its
//! pool or its process, never earlier.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::error::StartError;
use super::process::Corelet;
use super::spawn::{Launch, Spawned};
use crate::sys;

/// Handle to the keeper thread.
#[derive(Debug)]
pub(crate) struct Keeper {
    /// What the keeper runs; shared with its thread.
    launch: Arc<Launch>,
    /// Sends jobs to the thread; `None` once [`Keeper::stop`] ran.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The thread, joined by [`Keeper::stop`].
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Work for the keeper thread.
enum Job {
    /// Start a child and send it back.
    Spawn(oneshot::Sender<Result<Spawned, StartError>>),
    /// Shut a child down politely and reap it (boxed: a `Corelet` holds a read buffer handle,
    /// a `Child` and more, and jobs travel by value).
    Retire(Box<Corelet>),
}

impl Keeper {
    /// Starts the keeper thread, which also calls `sweep` about every `period`.
    pub(crate) fn start(
        launch: Arc<Launch>,
        period: Duration,
        sweep: impl FnMut() + Send + 'static,
    ) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = thread::Builder::new().name("busbar-corelet-keeper".to_owned()).spawn({
            let launch = Arc::clone(&launch);
            move || run(&launch, &queue, period, sweep)
        })?;
        Ok(Keeper { launch, jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) })
    }

    /// Starts a child on the keeper thread and waits for it to be running (not greeted).
    pub(crate) fn spawn(&self) -> Result<Spawned, StartError> {
        let (reply, spawned) = oneshot::channel();
        if self.send(Job::Spawn(reply)).is_err() {
            return Err(self.gone());
        }
        spawned.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    /// Retires `corelet` on the keeper thread, or right here if the keeper has stopped.
    pub(crate) fn retire(&self, corelet: Corelet) {
        if let Err(Job::Retire(corelet)) = self.send(Job::Retire(Box::new(corelet))) {
            corelet.retire();
        }
    }

    /// Lets the keeper finish its queued jobs, then joins it. Idempotent.
    pub(crate) fn stop(&self) {
        drop(lock(&self.jobs).take());
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            // The keeper catches nothing and runs no user code; a panic there is a bug in
            // this module, already reported on stderr by the panic hook.
            let _ = thread.join();
        }
    }

    /// Queues a job; hands it back if the keeper has stopped.
    fn send(&self, job: Job) -> Result<(), Job> {
        match &*lock(&self.jobs) {
            Some(jobs) => jobs.send(job).map_err(|error| error.0),
            None => Err(job),
        }
    }

    /// The error for a spawn the keeper cannot take any more.
    fn gone(&self) -> StartError {
        StartError::spawn(
            self.launch.program().to_owned(),
            io::Error::other("the corelet pool's keeper thread has stopped"),
        )
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The keeper thread's loop: runs jobs until every sender is gone, sweeping on the way.
fn run(launch: &Launch, queue: &mpsc::Receiver<Job>, period: Duration, mut sweep: impl FnMut()) {
    let mut last_sweep = Instant::now();
    loop {
        let wait = period.saturating_sub(last_sweep.elapsed());
        match queue.recv_timeout(wait) {
            Ok(Job::Spawn(reply)) => {
                if let Err(unwanted) = reply.send(launch.spawn()) {
                    // The requester is gone; a child nobody holds would be left running.
                    if let Ok(mut spawned) = unwanted.into_inner() {
                        let _ = sys::terminate_group(&mut spawned.child, Duration::ZERO);
                    }
                }
            }
            Ok(Job::Retire(corelet)) => corelet.retire(),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_sweep.elapsed() >= period {
            sweep();
            last_sweep = Instant::now();
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (it is only ever
/// replaced whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
