//! Unix process primitives shared by the cmd and corelet modes.
//!
//! Children get a process group of their own, optional resource limits and, on request, a
//! parent-death signal ([`configure_child`]); a group is stopped with a grace period and always
//! reaped ([`terminate_group`]); exit statuses read the same everywhere ([`describe_exit`]).
//! [`has_exited`], [`pidfd_open`] and [`poll()`] let one thread watch a child and its pipes
//! without blocking.
//!
//! Everything here is Linux first. The code compiles on other unixes, where the parent-death
//! signal is not available and is silently skipped.

mod child;
mod exit;
mod group;
mod poll;

#[cfg(test)]
mod test;

pub(crate) use child::{check_searchable, configure_child, cpu_time_limited, ProcessLimits};
pub(crate) use exit::{describe_exit, signal_name};
#[cfg(test)]
pub(crate) use group::pid_has_exited;
pub(crate) use group::{
    has_exited, pidfd_open, signal_group, signal_group_of, terminate_group, wait_for_exit,
};
pub(crate) use poll::{poll, set_blocking, set_nonblocking};

/// Returns the number of open descriptors of this process, from `/proc/self/fd`.
///
/// Meant for leak tests: compare the count before and after a piece of work, in a process where
/// nothing else runs concurrently (other tests in the same binary open descriptors too). The
/// descriptor used to read the directory is not counted.
///
/// # Errors
///
/// Fails where `/proc` is not mounted or not readable.
#[cfg(test)]
pub(crate) fn open_fd_count() -> std::io::Result<usize> {
    let mut count = 0_usize;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        entry?;
        count += 1;
    }
    // The listing includes the descriptor `read_dir` opened to produce it.
    Ok(count.saturating_sub(1))
}
