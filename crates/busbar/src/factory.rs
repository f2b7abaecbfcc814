//! The registry of handlers: which handler runs for which event type.

use std::cell::RefCell;
use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};

use crate::handler::EventHandler;

/// Builds a fresh handler instance.
type Constructor = dyn Fn() -> Box<dyn EventHandler> + Send + Sync;

/// Maps event types to handlers.
///
/// A type is registered either with a *constructor* ([`register_event_type`]), which builds
/// one handler per pool worker thread (and per corelet process) the first time that worker
/// sees the type, or with a shared instance ([`EventBus::subscribe`](crate::EventBus::subscribe)
/// / [`register_shared`](Self::register_shared)), which every thread uses. Sync-mode events
/// use one instance per registration, built on first use.
///
/// `EventFactory` is cheap to clone; clones share one registry, so types registered after the
/// bus was built are seen by it.
///
/// [`register_event_type`]: Self::register_event_type
///
/// # Examples
///
/// ```
/// use busbar::{EventFactory, EventResult, handler_fn};
///
/// let factory = EventFactory::new();
/// factory.register_event_type("order.created", || handler_fn(|_| Ok(EventResult::success())));
/// factory.register_event_type("order.shipped", || handler_fn(|_| Ok(EventResult::success())));
///
/// assert!(factory.is_handler_available("order.created"));
/// assert!(!factory.is_handler_available("order.cancelled"));
/// assert_eq!(factory.event_types(), ["order.created", "order.shipped"]);
/// assert!(factory.create_handler("order.created").is_some());
/// ```
#[derive(Clone, Default)]
pub struct EventFactory {
    inner: Arc<Inner>,
}

/// The registry every clone of one factory shares.
struct Inner {
    registry: RwLock<Registry>,
    /// Changes whenever the registry does, to a value no registry ever had before (see
    /// [`next_version`]): a thread's [`LAST_LOOKUP`] with the same version is still right.
    version: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner { registry: RwLock::default(), version: AtomicU64::new(next_version()) }
    }
}

/// Event type → registration. Looked up on every publish, so it uses a fast hasher rather than
/// std's DoS-resistant SipHash: event types come from the program, not from attackers.
type Registry = HashMap<String, Arc<Registration>, RandomState>;

/// One registered handler for one event type.
pub(crate) struct Registration {
    /// Distinguishes this registration from an earlier one for the same type, so that
    /// workers' cached instances of a replaced handler are rebuilt.
    serial: u64,
    kind: RegistrationKind,
}

enum RegistrationKind {
    /// Built per worker thread; `shared` is the instance sync-mode callers use.
    Constructor { build: Box<Constructor>, shared: OnceLock<Arc<dyn EventHandler>> },
    /// One instance for every thread.
    Shared(Arc<dyn EventHandler>),
}

/// The source of registration serials; global so serials never repeat across factories.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// The source of registry versions; global so that a factory created where a dropped one was
/// cannot be mistaken for it.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

fn next_version() -> u64 {
    NEXT_VERSION.fetch_add(1, Ordering::Relaxed)
}

/// A thread's most recent successful lookup.
///
/// Every publish looks its handler up; taking the registry's lock and hashing the type costs
/// more than the rest of a sync publish's bookkeeping, and a thread usually publishes the same
/// type again and again. The entry holds the registration weakly, so it keeps no handler
/// alive after its registry dropped or replaced it.
struct LastLookup {
    version: u64,
    event_type: String,
    registration: Weak<Registration>,
}

thread_local! {
    static LAST_LOOKUP: RefCell<Option<LastLookup>> = const { RefCell::new(None) };
}

