//! Multi-lane priority mailboxes.
//!
//! A mailbox has one bounded FIFO lane per [`Priority`] class, many cloneable
//! [`MailboxSender`]s and one receiving end, the [`PriorityMailbox`], which is usable blocking
//! ([`PriorityMailbox::recv_blocking`]) and as an async [`Stream`].
//!
//! # Ordering
//!
//! The receiver serves the highest non-empty lane first. Within one lane, messages from one
//! sender arrive in the order they were sent (each lane is a single FIFO queue).
//!
//! # Starvation guard
//!
//! Strict priority alone would let a flood of high-class messages starve the lower lanes
//! forever. With a starvation limit `K` ([`MailboxConfig::starvation_limit`], at least
//! `2 * Priority::COUNT`), a lane that holds messages is served at least once every `K`
//! messages the receiver takes: a lane passed over `K - Priority::COUNT` times in a row
//! becomes *urgent*, and urgent lanes are served first, the longest-waiting one first.
//!
//! # Backpressure
//!
//! Every lane is bounded. [`MailboxSender::try_send`] gives the message back with
//! [`TrySendError::Full`] when its lane is full; [`MailboxSender::send`] waits for room
//! (asynchronously; [`MailboxSender::send_blocking`] parks the thread). Waiting senders are
//! woken once their lane has drained to half its capacity (or the mailbox closes), so that a
//! sender flooding a lane refills it in batches rather than paying a wake-up per message.
//! Lanes are independent: a full data lane never delays a `Control` message, which has its own
//! lane and capacity.
//!
//! # Memory
//!
//! An empty mailbox is one small allocation shared by its ends; a lane is created the first
//! time a message of its class is sent, so a mailbox that only ever sees `Normal` traffic
//! never pays for the other three lanes. A lane starts with slots for a sixteenth of its
//! capacity and adds more (three sixteenths, then the rest) only when they fill, so a mailbox
//! with lanes of 1,024 messages that never holds more than 64 of a class keeps 64 slots for
//! it, not 1,024.
//!
//! # Closing and draining
//!
//! [`PriorityMailbox::close`] stops the mailbox from accepting messages: later sends fail with
//! `Closed` and give the message back, and senders waiting for room wake up with `Closed`.
//! Everything accepted before the close stays in the mailbox and is still delivered by `recv`
//! (or by [`PriorityMailbox::drain`], in priority order) before the receiver reports the end.
//! When every sender is dropped, the receiver likewise delivers what is left and then ends.
//! A message is accepted exactly when a send returns `Ok`; an accepted message is delivered
//! exactly once, unless the receiving end is dropped without draining.
//!
//! # Examples
//!
//! ```
//! use qorch_protocol::{PriorityMailbox, Priority};
//!
//! let (tx, mut mailbox) = PriorityMailbox::<&'static str>::bounded(16);
//! tx.try_send_with(Priority::Low, "report").unwrap();
//! tx.try_send_with(Priority::Control, "stop").unwrap();
//! assert_eq!(mailbox.try_recv(), Ok("stop"));
//! assert_eq!(mailbox.try_recv(), Ok("report"));
//! ```

mod block;

pub use block::block_on_until;
mod lane;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use crossbeam_utils::Backoff;
use futures_core::Stream;

use crate::{Message, Priority};
use lane::{Lane, Push};

const LANES: usize = Priority::COUNT;

// The mailbox state word.
/// The receiver closed the mailbox.
const CLOSED: usize = 1;
/// Every sender was dropped.
const DISCONNECTED: usize = 1 << 1;
/// The receiver is (about to be) asleep and must be woken by the next push.
const RX_WAITING: usize = 1 << 2;
/// One sender inside a push; the count of them occupies the upper bits.
const IN_PUSH: usize = 1 << 3;
const ENDED: usize = CLOSED | DISCONNECTED;

/// Configuration of a [`PriorityMailbox`].
///
/// # Examples
///
/// ```
/// use qorch_protocol::{MailboxConfig, Priority};
///
/// let config = MailboxConfig::default()
///     .with_capacity(Priority::Low, 4096)
///     .with_starvation_limit(16);
/// assert_eq!(config.capacity(Priority::Low), 4096);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxConfig {
    /// Capacity (in messages) of each lane, indexed by [`Priority::lane`].
    pub capacities: [usize; LANES],
    /// The starvation limit `K`: a lane holding messages is served at least once every `K`
    /// messages taken. Must be at least `2 * Priority::COUNT`.
    pub starvation_limit: usize,
}

