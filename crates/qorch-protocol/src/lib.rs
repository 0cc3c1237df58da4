//! The `QuantumOrchestrationProtocol`: how the components of a qorch runtime talk.
//!
//! This crate holds the protocol's types and nothing of the actor framework (no actix), so it
//! can be used, tested and benchmarked on its own:
//!
//! * [`Priority`] classes (`Control > High > Normal > Low`) and the [`Message`] trait through
//!   which a type declares its default class.
//! * [`Address`]es of the hierarchy (orchestrator, clusters, sub-clusters, agents): small
//!   `Copy` ids.
//! * [`Envelope`]s: a payload with sender, recipient, priority, the sender's sequence number,
//!   an optional correlation id (request/reply) and an optional deadline.
//! * [`PriorityMailbox`]: one bounded lane per class, served highest first with a starvation
//!   guard, with backpressure and lossless close/drain; usable blocking or as a `Stream`.
//! * [`WireCodec`]: versioned, checksummed bincode frames for envelopes that cross processes.
//!
//! # Example
//!
//! ```
//! use qorch_protocol::{Address, AgentId, Envelope, Priority, PriorityMailbox, Sequencer};
//!
//! let (tx, mut inbox) = PriorityMailbox::<Envelope<String>>::bounded(64);
//! let mut seq = Sequencer::new(Address::Agent(AgentId(1)));
//!
//! tx.try_send(seq.envelope(Address::Agent(AgentId(2)), "hello".to_owned())).unwrap();
//! let urgent = seq.envelope(Address::Agent(AgentId(2)), "urgent".to_owned());
//! tx.try_send(urgent.with_priority(Priority::High)).unwrap();
//!
//! // The High envelope overtakes the Normal one.
//! assert_eq!(inbox.recv_blocking().unwrap().payload, "urgent");
//! assert_eq!(inbox.recv_blocking().unwrap().payload, "hello");
//! ```
//!
//! # Async use
//!
//! A [`PriorityMailbox`] is a [`futures_core::Stream`], so an actor framework can poll it
//! directly (actix: `ctx.add_stream(mailbox)`), and [`MailboxSender::send`] waits for room
//! asynchronously.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use qorch_protocol::PriorityMailbox;
//!
//! let (tx, mut inbox) = PriorityMailbox::<u32>::bounded(1);
//! let producer = tokio::spawn(async move {
//!     for i in 0..3 {
//!         tx.send(i).await.unwrap(); // waits while the lane is full
//!     }
//! });
//! let mut got = Vec::new();
//! while let Some(x) = inbox.recv().await {
//!     got.push(x);
//! }
//! producer.await.unwrap();
//! assert_eq!(got, [0, 1, 2]);
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod address;
mod agent_ref;
mod codec;
mod envelope;
mod mailbox;
mod priority;

pub use address::{Address, AgentId, ClusterId, SubClusterId};
pub use agent_ref::{AgentRef, short_type_name};
pub use codec::{
    DecodeError, EncodeError, FRAME_OVERHEAD, MAX_FRAME_BYTES, WIRE_VERSION, WireCodec,
};
pub use envelope::{CorrelationId, Deadline, Envelope, EnvelopeId, Sequencer};
pub use mailbox::{
    MailboxConfig, MailboxConfigError, MailboxSender, MailboxStats, PriorityMailbox,
    RecvTimeoutError, SendError, SendFuture, TryRecvError, TrySendError, block_on_until,
};
pub use priority::{Message, ParsePriorityError, Priority};

/// The protocol's settings, shared by the two ends of every link: how mailboxes are sized and
/// how envelopes are framed on the wire.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{MailboxConfig, QuantumOrchestrationProtocol, WireCodec};
///
/// let qop = QuantumOrchestrationProtocol::new(MailboxConfig::uniform(256), WireCodec::default())
///     .unwrap();
/// let (tx, mut rx) = qop.mailbox::<u32>();
/// tx.try_send(7).unwrap();
/// assert_eq!(rx.try_recv(), Ok(7));
/// assert_eq!(QuantumOrchestrationProtocol::VERSION, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantumOrchestrationProtocol {
    mailbox: MailboxConfig,
    codec: WireCodec,
}

impl QuantumOrchestrationProtocol {
    /// The wire version this build speaks.
    pub const VERSION: u8 = WIRE_VERSION;

    /// Protocol settings from a mailbox configuration and a codec.
    ///
    /// # Errors
    ///
    /// If the mailbox configuration is invalid (see [`MailboxConfig::validate`]).
    pub fn new(mailbox: MailboxConfig, codec: WireCodec) -> Result<Self, MailboxConfigError> {
        mailbox.validate()?;
        Ok(QuantumOrchestrationProtocol { mailbox, codec })
    }

    /// A new mailbox with the configured lanes.
    pub fn mailbox<M>(&self) -> (MailboxSender<M>, PriorityMailbox<M>) {
        PriorityMailbox::from_valid_config(self.mailbox)
    }

    /// The mailbox configuration.
    pub fn mailbox_config(&self) -> &MailboxConfig {
        &self.mailbox
    }

    /// The wire codec.
    pub fn codec(&self) -> &WireCodec {
        &self.codec
    }
}
