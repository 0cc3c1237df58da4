//! One lane of a mailbox: bounded crossbeam channels that hold at most `capacity` messages
//! together, plus the senders waiting for room.
//!
//! A bounded (array) channel allocates and touches all of its slots when it is made: four
//! lanes of 1,024 slots of about 110 bytes are 450 KiB per mailbox, used or not, and a run
//! with 10,000 nodes spent 4 GB of its 4.8 GB on them. So a lane starts with a buffer of a
//! sixteenth of its capacity and, when that fills, adds a second of three sixteenths and a
//! third of the remaining twelve (the three sum to `capacity`, which therefore still bounds
//! what the lane holds). Most lanes never fill their first buffer.
//!
//! Order within the lane: a sender always pushes into the newest buffer it sees, and the
//! receiver always takes from the oldest non-empty one. A sender's messages in an older
//! buffer were pushed before any of its messages in a newer one, so they are taken first;
//! a sender that read the newest buffer just before another one was added may still push
//! into the older one, and that message comes after all of its own earlier ones too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Mutex, OnceLock};
use std::task::Waker;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Buffers per lane: capacities of 1/16, 3/16 and 12/16 of the lane's.
const BUFFERS: usize = 3;

/// A bounded FIFO lane. The channels' ends all live here; the mailbox decides who may push and
/// pop (many senders, one receiver), and closing is the mailbox's job, not the channels'.
pub(super) struct Lane<M> {
    buffers: [OnceLock<Buffer<M>>; BUFFERS],
    /// The capacity of each buffer.
    sizes: [usize; BUFFERS],
    /// The newest buffer (index into `buffers`); only grows.
    newest: AtomicUsize,
    /// The oldest buffer that may still hold a message or receive one; only the receiver
    /// moves it (see [`Lane::take`]).
    live_from: AtomicUsize,
    /// Waiting senders are woken once the lane holds at most this many messages.
    low_watermark: usize,
    /// Number of entries in `waiters`, readable without the lock.
    waiting: AtomicUsize,
    waiters: Mutex<Waiters>,
}

/// Both ends of one bounded channel.
struct Buffer<M> {
    tx: Sender<M>,
    rx: Receiver<M>,
}

impl<M> Buffer<M> {
    fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Buffer { tx, rx }
    }
}

/// Senders parked on a full lane, in arrival order.
#[derive(Default)]
struct Waiters {
    next_key: u64,
    queue: VecDeque<(u64, Waker)>,
}

/// Outcome of a push into a lane.
pub(super) enum Push<M> {
    Done,
    Full(M),
}

