//! The child side: detecting corelet mode and serving requests until the parent goes away.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channel::{self, Channel};
use super::confine;
use super::duplex::Duplex;
use super::frame::{FrameError, DEFAULT_MAX_FRAME};
use super::message::{
    self, BareChildMessage, ChildMessage, DecodeError, Greeting, ParentHead, PROTOCOL_VERSION,
};
use super::panic;

/// Largest buffer capacity kept for the next reply; a larger one is freed after use, so that
/// one huge reply does not pin its memory for the child's life.
const KEPT_BUFFER: usize = 1 << 20;

/// Environment variable that makes a process a corelet: the numbers of its channel's two
/// descriptors, `<read>,<write>` (the read end of the pipe from the parent, the write end of
/// the pipe to it).
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
    writer: Arc<File>,
    limit: u32,
    /// The running request's sequence number, `None` between requests. Held while a
    /// publication is written, so that frames never interleave and none follows the reply.
    serving: Mutex<Option<u64>>,
}

impl ChildLink {
    fn new(channel: &Channel) -> Self {
        let inner = LinkInner { writer: channel.writer(), limit: channel.limit(), serving: Mutex::new(None) };
        ChildLink { inner: Arc::new(inner) }
    }

    /// Sends `event` to the parent, to be published on its bus.
    ///
    /// Fails if the event does not fit in a frame, if no request is running
    /// ([`FrameError::NotServing`]) or if the parent has gone away.
    pub(crate) fn publish<P: Serialize>(&self, event: &P) -> Result<(), FrameError> {
        let serving = self.lock();
        let seq = serving.ok_or(FrameError::NotServing)?;
        let frame = message::encode(&ChildMessage::<(), &P>::Publish { seq, event }, self.inner.limit)?;
        channel::send_blocking(&self.inner.writer, &frame)
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
/// A request whose payload does not decode as a `Req` still reaches `handle`, as the
/// decoding error, so that it can be answered rather than end the child.
///
/// In any other process it returns at once.
pub(crate) fn serve_if_corelet<Req, Rep, H>(handle: H)
where
    Req: DeserializeOwned,
    Rep: Serialize,
    H: FnMut(Decoded<Req>, &ChildLink) -> Rep,
{
    serve_if_corelet_as(PROTOCOL_VERSION, handle);
}

/// [`serve_if_corelet`], greeting with a chosen protocol version (tests fake old children).
pub(crate) fn serve_if_corelet_as<Req, Rep, H>(version: u32, handle: H)
where
    Req: DeserializeOwned,
    Rep: Serialize,
    H: FnMut(Decoded<Req>, &ChildLink) -> Rep,
{
    let Some(fd) = std::env::var_os(FD_ENV) else {
        return;
    };
    // From here on this process is a corelet and never returns to the application.
    let code = match claim_channel(&fd) {
        // Confined right after the claim and before greeting: no request is read unconfined,
        // and a child that cannot be confined as strictly as asked never greets.
        Ok((pipes, limit)) => match confine::apply_from_env() {
            Ok(()) => {
                let mut channel = match Channel::child(pipes, limit) {
                    Ok(channel) => channel,
                    Err(error) => {
                        eprintln!("busbar corelet: cannot set up the channel: {error}");
                        std::process::exit(EXIT_NO_CHANNEL)
                    }
                };
                let code = serve(&mut channel, version, handle);
                // Exits with the channel open, for the reason given above: the parent learns
                // why from the exit code, not from an end-of-file that comes first.
                std::process::exit(code)
            }
            Err(reason) => {
                eprintln!("busbar corelet: {reason}");
                // Exits while `pipes` are still open: closing them first would let the parent see
                // end-of-file and kill this process before the exit code tells why.
                std::process::exit(confine::EXIT_UNCONFINED)
            }
        },
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
fn claim_channel(fds: &OsStr) -> Result<(Duplex, u32), String> {
    let number = |text: &str| text.parse::<RawFd>().ok().filter(|fd| *fd >= 0);
    let (read, write) = fds
        .to_str()
        .and_then(|text| text.split_once(','))
        .and_then(|(read, write)| Some((number(read)?, number(write)?)))
        .filter(|(read, write)| read != write)
        .ok_or("not two descriptor numbers, `<read>,<write>`")?;
    let limit = match std::env::var(MAX_FRAME_ENV) {
        Ok(text) => text.parse().map_err(|_| format!("{MAX_FRAME_ENV}={text:?} is not a frame size"))?,
        Err(_) => DEFAULT_MAX_FRAME,
    };
    // Removing variables is only sound while no other thread reads the environment; the entry
    // point runs first thing in `main`, before the application starts threads.
    std::env::remove_var(FD_ENV);
    std::env::remove_var(MAX_FRAME_ENV);
    if !is_pipe(read) || !is_pipe(write) {
        return Err("the descriptors are not open pipes".to_owned());
    }
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return Err("the channel was already claimed".to_owned());
    }
    let claim = |fd: RawFd| -> Result<File, String> {
        // SAFETY: the parent opened `fd` for this process alone and nothing else in the process
        // knows its number: the variable that named it is gone and `CLAIMED` lets only one
        // caller through, so the descriptor gets its sole owner. `is_pipe` checked it is open.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Marked in place, not duplicated: a duplicate needs a free descriptor, which a child
        // under a small `open_files` limit may not have.
        // SAFETY: fcntl with F_SETFD changes only the flags of a descriptor `owned` owns.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(format!("cannot make it close-on-exec: {}", std::io::Error::last_os_error()));
        }
        Ok(File::from(owned))
    };
    Ok((Duplex::from_parts(claim(read)?, claim(write)?), limit))
}

/// Returns `true` if `fd` is an open pipe.
fn is_pipe(fd: RawFd) -> bool {
    // SAFETY: `stat` is plain old data, so all-zero bytes are a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fstat` only writes to the struct it is given and fails cleanly on a descriptor
    // that is not open.
    let status = unsafe { libc::fstat(fd, &mut stat) };
    status == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFIFO
}

/// Greets the parent and answers requests; returns the exit code.
fn serve<Req, Rep, H>(channel: &mut Channel, version: u32, mut handle: H) -> i32
where
    Req: DeserializeOwned,
    Rep: Serialize,
    H: FnMut(Decoded<Req>, &ChildLink) -> Rep,
{
    panic::install_hook();
    let link = ChildLink::new(channel);
    // One buffer for every answer: a small reply then costs no allocation.
    let mut answer = Vec::new();
    let hello = Greeting::Hello { protocol_version: version, pid: std::process::id() };
    let greeted = message::encode_greeting_into(&mut answer, &hello, channel.limit())
        .and_then(|()| channel.write_frame(&answer, None));
    if greeted.is_err() {
        // The parent is gone or gave up on us already; nobody is left to tell.
        return EXIT_PROTOCOL;
    }
    loop {
        let (seq, request) = match channel.read_frame(None) {
            Ok(body) => match decode_request::<Req>(&body) {
                Ok(Some(request)) => request,
                Ok(None) => return 0,
                Err(error) => {
                    eprintln!("busbar corelet: undecodable request: {error}");
                    return EXIT_PROTOCOL;
                }
            },
            // The parent closed its end: it retired us without a word, or it died.
            Err(FrameError::Closed) => return 0,
            Err(error) => {
                eprintln!("busbar corelet: reading a request failed: {error}");
                return EXIT_PROTOCOL;
            }
        };
        run(&link, channel.limit(), &mut handle, seq, request, &mut answer);
        if let Err(error) = channel.write_frame(&answer, None) {
            eprintln!("busbar corelet: sending a reply failed: {error}");
            return EXIT_PROTOCOL;
        }
        if answer.capacity() > KEPT_BUFFER {
            answer = Vec::new();
        }
    }
}

/// A request's payload as the handler gets it: decoded, or why it could not be.
pub(crate) type Decoded<Req> = Result<Req, DecodeError>;

/// Decodes a parent message: the request's number and payload, or `None` for `Shutdown`.
///
/// A message that is not a parent message at all is an error; one whose payload is not a
/// `Req` is a request whose payload is the decoding error. The head (which message, which
/// request) is decoded first and the request from the bytes after it, so that the request's
/// number is known either way.
pub(crate) fn decode_request<Req: DeserializeOwned>(
    body: &[u8],
) -> Result<Option<(u64, Decoded<Req>)>, DecodeError> {
    match message::decode_head::<ParentHead>(body)? {
        (ParentHead::Execute { seq }, request) => Ok(Some((seq, message::decode::<Req>(request)))),
        (ParentHead::Shutdown, []) => Ok(None),
        (ParentHead::Shutdown, rest) => Err(DecodeError::Trailing { extra: rest.len() }),
    }
}

/// Runs the handler on one request and encodes the frame that answers it into `answer`.
fn run<Req, Rep, H>(
    link: &ChildLink,
    limit: u32,
    handle: &mut H,
    seq: u64,
    request: Decoded<Req>,
    answer: &mut Vec<u8>,
) where
    Rep: Serialize,
    H: FnMut(Decoded<Req>, &ChildLink) -> Rep,
{
    link.begin(seq);
    let outcome = panic::catch(|| handle(request, link));
    link.end();
    let encoded = match outcome {
        Ok(reply) => message::encode_into(answer, &ChildMessage::<Rep, ()>::Reply { seq, reply }, limit),
        Err(panic) => message::encode_into(answer, &BareChildMessage::Panic { seq, panic }, limit),
    };
    if let Err(error) = encoded {
        let len = match error {
            FrameError::TooLarge { len, .. } => len,
            _ => 0,
        };
        // A two-number message is far below the smallest accepted limit.
        let too_large = BareChildMessage::TooLarge { seq, len, limit };
        if message::encode_into(answer, &too_large, limit).is_err() {
            answer.clear();
        }
    }
}
