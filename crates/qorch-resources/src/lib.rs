//! The resource domain of qorch: what there is to allocate, what agents ask for, what they were
//! given, the history of every change, demand forecasts and allocation metrics. A plain library
//! (no actors): the scheduler turns these types into QUBOs, the runtime carries them between
//! actors and owns a [`ResourceManager`].
//!
//! ```
//! use qorch_resources::{
//!     AgentId, ChangeContext, PoolFilter, PoolKind, Reason, ResourceKinds, ResourceManager,
//!     ResourceRequest, ResourceVector,
//! };
//!
//! let kinds = ResourceKinds::standard(); // cpu, memory, bandwidth
//! let cpu = kinds.get("cpu").unwrap();
//! let mut m = ResourceManager::new(&kinds);
//! let setup = ChangeContext::new(0, 0, Reason::Configuration);
//! let node = m
//!     .add_pool("node-1", PoolKind::Node, &ResourceVector::from(vec![8.0, 32.0, 10.0]), &setup)
//!     .unwrap();
//!
//! let mut want = ResourceVector::zeros(kinds.len());
//! want.set(cpu, 2.0);
//! let req = ResourceRequest::new(want.clone(), want.clone(), 1.0, PoolFilter::Any).unwrap();
//! let round = ChangeContext::new(1, 1_000, Reason::Rebalance);
//! m.request(AgentId(7), req, &round).unwrap();
//! m.grant(AgentId(7), node, &want, &round).unwrap();
//! assert_eq!(m.free(node).unwrap().get(cpu), 6.0);
//! assert_eq!(m.ledger().for_agent(AgentId(7)).count(), 2);
//! ```
//!
//! # Domain
//!
//! Resource kinds ([`ResourceKinds`]: `cpu`, `memory`, `bandwidth` and user-defined ones),
//! amounts ([`ResourceVector`], one `f64` per kind), [`Pool`]s (nodes, devices, links) with a
//! capacity, [`ResourceRequest`]s (a minimum, a desired amount, a priority weight and the pools
//! allowed), [`Grant`]s (an amount on a pool) and [`Allocation`]s (at most one grant per
//! agent: one round's result).
//!
//! # The manager and its ledger
//!
//! [`ResourceManager`] registers kinds and pools, files requests, grants and releases, and
//! applies whole allocations, refusing with a [`ResourceError`] that says what is wrong
//! (unknown pool, negative or non-finite amounts, over-release, a request larger than any pool,
//! not enough free capacity). A failed operation changes nothing. Every change is appended to
//! the [`Ledger`] with its round, time, [`Reason`], and for optimizer rounds the objective and
//! solver; the ledger answers queries by agent, pool, round and time, serializes with serde,
//! and [`ResourceManager::replay`] rebuilds the exact state from it.
//!
//! # Forecasts
//!
//! [`SeriesForecaster`] runs one exponential-smoothing model ([`ForecastModel`]: EWMA, Holt's
//! linear trend, additive Holt-Winters) with prediction intervals from its residuals;
//! [`DemandForecaster`] keeps one per agent and kind, and with a [`SafetyPolicy`] rewrites a
//! request to plan for the forecast plus a margin (predictive allocation). [`mape`] measures
//! forecast error.
//!
//! # Metrics
//!
//! [`utilization`] per pool and kind, [`unmet_demand`], [`jain_fairness`] of the agents'
//! [`satisfaction`], and [`churn`] between rounds; [`AllocationMetrics`] computes them all.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod allocation;
mod domain;
mod forecast;
mod ledger;
mod manager;
mod metrics;

pub use allocation::Allocation;
pub use domain::{
    Grant, KindId, Pool, PoolFilter, PoolId, PoolKind, RequestError, ResourceKinds,
    ResourceRequest, ResourceVector,
};
pub use forecast::{
    DemandForecast, DemandForecaster, Forecast, ForecastModel, IntervalMethod, PooledSpread,
    SafetyPolicy, SeriesForecaster, mape,
};
pub use ledger::{ChangeContext, Ledger, LedgerEntry, LedgerEvent, Reason};
pub use manager::{ResourceError, ResourceManager};
pub use metrics::{
    AllocationMetrics, Churn, PoolUtilization, churn, jain_fairness, satisfaction, unmet_demand,
    utilization,
};
pub use qorch_protocol::{AgentId, ClusterId, SubClusterId};
