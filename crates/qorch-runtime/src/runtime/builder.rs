//! [`RuntimeBuilder`]: the configuration, checked before anything starts.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qorch_protocol::{MailboxConfig, PriorityMailbox};

use super::handle::HandleInner;
use super::{QuantumOrchestrator, RuntimeError, RuntimeHandle};
use crate::Host;
use crate::config::{RestartIntensity, RuntimeConfig};
use crate::executor::{ActixSpawner, Executor};
use crate::orchestrator::OrchestratorCore;
use crate::registry::SharedRegistry;
use crate::remote::RemoteLink;
use crate::shared::{Shared, Spawner};

/// Builder of a [`QuantumOrchestrator`].
#[must_use]
pub struct RuntimeBuilder<B: Host> {
    pub(super) config: RuntimeConfig,
    pub(super) remote: Option<Arc<dyn RemoteLink<B::Msg>>>,
    pub(super) registry: Option<Arc<dyn SharedRegistry>>,
    pub(super) _agents: PhantomData<fn() -> B>,
}

impl<B: Host> RuntimeBuilder<B> {
    /// Worker threads (actix arbiters).
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = n;
        self
    }

    /// The seed of every random choice.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Lanes of every node's mailbox.
    pub fn mailbox(mut self, config: MailboxConfig) -> Self {
        self.config.mailbox = config;
        self
    }

    /// Restarts allowed per agent within the restart period (see
    /// [`restart_intensity`](Self::restart_intensity)) before it is failed for good.
    pub fn restart_budget(mut self, n: u32) -> Self {
        self.config.restart.max_restarts = n;
        self
    }

    /// Restarts allowed per agent, and the period they are counted over.
    pub fn restart_intensity(mut self, intensity: RestartIntensity) -> Self {
        self.config.restart = intensity;
        self
    }

    /// Heartbeat period and the silence after which a node is failed.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// Redelivery timeout of reliable messages and the deliveries allowed.
    pub fn redelivery(mut self, timeout: Duration, max_deliveries: u32) -> Self {
        self.config.redelivery_timeout = timeout;
        self.config.max_deliveries = max_deliveries;
        self
    }

    /// How messages between agents travel between nodes ([`Routing`](crate::Routing)).
    pub fn routing(mut self, routing: crate::Routing) -> Self {
        self.config.routing = routing;
        self
    }

    /// Records the trace of handled messages.
    pub fn trace(mut self, on: bool) -> Self {
        self.config.trace = on;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Sends envelopes for addresses this runtime does not host through `link` (to the
    /// other processes of a distributed run) instead of counting them as dead letters. They
    /// climb to the orchestrator first, as messages between clusters do.
    pub fn remote(mut self, link: Arc<dyn RemoteLink<B::Msg>>) -> Self {
        self.remote = Some(link);
        self
    }

    /// Shares the named registry with other processes through `registry` (qorch-net's is
    /// kept by NATS): `RuntimeHandle::register` and `lookup` then see every process's
    /// names.
    pub fn registry(mut self, registry: Arc<dyn SharedRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Starts the runtime: the actor system on its own threads (it does not need, nor disturb,
    /// a tokio runtime of the application's).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Config`] for an invalid configuration (see [`ConfigError`](crate::ConfigError)),
    /// [`RuntimeError::Start`] if the threads cannot start.
    ///
    /// # Panics
    ///
    /// Never: mailbox configurations are validated before use.
    pub fn build(self) -> Result<QuantumOrchestrator<B>, RuntimeError> {
        self.config.validate()?;
        let c = &self.config;
        let executor = Executor::start(c.workers)?;
        let (orch_tx, orch_rx) = PriorityMailbox::with_config(c.mailbox).expect("validated");
        let (inbox_tx, inbox_rx) = PriorityMailbox::with_config(c.inbox).expect("validated");
        let shared = Arc::new(Shared::new(
            self.config.clone(),
            orch_tx,
            self.remote,
            self.registry,
        ));
        executor.start_orchestrator(
            OrchestratorCore::new(Arc::clone(&shared), inbox_tx),
            orch_rx,
            self.config.timer_resolution,
        );
        let spawner: Arc<dyn Spawner<B>> = Arc::new(ActixSpawner::new(&executor));
        let inner = Arc::new(HandleInner {
            workers: executor.workers(),
            shared,
            spawner,
            inbox: tokio::sync::Mutex::new(inbox_rx),
            seq: AtomicU64::new(0),
            topology: Mutex::new(()),
        });
        Ok(QuantumOrchestrator {
            handle: RuntimeHandle { inner },
            executor: Some(executor),
        })
    }
}
