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

/// A pool worker's own handler instances: at most one per event type.
#[derive(Default)]
pub(crate) struct HandlerCache {
    handlers: HashMap<String, (u64, Rc<dyn EventHandler>), RandomState>,
    /// The instance used last, with its registration's serial, looked at first: a worker
    /// mostly runs events of one type in a row, and comparing serials spares hashing the
    /// type's name, which lies in memory the publisher wrote (a cache miss for the worker).
    last: Option<(u64, Rc<dyn EventHandler>)>,
}

impl HandlerCache {
    /// Returns this worker's instance for `registration`, building it on first use or when
    /// the type was registered anew.
    pub(crate) fn get(&mut self, event_type: &str, registration: &Registration) -> &dyn EventHandler {
        let last = match self.last.take() {
            Some(last) if last.0 == registration.serial => last,
            _ => {
                let stale =
                    self.handlers.get(event_type).is_none_or(|(serial, _)| *serial != registration.serial);
                if stale {
                    let handler = Rc::from(registration.build());
                    self.handlers.insert(event_type.to_owned(), (registration.serial, handler));
                }
                // Present: it was either fresh or inserted just above.
                let (serial, handler) = &self.handlers[event_type];
                (*serial, Rc::clone(handler))
            }
        };
        &*self.last.insert(last).1
    }
}
