//! Entry points of the test children, and how tests point a pool at them.
//!
//! A corelet test child is this very test binary, re-executed with arguments that make libtest
//! run exactly one ignored test below, which calls the corelet entry. The arguments are built
//! here, not taken from the command line, so filters, `--test-threads` or `--include-ignored`
//! given to the outer run change nothing for the child. Run by hand (with `--ignored`), the
//! entries find no corelet channel and return at once.
//!
//! The alternatives are worse: a test binary cannot see an environment variable before libtest
//! parses its arguments, and an example or `harness = false` target would need a public entry
//! point that this crate-private layer does not have yet.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::corelet::channel::Channel;
use crate::corelet::child::{serve_if_corelet, serve_if_corelet_as, ChildLink, FD_ENV};
use crate::corelet::config::{CoreletConfig, CoreletOutput};
use crate::corelet::duplex::Duplex;
use crate::corelet::frame::DEFAULT_MAX_FRAME;
use crate::corelet::json::Json;
use crate::corelet::message::{self, ChildMessage, DecodeError, Greeting, ParentMessage, PROTOCOL_VERSION};

/// Module path of this file as libtest names tests.
const HERE: &str = "corelet::test::child::";

/// Returns libtest arguments that run only the ignored test `name` of `module`.
pub(crate) fn test_args(module: &str, name: &str) -> Vec<String> {
    [format!("{module}{name}").as_str(), "--exact", "--ignored", "--nocapture", "--test-threads=1", "--quiet"]
        .map(str::to_owned)
        .to_vec()
}

/// A pool configuration whose children run the entry `name` of this file.
pub(crate) fn config(name: &str) -> CoreletConfig {
    CoreletConfig {
        args: test_args(HERE, name),
        output: CoreletOutput::Null,
        pool_size: Some(2),
        kill_grace: Duration::from_millis(500),
        // A loaded 2-core machine can take a while to start a debug test binary.
        start_timeout: Duration::from_secs(30),
        ..CoreletConfig::default()
    }
}

#[test]
#[ignore = "entry point of corelet test children; does nothing when run directly"]
fn entry() {
    serve_if_corelet(decoded);
}

#[test]
#[ignore = "entry point of corelet test children; does nothing when run directly"]
fn entry_version_zero() {
    serve_if_corelet_as(0, decoded);
}

/// Answers a request that did not decode with its error, any other with [`handle`].
fn decoded(request: Result<Json<Value>, DecodeError>, link: &ChildLink) -> Json<Value> {
    Json(match request {
        Ok(Json(request)) => handle(request, link),
        Err(error) => json!({"undecodable": error.to_string()}),
    })
}

#[test]
#[ignore = "entry point of corelet test children; does nothing when run directly"]
fn entry_raw() {
    serve_raw();
}

/// The handler of the test children: `request["op"]` says what to do.
fn handle(request: Value, link: &ChildLink) -> Value {
    let op = request["op"].as_str().unwrap_or_default();
    match op {
        "echo" => request["value"].clone(),
        "pid" => json!(std::process::id()),
        "print" => {
            // Junk on both streams, shaped like frame headers, must not reach the channel.
            for _ in 0..100 {
                let _ = std::io::stdout().write_all(b"\x00\x00\x00\x10{\"reply\":junk}\n");
                let _ = std::io::stderr().write_all(b"\x00\x00\x00\x10{\"reply\":junk}\n");
            }
            println!("printed line");
            eprintln!("printed error line");
            request["value"].clone()
        }
        "publish" => {
            let count = request["count"].as_u64().unwrap_or(0);
            for n in 0..count {
                if let Err(error) = link.publish(&Json(json!({"n": n}))) {
                    return json!({"error": error.to_string()});
                }
            }
            json!({"published": count})
        }
        "grow" => {
            let len = request["len"].as_u64().unwrap_or(0) as usize;
            json!("x".repeat(len))
        }
        "panic" => panic!("boom in a corelet"),
        "exit" => std::process::exit(request["code"].as_i64().unwrap_or(0) as i32),
        "abort" => {
            no_core_dumps();
            std::process::abort()
        }
        "segfault" => segfault(),
        "hog" => hog(),
        "sleep" => {
            let _ = link.publish(&Json(json!({"sleeping": std::process::id()})));
            loop {
                std::thread::park();
            }
        }
        "spin" => spin(request["grandchild"].as_bool().unwrap_or(false), link),
        "close_channel" => {
            // Closes every descriptor above the standard streams, the channel among them, and
            // lives on: the parent sees end-of-file from a child that did not die.
            // SAFETY: nothing in this test child uses those descriptors again.
            unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
            loop {
                std::thread::park();
            }
        }
        "fds" => open_fds(),
        "burn" => burn(Duration::from_millis(request["ms"].as_u64().unwrap_or(0))),
        _ => json!({"error": format!("unknown op {op:?}")}),
    }
}

/// Dies of SIGSEGV.
fn segfault() -> ! {
    no_core_dumps();
    // SAFETY: restoring the default action and raising the signal affect only this process,
    // which is meant to die here. std's own SIGSEGV handler (for stack overflows) would
    // otherwise swallow a raised, non-fault SIGSEGV.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    unreachable!("SIGSEGV did not kill the process")
}

