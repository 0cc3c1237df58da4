//! The `EnhancedQuboScheduler`: the allocation of pools to agents as hierarchical QUBO
//! problems, solved with `qorch-qubo`'s solvers (and, where enabled, `qorch-qaoa`'s simulated
//! QAOA through the same `Solver` trait). A plain library: no actors, no async.
//!
//! ```
//! use qorch_scheduler::{EnhancedQuboScheduler, SchedulerConfig, SyntheticConfig};
//!
//! // 400 agents in 4 clusters of 4 sub-clusters over 10 pools, 10% more demand than capacity.
//! let problem = SyntheticConfig { agents: 400, clusters: 4, pools: 10, ..Default::default() }
//!     .generate();
//! let scheduler = EnhancedQuboScheduler::new(SchedulerConfig::default()).unwrap();
//! let round = scheduler.schedule(&problem, None).unwrap();
//! assert_eq!(round.grants.len(), 400);
//! assert!(round.objective <= round.bound); // every result carries an upper bound
//! assert!(round.efficiency > 0.0 && round.efficiency <= 1.0);
//! ```
//!
//! # The problem
//!
//! An [`AllocationProblem`] holds pools with capacity vectors, a tree of clusters whose nodes
//! hold agents ([`AgentSpec`]: a request with a minimum and a desired amount, a priority
//! weight, a pool filter, and the pool it runs on now), affinity edges between agents that
//! talk, and a [`CostModel`]. The objective is weighted served demand minus a migration cost
//! for agents that leave their pool minus a communication cost for affinity pairs that end up
//! apart. Migration is linear given the current placement; affinity couples pairs of
//! placement variables: that quadratic term is why the problem is a QUBO and not a plain
//! assignment problem.
//!
//! # How it is solved
//!
//! [`EnhancedQuboScheduler::schedule`] works level by level: capacity shares of the pools to
//! the top-level clusters from block aggregates of their agents, then agents to pools inside
//! each cluster's share (sub-clusters recursively), the clusters of a level in parallel,
//! then a reconciliation pass that offers leftover capacity. Every sub-problem is a flat
//! [`AssignmentProblem`] solved by the same path as
//! [`EnhancedQuboScheduler::solve_assignment`]: a Lagrangian bound, a greedy start from its
//! multipliers, repair to feasibility, move-based local search, and QUBO *windows* (a few
//! pools, tens of variables: one-hot placement, capacities by slack bits or by the
//! slack-free unbalanced penalty, see [`CapacityEncoding`]) each solved by the solver the
//! [`SolverPolicy`] picks for its size. A sample is only a proposal: it is decoded, repaired
//! and kept only if it improves a feasible solution, so no grant ever exceeds a capacity.
//! Last, a *polish* searches the whole allocation, across the shares the levels drew, with
//! moves (serve, unserve, relocate, swap) scored exactly: for a given set of agents on a
//! pool the best amounts are known in closed form (minimums first, then each kind's room to
//! the heaviest agents), so a move's gain is computed with the amounts it leads to. The
//! levels see an agent at two amounts only and cannot move it out of its cluster's share;
//! the polish is what brings a round from about 0.93 to about 0.98 of the bound
//! ([`SchedulerConfig::polish_passes`]).
//! Every sub-solve is recorded ([`SubSolve`]: size, solver, energy, bound, time).
//!
//! # Bounds and efficiency
//!
//! Each result reports `efficiency = objective / bound`, where the bound is a Lagrangian
//! relaxation of the capacities (named in [`ScheduleOutcome::bound_kind`]); it is valid for
//! every allocation, so the efficiency counts what the hierarchy loses as well as what the
//! solvers miss.
//!
//! # OR-Library files
//!
//! [`read_gap`] reads generalized assignment files; [`GapInstance::to_problem`] turns one
//! into an [`AssignmentProblem`] (`qorch allocate gap` on the command line).

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod assign;
mod config;
mod dual;
mod error;
mod gap;
mod global_bound;
mod hierarchy;
mod outcome;
mod partition;
mod polish;
mod problem;
mod scheduler;
mod synthetic;

pub use assign::{AssignmentBuilder, AssignmentProblem, AssignmentSolution};
pub use config::{CapacityEncoding, SchedulerConfig, SearchMode, SolverPolicy};
pub use error::ScheduleError;
pub use gap::{GapError, GapInstance, GapSense, read_gap};
pub use outcome::{AssignmentOutcome, LevelSummary, NodeId, ScheduleOutcome, SubSolve, efficiency};
pub use partition::{Grouping, ReclusterPlan, ReclusterPolicy, Step, plan_reclustering};
pub use problem::{Affinity, AgentSpec, AllocationProblem, Cluster, CostModel, SubCluster};
pub use scheduler::{AssignmentOptions, EnhancedQuboScheduler};
pub use synthetic::SyntheticConfig;
