//! Agents' timers as a node keeps them: one heap per node, ordered by when they are due.
//!
//! A timer belongs to one instance of its agent (its `incarnation`, the agent's restart
//! count when it was armed): a timer of an instance that has since been restarted, stopped
//! or failed is dropped when it comes due, never delivered. A periodic timer is armed again
//! each time it fires, from its previous due time (no drift), or from now if the node fell
//! behind by a whole period (no bursts). Timers travel with their agent when it moves to
//! another node.

use std::time::{Duration, Instant};

use qorch_protocol::AgentId;

/// How a periodic timer makes its next message.
pub(crate) enum Repeat<M> {
    /// A copy of the one it holds.
    Copy(fn(&M) -> M),
    /// A fresh one from the agent's function.
    Make(Box<dyn FnMut() -> M + Send>),
}

impl<M> Repeat<M> {
    pub(crate) fn next(&mut self, last: &M) -> M {
        match self {
            Repeat::Copy(copy) => copy(last),
            Repeat::Make(make) => make(),
        }
    }
}

/// A periodic timer's period and how it makes each firing's message (`None`: one-shot).
pub(crate) type Every<M> = Option<(Duration, Repeat<M>)>;

/// A pending timer.
pub(crate) struct Timer<M> {
    pub(crate) due: Instant,
    /// Arming order at its node: ties on `due` fire in the order they were armed.
    pub(crate) order: u64,
    pub(crate) agent: AgentId,
    pub(crate) incarnation: u32,
    /// Its handle's id (unique in the runtime).
    pub(crate) id: u64,
    /// `Some` for a periodic timer: its period and how to copy its message.
    pub(crate) every: Every<M>,
    pub(crate) msg: M,
}

impl<M> Timer<M> {
    /// The timer's next due time after it fired at `now` (periodic timers only).
    pub(crate) fn next_due(&self, period: Duration, now: Instant) -> Option<Instant> {
        let next = self.due.checked_add(period)?;
        if next > now {
            Some(next)
        } else {
            now.checked_add(period)
        }
    }
}

impl<M> PartialEq for Timer<M> {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}

impl<M> Eq for Timer<M> {}

impl<M> PartialOrd for Timer<M> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl<M> Ord for Timer<M> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(o.due, o.order))
    }
}
