//! An asymmetric memory barrier: a [`light`] half for a path that runs for every event, and a
//! [`heavy`] half for one that runs rarely.
//!
//! Two threads that each write one location and then read the other's (a sync publisher
//! storing its finish and then reading whether anyone joins; a joiner registering and then
//! reading the finishes) need a full barrier between the write and the read on *both* sides,
//! or each may read the other's old value. A full barrier is a locked instruction on x86, a
//! large part of a sync publish.
//!
//! On Linux the `membarrier(2)` system call moves that cost to the rare side: it runs a full
//! barrier on every thread of the process that is running at the time (the others pass one
//! when they are scheduled again). The frequent side then only needs to keep the compiler from
//! reordering its write and read. Where the call is not available (other systems, older
//! kernels, sandboxes that refuse it) both halves are full fences.

use std::sync::atomic::{compiler_fence, fence, Ordering};
use std::sync::OnceLock;

/// Whether registering for `membarrier` succeeded, decided once per process: only once it did
/// is [`light`] a compiler fence.
static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers this process for the cheap [`light`] half, if the system allows it.
///
/// Called when a bus is built, before any of its events can pass either half. Until then, and
/// for good where registering fails, both halves are full fences. Registering takes a few
/// microseconds in a process with one thread, and milliseconds in one whose other threads run
/// already (the kernel waits for every CPU to pass a quiescent state); cheap after the first
/// call.
pub(crate) fn prepare() -> bool {
    *REGISTERED.get_or_init(register)
}

/// Whether [`light`] is only a compiler fence (the process registered for `membarrier`).
///
/// `OnceLock::get` reads with Acquire, pairing with its initialisation, though any thread that
/// can reach a bus's hot path got the bus from the thread that built it, after `prepare`.
#[inline]
pub(crate) fn is_light() -> bool {
    REGISTERED.get() == Some(&true)
}

/// The frequent half: call between the write and the read.
#[inline]
pub(crate) fn light() {
    if is_light() {
        // `heavy` runs a full barrier on this thread if it is running, so only the compiler's
        // reordering is left to prevent.
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The rare half: call between the write and the read. Returns `false` if the system
/// refused the barrier after all; the caller must then not rely on the pairing and poll.
///
/// It interrupts every CPU that runs a thread of this process (some 10 µs on two cores), so
/// call it only when the pairing matters.
pub(crate) fn heavy() -> bool {
    // A thread that reaches a bus got it from the thread that built it, after `prepare`, so
    // it reads what `light` reads on any thread that can count in that bus.
    if !is_light() {
        // `light` is a full fence: a fence on each side is enough.
        fence(Ordering::SeqCst);
        return true;
    }
    expedited_barrier()
}

#[cfg(target_os = "linux")]
fn register() -> bool {
    let wanted = libc::c_long::from(libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    let supported = membarrier(libc::MEMBARRIER_CMD_QUERY);
    supported >= 0
        && supported & wanted != 0
        && membarrier(libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
}

#[cfg(target_os = "linux")]
fn expedited_barrier() -> bool {
    let done = membarrier(libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
    if !done {
        tracing::error!(
            "busbar: membarrier failed after the process registered for it ({}); falling back to waiting",
            std::io::Error::last_os_error()
        );
    }
    done
}

/// Calls `membarrier(command, 0)`, returning its result (-1 on error).
#[cfg(target_os = "linux")]
fn membarrier(command: libc::c_int) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no memory of ours; an unknown or
    // refused command only returns an error.
    unsafe { libc::syscall(libc::SYS_membarrier, command, 0_u32) }
}

#[cfg(not(target_os = "linux"))]
fn register() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn expedited_barrier() -> bool {
    // Not reached: `register` never succeeds here. A fence keeps it harmless all the same.
    fence(Ordering::SeqCst);
    true
}

#[cfg(test)]
mod tests {
    use std::hint::spin_loop;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread;

    use super::{heavy, light};

    const ROUNDS: usize = 20_000;

    /// The store-buffering litmus test: in each round, each side writes its flag, passes its
    /// half of the barrier (`frequent`, `rare`), and reads the other's flag. Both start each
    /// round together, spinning. Returns the rounds in which neither side saw the other's write.
    fn rounds_where_both_missed(frequent: fn(), rare: fn()) -> usize {
        let frequent_flag = AtomicBool::new(false);
        let rare_flag = AtomicBool::new(false);
        let frequent_saw = AtomicBool::new(false);
        // Round r starts when `round` is 2r+1 (set by the rare side) and is over when the
        // frequent side made it 2r+2.
        let round = AtomicUsize::new(0);
        let mut both_missed = 0;
        thread::scope(|scope| {
            scope.spawn(|| {
                for r in 0..ROUNDS {
                    wait_for(&round, 2 * r + 1);
                    frequent_flag.store(true, Ordering::Relaxed);
                    frequent();
                    frequent_saw.store(rare_flag.load(Ordering::Relaxed), Ordering::Relaxed);
                    round.store(2 * r + 2, Ordering::Release);
                }
            });
            for r in 0..ROUNDS {
                frequent_flag.store(false, Ordering::Relaxed);
                rare_flag.store(false, Ordering::Relaxed);
                round.store(2 * r + 1, Ordering::Release);
                rare_flag.store(true, Ordering::Relaxed);
                rare();
                let rare_saw = frequent_flag.load(Ordering::Relaxed);
                wait_for(&round, 2 * r + 2);
                if !rare_saw && !frequent_saw.load(Ordering::Relaxed) {
                    both_missed += 1;
                }
            }
        });
        both_missed
    }

    /// Spins until `round` is `value`, giving the core away now and then: on a loaded machine
    /// the other side may not be running.
    fn wait_for(round: &AtomicUsize, value: usize) {
        let mut spins = 0_u32;
        while round.load(Ordering::Acquire) != value {
            spins += 1;
            match spins % 1_000 {
                0 => thread::yield_now(),
                _ => spin_loop(),
            }
        }
    }

    #[test]
    fn one_side_always_sees_the_other() {
        if !super::prepare() {
            // Fences on both sides, then: still worth checking.
            eprintln!("membarrier is not available here: checking a fence against a fence");
        }
        assert_eq!(super::is_light(), super::prepare(), "light() is a compiler fence once registered");
        let missed = rounds_where_both_missed(light, || assert!(heavy(), "the barrier failed"));
        assert_eq!(missed, 0, "rounds in which neither side saw the other's write");
    }

    /// The check above can fail: without the barrier, both sides miss in some rounds. (How
    /// often depends on the machine and the build; a weaker barrier than the real one, a
    /// fence on one side only, say, may well go unnoticed.)
    #[test]
    #[ignore = "a demonstration of the test's power, not of busbar; needs two idle cores"]
    fn without_the_barrier_both_sides_miss_sometimes() {
        let compiler_only = || std::sync::atomic::compiler_fence(Ordering::SeqCst);
        assert!(rounds_where_both_missed(compiler_only, compiler_only) > 0);
    }
}
