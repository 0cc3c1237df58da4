//! The public face of the runtime: [`QuantumOrchestrator`], its builder, the cloneable
//! [`RuntimeHandle`] and the [`ClusterManager`].

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorch_protocol::{
    Address, AgentId, ClusterId, Envelope, MailboxConfig, Message, Priority, PriorityMailbox,
    SubClusterId, TrySendError,
};

use qorch_scheduler::{Grouping, ReclusterPlan, ReclusterPolicy, Step, plan_reclustering};

use crate::Agent;
use crate::directory::{NodeInfo, NodeKey};
use crate::executor::{ActixSpawner, Executor};
use crate::letter::{
    AllocationBatch, Barrier, Factory, Letter, NodeShutdown, NodeStats, Query, RoundReport,
    ShutdownCollector, TraceEvent,
};
use crate::orchestrator::OrchestratorCore;
use crate::remote::{InjectError, Remote, RemoteLink};
use crate::shared::{RuntimeConfig, Shared, Spawner};
use crate::status::StatusTree;

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration is invalid.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The actor system could not start.
    #[error("cannot start the actor system: {0}")]
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

/// Error of [`RuntimeHandle::try_send`]: the message is given back.
#[derive(Debug, thiserror::Error)]
pub enum SendError<M> {
    /// The destination's mailbox is full; try again later or use the async `send`.
    #[error("the destination's mailbox is full")]
    Full(M),
    /// The destination does not exist or has stopped.
    #[error("the destination does not exist or has stopped")]
    Closed(M),
}

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
    /// Messages for the application not read from the inbox.
    pub left_in_inbox: u64,
    /// Final counts of all nodes (killed ones included, as they were when they died).
    pub stats: NodeStats,
}

/// Builder of a [`QuantumOrchestrator`].
#[must_use]
pub struct RuntimeBuilder<B: Agent> {
    config: RuntimeConfig,
    remote: Option<Arc<dyn RemoteLink<B::Msg>>>,
    _agents: PhantomData<fn() -> B>,
}

impl<B: Agent> RuntimeBuilder<B> {
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

