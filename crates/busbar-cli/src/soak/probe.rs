//! What the soak samples about its own process in `/proc`: resident memory, open descriptors,
//! threads and child processes.

use std::fs;

use serde::Serialize;

/// One sample of the process's resources.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Sample {
    /// Seconds since the soak started.
    pub(super) at_s: f64,
    /// Resident set size in bytes (`/proc/self/statm`).
    pub(super) rss_bytes: u64,
    /// Entries of `/proc/self/fd` (the listing's own descriptor included, as always).
    pub(super) descriptors: usize,
    /// Threads of this process.
    pub(super) threads: usize,
    /// Processes whose parent is this process, zombies included.
    pub(super) children: usize,
    /// Of `children`, those that exited and were not reaped.
    pub(super) zombies: usize,
}

impl Sample {
    /// Takes a sample now; `at_s` is the caller's clock.
    pub(super) fn take(at_s: f64) -> Self {
        let (children, zombies) = children();
        Sample {
            at_s,
            rss_bytes: resident_bytes(),
            descriptors: count_entries("/proc/self/fd"),
            threads: count_entries("/proc/self/task"),
            children,
            zombies,
        }
    }
}

/// Resident set size in bytes; 0 if `/proc` cannot tell.
fn resident_bytes() -> u64 {
    let pages = fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or_default();
    // SAFETY: sysconf takes a plain integer and touches no memory.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Number of entries in a `/proc` directory; 0 if it cannot be read.
fn count_entries(dir: &str) -> usize {
    fs::read_dir(dir).map(Iterator::count).unwrap_or_default()
}

/// Children of this process (from each `/proc/<pid>/stat`), and how many are zombies.
fn children() -> (usize, usize) {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return (0, 0);
    };
    let (mut children, mut zombies) = (0, 0);
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the comm may contain spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or_default();
        if fields.next().and_then(|ppid| ppid.parse::<u32>().ok()) == Some(me) {
            children += 1;
            zombies += usize::from(state == "Z");
        }
    }
    (children, zombies)
}
