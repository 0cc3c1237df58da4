//! What travels in the runtime's mailboxes: user messages and the protocol's own letters.

use std::sync::{Arc, Mutex};

use qorch_protocol::{Address, AgentId, Envelope, EnvelopeId, Priority};
use qorch_resources::{Grant, PoolId, ResourceRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::Host;
use crate::directory::NodeKey;
use crate::monitor::{Terminated, Watcher};
use crate::status::{ComponentStatus, StatusNode};

/// Builds the behaviour of a new (or restarted) agent.
pub type Factory<B> = Arc<dyn Fn(AgentId) -> B + Send + Sync>;

/// One agent's line of a round report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The agent.
    pub agent: AgentId,
    /// Its hosting node's address.
    pub host: qorch_protocol::Address,
    /// What it asks for now (`None`: nothing).
    pub request: Option<ResourceRequest>,
    /// Where it is placed now.
    pub pool: Option<PoolId>,
    /// Its status.
    pub status: ComponentStatus,
}

/// The aggregated report of a subtree for one round: one message per node travels up, so the
/// orchestrator handles O(clusters) reports per round, not O(agents).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// The round.
    pub round: u64,
    /// Every agent of the subtree.
    pub agents: Vec<AgentReport>,
    /// Observed affinity since the previous round: `(from, to, estimated messages)` between
    /// agents, sampled one message in `RuntimeConfig::affinity_sample` (and scaled back).
    pub affinity: Vec<(AgentId, AgentId, f64)>,
}

/// Grants for the agents of a subtree, sent down the tree at High priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocationBatch {
    /// The round that computed them.
    pub round: u64,
    /// `None`: the agent is unserved.
    pub grants: Vec<(AgentId, Option<Grant>)>,
}

/// What a node knows of its own work, for queries, benchmarks and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// User messages handled by its agents.
    pub handled: u64,
    /// Messages forwarded to another node.
    pub forwarded: u64,
    /// Agent restarts after a panic or an error.
    pub restarts: u64,
    /// User messages that could not be delivered (failed or unknown agent, killed node),
    /// reported not dropped.
    pub dead_letters: u64,
    /// The runtime's own letters (ticks, acknowledgements, collections, ...) addressed to a
    /// node that was killed.
    pub dead_protocol_letters: u64,
    /// Reliable messages redelivered after a timeout.
    pub redeliveries: u64,
    /// Duplicate deliveries recognised and not handled again.
    pub duplicates: u64,
    /// Reliable messages given up after the maximum number of attempts.
    pub undeliverable: u64,
    /// Messages sent to a full mailbox and queued to be retried.
    pub backpressured: u64,
    /// Messages taken from the mailbox, per priority lane (Control, High, Normal, Low): user
    /// messages and the protocol's own letters (heartbeats, reports, barriers, ...).
    pub by_priority: [u64; 4],
    /// User messages handled by agents, per priority lane (Control, High, Normal, Low).
    pub handled_by_priority: [u64; 4],
}

impl NodeStats {
    /// Adds another node's counts.
    pub fn merge(&mut self, o: &NodeStats) {
        self.handled += o.handled;
        self.forwarded += o.forwarded;
        self.restarts += o.restarts;
        self.dead_letters += o.dead_letters;
        self.dead_protocol_letters += o.dead_protocol_letters;
        self.redeliveries += o.redeliveries;
        self.duplicates += o.duplicates;
        self.undeliverable += o.undeliverable;
        self.backpressured += o.backpressured;
        for (a, b) in self.by_priority.iter_mut().zip(o.by_priority) {
            *a += b;
        }
        for (a, b) in self
            .handled_by_priority
            .iter_mut()
            .zip(o.handled_by_priority)
        {
            *a += b;
        }
    }
}

/// One handled message, for traces (enabled with `RuntimeConfig::trace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceEvent {
    /// The agent that handled it.
    pub agent: AgentId,
    /// The envelope (sender and sequence number).
    pub envelope: EnvelopeId,
}

/// What each node reports when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeShutdown {
    /// Messages still in the node's mailbox when it closed, per priority lane.
    pub left_in_mailbox: [u64; 4],
    /// Messages waiting in its outbox for a full mailbox.
    pub left_in_outbox: u64,
    /// Reliable messages sent by its agents and never acknowledged.
    pub unacknowledged: u64,
    /// Its final counts.
    pub stats: NodeStats,
}

/// Collects the nodes' shutdown reports.
#[derive(Default)]
pub(crate) struct ShutdownCollector {
    pub(crate) reports: Mutex<Vec<NodeShutdown>>,
}

/// Queries from the handle, answered through a one-shot channel.
pub(crate) enum Query {
    /// A node's counts.
    Stats(oneshot::Sender<NodeStats>),
    /// A node's trace of handled messages.
    Trace(oneshot::Sender<Vec<TraceEvent>>),
    /// (Orchestrator) run a report round.
    Round(u64, oneshot::Sender<RoundReport>),
    /// (Orchestrator) the status tree.
    Status(oneshot::Sender<StatusNode>),
    /// One of the per-lane letters of a barrier (see [`Barrier`]).
    Barrier(Arc<Barrier>),
}