impl EventFactory {
    /// Creates an empty factory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a constructor for `event_type`, replacing an earlier registration.
    ///
    /// The constructor runs once per pool worker thread that handles the type (and once per
    /// corelet process), so a handler can keep per-thread state such as a connection.
    pub fn register_event_type<H, F>(&self, event_type: impl Into<String>, constructor: F)
    where
        H: EventHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let build: Box<Constructor> = Box::new(move || Box::new(constructor()));
        self.insert(event_type.into(), RegistrationKind::Constructor { build, shared: OnceLock::new() });
    }

    /// Registers one handler instance for `event_type` that every thread shares.
    pub fn register_shared(&self, event_type: impl Into<String>, handler: impl EventHandler) {
        self.insert(event_type.into(), RegistrationKind::Shared(Arc::new(handler)));
    }

    /// Removes the registration for `event_type`; returns `true` if there was one.
    ///
    /// Events of the type already published still run its handler. The registration (and
    /// what its constructor captured) is dropped once the last of them has run and each
    /// worker that ran one has moved on to another type or waits for work; a worker's own
    /// handler instance of the type stays with the worker.
    pub fn unregister(&self, event_type: &str) -> bool {
        self.write(|registry| registry.remove(event_type)).is_some()
    }

    /// Builds a handler for `event_type`, or returns `None` if none is registered.
    ///
    /// For a shared registration this returns the shared instance.
    pub fn create_handler(&self, event_type: &str) -> Option<Box<dyn EventHandler>> {
        self.lookup(event_type).map(|registration| registration.build())
    }

    /// Returns `true` if a handler is registered for `event_type`.
    pub fn is_handler_available(&self, event_type: &str) -> bool {
        self.read().contains_key(event_type)
    }

    /// Returns the registered event types, sorted.
    pub fn event_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.read().keys().cloned().collect();
        types.sort_unstable();
        types
    }

    pub(crate) fn lookup(&self, event_type: &str) -> Option<Arc<Registration>> {
        // Acquire: pairs with the Release in `write`, though any value read is a version the
        // registry had, and the entry is right for that version.
        let version = self.inner.version.load(Ordering::Acquire);
        if let Some(registration) = last_lookup(version, event_type) {
            return Some(registration);
        }
        let registry = self.read();
        let registration = registry.get(event_type).cloned();
        if let Some(registration) = &registration {
            // Read under the lock: no writer can change the registry in between.
            remember_lookup(self.inner.version.load(Ordering::Relaxed), event_type, registration);
        }
        registration
    }

    fn insert(&self, event_type: String, kind: RegistrationKind) {
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        self.write(|registry| registry.insert(event_type, Arc::new(Registration { serial, kind })));
    }

    // The registry holds plain data and no user code runs under its lock, so a poisoned lock
    // (a panic elsewhere while holding it) leaves it consistent: keep using it.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the registry and gives it a new version, so that no thread's last lookup from
    /// before the change is used after it.
    fn write<T>(&self, change: impl FnOnce(&mut Registry) -> T) -> T {
        let mut registry = self.inner.registry.write().unwrap_or_else(PoisonError::into_inner);
        let changed = change(&mut registry);
        self.inner.version.store(next_version(), Ordering::Release);
        changed
    }
}

/// This thread's last lookup of `event_type`, if it was made at `version`.
///
/// `try_with`: a thread-local destructor may publish after this thread's cache is gone; it
/// then takes the lock like any first lookup.
fn last_lookup(version: u64, event_type: &str) -> Option<Arc<Registration>> {
    let last = LAST_LOOKUP.try_with(|last| match &*last.borrow() {
        Some(last) if last.version == version && last.event_type == event_type => last.registration.upgrade(),
        _ => None,
    });
    last.ok().flatten()
}

/// Makes `registration` this thread's last lookup, reusing the entry's buffer.
fn remember_lookup(version: u64, event_type: &str, registration: &Arc<Registration>) {
    let _gone = LAST_LOOKUP.try_with(|last| {
        let mut last = last.borrow_mut();
        let entry = last.get_or_insert_with(|| LastLookup {
            version,
            event_type: String::new(),
            registration: Weak::new(),
        });
        entry.version = version;
        entry.event_type.clear();
        entry.event_type.push_str(event_type);
        entry.registration = Arc::downgrade(registration);
    });
}

impl fmt::Debug for EventFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFactory").field("event_types", &self.event_types()).finish()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RegistrationKind::Constructor { .. } => "constructor",
            RegistrationKind::Shared(_) => "shared",
        };
        f.debug_struct("Registration").field("serial", &self.serial).field("kind", &kind).finish()
    }
}

impl Registration {
    /// Builds a new instance (or hands out the shared one).
    pub(crate) fn build(&self) -> Box<dyn EventHandler> {
        match &self.kind {
            RegistrationKind::Constructor { build, .. } => build(),
            RegistrationKind::Shared(handler) => Box::new(Arc::clone(handler)),
        }
    }

    /// Returns the instance that threads outside the pool (sync-mode publishers) use.
    ///
    /// Borrowed, not cloned: the caller holds the registration for the whole attempt, and a
    /// reference count bumped and dropped on every sync event is measurable.
    pub(crate) fn shared_instance(&self) -> &dyn EventHandler {
        match &self.kind {
            RegistrationKind::Constructor { build, shared } => &**shared.get_or_init(|| Arc::from(build())),
            RegistrationKind::Shared(handler) => &**handler,
        }
    }
}

/// Job references to the held registration dropped together (see
/// [`HandlerCache::give_back`]).
const SPENT_BATCH: usize = 64;

/// A pool worker's own handler instances, at most one per event type, and the registration of
/// the worker's last job.
///
/// A publisher takes a strong reference to the registration for each job it queues (see
/// `Job::registration`). The worker used to take another for the attempt and to drop both
/// afterwards, and to read the registration's serial to find its instance: every event moved
/// the cache line of the reference count (and of the serial beside it) to the worker's CPU and
/// back, two cache misses of a thread round trip. Now the worker holds one reference as long
/// as its jobs keep coming for the same registration, lends that for each attempt (an `Rc`,
/// counted without atomic operations), keeps its instance beside it (found by the
/// registration's address, which the held reference keeps from being reused), and drops the
/// jobs' own references in batches.
///
/// So a worker keeps the registration of its last job alive until it runs a job of another
/// one or waits for work ([`let_go`](Self::let_go)).
#[derive(Default)]
pub(crate) struct HandlerCache {
    handlers: HashMap<String, (u64, Rc<dyn EventHandler>), RandomState>,
    held: Option<Held>,
    /// Job references to the held registration, dropped when `SPENT_BATCH` are gathered or
    /// when another registration is held.
    spent: Vec<Arc<Registration>>,
}

