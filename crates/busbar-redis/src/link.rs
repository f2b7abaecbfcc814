//! [`Link`]: one thread's connection to Redis, reopened after any failure.

use std::fmt;
use std::time::Duration;

use crate::broker::Broker;
use crate::error::{breaks_connection, BrokerError};
use crate::script;

/// A connection to Redis that is opened on first use and dropped on any failure that may have
/// left it unusable, so that the next call reconnects: after a Redis restart every thread
/// finds its way back on its own.
///
/// Every call is bounded: connecting by the broker's connect timeout, each read and write by
/// its I/O timeout (plus `block` for a thread that blocks in `XREAD`), so a Redis that is down
/// or silent gives an error, never a hang.
pub(crate) struct Link {
    broker: Broker,
    connection: Option<redis::Connection>,
    /// Added to the read timeout: how long this link's blocking commands may block.
    block: Duration,
}

impl Link {
    pub(crate) fn new(broker: &Broker) -> Self {
        Link { broker: broker.clone(), connection: None, block: Duration::ZERO }
    }

    /// A link whose commands may block for up to `block` (`XREAD ... BLOCK`).
    pub(crate) fn blocking(broker: &Broker, block: Duration) -> Self {
        Link { block, ..Link::new(broker) }
    }

    /// Returns `true` if the connection is open (it may still turn out to be stale).
    pub(crate) fn is_open(&self) -> bool {
        self.connection.is_some()
    }

    /// Opens the connection if it is not open, and loads the scripts on a new one.
    pub(crate) fn open(&mut self) -> Result<&mut redis::Connection, BrokerError> {
        if let Some(connection) = self.connection.take() {
            return Ok(self.connection.insert(connection));
        }
        let connection = self.connect().map_err(|error| self.error(error))?;
        Ok(self.connection.insert(connection))
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let settings = self.broker.settings();
        let mut connection = settings.client.get_connection_with_timeout(settings.connect_timeout)?;
        connection.set_read_timeout(Some(settings.io_timeout + self.block))?;
        connection.set_write_timeout(Some(settings.io_timeout))?;
        for script in script::all() {
            script.load(&mut connection)?;
        }
        Ok(connection)
    }

    /// Runs `f` on the connection, opening it first if needed. A failure that may have left
    /// the connection unusable closes it.
    pub(crate) fn run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, BrokerError> {
        let connection = self.open()?;
        match f(connection) {
            Ok(value) => Ok(value),
            Err(error) => {
                if breaks_connection(&error) {
                    self.connection = None;
                }
                Err(self.error(error))
            }
        }
    }

    /// Like [`run`](Self::run), but if a connection that was already open turns out to be
    /// broken (Redis restarted since it was last used), tries once more on a new one.
    ///
    /// The first try may have reached a Redis that died before answering: then the command
    /// may run twice, and a failure of the second try is [ambiguous](BrokerError::is_ambiguous).
    pub(crate) fn run_again_if_stale<T>(
        &mut self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, BrokerError> {
        let was_open = self.is_open();
        match self.run(&mut f) {
            Err(error) if was_open && !self.is_open() && error.is_unavailable() => {
                let ambiguous = error.is_ambiguous();
                self.run(f).map_err(|again| if ambiguous { again.into_ambiguous() } else { again })
            }
            other => other,
        }
    }

    fn error(&self, error: redis::RedisError) -> BrokerError {
        let settings = self.broker.settings();
        BrokerError::from_redis(&settings.address, settings.io_timeout + self.block, error)
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").field("open", &self.is_open()).finish_non_exhaustive()
    }
}

/// The pause before trying Redis again after `failures` failures in a row: 50 ms, doubling,
/// at most one second.
pub(crate) fn retry_pause(failures: u32) -> Duration {
    Duration::from_millis(50).saturating_mul(1 << failures.min(5)).min(Duration::from_secs(1))
}
