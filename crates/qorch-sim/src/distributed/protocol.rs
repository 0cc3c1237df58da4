//! What the coordinator (`qorch simulate --nats`) and its node processes (`qorch node`)
//! say to each other: the control calls on `<prefix>.ctl.node.<name>` (through
//! `qorch_net::rpc`) and their answers, and the heartbeat timings both sides keep.

use std::time::Duration;

use qorch_net::{GatewayStats, Subjects};
use qorch_protocol::{Address, AgentId};
use qorch_runtime::{AllocationBatch, NodeStats, RoundReport};
use serde::{Deserialize, Serialize};

/// The coordinator's heartbeat name (nodes leave when it falls silent).
pub(crate) const COORDINATOR: &str = "coordinator";
/// Heartbeat period of every process of a distributed run.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(200);
/// Silence after which a process is considered dead.
pub(crate) const SILENCE: Duration = Duration::from_secs(2);

/// The subject of node `name`'s control calls.
pub(crate) fn node_subject(subjects: &Subjects, name: &str) -> String {
    subjects.control(&format!("node.{name}"))
}

/// What the coordinator asks of a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ToNode {
    /// Host these clusters of this scenario.
    Assign(Box<Assignment>),
    /// Run tick `t` in the local runtime; answer once it is locally quiet.
    Tick(u64),
    /// Counters, for the termination waves.
    Status,
    /// The round's report of every hosted agent.
    Collect(u64),
    /// Grants for hosted agents; answer once every agent has been told.
    Allocate(AllocationBatch),
    /// Fault injection: this agent panics on its next message.
    Panic(AgentId),
    /// Fault injection: this leaf stops at once.
    LoseLeaf(Address),
    /// Fault injection: the process dies on the spot (no goodbye, no answer).
    Crash,
    /// Take over clusters of a lost node: their nodes, and the agents to restart.
    Adopt(Box<Adoption>),
    /// Stop and report the final counts.
    Finish,
}

/// A node's work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Assignment {
    /// The scenario, as TOML.
    pub(crate) scenario: String,
    /// The top-level clusters it hosts (indices).
    pub(crate) clusters: Vec<u32>,
    /// The leaf of every agent (all processes' agents: the route table).
    pub(crate) leaf_of: Vec<u32>,
}

/// Clusters a node takes over, with the agents to restart (per leaf) at tick `tick`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Adoption {
    pub(crate) clusters: Vec<u32>,
    pub(crate) agents: Vec<(Address, Vec<AgentId>)>,
    pub(crate) tick: u64,
}

/// What a node answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum FromNode {
    /// Done.
    Ok,
    /// Its counters.
    Status(Box<NodeStatus>),
    /// Its agents' report.
    Report(Box<RoundReport>),
}

/// A node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeStatus {
    /// User messages in its runtime not handled yet.
    pub(crate) in_flight: u64,
    /// Its runtime's counts.
    pub(crate) stats: NodeStats,
    /// Its gateway's counts.
    pub(crate) gateway: GatewayStats,
    /// Its runtime's leftovers at shutdown (protocol letters, unacknowledged).
    pub(crate) letters_left: u64,
}

impl NodeStatus {
    /// Nothing in flight here: no message unhandled, every frame acknowledged both ways.
    pub(crate) fn idle(&self) -> bool {
        self.in_flight == 0 && self.gateway.idle()
    }

    /// The counters that move when messages move (not the protocol's own letters, which
    /// the status calls themselves cause): equal in two waves means nothing happened.
    pub(crate) fn activity(&self) -> [u64; 8] {
        let (s, g) = (&self.stats, &self.gateway);
        [
            s.handled,
            s.dead_letters,
            s.restarts,
            g.envelopes_out,
            g.frames_out,
            g.frames_in,
            g.frames_acked,
            g.envelopes_in,
        ]
    }
}
