//! The qorch optimizer: rebalancing rounds that allocate resources to the agents of a
//! hierarchy, on a thread of its own, away from the workers that handle messages.
//!
//! A round collects one aggregated report per node (every agent's request and placement,
//! and the observed affinity), builds the hierarchical allocation problem, solves it with
//! the [`EnhancedQuboScheduler`](qorch_scheduler::EnhancedQuboScheduler), sends the new
//! allocations down the tree at High priority (agents see them in `on_allocation`),
//! records the changes in the [`ResourceManager`](qorch_resources::ResourceManager)'s
//! ledger, and keeps a [`RoundSummary`]. Rounds run periodically, when asked, and when
//! triggered (a component failed, utilization skew, unmet demand); requests that arrive
//! while a round runs are served together by one round after it.
//!
//! Rounds run against a [`Hierarchy`]: a local runtime ([`Optimizer::start`]), or anything
//! that reports demand and takes grants, such as the processes of a distributed run
//! ([`Optimizer::start_on`]). [`recluster`] applies the scheduler's re-clustering plan to a
//! running runtime.
//!
//! This crate sits beside `qorch-runtime`, not inside it: an application that wants actors
//! alone does not compile the scheduler and its solvers.
//!
//! ```
//! use qorch_optimizer::{Optimizer, OptimizerConfig};
//! use qorch_resources::{Pool, PoolFilter, PoolId, ResourceKinds, ResourceRequest, ResourceVector};
//! use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator};
//!
//! /// Asks for `cpu`, half of it at least.
//! struct Tenant { cpu: f64 }
//!
//! impl Agent for Tenant {
//!     type Msg = ();
//!     fn handle(&mut self, _: (), _: &mut Context<'_, ()>) -> AgentResult { Ok(()) }
//!     fn demand(&self) -> Option<ResourceRequest> {
//!         let (min, want) = (vec![self.cpu / 2.0], vec![self.cpu]);
//!         ResourceRequest::new(min.into(), want.into(), 1.0, PoolFilter::Any).ok()
//!     }
//! }
//!
//! let rt = QuantumOrchestrator::<Tenant>::builder().workers(1).build().unwrap();
//! let cluster = rt.manager().create_cluster("c0").unwrap();
//! rt.manager().spawn_agents(cluster.into(), 8, |_| Tenant { cpu: 2.0 }).unwrap();
//! // 16 cpu asked for, 12 available: some agents get less than they want.
//! let pools = vec![Pool::node(PoolId(0), "p0", ResourceVector::from(vec![12.0]))];
//! let config = OptimizerConfig::new(ResourceKinds::from_names(["cpu"]), pools);
//! let optimizer = Optimizer::start(rt.handle(), config).unwrap();
//! let round = optimizer.run_round().unwrap();
//! assert_eq!(round.agents, 8);
//! assert!(round.objective <= round.bound + 1e-9);
//! optimizer.stop();
//! rt.shutdown();
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod error;
mod hierarchy;
mod optimizer;
mod policy;
mod problem;
mod recluster;
mod summary;
mod telemetry;
mod worker;

pub use config::{OptimizerConfig, Triggers};
pub use error::{BoxError, OptimizerError};
pub use hierarchy::Hierarchy;
pub use optimizer::Optimizer;
pub use policy::{AllocationPolicy, PolicyState, Predictive, Served};
pub use qorch_scheduler::{ReclusterPlan, ReclusterPolicy};
pub use recluster::recluster;
pub use summary::{OptimizationState, RoundReason, RoundSummary, SolverStats};
