//! The commands a bus is running, so that `shutdown_now` can kill them before it returns.
//!
//! A command's attempt stops its program itself when it sees the bus killed, but only at its
//! next check and then with SIGTERM and a grace period: a host that exits right after
//! `shutdown_now` would leave the programs running as orphans (they get no parent-death
//! signal: the thread that started one may be replaced and exit long before it). So the bus
//! also kills their process groups at once.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::sys;

/// Process group ids (the pids of their unreaped leaders) of the running commands.
#[derive(Debug, Default)]
pub(crate) struct RunningCommands {
    groups: Mutex<HashSet<u32>>,
}

impl RunningCommands {
    /// Records the program `pid` as running; call right after starting it.
    pub(crate) fn add(&self, pid: u32) {
        self.lock().insert(pid);
    }

    /// Forgets the program `pid`; call before reaping it. Under the lock [`kill_all`](Self::kill_all)
    /// (Self::kill_all) holds, so it never signals a group whose leader has been reaped (whose
    /// id could then name a stranger's group).
    pub(crate) fn remove(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    /// Sends SIGKILL to every running command's process group.
    pub(crate) fn kill_all(&self) {
        let groups = self.lock();
        for &pid in groups.iter() {
            if let Err(error) = sys::signal_group_of(pid, libc::SIGKILL) {
                tracing::warn!(pid, %error, "busbar: could not kill a command at shutdown_now");
            }
        }
    }

    // Holds only pids; a panic elsewhere cannot leave it inconsistent.
    fn lock(&self) -> MutexGuard<'_, HashSet<u32>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
