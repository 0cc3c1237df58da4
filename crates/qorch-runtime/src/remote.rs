//! The runtime's door to other processes. Envelopes for addresses this runtime does not host
//! climb the tree to the orchestrator and leave through a [`RemoteLink`] (a transport, such as
//! `qorch-net`'s NATS gateway); envelopes from other processes come in through
//! [`RuntimeHandle::inject`](crate::RuntimeHandle::inject) and travel down like any other.
//!
//! Without a link, an unknown address is a dead letter, as before.

use qorch_protocol::{Envelope, EnvelopeId};
use serde::{Deserialize, Serialize};

/// What crosses a process boundary: a user message, or the acknowledgement of a reliable one
/// (so that [`Context::send_reliable`](crate::Context) works across processes too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Remote<M> {
    /// A message for an agent (or a cluster's application address).
    User(M),
    /// The receiver handled the reliable message with this id.
    Ack(EnvelopeId),
}

/// Where envelopes for addresses this runtime does not host go (installed with
/// [`RuntimeBuilder::remote`](crate::RuntimeBuilder::remote)).
///
/// `forward` is called on a worker thread of the actor system: it must not block. A
/// transport queues the envelope and sends it from its own task.
pub trait RemoteLink<M>: Send + Sync + 'static {
    /// Takes an envelope for an address this runtime does not host. Gives it back when no
    /// other process hosts the address either; the runtime then counts it as a dead letter.
    fn forward(&self, env: Envelope<Remote<M>>) -> Result<(), Envelope<Remote<M>>>;
}

/// Why [`RuntimeHandle::inject`](crate::RuntimeHandle::inject) refused an envelope; the
/// envelope is given back.
#[derive(Debug, thiserror::Error)]
pub enum InjectError<M> {
    /// This runtime hosts no such address.
    #[error("this runtime hosts no address {}", .0.to)]
    Unknown(Envelope<Remote<M>>),
    /// The runtime has stopped (the envelope is not taken: a transport leaves it
    /// unacknowledged, so that its sender delivers it elsewhere).
    #[error("the runtime is stopped")]
    Stopped(Envelope<Remote<M>>),
}