/// Keeps a crash from writing a core file: a thousand crashing tests would fill the disk.
fn no_core_dumps() {
    let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit only reads the struct it is given.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
}

/// Allocates until the address-space limit makes an allocation fail (which aborts).
fn hog() -> Value {
    no_core_dumps();
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Zeroed allocations this large come from mmap and are not touched, so only the
        // address space grows, not the machine's memory use.
        hoard.push(vec![0u8; 64 << 20]);
        if hoard.len() > 1 << 16 {
            return json!("no memory limit hit");
        }
    }
}

/// Spins forever, after starting a grandchild in the same process group if asked to.
fn spin(grandchild: bool, link: &ChildLink) -> Value {
    let mut announced = json!({});
    if grandchild {
        match Command::new("sleep").arg("1000").spawn() {
            Ok(child) => announced = json!({"grandchild": child.id()}),
            Err(error) => announced = json!({"error": error.to_string()}),
        }
    }
    let _ = link.publish(&Json(announced));
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Spins until this process has used `cpu` of CPU time.
fn burn(cpu: Duration) -> Value {
    loop {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime only writes to the timespec it is given.
        unsafe {
            libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now);
        }
        let used = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        if used >= cpu {
            return json!(used.as_secs_f64());
        }
        std::hint::black_box(());
    }
}

/// Lists this process's descriptors above the standard streams, with what they point at.
fn open_fds() -> Value {
    let mut fds = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        for entry in entries.flatten() {
            let target =
                std::fs::read_link(entry.path()).map(|t| t.display().to_string()).unwrap_or_default();
            fds.push(json!([entry.file_name().to_string_lossy(), target]));
        }
    }
    Value::Array(fds)
}

#[test]
#[ignore = "entry point of corelet test children; does nothing when run directly"]
fn entry_greet_then_leave() {
    let Some(pipes) = inherited_channel() else {
        return;
    };
    let mut channel = Channel::child(pipes, DEFAULT_MAX_FRAME).expect("a channel");
    let _ = channel.write_frame(&greeting(DEFAULT_MAX_FRAME), None);
    drop(channel);
    std::process::exit(0);
}

/// A child that closes its channel before greeting and lives on (until killed).
#[test]
#[ignore = "entry point of corelet test children; does nothing when run directly"]
fn entry_close_then_live() {
    if std::env::var_os(FD_ENV).is_none() {
        return;
    }
    // SAFETY: this entry replaces the real one; nothing in it uses these descriptors again.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    loop {
        std::thread::park();
    }
}

/// This process's greeting, as one frame.
fn greeting(limit: u32) -> Vec<u8> {
    let hello = Greeting::Hello { protocol_version: PROTOCOL_VERSION, pid: std::process::id() };
    let mut frame = Vec::new();
    message::encode_greeting_into(&mut frame, &hello, limit).map(|()| frame).unwrap_or_default()
}

/// Takes the channel the pool passed in [`FD_ENV`], for hand-made children that replace the
/// real entry point.
fn inherited_channel() -> Option<Duplex> {
    let fds = std::env::var(FD_ENV).ok()?;
    let (read, write) = fds.split_once(',')?;
    let (read, write): (RawFd, RawFd) = (read.parse().ok()?, write.parse().ok()?);
    // SAFETY: the pool passed these descriptors to this process for the channel and nothing
    // else in the process uses them: this entry replaces the real one.
    let (read, write) = unsafe { (File::from_raw_fd(read), File::from_raw_fd(write)) };
    Some(Duplex::from_parts(read, write))
}

/// A hand-made child that greets properly, then misbehaves as each request asks.
fn serve_raw() {
    let Some(pipes) = inherited_channel() else {
        return;
    };
    let limit = DEFAULT_MAX_FRAME;
    let mut channel = Channel::child(pipes, limit).expect("a channel");
    let hello = greeting(limit);
    let _ = channel.write_frame(&hello, None);
    loop {
        let Ok(body) = channel.read_frame(None) else {
            std::process::exit(0);
        };
        let (seq, request) = match message::decode::<ParentMessage<Json<Value>>>(&body) {
            Ok(ParentMessage::Execute { seq, request: Json(request) }) => (seq, request),
            _ => std::process::exit(0),
        };
        drop(body);
        let answer = match request["op"].as_str().unwrap_or_default() {
            "echo" => {
                let reply = ChildMessage::<_, ()>::Reply { seq, reply: Json(&request["value"]) };
                message::encode(&reply, limit).unwrap_or_default()
            }
            "garbage" => b"\x00\x00\x00\x0bnot json!!!".to_vec(),
            "oversize" => b"\xff\xff\xff\xff".to_vec(),
            "hello" => hello.clone(),
            "stale" => {
                // Answer twice: the second reply would answer the next request.
                let reply = ChildMessage::<_, ()>::Reply { seq, reply: Json("stale") };
                let reply = message::encode(&reply, limit).unwrap_or_default();
                let _ = channel.write_frame(&reply, None);
                reply
            }
            "truncate" => {
                let _ = channel.write_frame(b"\x00\x00\x01\x00{\"reply\"", None);
                std::process::exit(0);
            }
            _ => std::process::exit(9),
        };
        let _ = channel.write_frame(&answer, None);
    }
}
