//! Asking the CPU for a job's cache lines before the queue's lock is taken.
//!
//! A job passes from a publisher's CPU to a worker's through the queue's chunk: the publisher
//! writes the lines of its slot, the worker reads them. The worker also takes the queue's
//! lock, whose cache line the publisher held last. Taking a lock is a locked instruction, and
//! the CPU starts no later memory access before it completes, so the fetch of the slot's lines
//! waited for the lock's line: two trips to the other CPU, one after the other, for every job.
//! A worker knows, before it locks, where the next job most likely lies (the slot after the
//! last one taken), so it asks for those lines first, and the two fetches overlap.
//!
//! The publisher's side, fetching the slot it will write before it locks, is not done. With
//! `_mm_prefetch`'s write hint, a generic x86-64 build emits a read prefetch, which leaves the
//! line shared and saved nothing; with `PREFETCHW` itself (inline assembly, after asking
//! CPUID), the publisher released the lock sooner in a timeline of round trips taken in a
//! scratch build, but `busbar bench --scenario thread-round-trip` showed no difference.
//!
//! A prefetch is only a hint: it never faults and changes nothing a program can observe but
//! timing, so a stale or wrong address (a chunk since freed, another lane's slot) costs a
//! wasted fetch and nothing else.

use std::mem::size_of;

use super::job::Job;

/// Size of a cache line on the CPUs busbar is measured on.
const LINE: usize = 64;

/// Fetches the lines of the job slot at `address` (0: none) to be read.
pub(super) fn slot_to_read(address: usize) {
    if address == 0 {
        return;
    }
    let end = address.saturating_add(size_of::<Job>());
    let mut line = address & !(LINE - 1);
    while line < end {
        fetch(line);
        line += LINE;
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fetch(address: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch does not access memory in any way a program can observe: it never
    // faults, whatever the address, and changes no value (see the module's comment).
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address as *const i8) };
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn fetch(_address: usize) {}
