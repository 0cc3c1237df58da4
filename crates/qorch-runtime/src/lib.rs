//! The qorch actor runtime: agents, clusters, sub-clusters and the [`QuantumOrchestrator`].
//!
//! Users write behaviours as [`Agent`]s (no actix types in sight), start a runtime with
//! [`QuantumOrchestrator::builder`], create clusters and sub-clusters and spawn agents in bulk
//! with the [`ClusterManager`], and talk to the running system through a cloneable
//! [`RuntimeHandle`].
//!
//! ```
//! use qorch_protocol::Address;
//! use qorch_runtime::{Agent, AgentRef, AgentResult, Context, QuantumOrchestrator};
//!
//! /// Passes a counter along a chain; the last agent reports it to the application.
//! struct Hop { next: Option<AgentRef<u32>> }
//!
//! impl Agent for Hop {
//!     type Msg = u32;
//!     fn handle(&mut self, n: u32, ctx: &mut Context<'_, u32>) -> AgentResult {
//!         match &self.next {
//!             Some(next) => ctx.send(next, n + 1),
//!             None => ctx.send_to(Address::Orchestrator, n),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let rt = QuantumOrchestrator::<Hop>::builder().workers(2).build().unwrap();
//! let m = rt.manager();
//! let a = m.create_cluster("a").unwrap();
//! let b = m.create_cluster("b").unwrap();
//! let sub = m.create_sub_cluster(b.into(), "b/leaf").unwrap();
//! // Spawned last to first, so that each agent gets its successor's reference.
//! let last = m.spawn(sub.into(), |_| Hop { next: None }).unwrap();
//! let mut next = last;
//! for _ in 0..3 {
//!     next = m.spawn(a.into(), move |_| Hop { next: Some(next) }).unwrap();
//! }
//! rt.handle().send_blocking(&next, 0).unwrap();
//! let done = rt.handle().recv_blocking(std::time::Duration::from_secs(5)).unwrap();
//! assert_eq!(done.payload, 3);
//! assert_eq!(done.from, last.address());
//! rt.shutdown();
//! ```
//!
//! # Design
//!
//! * **Agents are actors without being actix actors.** A node (cluster or sub-cluster) is an
//!   actix actor that hosts its agents in a slab and delivers their messages one at a time;
//!   an agent has its own address, state, supervision and priority-ordered delivery, and costs
//!   a slot (tens of bytes plus its state), not an actor. This is what lets a million agents
//!   fit on a laptop.
//! * **Every delivery goes through a [`qorch_protocol::PriorityMailbox`]**, the node's own
//!   included, so Control and High messages overtake floods and every node yields between
//!   messages. A full mailbox never blocks a node: the envelope waits in a per-destination FIFO
//!   outbox and is retried (order kept, nothing dropped).
//! * **Routing**: a message between agents goes straight to the node hosting the receiver
//!   ([`Routing::Direct`], the default); everything else follows the tree, up to the common
//!   ancestor and down, one hop per node ([`Routing::Tree`] sends agents' messages that way
//!   too).
//! * **Supervision**: a panic or an `Err` in a hook restarts the agent from its factory, within
//!   a [`RestartIntensity`] (N restarts within a period, as in OTP), then it is failed for
//!   good; both are logged (WARN, ERROR) with the agent, its behaviour and the reason. Hook
//!   effects (sends, timers) apply only when the hook succeeds, and timers end with the
//!   instance that armed them. Reliable messages (`Context::send_reliable`) are acknowledged after they are
//!   handled and redelivered until then, de-duplicated by `(sender, sequence)`: a message
//!   that went down with a crashing handler is handled by the restarted agent, once.
//! * **Status and heartbeats** flow up; a node silent past `heartbeat_timeout` is failed by
//!   its parent, and the orchestrator's status tree shows it.
//! * **Only [`executor`](crate) names actix**: node logic is plain Rust, driven by the
//!   executor, so the actor framework can be replaced without touching agents or protocol.

#![deny(missing_docs)]

mod agent;
mod any;
mod ask;
mod config;
mod directory;
mod executor;
mod host;
mod letter;
mod monitor;
mod node;
mod orchestrator;
mod outbox;
mod panic_guard;
mod registry;
mod reliable;
mod remote;
mod round;
mod runtime;
mod shared;
mod spawn;
mod status;
mod telemetry;
mod timer;
mod watch;

pub use agent::{Agent, AgentError, AgentResult, Context, TimerError, TimerHandle};
pub use any::AnyMessage;
pub use ask::{AskError, ReplyTo};
pub use config::{ConfigError, RestartIntensity, Routing, RuntimeConfig};
pub use host::{AnyAgent, Host, Hosts};
pub use letter::{AgentReport, AllocationBatch, Factory, NodeStats, RoundReport, TraceEvent};
pub use monitor::{Terminated, TerminationReason, Watch};
pub use qorch_protocol::AgentRef;
pub use registry::{BoxFuture, RegistryError, SharedRegistry};
pub use remote::{InjectError, Remote, RemoteLink};
pub use runtime::{
    ClusterManager, NodeLoad, Observer, QuantumOrchestrator, RuntimeBuilder, RuntimeError,
    RuntimeHandle, RuntimeSendError, ShutdownReport, Topology, TopologyNode,
};
pub use spawn::SpawnError;
pub use status::{AgentCounts, ComponentStatus, StatusNode, StatusTree};