/// The registration a worker holds (see [`HandlerCache`]).
struct Held {
    // An `Rc` around the `Arc` on purpose: lending it out is a plain increment on the worker's
    // own heap, where cloning the `Arc` writes the count publishers write.
    #[allow(clippy::redundant_allocation)]
    registration: Rc<Arc<Registration>>,
    /// Its instance, once an attempt asked for it.
    handler: Option<Rc<dyn EventHandler>>,
}

impl HandlerCache {
    /// A reference to `registration` (a job's) for an attempt to hold: the worker's own, if it
    /// holds that registration already.
    #[allow(clippy::redundant_allocation)] // see `Held::registration`
    pub(crate) fn lend(&mut self, registration: &Arc<Registration>) -> Rc<Arc<Registration>> {
        if let Some(held) = self.held.as_ref().filter(|held| Arc::ptr_eq(&held.registration, registration)) {
            return Rc::clone(&held.registration);
        }
        // The spent references are to the registration held until now.
        self.spent.clear();
        let registration = Rc::new(Arc::clone(registration));
        self.held = Some(Held { registration: Rc::clone(&registration), handler: None });
        registration
    }

    /// Lets go of the held registration and the jobs' references to it: for a worker about to
    /// sleep, so that an unregistered type's registration does not outlive the work on it.
    pub(crate) fn let_go(&mut self) {
        self.held = None;
        self.spent.clear();
    }

    /// Takes a resolved job's reference to its registration.
    pub(crate) fn give_back(&mut self, registration: Arc<Registration>) {
        // While the worker holds the registration, the job's reference can wait: dropping it
        // now would write the count a publisher is about to write for its next job.
        let held = self.held.as_ref().is_some_and(|held| Arc::ptr_eq(&held.registration, &registration));
        if held && self.spent.len() < SPENT_BATCH {
            self.spent.push(registration);
        } else if held {
            self.spent.clear();
        }
    }

    /// Returns this worker's instance for `registration`, building it on first use or when
    /// the type was registered anew.
    pub(crate) fn get(&mut self, event_type: &str, registration: &Registration) -> &dyn EventHandler {
        let HandlerCache { handlers, held, .. } = self;
        match held {
            Some(held) if std::ptr::eq(Arc::as_ptr(&held.registration), registration) => {
                &**held.handler.get_or_insert_with(|| Rc::clone(instance(handlers, event_type, registration)))
            }
            _ => &**instance(handlers, event_type, registration),
        }
    }
}

/// The instance for `registration` in `handlers`, built if the type has none or one of an
/// earlier registration.
fn instance<'a>(
    handlers: &'a mut HashMap<String, (u64, Rc<dyn EventHandler>), RandomState>,
    event_type: &str,
    registration: &Registration,
) -> &'a Rc<dyn EventHandler> {
    let stale = handlers.get(event_type).is_none_or(|(serial, _)| *serial != registration.serial);
    if stale {
        handlers.insert(event_type.to_owned(), (registration.serial, Rc::from(registration.build())));
    }
    // Present: it was either fresh or inserted just above.
    &handlers[event_type].1
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{EventFactory, HandlerCache, SPENT_BATCH};
    use crate::handler::handler_fn;
    use crate::result::EventResult;

    #[test]
    fn a_worker_holds_one_reference_and_gives_the_jobs_back_in_batches() {
        let factory = EventFactory::new();
        factory.register_event_type("a", || handler_fn(|_| Ok(EventResult::success())));
        factory.register_event_type("b", || handler_fn(|_| Ok(EventResult::success())));
        let (a, b) = (factory.lookup("a").expect("a"), factory.lookup("b").expect("b"));
        let mut cache = HandlerCache::default();
        // The registry's reference and ours.
        let outside = 2;
        for jobs in 1..=SPENT_BATCH {
            let job = Arc::clone(&a);
            let lent = cache.lend(&job);
            cache.get("a", &lent);
            drop(lent);
            cache.give_back(job);
            assert_eq!(Arc::strong_count(&a), outside + 1 + jobs, "the worker's, and the jobs' spent ones");
        }
        // One more fills the batch: all the jobs' references go at once.
        let job = Arc::clone(&a);
        drop(cache.lend(&job));
        cache.give_back(job);
        assert_eq!(Arc::strong_count(&a), outside + 1);
        // Another registration: the worker lets go of the first.
        let job = Arc::clone(&b);
        drop(cache.lend(&job));
        cache.give_back(job);
        assert_eq!(Arc::strong_count(&a), outside);
        assert_eq!(Arc::strong_count(&b), outside + 2);
    }
}
