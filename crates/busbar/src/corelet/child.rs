//! The child side: detecting corelet mode and serving requests until the parent goes away.

use std::ffi::OsStr;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::channel::{self, Channel};
use super::frame::{FrameError, DEFAULT_MAX_FRAME};
use super::message::{self, ChildMessage, ParentMessage, PROTOCOL_VERSION};
use super::panic;

/// Environment variable that makes a process a corelet: the number of its channel descriptor.
pub(crate) const FD_ENV: &str = "BUSBAR_CORELET_FD";

/// Environment variable carrying the frame limit the parent enforces.
pub(crate) const MAX_FRAME_ENV: &str = "BUSBAR_CORELET_MAX_FRAME";

/// Exit code when the channel breaks or carries garbage (`EX_PROTOCOL` in sysexits.h).
const EXIT_PROTOCOL: i32 = 76;

/// Exit code when [`FD_ENV`] names no usable channel (`EX_OSERR` in sysexits.h).
const EXIT_NO_CHANNEL: i32 = 71;

/// Set once the channel descriptor has been claimed, so that it is owned only once.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// How a handler running in a child publishes follow-up events: an owned, cloneable handle on
/// the channel, so the bus inside the child can keep it.
///
/// An event is sent to the parent at once, ahead of the reply, and only while a request runs:
/// the parent reads publications only then. Writes are serialised, so a handler's threads may
/// publish concurrently without interleaving frames.
#[derive(Clone, Debug)]
pub(crate) struct ChildLink {
    inner: Arc<LinkInner>,
}

#[derive(Debug)]
struct LinkInner {
    socket: Arc<UnixStream>,
    limit: u32,
    /// The running request's sequence number, `None` between requests. Held while a
    /// publication is written, so that frames never interleave and none follows the reply.
    serving: Mutex<Option<u64>>,
}

impl ChildLink {
    fn new(channel: &Channel) -> Self {
        let inner = LinkInner { socket: channel.socket(), limit: channel.limit(), serving: Mutex::new(None) };
        ChildLink { inner: Arc::new(inner) }
    }

    /// Sends `event` to the parent, to be published on its bus.
    ///
    /// Fails if the event does not fit in a frame, if no request is running
    /// ([`FrameError::NotServing`]) or if the parent has gone away.
    pub(crate) fn publish(&self, event: Value) -> Result<(), FrameError> {
        let serving = self.lock();
        let seq = serving.ok_or(FrameError::NotServing)?;
        let frame = message::encode(&ChildMessage::Publish { seq, event }, self.inner.limit)?;
        channel::send_blocking(&self.inner.socket, &frame)
    }

    fn begin(&self, seq: u64) {
        *self.lock() = Some(seq);
    }

    fn end(&self) {
        *self.lock() = None;
    }

    // The guarded value is a plain `Option<u64>`: a panic while holding the lock cannot leave
    // it inconsistent.
    fn lock(&self) -> MutexGuard<'_, Option<u64>> {
        self.inner.serving.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves corelet requests and exits if this process is a corelet; returns otherwise.
///
/// The application's `main` calls this first. In a process started by a corelet pool, it
/// greets the parent, then answers each request with `handle(request, link)` until the
/// parent sends `Shutdown` or its end of the channel closes, and exits the process. A panic in
/// `handle` is caught and sent back as such; the child keeps serving.
///
/// In any other process it returns at once.
// Until the public entry point wraps it at integration, only tests call this.
#[allow(dead_code)]
pub(crate) fn serve_if_corelet<H>(handle: H)
where
    H: FnMut(Value, &ChildLink) -> Value,
{
    serve_if_corelet_as(PROTOCOL_VERSION, handle);
}

/// [`serve_if_corelet`], greeting with a chosen protocol version (tests fake old children).
pub(crate) fn serve_if_corelet_as<H>(version: u32, handle: H)
where
    H: FnMut(Value, &ChildLink) -> Value,
{
    let Some(fd) = std::env::var_os(FD_ENV) else {
        return;
    };
    // From here on this process is a corelet and never returns to the application.
    let code = match claim_channel(&fd) {
        Ok((stream, limit)) => serve(&mut Channel::child(stream, limit), version, handle),
        Err(reason) => {
            eprintln!("busbar corelet: {FD_ENV}={fd:?} is not a usable channel: {reason}");
            EXIT_NO_CHANNEL
        }
    };
    std::process::exit(code)
}

/// Takes ownership of the channel named by [`FD_ENV`] and reads the frame limit.
///
/// Removes both variables, so that programs the handler starts do not mistake themselves for
/// corelets, and makes the channel close-on-exec, so that they do not inherit it either: a
/// grandchild holding the channel would hide this child's death from the parent.
fn claim_channel(fd: &OsStr) -> Result<(UnixStream, u32), String> {
    let fd: RawFd =
        fd.to_str().and_then(|s| s.parse().ok()).filter(|fd| *fd >= 0).ok_or("not a descriptor number")?;
    let limit = match std::env::var(MAX_FRAME_ENV) {
        Ok(text) => text.parse().map_err(|_| format!("{MAX_FRAME_ENV}={text:?} is not a frame size"))?,
        Err(_) => DEFAULT_MAX_FRAME,
    };
    // Removing variables is only sound while no other thread reads the environment; the entry
    // point runs first thing in `main`, before the application starts threads.
    std::env::remove_var(FD_ENV);
    std::env::remove_var(MAX_FRAME_ENV);
    if !is_socket(fd) {
        return Err("descriptor is not an open socket".to_owned());
    }
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return Err("the channel was already claimed".to_owned());
    }
    // SAFETY: the parent opened `fd` for this process alone and nothing else in the process
    // knows its number: the variable that named it is gone and `CLAIMED` lets only one caller
    // through, so the stream becomes its sole owner. `is_socket` checked it is open.
    let inherited = unsafe { UnixStream::from_raw_fd(fd) };
    // `try_clone` duplicates with close-on-exec set; dropping the original closes the
    // inheritable descriptor.
    let channel = inherited.try_clone().map_err(|e| format!("cannot duplicate it: {e}"))?;
    drop(inherited);
    Ok((channel, limit))
}

