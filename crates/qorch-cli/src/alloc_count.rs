//! A global allocator that can count live heap bytes, so that benchmarks report measured
//! memory (for example the bytes of one empty mailbox) instead of estimates.
//!
//! Counting is off unless a [`Counting`] guard is alive; when off, the only cost over the
//! system allocator is one relaxed atomic load per call.
#![allow(
    unsafe_code,
    reason = "a GlobalAlloc implementation is unsafe by definition"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

pub(crate) struct CountingAlloc;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are plain
// atomics and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size().cast_signed(), Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size().cast_signed(), Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size().cast_signed(), Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) {
            LIVE.fetch_add(
                new_size.cast_signed() - layout.size().cast_signed(),
                Ordering::Relaxed,
            );
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// While alive, allocations and frees (on any thread) are counted.
pub(crate) struct Counting {
    start: isize,
}

impl Counting {
    pub(crate) fn start() -> Self {
        let start = LIVE.load(Ordering::SeqCst);
        ENABLED.store(true, Ordering::SeqCst);
        Counting { start }
    }

    /// Net heap bytes allocated since `start` (frees subtracted).
    pub(crate) fn live_bytes(&self) -> isize {
        LIVE.load(Ordering::SeqCst) - self.start
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::SeqCst);
    }
}
