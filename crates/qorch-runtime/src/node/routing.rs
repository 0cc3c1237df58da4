//! Routing at a node: one hop towards the destination (up to the common ancestor, then
//! down), the local queue for envelopes between the node's own agents, the outbox for full
//! mailboxes, and dead letters.

use qorch_protocol::{Address, Envelope, Priority};

use super::NodeCore;
use crate::Host;
use crate::directory::{Hop, NodeKey};
use crate::letter::{Letter, letter};
use crate::outbox::dead_letter;
use crate::shared::Dest;

impl<B: Host> NodeCore<B> {
    /// Whether envelopes are waiting in the local queue.
    pub(crate) fn has_local(&self) -> bool {
        self.local.iter().any(|q| !q.is_empty())
    }

    /// The next local envelope, unless the mailbox holds one of higher priority (`mailbox`:
    /// the highest class waiting there).
    pub(crate) fn pop_local(&mut self, mailbox: Option<Priority>) -> Option<Envelope<Letter<B>>> {
        let lane = self.local.iter().position(|q| !q.is_empty())?;
        if mailbox.is_some_and(|p| p.lane() < lane) {
            return None;
        }
        self.local[lane].pop_front()
    }

    /// Sends an envelope one hop towards its destination.
    pub(super) fn route(&mut self, env: Envelope<Letter<B>>) {
        // Fast path: an agent of this node.
        if let Address::Agent(a) = env.to
            && self.slot_of(a).is_some()
        {
            self.local[env.priority.lane()].push_back(env);
            return;
        }
        if self.shared.config.routing == crate::Routing::Direct
            && env.payload.is_user()
            && let Address::Agent(a) = env.to
            && let Some(node) = self.shared.directory.agents.node(a)
        {
            if node != self.key {
                self.stats.forwarded += 1;
            }
            self.send_dest(Dest::Node(node), env);
            return;
        }
        let tree = self.shared.directory.tree.load();
        let Ok(target) = self.shared.directory.resolve(&tree, env.to) else {
            drop(tree);
            // Hosted by another process, perhaps: the orchestrator holds the way out.
            if self.shared.remote.is_some()
                && matches!(env.payload, Letter::User(_) | Letter::Ack(_))
            {
                self.stats.forwarded += 1;
                self.send_dest(Dest::Orchestrator, env);
            } else {
                tracing::debug!(to = %env.to, "dead letter: unknown address");
                self.dead_letter(&env.payload);
                self.drop_refused(env.to, env.payload);
            }
            return;
        };
        let dest = match tree.next_hop(Some(self.key), target) {
            Hop::Here => Dest::Node(self.key),
            Hop::Down(c) | Hop::Up(Some(c)) => Dest::Node(c),
            Hop::Up(None) => Dest::Orchestrator,
            Hop::Unreachable => {
                drop(tree);
                self.dead_letter(&env.payload);
                self.drop_refused(env.to, env.payload);
                return;
            }
        };
        drop(tree);
        if dest != Dest::Node(self.key) {
            self.stats.forwarded += 1;
        }
        self.send_dest(dest, env);
    }

    /// Sends an envelope to a neighbour's mailbox (through the outbox), or to the local
    /// queue if it is for this node.
    pub(super) fn send_dest(&mut self, dest: Dest, env: Envelope<Letter<B>>) {
        if dest == Dest::Node(self.key) {
            self.local[env.priority.lane()].push_back(env);
            return;
        }
        if self
            .outbox
            .send(&self.shared, dest, env, &mut self.stats, &self.flow)
        {
            self.stats.backpressured += 1;
        }
    }

    /// Sends one of the runtime's own letters.
    pub(super) fn send_letter(&mut self, dest: Dest, priority: Priority, payload: Letter<B>) {
        self.send_dest(dest, letter(self.address, priority, payload));
    }

    /// Counts a letter that cannot be delivered.
    pub(super) fn dead_letter(&mut self, letter: &Letter<B>) {
        dead_letter(letter, &mut self.stats, &self.flow);
    }

    /// Retries what waits in the outbox.
    pub(super) fn flush_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.outbox.flush(&self.shared, &mut self.stats, &self.flow);
        }
    }

    /// Fault injection: everything this node held is lost. User messages among it are
    /// counted (consumed as lost), so that the flow accounting still balances.
    pub(crate) fn lose(&mut self, remaining: &[Envelope<Letter<B>>]) {
        let user = |e: &Envelope<Letter<B>>| e.payload.is_user();
        let mut lost = remaining.iter().filter(|e| user(e)).count() as u64;
        for q in &mut self.local {
            lost += q.drain(..).filter(user).count() as u64;
        }
        for (_, envs) in self.waiting.drain() {
            lost += envs.iter().filter(|e| user(e)).count() as u64;
        }
        lost += self.outbox.lose();
        self.stats.dead_letters += lost;
        self.flow.consume(lost);
        self.shared
            .detached_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .merge(&self.stats);
        for s in &self.slots {
            self.shared.directory.agents.set(s.id, None);
        }
    }

    /// The node's live sub-clusters.
    pub(super) fn children(&self) -> Vec<NodeKey> {
        let tree = self.shared.directory.tree.load();
        tree.info(self.key)
            .children
            .iter()
            .copied()
            .filter(|c| !tree.info(*c).removed)
            .collect()
    }

    /// Where the node's parent is.
    pub(super) fn parent_dest(&self) -> Dest {
        let tree = self.shared.directory.tree.load();
        tree.info(self.key)
            .parent
            .map_or(Dest::Orchestrator, Dest::Node)
    }
}
