//! What a solve reports: solutions, objectives, bounds, and the record of every sub-solve.

use serde::{Deserialize, Serialize};

use crate::AssignmentSolution;
use qorch_resources::{
    AgentId, Allocation, AllocationMetrics, ClusterId, Grant, ResourceRequest, SubClusterId,
};

/// A node of the cluster tree, as named in sub-solve records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeId {
    /// The whole problem (level 1: shares of the top-level clusters; the final
    /// reconciliation).
    Root,
    /// A top-level cluster.
    Cluster(ClusterId),
    /// A sub-cluster.
    SubCluster(SubClusterId),
}

/// The record of one sub-problem's solve, for the optimization state.
///
/// `energy` follows the QUBO convention (lower is better): it is minus the sub-problem's
/// final objective, with every penalty at zero since the result is feasible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubSolve {
    /// Hierarchy level: 1 for the shares of the top-level clusters, 2 below, and so on; 0 for
    /// a flat [`solve_assignment`](crate::EnhancedQuboScheduler::solve_assignment).
    pub level: usize,
    /// Whose sub-problem it was.
    pub node: NodeId,
    /// Items (agents, or blocks of agents at the upper levels).
    pub items: usize,
    /// Options (placement variables) over all items.
    pub options: usize,
    /// QUBO windows solved.
    pub windows: u64,
    /// Windows whose solution was kept.
    pub windows_improved: u64,
    /// Variables of the largest window (slack bits included).
    pub max_window_vars: usize,
    /// The solver that handled most windows (`exact`, `qaoa`, `tabu`, ...), or `none`.
    pub solver: String,
    /// Per solver: windows solved and seconds spent.
    pub solver_usage: Vec<(String, u64, f64)>,
    /// The local search between windows (`tabu` or `descent`).
    pub search: String,
    /// Minus the final objective.
    pub energy: f64,
    /// The final objective.
    pub objective: f64,
    /// The sub-problem's upper bound.
    pub bound: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Move evaluations spent.
    pub evaluations: u64,
}

/// The result of [`EnhancedQuboScheduler::solve_assignment`](crate::EnhancedQuboScheduler::solve_assignment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentOutcome {
    /// The best feasible solution found (or, if none was, the least infeasible).
    pub solution: AssignmentSolution,
    /// Its objective.
    pub objective: f64,
    /// Whether it respects every capacity and serves every mandatory item.
    pub feasible: bool,
    /// The Lagrangian upper bound (rounded down when all values are integers).
    pub bound: f64,
    /// `objective / bound` when both are positive; see [`efficiency`].
    pub efficiency: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The objective over time: (seconds, objective) at each improvement.
    pub trace: Vec<(f64, f64)>,
    /// The record of the solve.
    pub record: SubSolve,
}

/// `objective / bound`: how close a result is to the bound (1 is optimal). Defined as 1 when
/// both are zero, and as 0 when the bound is not positive but the objective falls short of it.
pub fn efficiency(objective: f64, bound: f64) -> f64 {
    if bound > 0.0 {
        (objective / bound).min(1.0)
    } else if objective >= bound - 1e-12 {
        1.0
    } else {
        0.0
    }
}

/// One level of a [`ScheduleOutcome`]: its sub-problems added up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    /// The level (1: shares of the top-level clusters; the last: reconciliation).
    pub level: usize,
    /// Sub-problems solved at this level.
    pub subproblems: usize,
    /// Their items (blocks or agents).
    pub items: usize,
    /// Sum of their objectives (for the reconciliation level: what it added).
    pub objective: f64,
    /// Sum of their bounds.
    pub bound: f64,
    /// Sum of their solve times (they run in parallel, so this can exceed the wall time).
    pub seconds: f64,
}

/// The result of [`EnhancedQuboScheduler::schedule`](crate::EnhancedQuboScheduler::schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleOutcome {
    /// Every agent's grant (`None`: unserved), in the order of the problem's cluster tree
    /// (depth first, each node's own agents before its sub-clusters').
    pub grants: Vec<(AgentId, Option<Grant>)>,
    /// The objective: `value - migration_cost - communication_cost`.
    pub objective: f64,
    /// Weighted served demand.
    pub value: f64,
    /// Migration costs paid.
    pub migration_cost: f64,
    /// Communication costs paid.
    pub communication_cost: f64,
    /// An upper bound on the objective of any allocation of this problem.
    pub bound: f64,
    /// Which bound `bound` is.
    pub bound_kind: String,
    /// `objective / bound` ([`efficiency`]).
    pub efficiency: f64,
    /// Agents with a grant.
    pub served: usize,
    /// Agents without.
    pub unserved: usize,
    /// Per level.
    pub levels: Vec<LevelSummary>,
    /// Every sub-solve, level by level.
    pub subsolves: Vec<SubSolve>,
    /// Wall-clock seconds of the round.
    pub seconds: f64,
}

impl ScheduleOutcome {
    /// The grants as an [`Allocation`] (served agents only), for
    /// [`ResourceManager::apply_allocation`](qorch_resources::ResourceManager::apply_allocation)
    /// and the metrics.
    pub fn allocation(&self) -> Allocation {
        self.grants
            .iter()
            .filter_map(|(a, g)| g.clone().map(|g| (*a, g)))
            .collect()
    }

    /// Utilization, unmet demand, fairness and churn of this allocation against `previous`.
    pub fn metrics(
        &self,
        problem: &crate::AllocationProblem,
        previous: Option<&Allocation>,
    ) -> AllocationMetrics {
        let requests: Vec<(AgentId, &ResourceRequest)> = problem
            .clusters
            .iter()
            .flat_map(cluster_agents)
            .map(|a| (a.id, &a.request))
            .collect();
        let empty = Allocation::new();
        AllocationMetrics::compute(
            &problem.pools,
            requests.iter().copied(),
            previous.unwrap_or(&empty),
            &self.allocation(),
        )
    }
}

fn cluster_agents(c: &crate::Cluster) -> Vec<&crate::AgentSpec> {
    let mut v: Vec<&crate::AgentSpec> = c.agents.iter().collect();
    for s in &c.subclusters {
        sub_agents(s, &mut v);
    }
    v
}

fn sub_agents<'a>(s: &'a crate::SubCluster, out: &mut Vec<&'a crate::AgentSpec>) {
    out.extend(s.agents.iter());
    for t in &s.subclusters {
        sub_agents(t, out);
    }
}
