//! The optimizer's error type.

/// A boxed error of any kind, as the source of [`OptimizerError::Hierarchy`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the optimizer could not start or run a round.
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// The configuration is invalid (what is wrong, and which value).
    #[error("invalid optimizer configuration: {0}")]
    Config(String),
    /// A pool of the configuration was refused by the resource manager.
    #[error("invalid optimizer configuration: pool {pool}")]
    Pool {
        /// The pool's id.
        pool: qorch_resources::PoolId,
        /// Why it was refused.
        #[source]
        source: qorch_resources::ResourceError,
    },
    /// The scheduler's settings are invalid.
    #[error("invalid scheduler settings")]
    Scheduler(#[source] qorch_scheduler::ScheduleError),
    /// The optimizer's thread, or its executor, could not start.
    #[error("cannot start the optimizer's {what}")]
    Start {
        /// What could not start.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The optimizer has stopped.
    #[error("the optimizer is stopped")]
    Stopped,
    /// The local runtime did not answer (it stopped, or timed out).
    #[error("the runtime failed")]
    Runtime(#[source] qorch_runtime::RuntimeError),
    /// A [`Hierarchy`](crate::Hierarchy) other than the local runtime failed (a process of a
    /// distributed run).
    #[error("the hierarchy failed")]
    Hierarchy(#[source] BoxError),
    /// The scheduler refused the problem.
    #[error("scheduling failed")]
    Schedule(#[from] qorch_scheduler::ScheduleError),
    /// The scheduler panicked (a bug; the round is abandoned, later rounds still run). The
    /// panic's message.
    #[error("the scheduler {0}")]
    Panic(String),
    /// The ledger refused the allocation (a bug: the scheduler's allocations are feasible).
    #[error("the ledger refused the allocation")]
    Ledger(#[from] qorch_resources::ResourceError),
}
