//! Human-readable exit statuses and signal names.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Describes how a process ended: "exited with code 3", "killed by signal 11 (SIGSEGV)".
///
/// A signal death that left a core file gets ", core dumped" appended, since that is where the
/// user will look next.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    if let Some(signal) = status.signal() {
        let core = if status.core_dumped() { ", core dumped" } else { "" };
        return format!("killed by signal {signal} ({}){core}", signal_name(signal));
    }
    // Stopped and continued statuses only come from waits with WUNTRACED or WCONTINUED, which
    // neither std nor this crate uses; std's own wording is the best fallback.
    status.to_string()
}

/// Returns the conventional name of `signal` ("SIGKILL"), or "unknown signal".
///
/// The numbers come from `libc`, so the names are right on every architecture (signal numbers
/// differ on MIPS, SPARC and others). Realtime signals have no fixed name and are "unknown".
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::SIGSTKFLT => "SIGSTKFLT",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        _ => "unknown signal",
    }
}
