//! One lane of a mailbox: a bounded crossbeam channel plus the senders waiting for room.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::task::Waker;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// A bounded FIFO lane. Both channel ends live here; the mailbox decides who may push and pop
/// (many senders, one receiver), and closing is the mailbox's job, not the channel's.
pub(super) struct Lane<M> {
    tx: Sender<M>,
    rx: Receiver<M>,
    /// Waiting senders are woken once the lane holds at most this many messages.
    low_watermark: usize,
    /// Number of entries in `waiters`, readable without the lock.
    waiting: AtomicUsize,
    waiters: Mutex<Waiters>,
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
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Lane {
            tx,
            rx,
            low_watermark: capacity / 2,
            waiting: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    #[inline]
    pub(super) fn push(&self, msg: M) -> Push<M> {
        match self.tx.try_send(msg) {
            Ok(()) => Push::Done,
            // The lane owns a receiver, so the channel never disconnects.
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => Push::Full(m),
        }
    }

    /// Pops the oldest message. Only the mailbox's single receiver calls this.
    #[inline]
    pub(super) fn pop(&self) -> Option<M> {
        let msg = self.rx.try_recv().ok()?;
        // Pairs with the fence in `register`: either the waiting sender sees the slot we just
        // freed, or we see its registration and wake it (once the lane has drained to the
        // low watermark, so that a flooding sender refills in batches instead of paying a
        // wake-up per message).
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 && self.rx.len() <= self.low_watermark {
            self.wake_one();
        }
        Some(msg)
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.rx.len()
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
