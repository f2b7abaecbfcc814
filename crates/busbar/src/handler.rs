//! Handlers: the code that runs for an event.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::context::EventContext;
use crate::result::EventResult;

/// What a handler returns: a result, or an execution error.
///
/// `Ok(result)` with `result.success == false` is a *business failure*; `Err(e)` is an
/// *execution error* (the documentation's `EventExecutionError`). Both are retried while
/// retries remain, unless marked permanent.
pub type HandlerResult = Result<EventResult, HandlerError>;

/// Processes events of one type.
///
/// Implement it for a struct, or pass a closure `Fn(&EventContext) -> HandlerResult`, which is
/// a handler too. Handlers are `Send + Sync` because thread-mode events run them on pool
/// workers and [`EventBus::subscribe`](crate::EventBus::subscribe) shares one instance
/// between threads.
///
/// # Examples
///
/// ```
/// use busbar::{Event, EventBus, EventContext, EventFactory, EventHandler, EventResult, HandlerResult};
///
/// struct WelcomeEmail;
///
/// impl EventHandler for WelcomeEmail {
///     fn execute(&self, ctx: &EventContext) -> HandlerResult {
///         let email = ctx.event().data()["email"].as_str().ok_or("`email` is missing")?;
///         Ok(EventResult::success_with(email.into()))
///     }
/// }
///
/// let factory = EventFactory::new();
/// factory.register_event_type("user.registered", || WelcomeEmail);
/// let bus = EventBus::with_factory(factory);
///
/// let event = Event::new("user.registered").with_data(serde_json::json!({"email": "a@b.c"}));
/// assert_eq!(bus.publish(event)?.wait().data, "a@b.c");
/// # Ok::<(), busbar::PublishError>(())
/// ```
///
/// A handler must be `Send + Sync`:
///
/// ```compile_fail
/// use std::cell::Cell;
/// use busbar::{EventBus, EventContext, EventResult};
///
/// let counter = Cell::new(0);
/// EventBus::new().subscribe("count", move |_: &EventContext| {
///     counter.set(counter.get() + 1);
///     Ok(EventResult::success())
/// });
/// ```
pub trait EventHandler: Send + Sync + 'static {
    /// Processes one attempt of an event.
    ///
    /// `ctx` gives the event, the bus (to publish follow-up events), the attempt number, the
    /// deadline and the cancellation flag.
    fn execute(&self, ctx: &EventContext) -> HandlerResult;
}

impl<F> EventHandler for F
where
    F: Fn(&EventContext) -> HandlerResult + Send + Sync + 'static,
{
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        self(ctx)
    }
}

impl<H: EventHandler + ?Sized> EventHandler for Arc<H> {
    fn execute(&self, ctx: &EventContext) -> HandlerResult {
        (**self).execute(ctx)
    }
}

/// An execution error returned by a handler.
///
/// Any `std::error::Error + Send + Sync` (and `&str`/`String`) converts into it, so `?` works
/// in handlers. Mark it [`permanent`](Self::permanent) to stop retries.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself (that would clash
/// with the blanket `From`); [`as_error`](Self::as_error) gives the inner error.
///
/// # Examples
///
/// ```
/// use busbar::{Event, EventBus, EventContext, HandlerError, EventResult};
///
/// let bus = EventBus::new();
/// bus.subscribe("parse", |ctx: &EventContext| {
///     let text = ctx.event().data().as_str().ok_or_else(|| HandlerError::permanent("data must be a string"))?;
///     let n: i64 = text.parse()?; // a ParseIntError becomes a HandlerError
///     Ok(EventResult::success_with(n.into()))
/// });
///
/// let result = bus.publish(Event::new("parse").with_data("x1".into()).with_retry_count(3))?.wait();
/// assert_eq!(result.error_message.as_deref(), Some("invalid digit found in string"));
/// assert_eq!(result.attempts, 4); // retried: the parse error was not permanent
///
/// let result = bus.publish(Event::new("parse").with_retry_count(3))?.wait();
/// assert_eq!(result.attempts, 1); // permanent: not retried
/// # Ok::<(), busbar::PublishError>(())
/// ```
pub struct HandlerError {
    error: Box<dyn StdError + Send + Sync + 'static>,
    permanent: bool,
}

impl HandlerError {
    /// Wraps an error.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        HandlerError { error: error.into(), permanent: false }
    }

    /// Wraps an error that retrying cannot fix: the bus does not retry it.
    pub fn permanent(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        HandlerError { error: error.into(), permanent: true }
    }

    /// Replaces the inner error by its message, dropping it.
    ///
    /// Formatting and dropping the handler's error run the handler author's code, which may
    /// panic: the bus does both here, inside its panic boundary, and afterwards handles only
    /// the message.
    pub(crate) fn settled(self) -> HandlerError {
        HandlerError { error: self.error.to_string().into(), permanent: self.permanent }
    }

    /// Returns `true` if the error was marked permanent.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Returns the inner error.
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }

    /// Returns the inner error, consuming this one.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.error
    }
}

impl<E> From<E> for HandlerError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        HandlerError::new(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("error", &self.error)
            .field("permanent", &self.permanent)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// Returns `f` as a handler, so the compiler infers the closure's argument and return types.
///
/// A closure is a handler already; `handler_fn` only spares writing
/// `|ctx: &EventContext| -> HandlerResult`.
///
/// # Examples
///
/// ```
/// use busbar::{handler_fn, Event, EventBus, EventResult};
///
/// let bus = EventBus::new();
/// bus.subscribe("ping", handler_fn(|_ctx| Ok(EventResult::success_with("pong".into()))));
/// assert_eq!(bus.publish(Event::new("ping"))?.wait().data, "pong");
/// # Ok::<(), busbar::PublishError>(())
/// ```
pub fn handler_fn<F>(f: F) -> F
where
    F: Fn(&EventContext) -> HandlerResult + Send + Sync + 'static,
{
    f
}