/// Returns `true` if `fd` is an open socket.
fn is_socket(fd: RawFd) -> bool {
    // SAFETY: `stat` is plain old data, so all-zero bytes are a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fstat` only writes to the struct it is given and fails cleanly on a descriptor
    // that is not open.
    let status = unsafe { libc::fstat(fd, &mut stat) };
    status == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFSOCK
}

/// Greets the parent and answers requests; returns the exit code.
fn serve<H>(channel: &mut Channel, version: u32, mut handle: H) -> i32
where
    H: FnMut(Value, &ChildLink) -> Value,
{
    panic::install_hook();
    let hello = ChildMessage::Hello { protocol_version: version, pid: std::process::id() };
    let link = ChildLink::new(channel);
    if send(channel, &hello).is_err() {
        // The parent is gone or gave up on us already; nobody is left to tell.
        return EXIT_PROTOCOL;
    }
    loop {
        let body = match channel.read_frame(None) {
            Ok(body) => body,
            // The parent closed its end: it retired us without a word, or it died.
            Err(FrameError::Closed) => return 0,
            Err(error) => {
                eprintln!("busbar corelet: reading a request failed: {error}");
                return EXIT_PROTOCOL;
            }
        };
        let (seq, request) = match message::decode(&body) {
            Ok(ParentMessage::Execute { seq, request }) => (seq, request),
            Ok(ParentMessage::Shutdown) => return 0,
            Err(error) => {
                eprintln!("busbar corelet: undecodable request: {error}");
                return EXIT_PROTOCOL;
            }
        };
        let answer = run(&link, channel.limit(), &mut handle, seq, request);
        if let Err(error) = channel.write_frame(&answer, None) {
            eprintln!("busbar corelet: sending a reply failed: {error}");
            return EXIT_PROTOCOL;
        }
    }
}

/// Runs the handler on one request and returns the sealed frame that answers it.
fn run<H>(link: &ChildLink, limit: u32, handle: &mut H, seq: u64, request: Value) -> Vec<u8>
where
    H: FnMut(Value, &ChildLink) -> Value,
{
    link.begin(seq);
    let outcome = panic::catch(|| handle(request, link));
    link.end();
    let answer = match outcome {
        Ok(reply) => ChildMessage::Reply { seq, reply },
        Err(panic) => ChildMessage::Panic { seq, panic },
    };
    match message::encode(&answer, limit) {
        Ok(frame) => frame,
        Err(error) => {
            let len = match error {
                FrameError::TooLarge { len, .. } => len,
                _ => 0,
            };
            // A two-number message is far below the smallest accepted limit.
            message::encode(&ChildMessage::TooLarge { seq, len, limit }, limit).unwrap_or_default()
        }
    }
}

/// Encodes and sends one message.
fn send(channel: &mut Channel, message: &ChildMessage) -> Result<(), FrameError> {
    let frame = message::encode(message, channel.limit())?;
    channel.write_frame(&frame, None)
}
