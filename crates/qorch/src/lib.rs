//! qorch: an actor runtime for large multi-agent systems whose resource allocations are
//! rebalanced by a quantum-inspired optimizer.
//!
//! "Quantum" here means quantum-inspired and simulated on classical hardware: the QUBO solvers
//! are classical heuristics and QAOA runs on an exact statevector simulator. Nothing here runs
//! on, or claims the advantages of, a quantum computer.
//!
//! This crate re-exports the public API of the workspace crates for applications that embed
//! the runtime:
//!
//! * [`protocol`]: the [`QuantumOrchestrationProtocol`] (priorities, addresses, envelopes, priority
//!   mailboxes, wire codec).
//! * [`runtime`]: the actor runtime ([`QuantumOrchestrator`], [`Agent`], [`ClusterManager`]).
//! * [`optimizer`]: rebalancing rounds over the runtime's tree ([`optimizer::Optimizer`]).
//! * [`resources`]: resource kinds, pools, requests, grants, the ledger and forecasts.
//! * [`qubo`]: the QUBO engine and its solvers.
//! * `net` (the `net` feature, on by default): runtimes in several processes joined over
//!   NATS (gateway, credentials, TLS).
//! * `sim` (the `sim` feature, on by default): simulations, what `qorch simulate` runs:
//!   scenarios, the built-in model (`sim::run`) or agents of your own
//!   (`sim::AgentWorkload`, `sim::run_workload`), faults, the plain-loop baseline and
//!   the report (the SVG plots with the `plots` feature; distributed runs with `net`).
//! * `dashboard` (the `dashboard` feature, off by default): a live web dashboard of a
//!   runtime, `dashboard::serve(&handle, "127.0.0.1:8080")`, what `qorch simulate --serve`
//!   shows.
//!
//! ```
//! use qorch::protocol::{Priority, PriorityMailbox};
//!
//! let (tx, mut rx) = PriorityMailbox::<u32>::bounded(8);
//! tx.try_send_with(Priority::Low, 1).unwrap();
//! tx.try_send_with(Priority::High, 2).unwrap();
//! assert_eq!(rx.try_recv(), Ok(2));
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "dashboard")]
pub use qorch_dashboard as dashboard;
#[cfg(feature = "net")]
pub use qorch_net as net;
pub use qorch_optimizer as optimizer;
pub use qorch_protocol as protocol;
pub use qorch_protocol::QuantumOrchestrationProtocol;
pub use qorch_protocol::{AgentRef, Message, Priority};
pub use qorch_qubo as qubo;
pub use qorch_resources as resources;
pub use qorch_runtime as runtime;
pub use qorch_runtime::{
    Agent, AgentError, AgentResult, AnyAgent, AnyMessage, AskError, ClusterManager, Context,
    QuantumOrchestrator, RegistryError, ReplyTo, RestartIntensity, RuntimeHandle, SpawnError,
    Terminated, TerminationReason, TimerError, TimerHandle,
};
#[cfg(feature = "sim")]
pub use qorch_sim as sim;

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The user guide's examples, compiled as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
struct GuideDoctests;