impl MailboxConfig {
    /// Default capacity of each lane.
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// Default starvation limit.
    pub const DEFAULT_STARVATION_LIMIT: usize = 32;
    /// Smallest allowed starvation limit.
    pub const MIN_STARVATION_LIMIT: usize = 2 * LANES;

    /// Every lane with the same capacity and the default starvation limit.
    pub const fn uniform(capacity: usize) -> Self {
        MailboxConfig {
            capacities: [capacity; LANES],
            starvation_limit: Self::DEFAULT_STARVATION_LIMIT,
        }
    }

    /// Sets the capacity of one lane.
    #[must_use]
    pub const fn with_capacity(mut self, priority: Priority, capacity: usize) -> Self {
        self.capacities[priority.lane()] = capacity;
        self
    }

    /// Sets the starvation limit.
    #[must_use]
    pub const fn with_starvation_limit(mut self, limit: usize) -> Self {
        self.starvation_limit = limit;
        self
    }

    /// The capacity of the lane for `priority`.
    pub const fn capacity(&self, priority: Priority) -> usize {
        self.capacities[priority.lane()]
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// A zero capacity, or a starvation limit below [`MailboxConfig::MIN_STARVATION_LIMIT`].
    pub fn validate(&self) -> Result<(), MailboxConfigError> {
        for p in Priority::DESCENDING {
            if self.capacity(p) == 0 {
                return Err(MailboxConfigError::ZeroCapacity(p));
            }
        }
        if self.starvation_limit < Self::MIN_STARVATION_LIMIT {
            return Err(MailboxConfigError::StarvationLimitTooSmall {
                limit: self.starvation_limit,
                min: Self::MIN_STARVATION_LIMIT,
            });
        }
        Ok(())
    }
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self::uniform(Self::DEFAULT_CAPACITY)
    }
}

/// An invalid [`MailboxConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxConfigError {
    /// A lane would hold nothing.
    #[error("the {0} lane has capacity 0: every lane needs room for at least one message")]
    ZeroCapacity(Priority),
    /// The starvation limit cannot be honoured with this many lanes.
    #[error("starvation limit {limit} is too small: it must be at least {min}")]
    StarvationLimitTooSmall {
        /// The limit asked for.
        limit: usize,
        /// The smallest limit allowed.
        min: usize,
    },
}

/// Error of [`MailboxSender::try_send`]: the message is given back.
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
pub enum TrySendError<M> {
    /// The message's lane is full.
    #[error("mailbox lane is full")]
    Full(M),
    /// The mailbox is closed or its receiver is gone.
    #[error("mailbox is closed")]
    Closed(M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m) => m,
        }
    }

    /// Whether the mailbox was closed (rather than full).
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Error of [`MailboxSender::send`]: the mailbox closed; the message is given back.
#[derive(PartialEq, Eq, Clone, Copy, thiserror::Error)]
#[error("mailbox is closed")]
pub struct SendError<M>(pub M);

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

/// Error of [`PriorityMailbox::try_recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is waiting now, but more may come.
    #[error("mailbox is empty")]
    Empty,
    /// The mailbox is closed (or every sender is gone) and everything accepted was delivered.
    #[error("mailbox is closed and drained")]
    Ended,
}

/// Error of [`PriorityMailbox::recv_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    #[error("timed out waiting for a message")]
    Timeout,
    /// The mailbox is closed (or every sender is gone) and everything accepted was delivered.
    #[error("mailbox is closed and drained")]
    Ended,
}

/// Counts kept by the receiving end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxStats {
    /// Messages delivered, per lane ([`Priority::lane`] index).
    pub delivered: [u64; LANES],
    /// Deliveries that the starvation guard made out of strict priority order.
    pub starvation_overrides: u64,
}

impl MailboxStats {
    /// Messages delivered of one class.
    pub fn delivered(&self, priority: Priority) -> u64 {
        self.delivered[priority.lane()]
    }

    /// Messages delivered in total.
    pub fn total(&self) -> u64 {
        self.delivered.iter().sum()
    }
}

/// State shared by the ends of one mailbox.
///
/// Laid out so that the word every push writes (`state`) never shares a cache line with the
/// lane pointers the receiver reads on every take: `lanes` starts 64 bytes after `state`, so
/// the two are on different lines wherever the allocation lands. Without this the receiver
/// missed its cache on every message whenever they shared a line (measured: half the
/// throughput).
#[repr(C)]
struct Shared<M> {
    /// `CLOSED | DISCONNECTED | RX_WAITING` bits and the count of senders inside a push.
    state: AtomicUsize,
    senders: AtomicUsize,
    rx_waker: AtomicWaker,
    capacities: [u32; LANES],
    _separate_lines: [u8; 8],
    lanes: [OnceLock<Box<Lane<M>>>; LANES],
}

