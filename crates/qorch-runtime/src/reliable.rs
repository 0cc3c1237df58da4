//! Reliable delivery: the sender side keeps unacknowledged envelopes and redelivers them; the
//! receiver side remembers what it handled so that a redelivery is not handled twice.
//!
//! Invariant: a sender gives up after `max_attempts` deliveries spaced `timeout` apart, and a
//! receiver remembers a handled envelope for longer than that (`max_attempts + 2` timeouts),
//! so every redelivery of a handled envelope is recognised.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use qorch_protocol::{Envelope, EnvelopeId};

/// A copy of a reliable envelope (for keeping, or for a redelivery), made with its
/// message's `copy`.
pub(crate) fn copy_reliable<M>(env: &Envelope<M>, copy: fn(&M) -> M) -> Envelope<M> {
    Envelope {
        from: env.from,
        to: env.to,
        priority: env.priority,
        seq: env.seq,
        correlation: env.correlation,
        deadline: env.deadline,
        ack_required: true,
        payload: copy(&env.payload),
    }
}

/// An unacknowledged envelope and how to copy it.
pub(crate) struct PendingEntry<M> {
    pub(crate) envelope: Envelope<M>,
    pub(crate) copy: fn(&M) -> M,
    pub(crate) due: Instant,
    pub(crate) attempts: u32,
}

/// Envelopes sent reliably by one node's agents and not yet acknowledged.
pub(crate) struct Pending<M> {
    entries: HashMap<EnvelopeId, PendingEntry<M>>,
    timeout: Duration,
    max_attempts: u32,
}

impl<M> Pending<M> {
    pub(crate) fn new(timeout: Duration, max_attempts: u32) -> Self {
        Pending {
            entries: HashMap::new(),
            timeout,
            max_attempts,
        }
    }

    /// Records a first delivery attempt of `envelope` (made now).
    pub(crate) fn insert(&mut self, envelope: Envelope<M>, copy: fn(&M) -> M, now: Instant) {
        let id = envelope.id();
        self.entries.insert(
            id,
            PendingEntry {
                envelope,
                copy,
                due: now + self.timeout,
                attempts: 1,
            },
        );
    }

    /// An acknowledgement arrived. Returns whether it was pending.
    pub(crate) fn ack(&mut self, id: EnvelopeId) -> bool {
        self.entries.remove(&id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Copies of the envelopes due for redelivery at `now`, and the ids given up.
    pub(crate) fn due(&mut self, now: Instant) -> (Vec<Envelope<M>>, Vec<EnvelopeId>) {
        let mut resend = Vec::new();
        let mut give_up = Vec::new();
        for (id, e) in &mut self.entries {
            if e.due > now {
                continue;
            }
            if e.attempts >= self.max_attempts {
                give_up.push(*id);
                continue;
            }
            e.attempts += 1;
            e.due = now + self.timeout;
            resend.push(copy_reliable(&e.envelope, e.copy));
        }
        for id in &give_up {
            self.entries.remove(id);
        }
        // Deterministic order.
        resend.sort_by_key(Envelope::id);
        give_up.sort();
        (resend, give_up)
    }
}

/// Reliable envelopes already handled by one node's agents, remembered for `window`.
pub(crate) struct Dedup {
    seen: HashMap<EnvelopeId, Instant>,
    order: VecDeque<(Instant, EnvelopeId)>,
    window: Duration,
}

impl Dedup {
    pub(crate) fn new(window: Duration) -> Self {
        Dedup {
            seen: HashMap::new(),
            order: VecDeque::new(),
            window,
        }
    }

    pub(crate) fn contains(&self, id: &EnvelopeId) -> bool {
        self.seen.contains_key(id)
    }

    pub(crate) fn insert(&mut self, id: EnvelopeId, now: Instant) {
        if self.seen.insert(id, now).is_none() {
            self.order.push_back((now, id));
        }
    }

    /// Forgets envelopes handled more than `window` ago.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.order.front() {
            if now.duration_since(t) < self.window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qorch_protocol::{Address, AgentId};

    fn env(seq: u64) -> Envelope<u32> {
        Envelope::new(
            Address::Agent(AgentId(1)),
            Address::Agent(AgentId(2)),
            seq,
            7,
        )
        .with_ack()
    }

    #[test]
    fn redelivers_until_acked_then_gives_up() {
        let t0 = Instant::now();
        let mut p = Pending::new(Duration::from_millis(10), 3);
        p.insert(env(1), u32::clone, t0);
        p.insert(env(2), u32::clone, t0);
        assert!(p.due(t0).0.is_empty());
        let (r, g) = p.due(t0 + Duration::from_millis(10));
        assert_eq!(r.len(), 2);
        assert!(g.is_empty() && r.iter().all(|e| e.ack_required && e.payload == 7));
        assert!(p.ack(env(1).id()));
        assert!(!p.ack(env(1).id()));
        let (r, _) = p.due(t0 + Duration::from_millis(20));
        assert_eq!(r.len(), 1);
        let (r, g) = p.due(t0 + Duration::from_millis(30));
        assert!(r.is_empty());
        assert_eq!(g, [env(2).id()]);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn dedup_remembers_for_the_window() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_millis(50));
        d.insert(env(1).id(), t0);
        assert!(d.contains(&env(1).id()));
        d.expire(t0 + Duration::from_millis(49));
        assert!(d.contains(&env(1).id()));
        d.expire(t0 + Duration::from_millis(50));
        assert!(!d.contains(&env(1).id()));
    }
}
