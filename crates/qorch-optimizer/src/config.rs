//! The optimizer's settings: what it allocates, how, and when it runs by itself.

use std::time::Duration;

use qorch_resources::{Pool, ResourceKinds};
use qorch_scheduler::{CostModel, SchedulerConfig};
use serde::{Deserialize, Serialize};

use crate::AllocationPolicy;

/// When the optimizer runs a round by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triggers {
    /// Run a round when a component is newly failed (its agents' resources go back to the
    /// pools).
    pub on_failure: bool,
    /// Run another round when, after one, the utilization of the busiest and the idlest pool
    /// differ by more than this (fraction of capacity).
    pub utilization_skew: Option<f64>,
    /// Run another round when, after one, more than this fraction of the desired demand is
    /// unmet.
    pub unmet_demand: Option<f64>,
    /// How often the status tree is checked for failures.
    pub check_every: Duration,
    /// Least time between two triggered rounds.
    pub min_interval: Duration,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            on_failure: true,
            utilization_skew: None,
            unmet_demand: None,
            check_every: Duration::from_millis(250),
            min_interval: Duration::from_millis(500),
        }
    }
}

/// Settings of the optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The resource kinds.
    pub kinds: ResourceKinds,
    /// The pools to allocate.
    pub pools: Vec<Pool>,
    /// Migration and communication costs of the objective.
    pub costs: CostModel,
    /// The scheduler's settings (seed, budget, solver policy).
    pub scheduler: SchedulerConfig,
    /// Run a round this often (`None`: only when asked or triggered).
    pub period: Option<Duration>,
    /// Automatic triggers.
    pub triggers: Triggers,
    /// Share of the observed affinity kept from one round to the next (the rest is
    /// forgotten): 0 uses the last round's traffic only.
    pub affinity_memory: f64,
    /// What rounds allocate for: the demand reported now, or the forecast of the next
    /// round's (see [`AllocationPolicy`]).
    #[serde(default)]
    pub policy: AllocationPolicy,
}

impl OptimizerConfig {
    /// A configuration for these pools, with default costs, scheduler and triggers and no
    /// period.
    pub fn new(kinds: ResourceKinds, pools: Vec<Pool>) -> Self {
        OptimizerConfig {
            kinds,
            pools,
            costs: CostModel::default(),
            scheduler: SchedulerConfig::default(),
            period: None,
            triggers: Triggers::default(),
            affinity_memory: 0.5,
            policy: AllocationPolicy::Reactive,
        }
    }
}
