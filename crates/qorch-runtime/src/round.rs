//! A report round in progress at one node or at the orchestrator: the children still to
//! report, and what has come up so far. Each node sends one aggregated report up, so the
//! orchestrator handles O(clusters) reports per round, not O(agents).

use std::collections::HashSet;

use qorch_protocol::AgentId;

use crate::directory::NodeKey;
use crate::letter::{AgentReport, RoundReport};

/// The reports gathered so far for one round.
pub(crate) struct Gathering {
    round: u64,
    waiting: HashSet<NodeKey>,
    agents: Vec<AgentReport>,
    affinity: Vec<(AgentId, AgentId, f64)>,
}

impl Gathering {
    /// Round `round`, waiting for `children`, with what the gatherer itself has to say.
    pub(crate) fn new(
        round: u64,
        children: HashSet<NodeKey>,
        agents: Vec<AgentReport>,
        affinity: Vec<(AgentId, AgentId, f64)>,
    ) -> Self {
        Gathering {
            round,
            waiting: children,
            agents,
            affinity,
        }
    }

    /// The round's number.
    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    /// The report of a child (`None`: from a node not in the tree any more) for this round.
    pub(crate) fn add(&mut self, child: Option<NodeKey>, report: RoundReport) {
        if let Some(c) = child {
            self.waiting.remove(&c);
        }
        self.agents.extend(report.agents);
        self.affinity.extend(report.affinity);
    }

    /// A child failed: its report is not waited for.
    pub(crate) fn give_up(&mut self, child: NodeKey) {
        self.waiting.remove(&child);
    }

    /// Every child has reported (or failed).
    pub(crate) fn is_complete(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The merged report (in arrival order).
    pub(crate) fn into_report(self) -> RoundReport {
        RoundReport {
            round: self.round,
            agents: self.agents,
            affinity: self.affinity,
        }
    }
}
