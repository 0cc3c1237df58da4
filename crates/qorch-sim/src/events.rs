//! What a run reports as it goes besides its rounds, for live views (`qorch simulate
//! --serve`): the pools after each round, and the run's events (faults, restarts, node
//! losses, re-clustering passes). Aggregates only: nothing here grows with the agents.

use serde::{Deserialize, Serialize};

/// One pool after a round, per resource kind (in the order of the scenario's kinds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolLoad {
    /// The pool's name.
    pub name: String,
    /// What it holds.
    pub capacity: Vec<f64>,
    /// What is granted on it.
    pub granted: Vec<f64>,
}

/// The pools after a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolsRound {
    /// The round.
    pub round: u64,
    /// The resource kinds' names.
    pub kinds: Vec<String>,
    /// Every pool.
    pub pools: Vec<PoolLoad>,
    /// What the agents asked for (their desired amounts), all pools together, per kind.
    pub demanded: Vec<f64>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEventKind {
    /// Agents made to panic (fault injection).
    AgentPanic,
    /// Sub-clusters stopped at once (fault injection); `count` is the agents lost.
    SubclusterLoss,
    /// Node processes lost (distributed runs); `count` is the agents restarted elsewhere.
    NodeLoss,
    /// Agents restarted by their supervisors during the round's ticks.
    Restarts,
    /// A re-clustering pass; `count` is the agents moved.
    Recluster,
}

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The round it happened in (before its ticks for faults, after it for re-clustering).
    pub round: u64,
    /// What happened.
    pub kind: RunEventKind,
    /// How many (see [`RunEventKind`]).
    pub count: u64,
    /// A line for people.
    pub detail: String,
}

/// One node process of a distributed run, as the coordinator last heard from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessLoad {
    /// Its name.
    pub name: String,
    /// Whether it is alive (a lost one keeps its last counts).
    pub alive: bool,
    /// The top-level clusters it hosts: name and agents.
    pub clusters: Vec<(String, u64)>,
    /// User messages its agents handled so far.
    pub handled: u64,
    /// Its agents' restarts so far.
    pub restarts: u64,
    /// Its dead letters so far.
    pub dead_letters: u64,
    /// User messages in its runtime not handled yet.
    pub in_flight: u64,
}