impl<M> Shared<M> {
    #[inline]
    fn lane(&self, index: usize) -> Option<&Lane<M>> {
        self.lanes[index].get().map(|b| &**b)
    }

    #[inline]
    fn lane_or_init(&self, index: usize) -> &Lane<M> {
        self.lanes[index].get_or_init(|| Box::new(Lane::new(self.capacities[index] as usize)))
    }

    /// Ends a push: drops the in-push count and wakes the receiver if it waits.
    #[inline]
    fn leave_push(&self) {
        let prev = self.state.fetch_sub(IN_PUSH, Ordering::AcqRel);
        if prev & RX_WAITING != 0 {
            self.wake_receiver();
        }
    }

    #[cold]
    fn wake_receiver(&self) {
        self.state.fetch_and(!RX_WAITING, Ordering::AcqRel);
        self.rx_waker.wake();
    }

    fn all_empty(&self) -> bool {
        (0..LANES).all(|i| self.lane(i).is_none_or(Lane::is_empty))
    }

    fn wake_all_senders(&self) {
        for i in 0..LANES {
            if let Some(lane) = self.lane(i) {
                lane.wake_all();
            }
        }
    }
}

/// The receiving end of a multi-lane priority mailbox; see the [module docs](self).
///
/// Created with [`PriorityMailbox::bounded`] or [`PriorityMailbox::with_config`], which also
/// return the first [`MailboxSender`].
pub struct PriorityMailbox<M> {
    shared: Arc<Shared<M>>,
    /// Consecutive deliveries that passed over each non-empty lane.
    passed_over: [u32; LANES],
    /// Whether some lane has been passed over `urgent_after` times (then the guard decides).
    any_urgent: bool,
    /// The lane the last message came from.
    last_lane: usize,
    urgent_after: u32,
    stats: MailboxStats,
}

/// A cloneable sending end of a [`PriorityMailbox`].
pub struct MailboxSender<M> {
    shared: Arc<Shared<M>>,
}

impl<M> PriorityMailbox<M> {
    /// A mailbox whose lanes each hold up to `capacity` messages, with the default
    /// starvation limit.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or above `u32::MAX`; use [`PriorityMailbox::with_config`] to get an
    /// error instead.
    pub fn bounded(capacity: usize) -> (MailboxSender<M>, PriorityMailbox<M>) {
        Self::with_config(MailboxConfig::uniform(capacity)).expect("invalid mailbox capacity")
    }

    /// A mailbox with the given configuration.
    ///
    /// # Errors
    ///
    /// See [`MailboxConfig::validate`]; capacities above `u32::MAX` are also refused.
    pub fn with_config(
        config: MailboxConfig,
    ) -> Result<(MailboxSender<M>, PriorityMailbox<M>), MailboxConfigError> {
        config.validate()?;
        Ok(Self::from_valid_config(config))
    }

    /// A mailbox from a configuration that passed [`MailboxConfig::validate`].
    pub(crate) fn from_valid_config(
        config: MailboxConfig,
    ) -> (MailboxSender<M>, PriorityMailbox<M>) {
        let mut capacities = [0_u32; LANES];
        for (i, c) in config.capacities.iter().enumerate() {
            capacities[i] = u32::try_from(*c).unwrap_or(u32::MAX);
        }
        let shared = Arc::new(Shared {
            state: AtomicUsize::new(0),
            senders: AtomicUsize::new(1),
            rx_waker: AtomicWaker::new(),
            capacities,
            _separate_lines: [0; 8],
            lanes: Default::default(),
        });
        let urgent_after = u32::try_from(config.starvation_limit - LANES).unwrap_or(u32::MAX);
        let rx = PriorityMailbox {
            shared: Arc::clone(&shared),
            passed_over: [0; LANES],
            any_urgent: false,
            last_lane: LANES - 1,
            urgent_after,
            stats: MailboxStats::default(),
        };
        (MailboxSender { shared }, rx)
    }

