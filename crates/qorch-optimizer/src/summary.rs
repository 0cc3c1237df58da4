//! What rounds leave behind: their summaries, per-solver figures and the optimization state.

use std::collections::{BTreeMap, HashMap};

use qorch_protocol::AgentId;
use qorch_resources::{Allocation, ResourceManager};
use qorch_scheduler::{LevelSummary, ScheduleOutcome};
use serde::{Deserialize, Serialize};

use crate::{PolicyState, Served};

/// Why a round ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundReason {
    /// The period elapsed.
    Periodic,
    /// The application asked.
    Requested,
    /// A component failed.
    Failure,
    /// Pools were unevenly used.
    UtilizationSkew,
    /// Too much demand was unmet.
    UnmetDemand,
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// Its number (from 1).
    pub round: u64,
    /// Why it ran.
    pub reason: RoundReason,
    /// Wall-clock seconds from the start of the collection until every agent was told its
    /// allocation.
    pub seconds: f64,
    /// Of which collecting the reports.
    pub collect_seconds: f64,
    /// Of which solving.
    pub solve_seconds: f64,
    /// Agents that asked for resources.
    pub agents: usize,
    /// Of which served.
    pub served: usize,
    /// The objective of the allocation.
    pub objective: f64,
    /// An upper bound on the objective.
    pub bound: f64,
    /// Which bound.
    pub bound_kind: String,
    /// `objective / bound`.
    pub efficiency: f64,
    /// Granted over capacity, per kind, over all pools.
    pub utilization: Vec<f64>,
    /// Busiest pool's utilization minus the idlest's (mean over kinds).
    pub utilization_skew: f64,
    /// Share of the requested demand not granted by this round (all kinds together): under
    /// the predictive policy, of the forecast requests.
    pub unmet_demand: f64,
    /// How the allocation in force before this round (the previous round's grants) served
    /// the demand the agents reported at this round; `None` at the first round.
    pub in_force: Option<Served>,
    /// Seconds of this round spent measuring the grants in force and applying the
    /// allocation policy (forecasts), part of `seconds`.
    pub policy_seconds: f64,
    /// Agents whose request this round was the forecast (predictive policy, warmed up).
    pub predicted_agents: usize,
    /// Jain's fairness index of the agents' satisfaction.
    pub fairness: f64,
    /// Share of agents whose placement changed since the previous round.
    pub churn: f64,
    /// Affinity edges the problem carried.
    pub affinity_edges: usize,
    /// Per level of the hierarchy.
    pub levels: Vec<LevelSummary>,
    /// Energies of the sub-solves (QUBO convention, lower is better), for plots.
    pub energies: Vec<f64>,
    /// Components failed when the round ran.
    pub failed_components: usize,
}

/// Windows and time spent per solver over all rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SolverStats {
    /// QUBO windows solved.
    pub windows: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// The optimization state, kept by the optimizer and readable through it.
#[derive(Debug, Clone)]
pub struct OptimizationState {
    /// Rounds run.
    pub round: u64,
    /// Every round's summary.
    pub history: Vec<RoundSummary>,
    /// The last round's full result (its grants and, per level, its sub-solves).
    pub last: Option<ScheduleOutcome>,
    /// Per solver, over all rounds.
    pub solvers: BTreeMap<String, SolverStats>,
    /// The current allocation.
    pub allocation: Allocation,
    /// Pools, requests, holdings and the full ledger of changes.
    pub resources: ResourceManager,
    /// The observed affinity graph (undirected, `(low id, high id) -> weight`).
    pub affinity: HashMap<(AgentId, AgentId), f64>,
    /// The allocation policy's memory (forecasters and their last intervals).
    pub policy: PolicyState,
}
