//! Distributed runs: the scenario's clusters over K node processes joined by NATS, the
//! orchestrator (this process) driving ticks and rounds.
//!
//! * **Placement.** Cluster `c` goes to node `c mod K`; every node learns every agent's
//!   cluster and leaf (its gateway's route table), builds its clusters with the ids a local
//!   run would give, and spawns their agents. Messages between agents of different nodes
//!   climb to the node's orchestrator and cross through the gateways (`qorch_net`).
//! * **Ticks.** Each node runs the tick in its runtime until it is locally quiet; then
//!   termination waves ask every node for its counters until two waves in a row are equal
//!   and every node is idle (nothing in flight, every frame acknowledged both ways). A frame
//!   is acknowledged only once handled, so that is global quiescence.
//! * **Rounds.** The optimizer runs here, on a [`qorch_optimizer::Hierarchy`] whose reports
//!   and grants are the nodes' (`Collect`, `Allocate` calls): the same rounds, ledger and
//!   summaries as a local run, so the report has the same keys.
//! * **Faults.** A node that falls silent (missing heartbeats) is failed; its clusters are
//!   created again on the remaining nodes (round-robin), its agents restarted there from
//!   their last state (their model is a function of their id, their tick is the run's), and
//!   frames its senders had not seen acknowledged reach the new host on the same subjects.
//!   A `node_crash` fault kills a node at a quiet point (between rounds), so the message
//!   accounting stays exact; a node killed from outside mid-tick is recovered the same way,
//!   but what it handled after its last report is then unknown.
//!
//! * **The built-in model only.** A node process builds its agents from the scenario's TOML
//!   alone, so distributed runs simulate the built-in model; a custom
//!   [`AgentWorkload`](crate::AgentWorkload) runs in one process
//!   ([`run_workload`](crate::run_workload), which refuses `node_crash` faults with
//!   [`SimError::LocalOnly`](crate::SimError::LocalOnly)).
//!
//! The files: `coordinator.rs` (this process, the driver's backend), `join.rs` (gathering
//! and starting the node processes), `calls.rs` (the control calls to the nodes and the
//! placement), `remote.rs` (the nodes as the optimizer's hierarchy), `protocol.rs` (what
//! the calls carry), `node.rs` (a node process).

mod calls;
mod coordinator;
mod join;
mod node;
mod protocol;
mod remote;

pub use coordinator::{Distributed, run_distributed};
pub use join::SpawnNode;
pub use node::run_node;
