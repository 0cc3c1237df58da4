//! A mailbox's memory follows what its lanes hold, not their capacity: a runtime keeps one
//! mailbox per node, and tens of thousands of nodes with lanes of 1,024 slots allocated up
//! front once took gigabytes before a message was sent.
//!
//! One test in this binary, so that no other test allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use qorch_protocol::{MailboxConfig, Priority, PriorityMailbox};

/// Counts the bytes live on the heap.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counter is only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `GlobalAlloc::alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A message of a typical envelope's size.
type Msg = [u64; 13];

#[test]
fn a_mailbox_holds_slots_for_what_it_held_not_for_its_capacity() {
    const MAILBOXES: usize = 100;
    const CAPACITY: usize = 1024;
    let slots_of = |n: usize| (n * size_of::<Msg>()) as isize;
    let at_start = live();
    let mut boxes = Vec::with_capacity(MAILBOXES);
    for _ in 0..MAILBOXES {
        let (tx, rx) =
            PriorityMailbox::<Msg>::with_config(MailboxConfig::uniform(CAPACITY)).unwrap();
        // One message in every lane: every lane exists. (`Normal` carries 0, the others
        // `u64::MAX`.)
        for p in [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Control,
        ] {
            let mark = if p == Priority::Normal { 0 } else { u64::MAX };
            tx.try_send_with(p, [mark; 13]).unwrap();
        }
        boxes.push((tx, rx));
    }
    let per_mailbox = (live() - at_start) / MAILBOXES as isize;
    // Slots for the whole capacity would be 4 x 1,024 x 104 bytes (426 KB) a mailbox; a lane
    // that held one message has slots for a sixteenth of it.
    assert!(
        per_mailbox < slots_of(4 * CAPACITY) / 8,
        "{per_mailbox} bytes per mailbox with one message a lane"
    );

    // Filled to its capacity, a lane grows to it, in order, and no further.
    let (tx, rx) = &mut boxes[0];
    let before_fill = live();
    for i in 1..CAPACITY as u64 {
        tx.try_send_with(Priority::Normal, [i; 13]).unwrap();
    }
    assert!(
        tx.try_send_with(Priority::Normal, [0; 13]).is_err(),
        "the lane is full"
    );
    let grown = live() - before_fill;
    assert!(
        grown <= slots_of(CAPACITY) * 5 / 4,
        "{grown} bytes for {CAPACITY} messages"
    );
    // Every message once, and the `Normal` lane's in the order sent.
    let taken: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|m| m[0])
        .collect();
    assert_eq!(taken.len(), CAPACITY + 3);
    let normal: Vec<u64> = taken.into_iter().filter(|&m| m != u64::MAX).collect();
    assert_eq!(normal, (0..CAPACITY as u64).collect::<Vec<_>>());
}
