//! How long to wait before retrying a failed attempt.

use std::time::Duration;

/// The pause between a failed attempt and its retry.
///
/// Set per bus with [`EventBusBuilder::retry_backoff`](crate::EventBusBuilder::retry_backoff);
/// the default is [`Immediate`](Self::Immediate).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use busbar::RetryBackoff;
///
/// let backoff = RetryBackoff::Exponential {
///     initial: Duration::from_millis(10),
///     max: Duration::from_millis(100),
///     jitter: false,
/// };
/// assert_eq!(backoff.delay(1), Duration::from_millis(10));
/// assert_eq!(backoff.delay(2), Duration::from_millis(20));
/// assert_eq!(backoff.delay(10), Duration::from_millis(100));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryBackoff {
    /// Retry at once.
    #[default]
    Immediate,
    /// Wait the same time before every retry.
    Fixed(Duration),
    /// Wait `initial`, then twice as long before each further retry, never more than `max`.
    /// With `jitter`, each pause is drawn uniformly from zero to that value ("full jitter"),
    /// so that many failing events do not retry in lockstep.
    Exponential {
        /// The pause before the first retry.
        initial: Duration,
        /// The longest pause.
        max: Duration,
        /// Whether to randomise each pause.
        jitter: bool,
    },
}

impl RetryBackoff {
    /// Returns the pause before retry number `retry` (1 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        match *self {
            RetryBackoff::Immediate => Duration::ZERO,
            RetryBackoff::Fixed(delay) => delay,
            RetryBackoff::Exponential { initial, max, jitter } => {
                let doublings = retry.saturating_sub(1).min(31);
                let delay = initial.saturating_mul(1 << doublings).min(max);
                if jitter {
                    delay.mul_f64(fastrand::f64())
                } else {
                    delay
                }
            }
        }
    }
}
