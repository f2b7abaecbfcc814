//! Asking the CPU for the cache lines of a job's hand-over before they are needed.
//!
//! A job passes from a publisher's CPU to a worker's through the queue's chunk: the publisher
//! writes the lines of its slot, the worker reads them. Both take the queue's lock, whose cache
//! line the other side held last. Taking a lock is a locked instruction, and the CPU starts no
//! later memory access before it completes; x86 also drains its store buffer there, so it
//! waits for every line the thread has written but does not yet own. Each of those fetches is
//! a trip to the other CPU, and waiting for them one after the other was most of what a
//! round trip cost beyond the floor's.
//!
//! - **The worker** knows, before it locks, where the next job most likely lies (the slot after
//!   the last one taken), so it asks for those lines as soon as its watch sees a push, and the
//!   fetches of the slot and of the lock's line overlap.
//! - **The publisher** knows, when a publish begins, where its push will most likely go (the
//!   slot after its last push), so it asks for the lock's line and those lines *to write*
//!   before it checks the event, looks up its handler and makes its result's channel: the
//!   fetches overlap that work, and by the push the lines are its own. Asking to read, as
//!   `_mm_prefetch`'s write hint does on generic x86-64 (it compiles to a read prefetch), saved
//!   nothing: the line comes shared, and writing it still waits for the other copy to go.
//!   `PREFETCHW` asks for the line to own; it is used where the CPU has it, and elsewhere the
//!   publisher asks for nothing. Asked just before the lock, as an earlier session tried, it
//!   left no work to overlap, and the bench showed no difference.
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
    for line in slot_lines(address) {
        fetch(line);
    }
}

/// Fetches, to be written, the line at `lock` and the lines of the job slot at `slot` (0:
/// none); a no-op where the CPU cannot fetch to write (`write_prefetch`).
pub(super) fn lines_to_write(write_prefetch: WritePrefetch, lock: usize, slot: usize) {
    if let WritePrefetch::Available = write_prefetch {
        fetch_to_write(lock);
        for line in slot_lines(slot) {
            fetch_to_write(line);
        }
    }
}

/// Whether this CPU can fetch a line to own it (`PREFETCHW`), asked once per queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WritePrefetch {
    Available,
    Unavailable,
}

impl WritePrefetch {
    pub(super) fn detect() -> WritePrefetch {
        if cpu_has_prefetchw() {
            WritePrefetch::Available
        } else {
            WritePrefetch::Unavailable
        }
    }
}

/// The starts of the cache lines that a job at `address` lies on; none for 0.
fn slot_lines(address: usize) -> impl Iterator<Item = usize> {
    let end = if address == 0 { 0 } else { address.saturating_add(size_of::<Job>()) };
    (address & !(LINE - 1)..end).step_by(LINE)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fetch(address: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: a prefetch does not access memory in any way a program can observe: it never
    // faults, whatever the address, and changes no value (see the module's comment).
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address as *const i8) };
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fetch_to_write(address: usize) {
    // SAFETY: as in `fetch`: `PREFETCHW` is a hint that never faults and changes no value.
    // Only called once CPUID said the CPU has it (`WritePrefetch::detect`): elsewhere the
    // opcode may be undefined.
    unsafe {
        std::arch::asm!("prefetchw [{line}]", line = in(reg) address, options(nostack, preserves_flags, readonly));
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_prefetchw() -> bool {
    let features = raw_cpuid::CpuId::new().get_extended_processor_and_feature_identifiers();
    features.is_some_and(|features| features.has_prefetchw())
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn fetch(_address: usize) {}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn fetch_to_write(_address: usize) {}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_prefetchw() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_spans_the_lines_it_touches_and_no_slot_none() {
        assert_eq!(slot_lines(0).count(), 0);
        let aligned: Vec<usize> = slot_lines(4 * LINE).collect();
        assert_eq!(aligned.first(), Some(&(4 * LINE)));
        assert_eq!(aligned.len(), size_of::<Job>().div_ceil(LINE));
        // Starting mid-line, the slot reaches one line further, and the first line is its own.
        let unaligned: Vec<usize> = slot_lines(4 * LINE + LINE / 2).collect();
        assert_eq!(unaligned.first(), Some(&(4 * LINE)));
        assert_eq!(unaligned.len(), (LINE / 2 + size_of::<Job>()).div_ceil(LINE));
    }

    #[test]
    fn prefetching_any_address_is_harmless() {
        // Stale hints point anywhere, freed memory included: the hints must never fault.
        let write_prefetch = WritePrefetch::detect();
        lines_to_write(write_prefetch, 8, usize::MAX - 64);
        slot_to_read(usize::MAX - 64);
        let job_sized = [0u8; 4096];
        lines_to_write(write_prefetch, job_sized.as_ptr() as usize, job_sized.as_ptr() as usize + 64);
    }
}
