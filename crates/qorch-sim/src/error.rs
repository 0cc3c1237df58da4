//! The simulation's error type.

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// The scenario is not valid TOML, or has unknown fields.
    #[error("scenario: {0}")]
    Toml(String),
    /// A scenario value is out of range.
    #[error("scenario: {0}")]
    Scenario(String),
    /// The runtime failed.
    #[error("runtime: {0}")]
    Runtime(#[from] qorch_runtime::RuntimeError),
    /// The optimizer failed a round.
    #[error("optimizer: {0}")]
    Optimizer(String),
    /// The NATS transport of a distributed run failed (server unreachable, credentials
    /// refused, ...).
    #[error(transparent)]
    Net(#[from] qorch_net::NetError),
    /// A process of a distributed run failed or could not be started.
    #[error("distributed run: {0}")]
    Distributed(String),
    /// Drawing a plot failed.
    #[error("plot {file}: {error}")]
    Plot {
        /// The plot.
        file: String,
        /// What went wrong.
        error: String,
    },
}
