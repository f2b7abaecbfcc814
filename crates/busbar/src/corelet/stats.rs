//! Counters that describe what a corelet pool has been doing.

/// A snapshot of a corelet pool's counters, from [`CoreletPool::stats`].
///
/// All counts except `live` grow monotonically over the pool's life.
///
/// [`CoreletPool::stats`]: super::pool::CoreletPool::stats
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CoreletStats {
    /// Children in the pool now, idle or serving a request. Children being started or
    /// retired are not counted.
    pub(crate) live: usize,
    /// Children started (the program ran, whether or not it then greeted).
    pub(crate) spawns: u64,
    /// Starts that failed: the program did not run, or did not complete the handshake.
    pub(crate) start_failures: u64,
    /// Children that died by themselves, during a request or while idle.
    pub(crate) crashes: u64,
    /// Children the pool killed: at a deadline, for breaking the protocol, or in `kill_all`.
    pub(crate) kills: u64,
    /// Children retired for reaching `max_requests` or `max_resident`.
    pub(crate) recycles: u64,
    /// Children retired after `idle_timeout` without a request.
    pub(crate) idle_exits: u64,
}