    /// Takes the next message by the serving rule, if any is waiting.
    #[inline]
    fn take(&mut self) -> Option<M> {
        if self.any_urgent {
            return self.take_with_guard();
        }
        let shared = &*self.shared;
        for i in 0..LANES {
            let Some(lane) = shared.lane(i) else { continue };
            // Lanes above the one served last are usually empty: checking costs two plain
            // loads, a failed pop a fence.
            if i < self.last_lane && lane.is_empty() {
                self.passed_over[i] = 0;
                continue;
            }
            let Some(msg) = lane.pop(&shared.state, IN_PUSH) else {
                self.passed_over[i] = 0;
                continue;
            };
            self.last_lane = i;
            self.delivered(i, i);
            return Some(msg);
        }
        None
    }

    /// The serving rule when some lane is urgent: urgent lanes first, the longest-waiting one
    /// first (ties to the higher class); otherwise the highest non-empty lane.
    #[cold]
    fn take_with_guard(&mut self) -> Option<M> {
        let shared = &*self.shared;
        let mut first = None;
        let mut urgent: Option<usize> = None;
        for i in 0..LANES {
            if shared.lane(i).is_none_or(Lane::is_empty) {
                self.passed_over[i] = 0;
                continue;
            }
            first.get_or_insert(i);
            if self.passed_over[i] >= self.urgent_after
                && urgent.is_none_or(|u| self.passed_over[i] > self.passed_over[u])
            {
                urgent = Some(i);
            }
        }
        let first = first?;
        let chosen = urgent.unwrap_or(first);
        // Only this receiver pops, so a lane seen non-empty still holds a message.
        let msg = shared
            .lane(chosen)
            .and_then(|l| l.pop(&shared.state, IN_PUSH))?;
        if chosen != first {
            self.stats.starvation_overrides += 1;
        }
        self.delivered(first, chosen);
        Some(msg)
    }

    /// Bookkeeping after delivering from lane `chosen` when `first` was the highest non-empty
    /// lane: every other lane from `first` down that still holds messages was passed over.
    #[inline]
    fn delivered(&mut self, first: usize, chosen: usize) {
        self.stats.delivered[chosen] += 1;
        self.passed_over[chosen] = 0;
        let mut any_urgent = false;
        for i in first..LANES {
            if i == chosen {
                continue;
            }
            match self.shared.lane(i) {
                Some(lane) if !lane.is_empty() => {
                    self.passed_over[i] += 1;
                    any_urgent |= self.passed_over[i] >= self.urgent_after;
                }
                _ => self.passed_over[i] = 0,
            }
        }
        self.any_urgent = any_urgent;
    }

    /// Whether the mailbox has ended: closed or disconnected, no push in flight, nothing left.
    fn ended(&self, state: usize) -> bool {
        state & ENDED != 0 && state < IN_PUSH && self.shared.all_empty()
    }

    /// Polls for the next message; `Ready(None)` once the mailbox has ended.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<M>> {
        if let Some(msg) = self.take() {
            return Poll::Ready(Some(msg));
        }
        self.shared.rx_waker.register(cx.waker());
        let state = self.shared.state.fetch_or(RX_WAITING, Ordering::AcqRel);
        if let Some(msg) = self.take() {
            self.shared.state.fetch_and(!RX_WAITING, Ordering::AcqRel);
            return Poll::Ready(Some(msg));
        }
        if self.ended(state) {
            self.shared.state.fetch_and(!RX_WAITING, Ordering::AcqRel);
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Receives the next message, waiting asynchronously; `None` once the mailbox has ended.
    pub fn recv(&mut self) -> impl Future<Output = Option<M>> + '_ {
        poll_fn(|cx| self.poll_recv(cx))
    }