    /// Restarts allowed per agent before it is marked failed.
    pub fn restart_budget(mut self, n: u32) -> Self {
        self.config.restart_budget = n;
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

    /// Starts the runtime: the actor system on its own threads (it does not need, nor disturb,
    /// a tokio runtime of the application's).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Config`] for an invalid configuration, [`RuntimeError::Start`] if the
    /// threads cannot start.
    ///
    /// # Panics
    ///
    /// Never: mailbox configurations are validated before use.
    pub fn build(self) -> Result<QuantumOrchestrator<B>, RuntimeError> {
        let c = &self.config;
        if c.workers == 0 {
            return Err(RuntimeError::Config("workers must be at least 1".into()));
        }
        c.mailbox
            .validate()
            .map_err(|e| RuntimeError::Config(format!("mailbox: {e}")))?;
        c.inbox
            .validate()
            .map_err(|e| RuntimeError::Config(format!("inbox: {e}")))?;
        for (name, d) in [
            ("heartbeat interval", c.heartbeat_interval),
            ("redelivery timeout", c.redelivery_timeout),
            ("timer resolution", c.timer_resolution),
        ] {
            if d.is_zero() {
                return Err(RuntimeError::Config(format!("{name} must be positive")));
            }
        }
        if c.heartbeat_timeout <= c.heartbeat_interval {
            return Err(RuntimeError::Config(format!(
                "heartbeat timeout ({:?}) must exceed the heartbeat interval ({:?})",
                c.heartbeat_timeout, c.heartbeat_interval
            )));
        }
        if c.max_deliveries == 0 {
            return Err(RuntimeError::Config(
                "max_deliveries must be at least 1".into(),
            ));
        }
        let executor = Executor::start(c.workers)?;
        let (orch_tx, orch_rx) = PriorityMailbox::with_config(c.mailbox).expect("validated");
        let (inbox_tx, inbox_rx) = PriorityMailbox::with_config(c.inbox).expect("validated");
        let shared = Arc::new(Shared::new(self.config.clone(), orch_tx, self.remote));
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
///         ctx.send(Address::Orchestrator, format!("echo: {msg}"));
///         Ok(())
///     }
/// }
///
/// let rt = QuantumOrchestrator::<Echo>::builder().workers(1).build().unwrap();
/// let cluster = rt.manager().create_cluster("c0").unwrap();
/// let agents = rt.manager().spawn_agents(cluster.into(), 3, |_| Echo).unwrap();
/// let handle = rt.handle();
/// handle.send_blocking(agents[1], "hi".to_owned()).unwrap();
/// let reply = handle.recv_blocking(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(reply.payload, "echo: hi");
/// assert_eq!(reply.from, agents[1].into());
/// let report = rt.shutdown();
/// assert_eq!(report.stats.handled, 1);
/// ```
pub struct QuantumOrchestrator<B: Agent> {
    handle: RuntimeHandle<B>,
    executor: Option<Executor>,
}

impl<B: Agent> QuantumOrchestrator<B> {
    /// A builder with the default configuration.
    pub fn builder() -> RuntimeBuilder<B> {
        RuntimeBuilder {
            config: RuntimeConfig::default(),
            remote: None,
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
        report
    }
}

struct HandleInner<B: Agent> {
    shared: Arc<Shared<B>>,
    spawner: Arc<dyn Spawner<B>>,
    workers: usize,
    inbox: tokio::sync::Mutex<PriorityMailbox<Envelope<B::Msg>>>,
    seq: AtomicU64,
    /// Serializes changes of the node tree.
    topology: Mutex<()>,
}

/// A cloneable, `Send` handle to a running runtime: send messages in, receive what agents send
/// to the application, query status, run rounds. Its async methods work under any executor
/// (they need no tokio reactor); the `_blocking` ones park the calling thread.
pub struct RuntimeHandle<B: Agent> {
    inner: Arc<HandleInner<B>>,
}

impl<B: Agent> Clone for RuntimeHandle<B> {
    fn clone(&self) -> Self {
        RuntimeHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Agent> RuntimeHandle<B> {
    fn envelope(&self, to: Address, priority: Priority, letter: Letter<B>) -> Envelope<Letter<B>> {
        Envelope {
            from: Address::Orchestrator,
            to,
            priority,
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
            correlation: None,
            deadline: None,
            ack_required: false,
            payload: letter,
        }
    }

    /// The node that receives an envelope for `to` sent from outside: the agent's host, the
    /// cluster or sub-cluster itself, or the orchestrator.
    fn entry(&self, to: Address) -> Result<Option<NodeKey>, RuntimeError> {
        let shared = &self.inner.shared;
        let tree = shared.directory.tree.load();
        shared
            .directory
            .resolve(&tree, to)
            .map_err(|()| RuntimeError::UnknownAddress(to))
    }

    fn mailbox(
        &self,
        node: Option<NodeKey>,
    ) -> Option<qorch_protocol::MailboxSender<Envelope<Letter<B>>>> {
        match node {
            None => Some(self.inner.shared.orchestrator.clone()),
            Some(k) => self.inner.shared.sender(k),
        }
    }

    /// Sends `msg` to an agent (or to a cluster: it then reaches the application inbox) if
    /// the destination's mailbox has room.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] or [`SendError::Closed`], with the message.
    pub fn try_send(&self, to: impl Into<Address>, msg: B::Msg) -> Result<(), SendError<B::Msg>> {
        let to = to.into();
        let Ok(node) = self.entry(to) else {
            return Err(SendError::Closed(msg));
        };
        let Some(mb) = self.mailbox(node) else {
            return Err(SendError::Closed(msg));
        };
        let priority = msg.priority();
        let flow = &self.inner.shared.external_flow;
        flow.produce(1);
        let r = mb.try_send(self.envelope(to, priority, Letter::User(msg)));
        if r.is_err() {
            flow.consume(1);
        }
        match r {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(e)) => Err(SendError::Full(unwrap_user(e.payload))),
            Err(TrySendError::Closed(e)) => Err(SendError::Closed(unwrap_user(e.payload))),
        }
    }

    /// Sends `msg`, waiting asynchronously while the destination's mailbox is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the destination does not exist or has stopped.
    pub async fn send(&self, to: impl Into<Address>, msg: B::Msg) -> Result<(), SendError<B::Msg>> {
        let to = to.into();
        let Ok(node) = self.entry(to) else {
            return Err(SendError::Closed(msg));
        };
        let Some(mb) = self.mailbox(node) else {
            return Err(SendError::Closed(msg));
        };
        let priority = msg.priority();
        let flow = &self.inner.shared.external_flow;
        flow.produce(1);
        mb.send(self.envelope(to, priority, Letter::User(msg)))
            .await
            .map_err(|e| {
                flow.consume(1);
                SendError::Closed(unwrap_user(e.0.payload))
            })
    }

    /// Sends `msg`, parking the thread while the destination's mailbox is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the destination does not exist or has stopped.
    pub fn send_blocking(
        &self,
        to: impl Into<Address>,
        msg: B::Msg,
    ) -> Result<(), SendError<B::Msg>> {
        let to = to.into();
        let Ok(node) = self.entry(to) else {
            return Err(SendError::Closed(msg));
        };
        let Some(mb) = self.mailbox(node) else {
            return Err(SendError::Closed(msg));
        };
        let priority = msg.priority();
        let flow = &self.inner.shared.external_flow;
        flow.produce(1);
        mb.send_blocking(self.envelope(to, priority, Letter::User(msg)))
            .map_err(|e| {
                flow.consume(1);
                SendError::Closed(unwrap_user(e.0.payload))
            })
    }

    /// The next message agents sent to the application (to the orchestrator or a cluster's
    /// address); `None` once the runtime has stopped.
    pub async fn recv(&self) -> Option<Envelope<B::Msg>> {
        self.inner.inbox.lock().await.recv().await
    }

    /// Like [`recv`](Self::recv), parking the thread, for up to `timeout`.
    pub fn recv_blocking(&self, timeout: Duration) -> Option<Envelope<B::Msg>> {
        let mut inbox = self.inner.inbox.blocking_lock();
        inbox.recv_timeout(timeout).ok()
    }

    /// Takes the next application message if one is waiting.
    pub fn try_recv(&self) -> Option<Envelope<B::Msg>> {
        let mut inbox = self.inner.inbox.try_lock().ok()?;
        inbox.try_recv().ok()
    }

    /// Delivers an envelope that came from another process (through a [`RemoteLink`]'s
    /// transport) to the agent or node it names, keeping its sender, sequence number and
    /// priority; waits while the entry node's mailbox is full.
    ///
    /// # Errors
    ///
    /// [`InjectError::Unknown`] if this runtime hosts no such address,
    /// [`InjectError::Stopped`] if it has stopped; the envelope is given back.
    pub async fn inject(&self, env: Envelope<Remote<B::Msg>>) -> Result<(), InjectError<B::Msg>> {
        let Ok(node) = self.entry(env.to) else {
            return Err(InjectError::Unknown(env));
        };
        let Some(mb) = self.mailbox(node) else {
            return Err(InjectError::Stopped);
        };
        let user = matches!(env.payload, Remote::User(_));
        let flow = &self.inner.shared.external_flow;
        if user {
            flow.produce(1);
        }
        mb.send(env.map(|p| match p {
            Remote::User(m) => Letter::User(m),
            Remote::Ack(id) => Letter::Ack(id),
        }))
        .await
        .map_err(|_| {
            if user {
                flow.consume(1);
            }
            InjectError::Stopped
        })
    }

    /// User messages sent and not yet handled (or counted as dead letters or sent to another
    /// process) in this runtime, from its counters: 0 when it is idle.
    pub fn in_flight(&self) -> u64 {
        self.inner.shared.in_flight()
    }

    async fn ask<T>(
        &self,
        node: Option<NodeKey>,
        q: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Query,
    ) -> Result<T, RuntimeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mb = self.mailbox(node).ok_or(RuntimeError::Stopped)?;
        let to = match node {
            None => Address::Orchestrator,
            Some(k) => self.inner.shared.directory.tree.load().info(k).address,
        };
        mb.send(self.envelope(to, Priority::Control, Letter::Query(q(tx))))
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        rx.await.map_err(|_| RuntimeError::Stopped)
    }

    /// The status tree as the orchestrator knows it from heartbeats.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn status(&self) -> Result<StatusTree, RuntimeError> {
        self.ask(None, Query::Status).await
    }

    /// Every node's counts, summed (killed nodes' final counts included).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn stats(&self) -> Result<NodeStats, RuntimeError> {
        let mut total = self.detached_stats();
        for k in self.live_nodes() {
            if let Ok(s) = self.ask(Some(k), Query::Stats).await {
                total.merge(&s);
            }
        }
        Ok(total)
    }

    /// The handled-message trace of every node (recorded with `trace(true)`), node by node.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn trace(&self) -> Result<Vec<TraceEvent>, RuntimeError> {
        let mut all = Vec::new();
        for k in self.live_nodes() {
            all.extend(self.ask(Some(k), Query::Trace).await?);
        }
        Ok(all)
    }

    /// Waits until every node and the orchestrator have handled everything that was queued in
    /// their mailboxes when this was called (one barrier letter per lane and node). Messages
    /// those send later are not waited for. With one worker, feeding the runtime only at such
    /// settled points makes the order of message handling a function of the inputs alone.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn settle(&self) -> Result<(), RuntimeError> {
        let mut waits = Vec::new();
        let targets: Vec<Option<NodeKey>> = std::iter::once(None)
            .chain(self.live_nodes().into_iter().map(Some))
            .collect();
        for node in targets {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let barrier = Barrier::new(tx);
            let mb = self.mailbox(node).ok_or(RuntimeError::Stopped)?;
            for p in Priority::DESCENDING {
                let env = self.envelope(
                    Address::Orchestrator,
                    p,
                    Letter::Query(Query::Barrier(Arc::clone(&barrier))),
                );
                mb.send(env).await.map_err(|_| RuntimeError::Stopped)?;
            }
            waits.push(rx);
        }
        for rx in waits {
            rx.await.map_err(|_| RuntimeError::Stopped)?;
        }
        Ok(())
    }

