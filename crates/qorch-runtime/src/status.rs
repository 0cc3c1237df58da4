//! Component status and the status tree.

use std::fmt;

use qorch_protocol::Address;
use serde::{Deserialize, Serialize};

/// The health of a component (agent, sub-cluster, cluster, orchestrator), ordered from best
/// to worst so that the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Working normally.
    Healthy,
    /// Created, not yet working.
    Starting,
    /// Working with reduced capacity (for example an agent restarting after a failure).
    Degraded,
    /// Working but unable to keep up (its mailbox is filling up or refusing messages).
    Overloaded,
    /// Shutting down.
    Stopping,
    /// Not working: crashed beyond its restart budget, or silent past its heartbeat timeout.
    Failed,
}

impl fmt::Display for ComponentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentStatus::Healthy => "healthy",
            ComponentStatus::Starting => "starting",
            ComponentStatus::Degraded => "degraded",
            ComponentStatus::Overloaded => "overloaded",
            ComponentStatus::Stopping => "stopping",
            ComponentStatus::Failed => "failed",
        })
    }
}

/// Counts of agents by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Agents hosted.
    pub total: u64,
    /// Agents working normally.
    pub healthy: u64,
    /// Agents that were restarted after a failure and are working again.
    pub restarted: u64,
    /// Agents failed beyond their restart budget.
    pub failed: u64,
}

impl AgentCounts {
    /// Adds another count into this one.
    pub fn merge(&mut self, other: &AgentCounts) {
        self.total += other.total;
        self.healthy += other.healthy;
        self.restarted += other.restarted;
        self.failed += other.failed;
    }
}

/// One component of the status tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusNode {
    /// The component.
    pub address: Address,
    /// Its name.
    pub name: String,
    /// Its own status (as last reported by heartbeat, or as decided by its parent).
    pub status: ComponentStatus,
    /// Agents hosted directly by this component.
    pub agents: AgentCounts,
    /// Milliseconds since its parent last heard from it.
    pub silent_ms: u64,
    /// Its sub-clusters.
    pub children: Vec<StatusNode>,
}

impl StatusNode {
    /// Agents hosted by this component and all below it.
    pub fn total_agents(&self) -> AgentCounts {
        let mut c = self.agents;
        for ch in &self.children {
            c.merge(&ch.total_agents());
        }
        c
    }

    /// The worst status in this subtree.
    pub fn worst(&self) -> ComponentStatus {
        self.children
            .iter()
            .map(StatusNode::worst)
            .fold(self.status, ComponentStatus::max)
    }

    /// Finds a component in this subtree.
    pub fn find(&self, address: Address) -> Option<&StatusNode> {
        if self.address == address {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(address))
    }

    /// Every component of the subtree, depth first.
    pub fn components(&self) -> Box<dyn Iterator<Item = &StatusNode> + '_> {
        Box::new(std::iter::once(self).chain(self.children.iter().flat_map(StatusNode::components)))
    }
}

/// The status of the whole hierarchy, rooted at the orchestrator.
pub type StatusTree = StatusNode;