    /// Receives the next message, parking the thread while the mailbox is empty; `None` once
    /// the mailbox has ended.
    pub fn recv_blocking(&mut self) -> Option<M> {
        // Spin, then yield, briefly before parking: waking a parked thread costs far more than
        // the gap between two messages of a busy sender.
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if let Some(msg) = self.take() {
                return Some(msg);
            }
            backoff.snooze();
        }
        block::block_on(self.recv())
    }

    /// Like [`recv_blocking`](Self::recv_blocking), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time, [`RecvTimeoutError::Ended`]
    /// once the mailbox has ended.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<M, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        match block::block_on_until(self.recv(), deadline) {
            Some(Some(msg)) => Ok(msg),
            Some(None) => Err(RecvTimeoutError::Ended),
            None => {
                self.shared.state.fetch_and(!RX_WAITING, Ordering::AcqRel);
                Err(RecvTimeoutError::Timeout)
            }
        }
    }

    /// Takes the next message if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing is waiting, [`TryRecvError::Ended`] once the mailbox
    /// has ended.
    pub fn try_recv(&mut self) -> Result<M, TryRecvError> {
        if let Some(msg) = self.take() {
            return Ok(msg);
        }
        let state = self.shared.state.load(Ordering::Acquire);
        // A push may have landed between `take` and the load.
        if let Some(msg) = self.take() {
            return Ok(msg);
        }
        if self.ended(state) {
            Err(TryRecvError::Ended)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Stops accepting messages. Later sends fail with `Closed`; senders waiting for room wake
    /// up with `Closed`; everything accepted before stays and is still delivered.
    pub fn close(&mut self) {
        self.shared.state.fetch_or(CLOSED, Ordering::AcqRel);
        self.shared.wake_all_senders();
    }

    /// Closes the mailbox and returns everything it still holds, in strict priority order
    /// (and FIFO within a lane). Waits for sends already under way to finish, so that the
    /// returned messages are exactly those accepted and not yet delivered.
    pub fn drain(&mut self) -> Vec<M> {
        self.close();
        while self.shared.state.load(Ordering::Acquire) >= IN_PUSH {
            std::thread::yield_now();
        }
        let mut out = Vec::new();
        for i in 0..LANES {
            if let Some(lane) = self.shared.lane(i) {
                while let Some(msg) = lane.pop(&self.shared.state, IN_PUSH) {
                    self.stats.delivered[i] += 1;
                    out.push(msg);
                }
            }
        }
        out
    }

    /// Whether the mailbox was closed by [`close`](Self::close) or [`drain`](Self::drain).
    pub fn is_closed(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Number of messages waiting, over all lanes.
    pub fn len(&self) -> usize {
        (0..LANES)
            .filter_map(|i| self.shared.lane(i))
            .map(Lane::len)
            .sum()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.shared.all_empty()
    }

    /// The highest class with a message waiting, if any (a snapshot: senders may add more).
    pub fn highest_waiting(&self) -> Option<Priority> {
        (0..LANES)
            .find(|&i| self.shared.lane(i).is_some_and(|l| !l.is_empty()))
            .and_then(Priority::from_lane)
    }

    /// Number of messages waiting in the lane of `priority`.
    pub fn lane_len(&self, priority: Priority) -> usize {
        self.shared.lane(priority.lane()).map_or(0, Lane::len)
    }

    /// Number of live senders.
    pub fn sender_count(&self) -> usize {
        self.shared.senders.load(Ordering::Acquire)
    }

    /// Delivery counts so far.
    pub fn stats(&self) -> MailboxStats {
        self.stats
    }
}

impl<M> Stream for PriorityMailbox<M> {
    type Item = M;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<M> Drop for PriorityMailbox<M> {
    /// Closes the mailbox and drops what it still holds: the senders may outlive the
    /// receiver, and a message left in a lane would live (and keep whatever waits on it
    /// waiting) until the last sender is gone.
    fn drop(&mut self) {
        drop(self.drain());
    }
}

impl<M> fmt::Debug for PriorityMailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityMailbox")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<M> MailboxSender<M> {
    /// Sends with an explicit priority class if the lane has room.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the lane is full, [`TrySendError::Closed`] if the mailbox is
    /// closed; both give the message back.
    #[inline]
    pub fn try_send_with(&self, priority: Priority, msg: M) -> Result<(), TrySendError<M>> {
        let shared = &*self.shared;
        // SeqCst: the lanes' growth relies on it (see `Lane::take`); on x86 the same instruction.
        let prev = shared.state.fetch_add(IN_PUSH, Ordering::SeqCst);
        if prev & CLOSED != 0 {
            shared.leave_push();
            return Err(TrySendError::Closed(msg));
        }
        let pushed = shared.lane_or_init(priority.lane()).push(msg);
        shared.leave_push();
        match pushed {
            Push::Done => Ok(()),
            Push::Full(m) => Err(TrySendError::Full(m)),
        }
    }

    /// Sends with an explicit priority class, waiting asynchronously for room in its lane.
    ///
    /// # Errors
    ///
    /// [`SendError`] (with the message) if the mailbox is or becomes closed first.
    pub fn send_with(&self, priority: Priority, msg: M) -> SendFuture<'_, M> {
        SendFuture {
            sender: self,
            priority,
            msg: Some(msg),
            key: None,
        }
    }

    /// Sends with an explicit priority class, parking the thread until its lane has room.
    ///
    /// # Errors
    ///
    /// [`SendError`] (with the message) if the mailbox is or becomes closed first.
    pub fn send_blocking_with(&self, priority: Priority, msg: M) -> Result<(), SendError<M>> {
        let mut msg = msg;
        let backoff = Backoff::new();
        loop {
            match self.try_send_with(priority, msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(m)) => return Err(SendError(m)),
                Err(TrySendError::Full(m)) if !backoff.is_completed() => {
                    msg = m;
                    backoff.snooze();
                }
                Err(TrySendError::Full(m)) => {
                    return block::block_on(self.send_with(priority, m));
                }
            }
        }
    }

    /// Whether the mailbox was closed (sends would fail).
    pub fn is_closed(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Whether two senders feed the same mailbox.
    pub fn same_mailbox(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Number of messages waiting in the mailbox, over all lanes (a snapshot: it may change
    /// at once). Observers read it without disturbing the receiver.
    pub fn len(&self) -> usize {
        (0..LANES)
            .filter_map(|i| self.shared.lane(i))
            .map(Lane::len)
            .sum()
    }

    /// Whether no message is waiting in the mailbox (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.shared.all_empty()
    }
}

impl<M: Message> MailboxSender<M> {
    /// Sends with the message's own priority if its lane has room.
    ///
    /// # Errors
    ///
    /// As [`try_send_with`](Self::try_send_with).
    #[inline]
    pub fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.try_send_with(msg.priority(), msg)
    }

    /// Sends with the message's own priority, waiting asynchronously for room.
    ///
    /// # Errors
    ///
    /// As [`send_with`](Self::send_with).
    pub fn send(&self, msg: M) -> SendFuture<'_, M> {
        self.send_with(msg.priority(), msg)
    }

    /// Sends with the message's own priority, parking the thread until there is room.
    ///
    /// # Errors
    ///
    /// As [`send_blocking_with`](Self::send_blocking_with).
    pub fn send_blocking(&self, msg: M) -> Result<(), SendError<M>> {
        self.send_blocking_with(msg.priority(), msg)
    }
}

