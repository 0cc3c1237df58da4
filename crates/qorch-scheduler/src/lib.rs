//! `EnhancedQuboScheduler` (docs in progress).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod assign;
mod config;
mod error;
mod gap;
mod hierarchy;
mod outcome;
mod problem;
mod scheduler;
mod synthetic;

pub use assign::{AssignmentBuilder, AssignmentProblem, AssignmentSolution};
pub use config::{CapacityEncoding, SchedulerConfig, SearchMode, SolverPolicy};
pub use error::ScheduleError;
pub use gap::{GapError, GapInstance, GapSense, read_gap};
pub use outcome::{AssignmentOutcome, LevelSummary, NodeId, ScheduleOutcome, SubSolve, efficiency};
pub use problem::{Affinity, AgentSpec, AllocationProblem, Cluster, CostModel, SubCluster};
pub use scheduler::{AssignmentOptions, EnhancedQuboScheduler};
pub use synthetic::SyntheticConfig;
