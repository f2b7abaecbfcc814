//! Counts of sync events kept per thread: [`SyncTallies`].
//!
//! A sync event runs on its publisher's thread, and the bus counts it: when it starts and when
//! it finishes (`join` waits for the difference), and around its publisher's look at whether
//! the bus is closed (`Shared::start_sync`; `join` waits for those too). One count that every
//! thread adds to needs a locked read-modify-write per step, a large part of a sync publish.
//! Here each thread counts in a tally of its own, which only it writes, with a plain load and
//! store; readers (`join`, `stats`) add the tallies up.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_utils::CachePadded;

/// One bus's sync events, counted per thread.
pub(crate) struct SyncTallies {
    /// Names this bus's tallies in the threads' lists; never reused.
    id: u64,
    /// Every tally handed out, for readers to add up. The first is shared by threads whose
    /// thread-locals are gone; the others belong to one thread each, and pass to another
    /// thread once theirs exits (the counts stay).
    all: Mutex<Vec<Arc<Tally>>>,
}

/// What the tallies count: `started - succeeded - failed` events are in flight, and
/// `checking` publishes are looking whether the bus is closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncTotals {
    pub(crate) started: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) checking: u64,
}

type Tally = CachePadded<TallyCounts>;

#[derive(Default)]
struct TallyCounts {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Looks at whether the bus is closed, begun and ended (two totals that only grow, so that
    /// every count is a plain store of one more).
    checks_begun: AtomicU64,
    checks_ended: AtomicU64,
    /// Set while a thread counts here (then only that thread writes), and for good on the
    /// shared tally, which nobody may take.
    taken: AtomicBool,
}

/// A tally this thread holds; gives it back when the thread exits.
struct Held {
    tallies: u64,
    tally: Arc<Tally>,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Before the tally can pass to another thread: this thread must not count in it again.
        let _gone = LAST.try_with(|last| {
            if last.get().0 == self.tallies {
                last.set(NO_LAST);
            }
        });
        // Release: the next thread to take it (Acquire) continues from this thread's counts.
        self.tally.taken.store(false, Ordering::Release);
    }
}

thread_local! {
    /// The tallies this thread holds, one per bus it ran sync events on.
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };

    /// The tally this thread counted in last, and the id of its [`SyncTallies`]: a thread
    /// usually publishes on one bus, and finding its tally in [`HELD`] (a thread-local with a
    /// destructor, a borrow, a search) cost more than the count itself.
    ///
    /// Points into an `Arc` in `HELD`, whose [`Held`] clears this before letting go of it. It
    /// has no destructor of its own, so where thread-locals are native (Linux, macOS, Windows)
    /// it can be read at any time, even while the thread exits; elsewhere, once it is gone,
    /// counts go the long way.
    static LAST: Cell<(u64, *const TallyCounts)> = const { Cell::new(NO_LAST) };
}

/// [`LAST`] when it holds no tally: ids start at 1.
const NO_LAST: (u64, *const TallyCounts) = (0, ptr::null());

/// The source of [`SyncTallies::id`]; global so that ids never repeat.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Adds one to a count in a tally this thread holds.
fn add_one(counter: &AtomicU64) {
    // Only this thread writes the tally: no read-modify-write needed.
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
}

/// Which count a step adds to.
#[derive(Clone, Copy)]
pub(crate) enum Step {
    Started,
    Succeeded,
    Failed,
    CheckBegun,
    CheckEnded,
}

impl TallyCounts {
    fn counter(&self, step: Step) -> &AtomicU64 {
        match step {
            Step::Started => &self.started,
            Step::Succeeded => &self.succeeded,
            Step::Failed => &self.failed,
            Step::CheckBegun => &self.checks_begun,
            Step::CheckEnded => &self.checks_ended,
        }
    }
}

/// This thread's tally of one bus, found once for several counts in a row (see
/// [`SyncTallies::mine`]). Not `Send`: only its thread may write its tally.
pub(crate) struct Mine<'a> {
    tallies: &'a SyncTallies,
    /// `None` for a thread whose thread-locals are gone: it counts in the shared tally.
    own: Option<&'a TallyCounts>,
    _this_thread: PhantomData<*const ()>,
}

impl Mine<'_> {
    /// Adds one to this thread's count of `step`.
    ///
    /// The store is `Release`, so that a thread that learns of this step by other means
    /// (a message sent after it) also reads it here. A caller that reads something next and
    /// needs the store seen first must put a barrier in between (see `barrier`).
    #[inline]
    pub(crate) fn count(&self, step: Step) {
        match self.own {
            Some(tally) => add_one(tally.counter(step)),
            None => self.tallies.count_shared(step),
        }
    }
}

