//! One child process: its handshake, its requests and its end.

use std::io;
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channel::Channel;
use super::duplex::Cut;
use super::error::{CoreletError, Payload, StartError};
use super::frame::FrameError;
use super::message::{self, ChildMessage, DecodeError, Greeting, ParentMessage, PROTOCOL_VERSION};
use super::spawn::Spawned;
use crate::sys;

/// How long a child whose channel broke gets to finish exiting before it is killed: time for
/// a dying process to become a zombie (it closes its descriptors first), not for one that
/// lives on.
const CHANNEL_CLOSED_GRACE: Duration = Duration::from_millis(100);

/// Largest send-buffer capacity kept for the next request; see [`Corelet::execute`].
const KEPT_BUFFER: usize = 1 << 20;

/// A live child that has greeted and speaks our protocol version.
///
/// Invariant: while `status` is `None` the child has not been reaped, so its pid (and with it
/// its process group id) cannot have been reused, and signalling the group reaches no
/// stranger. Dropping a `Corelet` kills its group and reaps it, so none is ever left behind.
#[derive(Debug)]
pub(crate) struct Corelet {
    /// The child, leader of its own process group.
    child: Child,
    /// The parent's end of the channel.
    channel: Channel,
    /// The request being sent, kept between requests so that a small one costs no allocation.
    send_buf: Vec<u8>,
    /// Time between SIGTERM and SIGKILL when the group is killed.
    kill_grace: Duration,
    /// Requests sent to this child so far.
    served: u64,
    /// When the child last finished a request (or greeted).
    last_used: Instant,
    /// The exit status, once the child has been reaped.
    status: Option<ExitStatus>,
    /// Set when the child was found gone before a request reached it: it died while idle,
    /// and the request may go to another child.
    died_idle: bool,
}

/// Why [`Corelet::receive`] got no message.
#[derive(Debug)]
enum ReceiveError {
    /// No complete frame arrived.
    Frame(FrameError),
    /// A frame arrived but is not a message.
    Decode(DecodeError),
    /// A frame arrived that is a greeting, not a message: postcard's error would not say so.
    Hello,
}

impl Corelet {
    /// Waits until `deadline` for a spawned child's greeting and checks its protocol version.
    ///
    /// On failure the child is killed and reaped; the error says what it did instead.
    pub(crate) fn greet(
        spawned: Spawned,
        program: &Path,
        deadline: Option<Instant>,
        limit: u32,
        kill_grace: Duration,
        cut: Arc<Cut>,
    ) -> Result<Self, StartError> {
        let started = Instant::now();
        let channel = match Channel::parent(spawned.channel, limit, cut) {
            Ok(channel) => channel,
            Err(error) => {
                let mut child = spawned.child;
                let _ = sys::terminate_group(&mut child, Duration::ZERO);
                return Err(StartError::spawn(program.to_owned(), error));
            }
        };
        let mut corelet = Corelet {
            child: spawned.child,
            channel,
            send_buf: Vec::new(),
            kill_grace,
            served: 0,
            last_used: Instant::now(),
            status: None,
            died_idle: false,
        };
        let greeting = corelet
            .channel
            .read_frame(deadline)
            .map_err(ReceiveError::Frame)
            .and_then(|body| message::decode_greeting(&body).map_err(ReceiveError::Decode));
        let reason = match greeting {
            Ok(Greeting::Hello { protocol_version, .. }) if protocol_version == PROTOCOL_VERSION => {
                corelet.last_used = Instant::now();
                return Ok(corelet);
            }
            Ok(Greeting::Hello { protocol_version, .. }) => {
                corelet.kill();
                return Err(StartError::version(program.to_owned(), protocol_version, PROTOCOL_VERSION));
            }
            Err(ReceiveError::Frame(FrameError::Timeout)) => {
                corelet.kill();
                return Err(StartError::silent(program.to_owned(), started.elapsed()));
            }
            Err(ReceiveError::Frame(
                FrameError::Closed | FrameError::Truncated { .. } | FrameError::Io(_),
            )) => format!("it {} before greeting", corelet.describe_broken_channel(deadline)),
            Err(ReceiveError::Frame(FrameError::Cut)) => "the pool was killed before it greeted".to_owned(),
            Err(ReceiveError::Frame(error)) => format!("its greeting was a {error}"),
            Err(ReceiveError::Decode(error)) => format!("its greeting was garbage: {error}"),
            // Not made here: the greeting is decoded as such above.
            Err(ReceiveError::Hello) => "it greeted oddly".to_owned(),
        };
        corelet.kill();
        Err(StartError::handshake(program.to_owned(), reason))
    }