impl<M> Lane<M> {
    pub(super) fn new(capacity: usize) -> Self {
        // 1/16, 3/16 and the rest; a lane too small to split is one buffer.
        let first = capacity / 16;
        let sizes = if first == 0 {
            [capacity, 0, 0]
        } else {
            [first, 3 * first, capacity - 4 * first]
        };
        Lane {
            buffers: [
                OnceLock::from(Buffer::new(sizes[0])),
                OnceLock::new(),
                OnceLock::new(),
            ],
            sizes,
            newest: AtomicUsize::new(0),
            live_from: AtomicUsize::new(0),
            low_watermark: capacity / 2,
            waiting: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    #[inline]
    fn buffer(&self, i: usize) -> Option<&Buffer<M>> {
        self.buffers[i].get()
    }

    /// The buffers that may hold messages, oldest first.
    #[inline]
    fn existing(&self) -> impl Iterator<Item = &Buffer<M>> {
        let newest = self.newest.load(Ordering::Acquire);
        let from = self.live_from.load(Ordering::Relaxed).min(newest);
        self.buffers[from..=newest].iter().filter_map(OnceLock::get)
    }

    #[inline]
    pub(super) fn push(&self, mut msg: M) -> Push<M> {
        // SeqCst, like the mailbox's count of pushes in flight taken just before: see `take`.
        let mut i = self.newest.load(Ordering::SeqCst);
        loop {
            let Some(buffer) = self.buffer(i) else {
                return Push::Full(msg);
            };
            match buffer.tx.try_send(msg) {
                Ok(()) => return Push::Done,
                // The lane owns the receivers, so a channel never disconnects.
                Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => msg = m,
            }
            if i + 1 >= BUFFERS || self.sizes[i + 1] == 0 {
                return Push::Full(msg);
            }
            self.grow(i + 1);
            i += 1;
        }
    }

    /// Adds buffer `i` (once, whoever gets there first) and makes it the newest.
    #[cold]
    fn grow(&self, i: usize) {
        self.buffers[i].get_or_init(|| Buffer::new(self.sizes[i]));
        self.newest.fetch_max(i, Ordering::SeqCst);
    }

    /// Pops the oldest message. Only the mailbox's single receiver calls this; `state` is the
    /// mailbox's, whose count of pushes in flight (`state >= in_push`) tells when no sender
    /// can still push into an older buffer.
    #[inline]
    pub(super) fn pop(&self, state: &AtomicUsize, in_push: usize) -> Option<M> {
        let msg = self.take(state, in_push)?;
        // Pairs with the fence in `register`: either the waiting sender sees the slot we just
        // freed, or we see its registration and wake it (once the lane has drained to the
        // low watermark, so that a flooding sender refills in batches instead of paying a
        // wake-up per message).
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 && self.len() <= self.low_watermark {
            self.wake_one();
        }
        Some(msg)
    }

    /// The oldest message, from the oldest buffer that holds one.
    ///
    /// Once the lane has grown, older buffers are looked at before they are popped (their
    /// `is_empty` reads lines nobody writes any more, while an empty channel's `try_recv`
    /// costs a fence), and retired once they are empty and no push is in flight: a push that
    /// starts after that reads the newest buffer's index, so nothing can reach an older one
    /// again. The newest is popped at once: its `is_empty` would read the tail its senders
    /// are writing.
    #[inline]
    fn take(&self, state: &AtomicUsize, in_push: usize) -> Option<M> {
        let newest = self.newest.load(Ordering::SeqCst);
        let from = self.live_from.load(Ordering::Relaxed);
        if from < newest {
            // Read before looking at the buffers: quiet then means that every push into
            // an older buffer has landed before the look. All four accesses are SeqCst (the
            // growth, this load of `newest` and of the count, a sender's increment of the
            // count and its load of `newest`), so a push this load does not count comes
            // after it in their single order and reads `newest` or later.
            let quiet = state.load(Ordering::SeqCst) < in_push;
            for i in from..newest {
                if let Some(b) = self.buffer(i)
                    && !b.rx.is_empty()
                    && let Ok(m) = b.rx.try_recv()
                {
                    return Some(m);
                }
            }
            if quiet {
                self.live_from.store(newest, Ordering::Relaxed);
            }
        }
        self.buffer(newest)?.rx.try_recv().ok()
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.existing().all(|b| b.rx.is_empty())
    }

    pub(super) fn len(&self) -> usize {
        self.existing().map(|b| b.rx.len()).sum()
    }

    /// Registers (or refreshes) a sender waiting for room. `key` identifies an earlier
    /// registration of the same send; returns the key to keep.
    pub(super) fn register(&self, key: Option<u64>, waker: &Waker) -> u64 {
        let mut w = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = key
            && let Some(entry) = w.queue.iter_mut().find(|(ek, _)| *ek == k)
        {
            entry.1.clone_from(waker);
            return k;
        }
        let k = w.next_key;
        w.next_key += 1;
        w.queue.push_back((k, waker.clone()));
        self.waiting.store(w.queue.len(), Ordering::Relaxed);
        drop(w);
        fence(Ordering::SeqCst);
        k
    }

    /// Removes a registration. With `pass_on` (a send dropped before it completed), a wake-up
    /// the registration had already received is passed to the next waiting sender, so that
    /// none of them misses the room it announced.
    pub(super) fn deregister(&self, key: u64, pass_on: bool) {
        let mut w = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pos) = w.queue.iter().position(|(k, _)| *k == key) {
            w.queue.remove(pos);
            self.waiting.store(w.queue.len(), Ordering::Relaxed);
        } else if pass_on && let Some((_, next)) = w.queue.pop_front() {
            self.waiting.store(w.queue.len(), Ordering::Relaxed);
            drop(w);
            next.wake();
        }
    }

    fn wake_one(&self) {
        let mut w = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = w.queue.pop_front();
        self.waiting.store(w.queue.len(), Ordering::Relaxed);
        drop(w);
        if let Some((_, waker)) = next {
            waker.wake();
        }
    }

    /// Wakes every waiting sender (on close, so that they observe it).
    pub(super) fn wake_all(&self) {
        let mut w = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let all: Vec<_> = w.queue.drain(..).collect();
        self.waiting.store(0, Ordering::Relaxed);
        drop(w);
        for (_, waker) in all {
            waker.wake();
        }
    }
}
