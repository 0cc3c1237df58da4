//! The simulation's error type.

use std::sync::Arc;

use qorch_protocol::Address;

/// Any error, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The scenario is not valid TOML, or has unknown fields (the message names the line
    /// and the field).
    #[error(transparent)]
    Toml(toml::de::Error),
    /// A scenario value is out of range.
    #[error("scenario: {0}")]
    Scenario(String),
    /// The scenario's solver settings are refused by the scheduler.
    #[error("scenario: the solver settings are refused")]
    Solver(#[source] qorch_scheduler::ScheduleError),
    /// The runtime failed.
    #[error("runtime")]
    Runtime(#[from] qorch_runtime::RuntimeError),
    /// An async executor could not be started.
    #[error("cannot start the {of}'s executor")]
    Executor {
        /// Whose: the driver's, the coordinator's, a node's.
        of: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The optimizer could not be started.
    #[error("cannot start the optimizer")]
    OptimizerStart(#[source] qorch_optimizer::OptimizerError),
    /// The optimizer failed a rebalancing round.
    #[error("rebalancing round {round} failed")]
    Round {
        /// The round.
        round: u64,
        /// Why.
        #[source]
        source: Arc<qorch_optimizer::OptimizerError>,
    },
    /// Fault injection: the message that makes an agent panic could not be sent.
    #[error("fault injection: cannot reach agent {agent}")]
    FaultInjection {
        /// The agent.
        agent: qorch_protocol::AgentId,
        /// Why (a [`qorch_runtime::RuntimeSendError`]).
        #[source]
        source: BoxError,
    },
    /// Fault injection: a stopped leaf was not seen failed in time.
    #[error("{leaf:?} was stopped but not detected as failed within {seconds} s")]
    FailureUndetected {
        /// The leaf.
        leaf: Address,
        /// How long the driver waited.
        seconds: u64,
    },
    /// The NATS transport of a distributed run failed (server unreachable, credentials
    /// refused, ...).
    #[cfg(feature = "distributed")]
    #[error(transparent)]
    Net(#[from] qorch_net::NetError),
    /// A control call to a node process failed.
    #[cfg(feature = "distributed")]
    #[error("node {node}")]
    Node {
        /// The node process.
        node: String,
        /// Why.
        #[source]
        source: qorch_net::NetError,
    },
    /// A node process could not be started.
    #[error("cannot start node process {node}")]
    SpawnNode {
        /// The node process.
        node: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A node's runtime did not shut down cleanly.
    #[error("node {node}: the runtime's shutdown failed")]
    NodeShutdown {
        /// The node process.
        node: String,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A custom workload ([`run_workload`](crate::run_workload)) with something only a
    /// distributed run does: distributed runs simulate the built-in model only (their node
    /// processes build the agents from the scenario alone), so a custom workload runs in one
    /// process.
    #[error(
        "{what} need a distributed run, and distributed runs simulate the built-in model \
         only: a custom workload runs in one process"
    )]
    LocalOnly {
        /// What the scenario asked for (`node_crash faults`).
        what: &'static str,
    },
    /// A process of a distributed run failed or could not be started.
    #[error("distributed run: {0}")]
    Distributed(String),
    /// Drawing a plot failed.
    #[error("plot {file}")]
    Plot {
        /// The plot.
        file: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}