impl SyncTallies {
    pub(crate) fn new() -> Self {
        let shared = Tally::default();
        shared.taken.store(true, Ordering::Relaxed);
        SyncTallies { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), all: Mutex::new(vec![Arc::new(shared)]) }
    }

    /// Adds one to this thread's count of `step` (see [`Mine::count`]).
    #[inline]
    pub(crate) fn count(&self, step: Step) {
        self.mine().count(step);
    }

    /// Finds this thread's tally, for counts in a row.
    #[inline]
    pub(crate) fn mine(&self) -> Mine<'_> {
        let (last_id, last_tally) = LAST.try_with(Cell::get).unwrap_or(NO_LAST);
        let tally = if last_id == self.id { last_tally } else { self.find_mine() };
        // SAFETY: a non-null `tally` names a tally of this bus (ids are never reused), from
        // `LAST` or just taken. `self.all` holds an `Arc` to every tally this bus ever handed
        // out and never lets one go, so the tally lives as long as `self`, which `Mine`
        // borrows. Only a reference is made, to atomics; and a `Mine` cannot leave this thread,
        // so the tally's only writer stays the thread that holds it.
        let own = unsafe { tally.as_ref() };
        Mine { tallies: self, own, _this_thread: PhantomData }
    }

    /// This thread's tally, taken if it has none yet; null once its thread-locals are gone.
    #[cold]
    fn find_mine(&self) -> *const TallyCounts {
        let found = HELD.try_with(|held| {
            // No user code runs while borrowed, so the borrow cannot be taken twice.
            let mut held = held.borrow_mut();
            let position = match held.iter().position(|entry| entry.tallies == self.id) {
                Some(position) => position,
                None => self.take_one(&mut held),
            };
            let tally: *const TallyCounts = ptr::from_ref(&**held[position].tally);
            let _gone = LAST.try_with(|last| last.set((self.id, tally)));
            tally
        });
        found.unwrap_or(ptr::null())
    }

    /// Counts `step` in the shared tally: for a thread-local destructor publishing after this
    /// thread's list is gone.
    #[cold]
    fn count_shared(&self, step: Step) {
        let all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        all[0].counter(step).fetch_add(1, Ordering::SeqCst);
    }

    /// Gives this thread a tally: one a thread that exited gave back, or a new one. Returns
    /// its position in `held`.
    #[cold]
    fn take_one(&self, held: &mut Vec<Held>) -> usize {
        // Tallies of buses that are gone: only this list still holds them.
        held.retain(|entry| Arc::strong_count(&entry.tally) > 1);
        let mut all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        let given_back = all.iter().find(|tally| {
            // Acquire: pairs with the Release of the thread that gave it back.
            tally.taken.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
        });
        let tally = match given_back {
            Some(tally) => Arc::clone(tally),
            None => {
                let tally = Arc::new(Tally::default());
                tally.taken.store(true, Ordering::Relaxed);
                all.push(Arc::clone(&tally));
                tally
            }
        };
        held.push(Held { tallies: self.id, tally });
        held.len() - 1
    }

    /// Adds up the tallies.
    pub(crate) fn totals(&self) -> SyncTotals {
        let all = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        let mut totals = SyncTotals::default();
        let (mut begun, mut ended) = (0u64, 0u64);
        for tally in all.iter() {
            // Each count is read after those its thread stores later: a read that sees a
            // store also sees, in the same tally, what its thread stored before it (Acquire
            // pairs with the counting thread's Release). A finish comes after its start, and a
            // check's end after its begin and, for an admitted event, after its start. So
            // `started` is never below the finishes, `begun` never below `ended`, and an
            // event is never missed between its check and its start (it may count twice).
            totals.succeeded += tally.succeeded.load(Ordering::Acquire);
            totals.failed += tally.failed.load(Ordering::Acquire);
            ended += tally.checks_ended.load(Ordering::Acquire);
            begun += tally.checks_begun.load(Ordering::Acquire);
            totals.started += tally.started.load(Ordering::Acquire);
        }
        totals.checking = begun.saturating_sub(ended);
        totals
    }

    /// How many sync events are in flight or checking whether the bus is closed, or possibly
    /// more (never fewer) if some start meanwhile.
    pub(crate) fn in_flight(&self) -> u64 {
        let totals = self.totals();
        totals.started.saturating_sub(totals.succeeded + totals.failed) + totals.checking
    }

    #[cfg(test)]
    fn tally_count(&self) -> usize {
        self.all.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::{Step, SyncTallies, SyncTotals};

    fn totals(started: u64, succeeded: u64, failed: u64) -> SyncTotals {
        SyncTotals { started, succeeded, failed, checking: 0 }
    }

    #[test]
    fn adds_up_the_counts_of_every_thread() {
        let tallies = SyncTallies::new();
        tallies.count(Step::Started);
        thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        tallies.count(Step::Started);
                        tallies.count(Step::Succeeded);
                    }
                    tallies.count(Step::Started);
                    tallies.count(Step::Failed);
                });
            }
        });
        assert_eq!(tallies.totals(), totals(2_003, 2_000, 2));
        assert_eq!(tallies.in_flight(), 1);
        tallies.count(Step::Failed);
        assert_eq!(tallies.in_flight(), 0);
    }

    /// A publish looking whether the bus is closed is in flight for `join`, but not published.
    #[test]
    fn a_check_under_way_is_in_flight_until_it_ends() {
        let tallies = SyncTallies::new();
        let mine = tallies.mine();
        mine.count(Step::CheckBegun);
        assert_eq!((tallies.in_flight(), tallies.totals().started), (1, 0), "checking");
        // Admitted: started, then the check ends; in flight throughout.
        mine.count(Step::Started);
        assert_eq!(tallies.in_flight(), 2, "counted twice between its start and its check's end");
        mine.count(Step::CheckEnded);
        assert_eq!(tallies.in_flight(), 1);
        mine.count(Step::Succeeded);
        // Refused: the check ends without a start.
        mine.count(Step::CheckBegun);
        mine.count(Step::CheckEnded);
        assert_eq!(tallies.in_flight(), 0);
        assert_eq!(tallies.totals(), totals(1, 1, 0), "the refused publish was never published");
    }

    #[test]
    fn a_thread_takes_over_the_tally_of_one_that_exited() {
        let tallies = SyncTallies::new();
        for _ in 0..3 {
            thread::scope(|scope| {
                // Joined explicitly: a scope's implicit join may return before the thread's
                // thread-locals (and so its tally) are let go.
                scope.spawn(|| tallies.count(Step::Started)).join().unwrap();
            });
        }
        assert_eq!(tallies.totals(), totals(3, 0, 0), "counts stay after their thread exits");
        assert_eq!(tallies.tally_count(), 2, "the shared tally and one passed from thread to thread");
    }

    #[test]
    fn each_bus_has_its_own_tallies() {
        let first = SyncTallies::new();
        let second = SyncTallies::new();
        first.count(Step::Started);
        second.count(Step::Started);
        second.count(Step::Succeeded);
        assert_eq!((first.in_flight(), second.in_flight()), (1, 0));
    }

    /// The thread's last tally is a shortcut: switching buses goes the long way and back.
    #[test]
    fn a_thread_counting_on_two_buses_in_turn_counts_each_in_its_own() {
        let first = SyncTallies::new();
        let second = SyncTallies::new();
        for _ in 0..3 {
            first.count(Step::Started);
            second.count(Step::Started);
            second.count(Step::Failed);
        }
        assert_eq!((first.totals(), second.totals()), (totals(3, 0, 0), totals(3, 0, 3)));
        assert_eq!((first.tally_count(), second.tally_count()), (2, 2), "one tally each for this thread");
    }

    /// A tally this thread lets go of (as it does when it exits) is no longer its shortcut,
    /// and passes to the next thread that counts.
    #[test]
    fn letting_a_tally_go_clears_the_shortcut() {
        let tallies = SyncTallies::new();
        tallies.count(Step::Started);
        assert_eq!(super::LAST.get().0, tallies.id);
        super::HELD.with(|held| held.borrow_mut().clear());
        assert_eq!(super::LAST.get(), super::NO_LAST);
        tallies.count(Step::Succeeded);
        assert_eq!(tallies.totals(), totals(1, 1, 0));
        assert_eq!(tallies.tally_count(), 2, "taken again, not a new one");
    }

    #[test]
    fn a_dropped_bus_leaves_no_tally_behind_on_the_thread() {
        for _ in 0..100 {
            SyncTallies::new().count(Step::Started);
        }
        super::HELD.with(|held| assert!(held.borrow().len() <= 1, "{} tallies held", held.borrow().len()));
    }
}