impl<M> Clone for MailboxSender<M> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        MailboxSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> Drop for MailboxSender<M> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let prev = self.shared.state.fetch_or(DISCONNECTED, Ordering::AcqRel);
            if prev & RX_WAITING != 0 {
                self.shared.wake_receiver();
            }
        }
    }
}

impl<M> fmt::Debug for MailboxSender<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxSender")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Future of [`MailboxSender::send`]: resolves once the message is accepted or the mailbox
/// closes. Dropping it before it resolves drops the message unsent.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, M> {
    sender: &'a MailboxSender<M>,
    priority: Priority,
    msg: Option<M>,
    /// Our registration in the lane's list of senders waiting for room.
    key: Option<u64>,
}

// The message is only ever moved, never pinned in place.
impl<M> Unpin for SendFuture<'_, M> {}

impl<M> SendFuture<'_, M> {
    fn finish(&mut self) {
        if let Some(key) = self.key.take()
            && let Some(lane) = self.sender.shared.lane(self.priority.lane())
        {
            lane.deregister(key, false);
        }
    }
}

impl<M> Future for SendFuture<'_, M> {
    type Output = Result<(), SendError<M>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = Pin::into_inner(self);
        let msg = this.msg.take().expect("SendFuture polled after completion");
        let msg = match this.sender.try_send_with(this.priority, msg) {
            Ok(()) => {
                this.finish();
                return Poll::Ready(Ok(()));
            }
            Err(TrySendError::Closed(m)) => {
                this.finish();
                return Poll::Ready(Err(SendError(m)));
            }
            Err(TrySendError::Full(m)) => m,
        };
        // A full lane exists. Register, then try again so that room freed in between is seen.
        let lane = this.sender.shared.lane_or_init(this.priority.lane());
        this.key = Some(lane.register(this.key, cx.waker()));
        match this.sender.try_send_with(this.priority, msg) {
            Ok(()) => {
                this.finish();
                Poll::Ready(Ok(()))
            }
            Err(TrySendError::Closed(m)) => {
                this.finish();
                Poll::Ready(Err(SendError(m)))
            }
            Err(TrySendError::Full(m)) => {
                this.msg = Some(m);
                Poll::Pending
            }
        }
    }
}

impl<M> Drop for SendFuture<'_, M> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Some(lane) = self.sender.shared.lane(self.priority.lane())
        {
            lane.deregister(key, true);
        }
    }
}

#[cfg(test)]
mod tests;