    /// Sends `request`, passes published events to `on_publish`, and returns the reply.
    ///
    /// The reply and the events are decoded straight into `Rep` and `Pub`; a message that does
    /// not decode as one is a protocol error. Never waits past `deadline`. After a `Timeout`
    /// with the deadline already passed on entry, a `Panicked` or a `TooLarge`, the child is
    /// untouched; after any other error it has been killed and reaped, and
    /// [`Corelet::is_reusable`] is `false`.
    pub(crate) fn execute<Req, Rep, Pub>(
        &mut self,
        request: &Req,
        deadline: Option<Instant>,
        on_publish: &mut dyn FnMut(Pub),
    ) -> Result<Rep, CoreletError>
    where
        Req: Serialize,
        Rep: DeserializeOwned,
        Pub: DeserializeOwned,
    {
        let seq = self.served + 1;
        let message = ParentMessage::Execute { seq, request };
        if let Err(error) = message::encode_into(&mut self.send_buf, &message, self.channel.limit()) {
            self.send_buf = Vec::new();
            return Err(match error {
                FrameError::TooLarge { len, limit } => {
                    CoreletError::TooLarge { what: Payload::Request, len, limit }
                }
                // Unreachable for busbar's requests, which always serialize.
                other => CoreletError::Protocol(format!("the request cannot be encoded: {other}")),
            });
        }
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            // Nothing was sent, so the child is still in step and stays usable.
            return Err(CoreletError::Timeout);
        }
        self.served = seq;
        let request_len = self.send_buf.len();
        let sent = self.channel.write_frame(&self.send_buf, deadline);
        if self.send_buf.capacity() > KEPT_BUFFER {
            // One huge request should not pin its memory for the child's life.
            self.send_buf = Vec::new();
        }
        match sent {
            Ok(()) => {}
            Err(FrameError::Timeout) => return Err(self.timed_out()),
            Err(FrameError::Closed) => {
                self.died_idle = true;
                return Err(self.crashed(deadline));
            }
            Err(FrameError::Cut) => return Err(self.cut()),
            // The child is gone or going.
            Err(_) => return Err(self.crashed(deadline)),
        }
        let result = loop {
            match self.receive::<Rep, Pub>(deadline) {
                Ok(message) if message.seq() != seq => {
                    let reason = format!(
                        "the child sent `{}` for request {} during request {seq}",
                        message.name(),
                        message.seq()
                    );
                    return Err(self.broke_protocol(reason));
                }
                Ok(ChildMessage::Publish { event, .. }) => on_publish(event),
                Ok(ChildMessage::Reply { reply, .. }) => break Ok(reply),
                Ok(ChildMessage::Panic { panic, .. }) => break Err(CoreletError::Panicked(panic)),
                Ok(ChildMessage::TooLarge { len, limit, .. }) => {
                    break Err(CoreletError::TooLarge { what: Payload::Reply, len, limit })
                }
                Err(ReceiveError::Frame(FrameError::Timeout)) => return Err(self.timed_out()),
                Err(ReceiveError::Frame(error @ FrameError::TooLarge { .. })) => {
                    return Err(self.broke_protocol(format!("the child sent a {error}")));
                }
                Err(ReceiveError::Frame(FrameError::Cut)) => return Err(self.cut()),
                Err(ReceiveError::Frame(FrameError::Closed))
                    if self.channel.unread() == Some(request_len) =>
                {
                    // Not a byte of the request was read: the child died before it, while idle
                    // (a child that just answered is sent its next request unchecked).
                    self.died_idle = true;
                    return Err(self.crashed(deadline));
                }
                Err(ReceiveError::Frame(_)) => return Err(self.crashed(deadline)),
                Err(ReceiveError::Hello) => {
                    let reason = "the child sent `hello` during a request".to_owned();
                    return Err(self.broke_protocol(reason));
                }
                Err(ReceiveError::Decode(error)) => {
                    let reason = format!("the child sent an undecodable message: {error}");
                    return Err(self.broke_protocol(reason));
                }
            }
        };
        self.last_used = Instant::now();
        result
    }

    /// Returns `true` if the child can serve another request: not reaped, not exited.
    ///
    /// Costs a system call; [`Corelet::is_reaped`] does not.
    pub(crate) fn is_reusable(&self) -> bool {
        self.status.is_none() && matches!(sys::has_exited(&self.child), Ok(false))
    }

    /// Returns `true` if the last request found the child already gone: it never got the
    /// request, so sending it to another child runs it once, not twice.
    pub(crate) fn died_idle(&self) -> bool {
        self.died_idle
    }

    /// Returns `true` if the last request was the first this child was sent: one that dies
    /// before its first request dies of how it starts, and a fresh one would too.
    pub(crate) fn was_fresh(&self) -> bool {
        self.served <= 1
    }

    /// Returns `true` if the child was killed or found dead, and reaped.
    pub(crate) fn is_reaped(&self) -> bool {
        self.status.is_some()
    }

    /// Returns how many requests were sent to this child.
    pub(crate) fn served(&self) -> u64 {
        self.served
    }

    /// Returns when the child last finished a request.
    pub(crate) fn last_used(&self) -> Instant {
        self.last_used
    }

    /// Returns the child's resident memory in bytes, from `/proc/<pid>/statm`.
    pub(crate) fn resident_bytes(&self) -> io::Result<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.child.id()))?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed statm"))?;
        Ok(pages.saturating_mul(page_size()))
    }

    /// Returns the CPU time (user and system) the child has used, from `/proc/<pid>/stat`.
    pub(crate) fn cpu_time(&self) -> io::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // "pid (comm) state ppid ...": utime and stime are fields 14 and 15, the 12th and 13th
        // after the comm, whose parentheses may enclose spaces.
        let mut fields = stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.split_whitespace().skip(11))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
        let mut ticks = || -> io::Result<u64> {
            fields
                .next()
                .and_then(|field| field.parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
        };
        let total = ticks()?.saturating_add(ticks()?);
        Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
    }

    /// Asks the child to exit, gives it `kill_grace` to do so, then kills what is left of its
    /// group and reaps it.
    pub(crate) fn retire(mut self) {
        let deadline = Instant::now().checked_add(self.kill_grace);
        if let Ok(frame) = message::encode(&ParentMessage::<()>::Shutdown, self.channel.limit()) {
            if self.channel.write_frame(&frame, deadline).is_ok() {
                // The child exits on `Shutdown`; its end-of-file is the sign it did.
                let _ = self.channel.read_frame(deadline);
            }
        }
        self.kill();
    }

    /// Kills the process group at once and reaps the child.
    pub(crate) fn kill_now(mut self) {
        self.abort();
    }

    /// Kills the process group at once and reaps the child, leaving a reaped `Corelet`.
    pub(crate) fn abort(&mut self) {
        self.kill_grace = Duration::ZERO;
        self.kill();
    }

    /// Reads and decodes one message, straight from the receive buffer.
    fn receive<Rep, Pub>(&mut self, deadline: Option<Instant>) -> Result<ChildMessage<Rep, Pub>, ReceiveError>
    where
        Rep: DeserializeOwned,
        Pub: DeserializeOwned,
    {
        let body = self.channel.read_frame(deadline).map_err(ReceiveError::Frame)?;
        message::decode(&body).map_err(|error| match message::decode_greeting(&body) {
            Ok(Greeting::Hello { .. }) => ReceiveError::Hello,
            Err(_) => ReceiveError::Decode(error),
        })
    }

    /// Kills the group after a missed deadline.
    fn timed_out(&mut self) -> CoreletError {
        self.kill();
        CoreletError::Timeout
    }

    /// Reaps a child whose channel broke, naming how it ended.
    fn crashed(&mut self, deadline: Option<Instant>) -> CoreletError {
        CoreletError::Crashed { description: self.describe_broken_channel(deadline) }
    }

    /// Kills and reaps a child whose channel broke, and says how it ended.
    ///
    /// The child is dying or dead. It gets a moment to finish dying before the kill: a
    /// SIGTERM sent while it exits by itself would be reported as its cause ("killed by
    /// signal 15"), busbar's own signal named as the crash. The moment never runs past
    /// `deadline` (the kill and its grace then start no later than a timeout's would), nor
    /// past `kill_all`.
    fn describe_broken_channel(&mut self, deadline: Option<Instant>) -> String {
        let moment = match deadline {
            _ if self.channel.is_cut() => Duration::ZERO,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(CHANNEL_CLOSED_GRACE),
            None => CHANNEL_CLOSED_GRACE,
        };
        let exited = self.status.is_some() || sys::wait_for_exit(&self.child, moment).unwrap_or(false);
        let description = self.reap_description();
        if exited {
            return description;
        }
        format!("closed its channel but kept running, so busbar stopped it ({description})")
    }

    /// Kills the child of a request that `kill_all` ended (the pool reports it cancelled).
    fn cut(&mut self) -> CoreletError {
        self.kill();
        CoreletError::Crashed { description: "was stopped: the corelet pool was killed".to_owned() }
    }

    /// Kills a child that sent something it should not have.
    fn broke_protocol(&mut self, reason: String) -> CoreletError {
        self.kill();
        CoreletError::Protocol(reason)
    }

    /// Kills and reaps the child, then describes its exit status.
    fn reap_description(&mut self) -> String {
        match self.kill() {
            Some(status) => sys::describe_exit(status),
            None => "ended in an unknown way".to_owned(),
        }
    }

    /// Kills the process group (SIGTERM, `kill_grace`, SIGKILL) and reaps the child, once.
    ///
    /// A child that already exited keeps its own status: the kernel fixes the status when the
    /// exit begins, so the late SIGTERM cannot overwrite it. The SIGKILL still reaches anything
    /// the child left running in its group.
    fn kill(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match sys::terminate_group(&mut self.child, self.kill_grace) {
                Ok(status) => self.status = Some(status),
                Err(error) => tracing::warn!(
                    pid = self.child.id(),
                    %error,
                    "could not kill a corelet's process group"
                ),
            }
        }
        self.status
    }
}

impl Drop for Corelet {
    fn drop(&mut self) {
        self.kill_grace = Duration::ZERO;
        self.kill();
    }
}

/// Returns the number of clock ticks per second, the unit of CPU times in `/proc`.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes a plain integer and touches no memory.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Returns the size of a memory page.
fn page_size() -> u64 {
    // SAFETY: sysconf takes a plain integer and touches no memory.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}
