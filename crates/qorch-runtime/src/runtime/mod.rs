//! The public face of the runtime: [`QuantumOrchestrator`] and its [`RuntimeBuilder`], the
//! cloneable [`RuntimeHandle`], the [`ClusterManager`], and their errors.

mod builder;
mod error;
mod handle;
mod manager;
mod observe;

use std::marker::PhantomData;
use std::time::Duration;

pub use builder::RuntimeBuilder;
pub use error::{RuntimeError, RuntimeSendError};
pub use handle::RuntimeHandle;
pub use manager::{ClusterManager, Topology, TopologyNode};
pub use observe::{NodeLoad, Observer};

use crate::Host;
use crate::config::RuntimeConfig;
use crate::executor::Executor;
use crate::letter::NodeStats;

/// What a shutdown left behind, summed over every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShutdownReport {
    /// Nodes that stopped and reported.
    pub nodes_reported: usize,
    /// Nodes that did not report in time (already failed or killed).
    pub nodes_missing: usize,
    /// Protocol letters still in mailboxes when they closed, per lane (Control, High, Normal,
    /// Low). User messages accepted before the close were delivered, not left.
    pub left_in_mailboxes: [u64; 4],
    /// Messages waiting for a full mailbox when the nodes stopped.
    pub left_in_outboxes: u64,
    /// Reliable messages never acknowledged.
    pub unacknowledged: u64,
    /// Messages for the application not read: in its inbox, or waiting for room in it.
    pub left_in_inbox: u64,
    /// Final counts of all nodes (killed ones included, as they were when they died).
    pub stats: NodeStats,
}

/// A running qorch runtime: the root of the hierarchy.
///
/// Dropping it stops the actor system (without the graceful drain of
/// [`shutdown`](Self::shutdown)).
///
/// # Examples
///
/// ```
/// use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator};
/// use qorch_protocol::Address;
///
/// struct Echo;
/// impl Agent for Echo {
///     type Msg = String;
///     fn handle(&mut self, msg: String, ctx: &mut Context<'_, String>) -> AgentResult {
///         ctx.send_to(Address::Orchestrator, format!("echo: {msg}"));
///         Ok(())
///     }
/// }
///
/// let rt = QuantumOrchestrator::<Echo>::builder().workers(1).build().unwrap();
/// let cluster = rt.manager().create_cluster("c0").unwrap();
/// let agents = rt.manager().spawn_agents(cluster.into(), 3, |_| Echo).unwrap();
/// let handle = rt.handle();
/// handle.send_blocking(&agents[1], "hi".to_owned()).unwrap();
/// let reply = handle.recv_blocking(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(reply.payload, "echo: hi");
/// assert_eq!(reply.from, agents[1].into());
/// let report = rt.shutdown();
/// assert_eq!(report.stats.handled, 1);
/// ```
pub struct QuantumOrchestrator<B: Host> {
    handle: RuntimeHandle<B>,
    executor: Option<Executor>,
}

impl<B: Host> QuantumOrchestrator<B> {
    /// A builder with the default configuration.
    pub fn builder() -> RuntimeBuilder<B> {
        RuntimeBuilder {
            config: RuntimeConfig::default(),
            remote: None,
            registry: None,
            _agents: PhantomData,
        }
    }

    /// A cloneable, `Send` handle to talk to the runtime from outside.
    pub fn handle(&self) -> RuntimeHandle<B> {
        self.handle.clone()
    }

    /// The cluster manager (create clusters and sub-clusters, spawn and move agents).
    pub fn manager(&self) -> ClusterManager<B> {
        ClusterManager {
            handle: self.handle.clone(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.handle.inner.shared.config
    }

    /// Stops gracefully: every node closes its mailbox, delivers what it had accepted in
    /// priority order, stops its agents and reports what was left; then the actor system
    /// stops. Blocks (up to 10 s for the nodes' reports).
    pub fn shutdown(mut self) -> ShutdownReport {
        let report = self.handle.stop_nodes(Duration::from_secs(10));
        if let Some(mut e) = self.executor.take() {
            e.stop();
        }
        // A query sent now would wait for an answer that never comes (a stopped actor's
        // mailbox may outlive it while handles hold senders): it is refused instead.
        let services = &self.handle.inner.shared.services;
        services
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        report
    }

    /// [`shutdown`](Self::shutdown) for async code: the blocking part runs on a thread of
    /// its own, so the caller's executor is never blocked (no `spawn_blocking` needed, and
    /// any executor will do).
    pub async fn shutdown_async(self) -> ShutdownReport {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("qorch-shutdown".into())
            .spawn(move || {
                let _ = tx.send(self.shutdown());
            });
        if let Err(e) = spawned {
            // The runtime went down with the closure, without the graceful drain.
            tracing::warn!(error = %e, "no thread for a graceful shutdown: the runtime stopped at once");
        }
        rx.await.unwrap_or_default()
    }
}
