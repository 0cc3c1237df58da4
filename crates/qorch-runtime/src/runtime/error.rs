//! The runtime's errors.

use std::time::Duration;

use qorch_protocol::Address;

use crate::ConfigError;

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration is invalid.
    #[error("invalid runtime configuration")]
    Config(#[from] ConfigError),
    /// The actor system could not start.
    #[error("cannot start the actor system")]
    Start(#[from] std::io::Error),
    /// The address names no existing cluster, sub-cluster or agent.
    #[error("unknown address {0}")]
    UnknownAddress(Address),
    /// The runtime is shutting down or stopped.
    #[error("the runtime is stopped")]
    Stopped,
    /// The runtime did not answer in time.
    #[error("no answer from the runtime within {0:?}")]
    Timeout(Duration),
    /// The id is taken (creating a node or spawning an agent with a chosen id).
    #[error("{0} already exists")]
    AddressInUse(Address),
    /// Too many agents for 32-bit ids.
    #[error("agent ids exhausted: at most 2^32 agents per runtime")]
    TooManyAgents,
}

/// Error of [`RuntimeHandle::try_send`](crate::RuntimeHandle::try_send) and its async and
/// blocking siblings: the message is given back. (Not to be confused with the mailbox's own
/// [`qorch_protocol::SendError`].)
#[derive(Debug, thiserror::Error)]
pub enum RuntimeSendError<M> {
    /// The destination's mailbox is full; try again later or use the async `send`.
    #[error("the destination's mailbox is full")]
    Full(M),
    /// The destination does not exist or has stopped.
    #[error("the destination does not exist or has stopped")]
    Closed(M),
    /// This runtime hosts one behaviour, whose messages are of another type (use
    /// `QuantumOrchestrator<AnyAgent>` to mix behaviours).
    #[error("this runtime cannot carry this message type: it hosts another behaviour")]
    Refused(M),
}

impl<M> RuntimeSendError<M> {
    /// The message given back.
    pub fn into_inner(self) -> M {
        match self {
            RuntimeSendError::Full(m)
            | RuntimeSendError::Closed(m)
            | RuntimeSendError::Refused(m) => m,
        }
    }
}