    /// Waits until the runtime is quiet after tick `tick`: every live node has processed the
    /// tick, and every user message produced so far (by agents, timers, redeliveries or
    /// handles) has been consumed (handled, delivered to the application, or counted dead or
    /// lost). Agent timers still pending do not count as activity. Returns the number of
    /// settle passes it took.
    ///
    /// Counting: each node counts what it produces before it can be consumed, and this reads
    /// all consumed counters before all produced ones, so equality means nothing was in flight.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Timeout`] if the runtime is still busy after `timeout`,
    /// [`RuntimeError::Stopped`] if it has stopped.
    pub async fn quiesce(&self, tick: u64, timeout: Duration) -> Result<u32, RuntimeError> {
        let start = Instant::now();
        let mut passes = 0;
        let mut pause = Duration::from_micros(50);
        loop {
            // Settle passes are letters every node must handle (at Control priority): sent in
            // a tight loop while the nodes are busy, they would compete with the work. So the
            // counters are polled first (cheap atomic reads), and a pass runs only once they
            // look quiet; the pass then confirms it.
            while !self.looks_quiet(tick) && start.elapsed() < timeout {
                let _ = self.inner.spawner.sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(1));
            }
            self.settle().await?;
            passes += 1;
            if self.looks_quiet(tick) {
                return Ok(passes);
            }
            if start.elapsed() >= timeout {
                return Err(RuntimeError::Timeout(timeout));
            }
        }
    }

    /// Every live node has processed tick `tick` and every user message produced so far has
    /// been consumed, per the counters (consumed read before produced).
    fn looks_quiet(&self, tick: u64) -> bool {
        let shared = &self.inner.shared;
        let tree = shared.directory.tree.load();
        let flows = shared.flows.load();
        let ticked = (0..flows.len()).all(|k| {
            let info = tree.info(NodeKey(k as u32));
            info.removed || info.dead || flows[k].tick.load(Ordering::Acquire) >= tick
        });
        // Every node's counters count, killed ones included: what a node produced before it
        // was killed is consumed elsewhere, and what was sent to it is consumed by it (its
        // leftovers counted lost when it dies) or by its senders (as dead letters).
        ticked && shared.in_flight() == 0
    }

    fn detached_stats(&self) -> NodeStats {
        *self
            .inner
            .shared
            .detached_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live_nodes(&self) -> Vec<NodeKey> {
        let tree = self.inner.shared.directory.tree.load();
        (0..tree.nodes.len() as u32)
            .map(NodeKey)
            .filter(|k| !tree.info(*k).removed && !tree.info(*k).dead)
            .collect()
    }

    /// Broadcasts tick `n` down the tree: every agent's `on_tick` runs.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn tick(&self, n: u64) -> Result<(), RuntimeError> {
        self.inner
            .shared
            .orchestrator
            .send(self.envelope(Address::Orchestrator, Priority::Normal, Letter::Tick(n)))
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    /// Runs report round `round`: every node reports its agents' demand and status up the
    /// tree (one message per node), and the orchestrator returns the merged report, sorted by
    /// agent. Failed subtrees are not waited for.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn round(&self, round: u64) -> Result<RoundReport, RuntimeError> {
        self.ask(None, |tx| Query::Round(round, tx)).await
    }

    /// Sends new allocations down the tree at High priority; each agent's `on_allocation`
    /// runs with its grant.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn allocate(&self, batch: AllocationBatch) -> Result<(), RuntimeError> {
        self.inner
            .shared
            .orchestrator
            .send(self.envelope(
                Address::Orchestrator,
                Priority::High,
                Letter::Allocate(Box::new(batch)),
            ))
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    /// A cluster manager on this handle.
    pub fn manager(&self) -> ClusterManager<B> {
        ClusterManager {
            handle: self.clone(),
        }
    }

    /// Stops every node and collects their reports (waits up to `wait`).
    fn stop_nodes(&self, wait: Duration) -> ShutdownReport {
        let expected = self.live_nodes().len();
        let collector = Arc::new(ShutdownCollector::default());
        let env = self.envelope(
            Address::Orchestrator,
            Priority::Control,
            Letter::Stop(Arc::clone(&collector)),
        );
        let _ = self.inner.shared.orchestrator.send_blocking(env);
        let deadline = Instant::now() + wait;
        loop {
            let n = collector
                .reports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len();
            if n >= expected || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // What the nodes sent the application while stopping is still in the orchestrator's
        // mailbox: let it through before counting the inbox.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let barrier = Barrier::new(tx);
        let mut sent = true;
        for p in Priority::DESCENDING {
            let env = self.envelope(
                Address::Orchestrator,
                p,
                Letter::Query(Query::Barrier(Arc::clone(&barrier))),
            );
            sent &= self.inner.shared.orchestrator.send_blocking(env).is_ok();
        }
        if sent {
            let _ = rx.blocking_recv();
        }
        let reports: Vec<NodeShutdown> = std::mem::take(
            &mut *collector
                .reports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut out = ShutdownReport {
            nodes_reported: reports.len(),
            nodes_missing: expected.saturating_sub(reports.len()),
            stats: self.detached_stats(),
            ..ShutdownReport::default()
        };
        for r in &reports {
            for (a, b) in out.left_in_mailboxes.iter_mut().zip(r.left_in_mailbox) {
                *a += b;
            }
            out.left_in_outboxes += r.left_in_outbox;
            out.unacknowledged += r.unacknowledged;
            out.stats.merge(&r.stats);
        }
        if let Ok(inbox) = self.inner.inbox.try_lock() {
            out.left_in_inbox = inbox.len() as u64;
        }
        out
    }
}

fn unwrap_user<B: Agent>(letter: Letter<B>) -> B::Msg {
    match letter {
        Letter::User(m) => m,
        _ => unreachable!("only user letters are sent through this path"),
    }
}

/// Creates clusters and sub-clusters, spawns agents into them in bulk, and moves agents.
///
/// Clusters are spread over the workers round-robin; a sub-cluster runs on its cluster's
/// worker, so a cluster's agents share one thread and most of their messages never cross
/// threads.
pub struct ClusterManager<B: Agent> {
    handle: RuntimeHandle<B>,
}

impl<B: Agent> Clone for ClusterManager<B> {
    fn clone(&self) -> Self {
        ClusterManager {
            handle: self.handle.clone(),
        }
    }
}

impl<B: Agent> ClusterManager<B> {
    fn add_node(&self, address: Address, name: &str, parent: Option<NodeKey>) -> NodeKey {
        let inner = &self.handle.inner;
        let shared = &inner.shared;
        let _guard = inner
            .topology
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tree = shared.directory.tree.load();
        let key = NodeKey(tree.nodes.len() as u32);
        let worker = match parent {
            Some(p) => tree.info(p).worker,
            None => tree.roots().count() % inner.workers,
        };
        drop(tree);
        let (tx, rx) = PriorityMailbox::with_config(shared.config.mailbox).expect("validated");
        shared.add_sender(tx);
        shared.directory.update_tree(|t| {
            t.nodes.push(NodeInfo {
                address,
                name: name.to_owned(),
                parent,
                children: Vec::new(),
                worker,
                removed: false,
                dead: false,
            });
            if let Some(p) = parent {
                t.nodes[p.0 as usize].children.push(key);
            }
            match address {
                Address::Cluster(c) => {
                    t.by_cluster.insert(c, key);
                }
                Address::SubCluster(s) => {
                    t.by_sub.insert(s, key);
                }
                _ => {}
            }
        });
        inner
            .spawner
            .start_node(Arc::clone(shared), key, worker, rx);
        key
    }

    /// Creates a top-level cluster.
    ///
    /// # Errors
    ///
    /// None today; kept for forward compatibility with remote placement.
    pub fn create_cluster(&self, name: &str) -> Result<ClusterId, RuntimeError> {
        let id = ClusterId(
            self.handle
                .inner
                .shared
                .next_cluster
                .fetch_add(1, Ordering::Relaxed),
        );
        self.add_node(Address::Cluster(id), name, None);
        Ok(id)
    }

    /// Creates a sub-cluster under a cluster or another sub-cluster.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `parent` is not a cluster or sub-cluster.
    pub fn create_sub_cluster(
        &self,
        parent: Address,
        name: &str,
    ) -> Result<SubClusterId, RuntimeError> {
        let tree = self.handle.inner.shared.directory.tree.load();
        let Some(p) = tree.node_of(parent) else {
            return Err(RuntimeError::UnknownAddress(parent));
        };
        drop(tree);
        let id = SubClusterId(
            self.handle
                .inner
                .shared
                .next_sub
                .fetch_add(1, Ordering::Relaxed),
        );
        self.add_node(Address::SubCluster(id), name, Some(p));
        Ok(id)
    }

    /// Creates a top-level cluster with a chosen id (a distributed run places the clusters
    /// of one numbering over several processes). Later [`create_cluster`](Self::create_cluster)
    /// calls number past it.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::AddressInUse`] if the id is taken.
    pub fn create_cluster_with_id(&self, id: ClusterId, name: &str) -> Result<(), RuntimeError> {
        let address = Address::Cluster(id);
        if self
            .handle
            .inner
            .shared
            .directory
            .tree
            .load()
            .node_of(address)
            .is_some()
        {
            return Err(RuntimeError::AddressInUse(address));
        }
        self.handle
            .inner
            .shared
            .next_cluster
            .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
        self.add_node(address, name, None);
        Ok(())
    }

    /// Creates a sub-cluster with a chosen id under a cluster or another sub-cluster.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `parent` is not a cluster or sub-cluster,
    /// [`RuntimeError::AddressInUse`] if the id is taken.
    pub fn create_sub_cluster_with_id(
        &self,
        parent: Address,
        id: SubClusterId,
        name: &str,
    ) -> Result<(), RuntimeError> {
        let address = Address::SubCluster(id);
        let tree = self.handle.inner.shared.directory.tree.load();
        let Some(p) = tree.node_of(parent) else {
            return Err(RuntimeError::UnknownAddress(parent));
        };
        if tree.node_of(address).is_some() {
            return Err(RuntimeError::AddressInUse(address));
        }
        drop(tree);
        self.handle
            .inner
            .shared
            .next_sub
            .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
        self.add_node(address, name, Some(p));
        Ok(())
    }

    /// Spawns agents with chosen ids into a cluster or sub-cluster (a distributed run keeps
    /// one numbering of agents over its processes). Later
    /// [`spawn_agents`](Self::spawn_agents) calls number past the largest.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `host` is not a cluster or sub-cluster,
    /// [`RuntimeError::AddressInUse`] if an id is taken (nothing is spawned then),
    /// [`RuntimeError::Stopped`].
    pub fn spawn_agents_at(
        &self,
        host: Address,
        ids: &[AgentId],
        factory: &Factory<B>,
    ) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(node) = tree.node_of(host) else {
            return Err(RuntimeError::UnknownAddress(host));
        };
        drop(tree);
        if let Some(&taken) = ids
            .iter()
            .find(|&&id| shared.directory.agents.get(id).is_some())
        {
            return Err(RuntimeError::AddressInUse(taken.into()));
        }
        if let Some(max) = ids.iter().map(|a| a.0).max() {
            shared
                .next_agent
                .fetch_max(max.saturating_add(1), Ordering::Relaxed);
        }
        self.spawn_into(node, host, ids.to_vec(), factory)
    }

    /// Marks `ids` as on their way to `node` and sends it the spawn letter.
    fn spawn_into(
        &self,
        node: NodeKey,
        host: Address,
        ids: Vec<AgentId>,
        factory: &Factory<B>,
    ) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        for &id in &ids {
            shared
                .directory
                .agents
                .set(id, Some((node, crate::directory::IN_TRANSIT)));
        }
        let mb = shared.sender(node).ok_or(RuntimeError::Stopped)?;
        let env = self.handle.envelope(
            host,
            Priority::Control,
            Letter::Spawn(ids, Arc::clone(factory)),
        );
        mb.send_blocking(env).map_err(|_| RuntimeError::Stopped)?;
        Ok(())
    }

    /// Spawns `count` agents into a cluster or sub-cluster; `factory` builds each behaviour
    /// (and rebuilds it on restart). Returns their ids. Messages sent to them right away are
    /// held until they exist, never lost.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `host` is not a cluster or sub-cluster,
    /// [`RuntimeError::TooManyAgents`] past 2^32 agents, [`RuntimeError::Stopped`].
    pub fn spawn_agents(
        &self,
        host: Address,
        count: usize,
        factory: impl Fn(AgentId) -> B + Send + Sync + 'static,
    ) -> Result<Vec<AgentId>, RuntimeError> {
        let factory: Factory<B> = Arc::new(factory);
        self.spawn_agents_with(host, count, &factory)
    }

    /// [`spawn_agents`](Self::spawn_agents) with a shared factory.
    ///
    /// # Errors
    ///
    /// As [`spawn_agents`](Self::spawn_agents).
    pub fn spawn_agents_with(
        &self,
        host: Address,
        count: usize,
        factory: &Factory<B>,
    ) -> Result<Vec<AgentId>, RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(node) = tree.node_of(host) else {
            return Err(RuntimeError::UnknownAddress(host));
        };
        drop(tree);
        let count32 = u32::try_from(count).map_err(|_| RuntimeError::TooManyAgents)?;
        let first = shared
            .allocate_agent_ids(count32)
            .ok_or(RuntimeError::TooManyAgents)?;
        let ids: Vec<AgentId> = (first..first + count32).map(AgentId).collect();
        self.spawn_into(node, host, ids.clone(), factory)?;
        Ok(ids)
    }

    /// Moves agents (with their state, grant and pending messages) to another cluster or
    /// sub-cluster. Messages in flight follow them.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] for an unknown destination.
    pub fn move_agents(&self, agents: &[AgentId], to: Address) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(dest) = tree.node_of(to) else {
            return Err(RuntimeError::UnknownAddress(to));
        };
        drop(tree);
        let mut by_host: std::collections::BTreeMap<NodeKey, Vec<AgentId>> =
            std::collections::BTreeMap::new();
        for &a in agents {
            if let Some(h) = shared.directory.agents.node(a)
                && h != dest
            {
                by_host.entry(h).or_default().push(a);
            }
        }
        for (host, ids) in by_host {
            let Some(mb) = shared.sender(host) else {
                continue;
            };
            let env = self
                .handle
                .envelope(to, Priority::Control, Letter::MoveOut(ids, dest));
            mb.send_blocking(env).map_err(|_| RuntimeError::Stopped)?;
        }
        Ok(())
    }

    /// Fault injection: stops a cluster or sub-cluster (and everything below it) at once, as
    /// if its process crashed: no drain, no more heartbeats. Its parent marks it failed after
    /// the heartbeat timeout.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `node` is not a cluster or sub-cluster.
    pub fn kill(&self, node: Address) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(k) = tree.node_of(node) else {
            return Err(RuntimeError::UnknownAddress(node));
        };
        let mut stack = vec![k];
        let mut all = Vec::new();
        while let Some(n) = stack.pop() {
            all.push(n);
            stack.extend(tree.info(n).children.iter().copied());
        }
        drop(tree);
        shared.directory.update_tree(|t| {
            for n in &all {
                t.nodes[n.0 as usize].dead = true;
            }
        });
        for n in all {
            if let Some(mb) = shared.sender(n) {
                let addr = shared.directory.tree.load().info(n).address;
                let _ = mb.try_send(self.handle.envelope(addr, Priority::Control, Letter::Kill));
            }
        }
        Ok(())
    }

    /// Re-clusters agents by their affinity (who talks to whom, for instance the optimizer's
    /// observed `OptimizationState::affinity`): agents move to the nodes they talk with,
    /// small sibling nodes merge, and large ones split in two (see
    /// [`qorch_scheduler::plan_reclustering`], which plans it as QUBO problems). Agents move
    /// with [`move_agents`](Self::move_agents), their state, grant and pending messages with
    /// them; a node emptied by a merge stays as a spare, reused by a later split among its
    /// siblings, and a split without a spare creates a sibling (`<name>/split-<k>`).
    ///
    /// Moves are under way when this returns: `RuntimeHandle::settle` twice (sources hand
    /// the agents over, destinations adopt them) waits for them to land.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub fn recluster(
        &self,
        affinity: &HashMap<(AgentId, AgentId), f64>,
        policy: &ReclusterPolicy,
    ) -> Result<ReclusterPlan, RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let n_nodes = tree.nodes.len();
        let mut addresses: Vec<Address> = tree.nodes.iter().map(|n| n.address).collect();
        let group: Vec<u32> = tree
            .nodes
            .iter()
            .map(|n| n.parent.map_or(u32::MAX, |p| p.0))
            .collect();
        let live: Vec<bool> = tree.nodes.iter().map(|n| !n.removed && !n.dead).collect();
        let parents: Vec<Option<Address>> = tree
            .nodes
            .iter()
            .map(|n| n.parent.map(|p| tree.info(p).address))
            .collect();
        let names: Vec<String> = tree.nodes.iter().map(|n| n.name.clone()).collect();
        drop(tree);
        let agents = shared.next_agent.load(Ordering::Relaxed);
        let leaf_of: Vec<Option<u32>> = (0..agents)
            .map(|a| shared.directory.agents.node(AgentId(a)).map(|k| k.0))
            .collect();
        let mut edges: Vec<(u32, u32, f64)> =
            affinity.iter().map(|(&(a, b), &w)| (a.0, b.0, w)).collect();
        edges.sort_by_key(|e| (e.0, e.1));
        let grouping = Grouping {
            leaf_of,
            group,
            live,
        };
        let plan = plan_reclustering(&grouping, &edges, policy);
        // Each agent moves once, to where the last step puts it: a second move issued before
        // the first has landed would be sent to the old host.
        let mut dest: BTreeMap<u32, u32> = BTreeMap::new();
        for step in &plan.steps {
            match step {
                Step::Move(m) => dest.extend(m.iter().copied()),
                Step::Merge { into, agents, .. } => {
                    dest.extend(agents.iter().map(|&a| (a, *into)));
                }
                Step::Split { leaf, to, leaving } => {
                    if *to as usize >= addresses.len() {
                        let k = addresses.len() - n_nodes;
                        let name = format!("{}/split-{k}", names[*leaf as usize]);
                        let address = match parents[*leaf as usize] {
                            Some(p) => Address::SubCluster(self.create_sub_cluster(p, &name)?),
                            None => Address::Cluster(self.create_cluster(&name)?),
                        };
                        addresses.push(address);
                    }
                    dest.extend(leaving.iter().map(|&a| (a, *to)));
                }
            }
        }
        let mut by_dest: BTreeMap<u32, Vec<AgentId>> = BTreeMap::new();
        for (a, to) in dest {
            by_dest.entry(to).or_default().push(AgentId(a));
        }
        for (to, ids) in by_dest {
            self.move_agents(&ids, addresses[to as usize])?;
        }
        Ok(plan)
    }

    /// The agents hosted by a node, per the directory (its own agents, not its sub-clusters').
    pub fn host_of(&self, agent: AgentId) -> Option<Address> {
        let shared = &self.handle.inner.shared;
        let k = shared.directory.agents.node(agent)?;
        Some(shared.directory.tree.load().info(k).address)
    }

    /// Every cluster and sub-cluster: address, name, parent.
    pub fn nodes(&self) -> Vec<(Address, String, Option<Address>)> {
        let tree = self.handle.inner.shared.directory.tree.load();
        tree.nodes
            .iter()
            .filter(|n| !n.removed)
            .map(|n| {
                (
                    n.address,
                    n.name.clone(),
                    n.parent.map(|p| tree.info(p).address),
                )
            })
            .collect()
    }
}
