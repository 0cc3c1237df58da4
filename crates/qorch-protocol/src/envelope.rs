//! Envelopes: a payload with its routing and delivery metadata.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Address, Message, Priority};

/// The identity of an envelope: its sender and the sender's sequence number.
///
/// Redelivering an envelope keeps its id, which is what lets a receiver de-duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnvelopeId {
    /// The sender.
    pub from: Address,
    /// The sender's sequence number.
    pub seq: u64,
}

/// Links a reply to the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(pub u64);

/// A point in wall-clock time after which a message is no longer worth handling.
///
/// Stored as microseconds since the Unix epoch so that it survives the wire between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Deadline(pub u64);

impl Deadline {
    /// The deadline `timeout` from now (saturating far in the future).
    pub fn after(timeout: Duration) -> Self {
        Self::at(SystemTime::now() + timeout)
    }

    /// The deadline at the given wall-clock time (times before the epoch clamp to the epoch).
    pub fn at(time: SystemTime) -> Self {
        let micros = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        Deadline(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_expired_at(self, now: SystemTime) -> bool {
        Deadline::at(now) >= self
    }

    /// Whether the deadline has passed.
    pub fn is_expired(self) -> bool {
        self.is_expired_at(SystemTime::now())
    }

    /// Time left until the deadline, zero if it has passed.
    pub fn remaining(self) -> Duration {
        let now = Deadline::at(SystemTime::now());
        Duration::from_micros(self.0.saturating_sub(now.0))
    }
}

/// A payload with its routing and delivery metadata.
///
/// The priority starts as the payload's own [`Message::priority`] and may be overridden with
/// [`Envelope::with_priority`]. An envelope is itself a [`Message`] whose priority is that field,
/// so `PriorityMailbox<Envelope<M>>` routes by the envelope's class.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{Address, AgentId, ClusterId, Envelope, Message, Priority};
///
/// let env = Envelope::new(Address::Agent(AgentId(1)), ClusterId(0).into(), 41, 7_u32)
///     .with_priority(Priority::High);
/// assert_eq!(env.priority(), Priority::High);
/// assert_eq!(env.id().seq, 41);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<M> {
    /// The sender.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// The priority class the envelope travels with.
    pub priority: Priority,
    /// The sender's sequence number (see [`Sequencer`]).
    pub seq: u64,
    /// For requests and replies: the id linking them.
    pub correlation: Option<CorrelationId>,
    /// When set, the message should be discarded (and reported) rather than handled late.
    pub deadline: Option<Deadline>,
    /// Whether the receiver must acknowledge it (reliable delivery).
    pub ack_required: bool,
    /// The message itself.
    pub payload: M,
}

impl<M: Message> Envelope<M> {
    /// A new envelope with the payload's own priority, no correlation, no deadline and no
    /// acknowledgement.
    pub fn new(from: Address, to: Address, seq: u64, payload: M) -> Self {
        Envelope {
            from,
            to,
            priority: payload.priority(),
            seq,
            correlation: None,
            deadline: None,
            ack_required: false,
            payload,
        }
    }
}

impl<M> Envelope<M> {
    /// The envelope's identity: `(from, seq)`.
    #[inline]
    pub fn id(&self) -> EnvelopeId {
        EnvelopeId {
            from: self.from,
            seq: self.seq,
        }
    }

    /// Overrides the priority class.
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the correlation id (for a request or its reply).
    #[must_use]
    pub fn with_correlation(mut self, id: CorrelationId) -> Self {
        self.correlation = Some(id);
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Marks the envelope as requiring an acknowledgement.
    #[must_use]
    pub fn with_ack(mut self) -> Self {
        self.ack_required = true;
        self
    }

    /// Maps the payload, keeping the metadata.
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> Envelope<N> {
        Envelope {
            from: self.from,
            to: self.to,
            priority: self.priority,
            seq: self.seq,
            correlation: self.correlation,
            deadline: self.deadline,
            ack_required: self.ack_required,
            payload: f(self.payload),
        }
    }

    /// The same envelope with its payload converted by `f`, or `None` where `f` declines it.
    pub fn filter_map<N>(self, f: impl FnOnce(M) -> Option<N>) -> Option<Envelope<N>> {
        let payload = f(self.payload)?;
        Some(Envelope {
            from: self.from,
            to: self.to,
            priority: self.priority,
            seq: self.seq,
            correlation: self.correlation,
            deadline: self.deadline,
            ack_required: self.ack_required,
            payload,
        })
    }
}

impl<M: Send + 'static> Message for Envelope<M> {
    #[inline]
    fn priority(&self) -> Priority {
        self.priority
    }
}

/// Hands out a sender's sequence numbers and stamps envelopes with them.
///
/// Sequence numbers start at 1 and increase by one per envelope, so a receiver can
/// de-duplicate by `(from, seq)`.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{Address, AgentId, Sequencer};
///
/// let mut seq = Sequencer::new(Address::Agent(AgentId(3)));
/// let a = seq.envelope(Address::Orchestrator, 1_u32);
/// let b = seq.envelope(Address::Orchestrator, 2_u32);
/// assert_eq!((a.seq, b.seq), (1, 2));
/// ```
#[derive(Debug, Clone)]
pub struct Sequencer {
    from: Address,
    last: u64,
}

impl Sequencer {
    /// A sequencer for the given sender, starting at 1.
    pub fn new(from: Address) -> Self {
        Sequencer { from, last: 0 }
    }

    /// The sender this sequencer stamps.
    pub fn address(&self) -> Address {
        self.from
    }

    /// The next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// A new envelope from this sender with the next sequence number.
    pub fn envelope<M: Message>(&mut self, to: Address, payload: M) -> Envelope<M> {
        let seq = self.next_seq();
        Envelope::new(self.from, to, seq, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentId;

    #[test]
    fn filter_map_keeps_the_metadata_or_declines() {
        let e = Envelope::new(AgentId(1).into(), AgentId(2).into(), 41, 7_u32).with_ack();
        let m = e.clone().filter_map(|x| (x > 5).then(|| x * 2)).unwrap();
        assert_eq!(
            (m.from, m.to, m.seq, m.ack_required, m.payload),
            (e.from, e.to, e.seq, true, 14)
        );
        assert!(e.filter_map(|x| (x > 9).then_some(x)).is_none());
    }

    #[test]
    fn deadline_expiry() {
        let past = Deadline::at(UNIX_EPOCH + Duration::from_secs(1));
        assert!(past.is_expired());
        assert_eq!(past.remaining(), Duration::ZERO);
        let future = Deadline::after(Duration::from_secs(3600));
        assert!(!future.is_expired());
        assert!(future.remaining() > Duration::from_secs(3500));
    }

    #[test]
    fn map_keeps_metadata() {
        let env = Envelope::new(Address::Agent(AgentId(1)), Address::Orchestrator, 9, 5_u32)
            .with_correlation(CorrelationId(4))
            .with_ack();
        let mapped = env.clone().map(|x| u64::from(x) * 2);
        assert_eq!(mapped.payload, 10);
        assert_eq!(mapped.id(), env.id());
        assert_eq!(mapped.correlation, Some(CorrelationId(4)));
        assert!(mapped.ack_required);
    }
}
