//! Small registers run on the calling thread and a layer allocates nothing: counted with a
//! global allocator that delegates to the system's and counts allocations per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use qorch_qaoa::{QaoaParams, QaoaSimulator, SimConfig, random_regular_graph};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only delegates"
)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// contract of `GlobalAlloc` holds as it does for `System`; the counter is a thread-local
// `Cell` that allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as for `dealloc`, and the caller's contract for `new_size` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn layers_of_small_registers_allocate_nothing_and_stay_on_the_calling_thread() {
    for n in [4, 8, 12] {
        let g = random_regular_graph(n, 3, 1).unwrap();
        let mut sim = QaoaSimulator::for_max_cut(&g, SimConfig::default()).unwrap();
        assert!(!sim.is_parallel(), "n = {n} runs on the calling thread");
        sim.layer(0.1, 0.2); // the phase table grows once
        let before = allocations();
        for _ in 0..10 {
            sim.layer(0.3, 0.4);
        }
        let e = sim.current_expectation();
        assert_eq!(
            allocations() - before,
            0,
            "n = {n}: allocations in 10 layers and an expectation"
        );
        assert!(e.is_finite());
        // A whole evaluation allocates only the copy of its parameters it keeps.
        let params = QaoaParams::fixed_angles_3_regular(3).unwrap();
        sim.expectation(&params).unwrap();
        let before = allocations();
        sim.expectation(&params).unwrap();
        assert!(allocations() - before <= 3, "n = {n}");
    }
}