/// Completes once everything queued in a mailbox before it was handled. Lanes are FIFO but
/// the starvation guard serves them out of strict order, so a barrier sends one letter per
/// lane and completes when the last of them is handled.
pub(crate) struct Barrier {
    remaining: std::sync::atomic::AtomicUsize,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

impl Barrier {
    pub(crate) fn new(done: oneshot::Sender<()>) -> Arc<Self> {
        Arc::new(Barrier {
            remaining: std::sync::atomic::AtomicUsize::new(qorch_protocol::Priority::COUNT),
            done: Mutex::new(Some(done)),
        })
    }

    /// One lane's letter was handled.
    pub(crate) fn arrive(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
            && let Some(tx) = self
                .done
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        {
            let _ = tx.send(());
        }
    }
}

/// Letters: the runtime's own messages and user messages.
pub(crate) enum Letter<B: Host> {
    /// A user message for an agent (or, addressed to a node, for the application).
    User(B::Msg),
    /// Acknowledges a reliable envelope.
    Ack(EnvelopeId),
    /// A runtime tick, broadcast down the tree.
    Tick(u64),
    /// Asks a subtree for its round report.
    Collect(u64),
    /// A subtree's round report, going up.
    Report(Box<RoundReport>),
    /// Grants going down.
    Allocate(Box<AllocationBatch>),
    /// A child's heartbeat with its subtree's status.
    Heartbeat(NodeKey, Box<StatusNode>),
    /// New agents for this node.
    Spawn(Vec<AgentId>, Factory<B>),
    /// Agents (with their state) moving to this node from another one.
    Adopt(Vec<Moved<B>>),
    /// Hand these agents over to another node.
    MoveOut(Vec<AgentId>, NodeKey),
    /// A question from the handle.
    Query(Query),
    /// Stop: close the mailbox, drain, report.
    Stop(Arc<ShutdownCollector>),
    /// Fault injection: stop at once, like a crashed process (no drain, no heartbeat).
    Kill,
    /// Watch the agent this is addressed to (routed to its node).
    Watch(Watcher<B::Msg>),
    /// Stop the agent this is addressed to (routed to its node).
    StopAgent,
    /// A watched agent terminated: for the watcher this is addressed to, if it is still the
    /// instance that asked. Boxed: rare, and it would make every letter larger.
    Notice(Box<Notice<B::Msg>>),
    /// The outcome of an ask, for the asking agent this is addressed to. Counted like a user
    /// message (produced when sent, consumed when it reaches the asker or is a dead letter).
    Reply(Box<Reply>),
}

/// An ask's outcome on its way to the asker's node.
pub(crate) struct Reply {
    pub(crate) correlation: u64,
    pub(crate) outcome: crate::ask::Outcome,
}

/// A [`Terminated`] notice on its way to a watcher.
pub(crate) struct Notice<M> {
    /// The watcher's instance that placed the watch.
    pub(crate) incarnation: u32,
    pub(crate) terminated: Terminated,
    pub(crate) make: fn(Terminated) -> M,
}

/// An agent in transit between nodes, with its state and its messages not yet handled.
pub(crate) struct Moved<B: Host> {
    pub(crate) id: AgentId,
    pub(crate) behaviour: B,
    pub(crate) factory: Factory<B>,
    pub(crate) grant: Option<Grant>,
    pub(crate) restarts: u32,
    pub(crate) seq: u64,
    pub(crate) random: u64,
    /// Its pending timers (they belong to it, not to the node it leaves).
    pub(crate) timers: Vec<crate::timer::Timer<B::Msg>>,
    /// Who watches it.
    pub(crate) watchers: Vec<Watcher<B::Msg>>,
    /// Its asks waiting for an outcome.
    pub(crate) asks: Vec<(u64, crate::node::PendingAsk<B::Msg>)>,
}

impl<B: Host> Letter<B> {
    /// Whether this is a user message (counted by the flow accounting and as a dead letter
    /// when it cannot be delivered), not one of the runtime's own letters.
    pub(crate) fn is_user(&self) -> bool {
        matches!(self, Letter::User(_) | Letter::Reply(_))
    }
}

/// The header of a runtime letter from `from` (a node or the orchestrator, which are their
/// own addressees): no sequence number, correlation, deadline or acknowledgement.
pub(crate) fn letter<B: Host>(
    from: Address,
    priority: Priority,
    payload: Letter<B>,
) -> Envelope<Letter<B>> {
    Envelope {
        from,
        to: from,
        priority,
        seq: 0,
        correlation: None,
        deadline: None,
        ack_required: false,
        payload,
    }
}

/// Takes the letter out of an envelope, keeping the header to put a payload back in with
/// [`Envelope::map`].
pub(crate) fn open<B: Host>(env: Envelope<Letter<B>>) -> (Envelope<()>, Letter<B>) {
    let mut letter = None;
    let header = env.map(|l| letter = Some(l));
    (header, letter.expect("map calls its closure once"))
}

#[cfg(test)]
mod tests {
    /// Every envelope in every mailbox lane has the size of the largest letter: rare letters
    /// are boxed so that it stays 40 bytes (the spawn letter's) next to a small message.
    #[test]
    fn letters_stay_small() {
        struct A;
        impl crate::Agent for A {
            type Msg = u64;
            fn handle(&mut self, _: u64, _: &mut crate::Context<'_, u64>) -> crate::AgentResult {
                Ok(())
            }
        }
        assert_eq!(std::mem::size_of::<super::Letter<A>>(), 40);
        // A runtime of several behaviours: a boxed message fits the same slot.
        assert_eq!(std::mem::size_of::<super::Letter<crate::AnyAgent>>(), 40);
    }
}
