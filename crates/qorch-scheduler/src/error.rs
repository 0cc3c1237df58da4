//! Why a problem cannot be scheduled.

use qorch_resources::{AgentId, PoolId, RequestError};

/// A malformed or unsatisfiable problem, or invalid settings. Every variant says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The problem has no pool.
    #[error("the problem has no pools: add at least one pool with a capacity")]
    NoPools,
    /// Two pools share an id.
    #[error("pool id {0} is used twice")]
    DuplicatePool(PoolId),
    /// A capacity is negative, NaN or infinite, or has more amounts than there are kinds.
    #[error(
        "{pool} has an invalid capacity {capacity:?}: amounts must be finite, non-negative, one per kind"
    )]
    InvalidCapacity {
        /// The pool.
        pool: PoolId,
        /// Its capacity.
        capacity: Vec<f64>,
    },
    /// Two agents (or two entries of one agent) share an id.
    #[error("{0} appears twice in the cluster tree")]
    DuplicateAgent(AgentId),
    /// A cluster or sub-cluster id appears twice.
    #[error("cluster id {0} appears twice in the cluster tree")]
    DuplicateCluster(String),
    /// An agent's request is malformed.
    #[error("the request of {agent} is invalid: {source}")]
    InvalidRequest {
        /// The agent.
        agent: AgentId,
        /// What is wrong.
        source: RequestError,
    },
    /// A request or placement names a pool that does not exist.
    #[error("{agent} refers to {pool}, which is not in the problem")]
    UnknownPool {
        /// The agent.
        agent: AgentId,
        /// The pool.
        pool: PoolId,
    },
    /// A request has more amounts than there are resource kinds.
    #[error("the request of {agent} has {len} amounts but the problem has {kinds} resource kinds")]
    KindMismatch {
        /// The agent.
        agent: AgentId,
        /// Amounts in the request.
        len: usize,
        /// Kinds in the problem.
        kinds: usize,
    },
    /// No allowed pool can hold an agent's minimum, even when empty.
    #[error(
        "{agent} can never be served: its minimum {min:?} exceeds the capacity of every pool it may use (lower the minimum, widen the pool filter, or add a larger pool)"
    )]
    Unsatisfiable {
        /// The agent.
        agent: AgentId,
        /// Its minimum.
        min: Vec<f64>,
    },
    /// An affinity edge names an agent that is not in the problem, or has a bad weight.
    #[error("affinity edge ({a}, {b}, {weight}) is invalid: {why}")]
    InvalidAffinity {
        /// One end.
        a: AgentId,
        /// The other end.
        b: AgentId,
        /// The weight.
        weight: f64,
        /// Why.
        why: &'static str,
    },
    /// A cost coefficient is negative or not finite.
    #[error("cost coefficient {name} must be finite and non-negative, got {value}")]
    InvalidCost {
        /// Which coefficient.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// An item of a flat assignment problem is malformed.
    #[error("item {item}: {why}")]
    InvalidItem {
        /// The item's index.
        item: usize,
        /// What is wrong.
        why: String,
    },
    /// An item that must be assigned has no option that fits its pool even when empty.
    #[error(
        "item {item} must be assigned but none of its options fits its pool's capacity, even on an empty pool"
    )]
    NoFeasibleOption {
        /// The item's index.
        item: usize,
    },
    /// A setting is out of range.
    #[error("invalid scheduler setting: {0}")]
    InvalidConfig(String),
    /// A sub-problem's QUBO could not be built or solved.
    #[error("sub-problem solver failed: {0}")]
    Solver(String),
    /// Numbers so large that an objective or a load could overflow.
    #[error("{0}")]
    TooLarge(String),
}
