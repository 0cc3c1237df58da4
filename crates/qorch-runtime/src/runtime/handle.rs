//! [`RuntimeHandle`]: the cloneable way in from outside: send, receive, query, run rounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorch_protocol::{
    Address, AgentId, Envelope, Message, Priority, PriorityMailbox, TrySendError,
};

use super::{ClusterManager, RuntimeError, RuntimeSendError, ShutdownReport};
use crate::ask::Refusal;
use crate::directory::NodeKey;
use crate::letter::{
    AllocationBatch, Barrier, Letter, NodeShutdown, NodeStats, Query, RoundReport,
    ShutdownCollector, TraceEvent,
};
use crate::monitor::{Watch, Watcher};
use crate::remote::{InjectError, Remote};
use crate::shared::{LetterSender, Shared, Spawner};
use crate::status::StatusTree;
use crate::{AskError, Host, RegistryError, ReplyTo};
use qorch_protocol::AgentRef;

/// A user message from outside, ready to go: its entry node's mailbox and its envelope.
type Outgoing<B> = (LetterSender<B>, Envelope<Letter<B>>);

pub(super) struct HandleInner<B: Host> {
    pub(super) shared: Arc<Shared<B>>,
    pub(super) spawner: Arc<dyn Spawner<B>>,
    pub(super) workers: usize,
    pub(super) inbox: tokio::sync::Mutex<PriorityMailbox<Envelope<B::Msg>>>,
    pub(super) seq: AtomicU64,
    /// Serializes changes of the node tree.
    pub(super) topology: Mutex<()>,
}

/// A cloneable, `Send` handle to a running runtime: send messages in, receive what agents send
/// to the application, query status, run rounds. Its async methods work under any executor
/// (they need no tokio reactor); the `_blocking` ones park the calling thread.
pub struct RuntimeHandle<B: Host> {
    pub(super) inner: Arc<HandleInner<B>>,
}

impl<B: Host> Clone for RuntimeHandle<B> {
    fn clone(&self) -> Self {
        RuntimeHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Host> RuntimeHandle<B> {
    pub(super) fn envelope(
        &self,
        to: Address,
        priority: Priority,
        letter: Letter<B>,
    ) -> Envelope<Letter<B>> {
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

    fn mailbox(&self, node: Option<NodeKey>) -> Option<LetterSender<B>> {
        match node {
            None => Some(self.inner.shared.orchestrator.clone()),
            Some(k) => self.inner.shared.sender(k),
        }
    }

    /// The mailbox and envelope of a user message from outside, counted as produced; the
    /// message is given back if its destination does not exist.
    fn user_envelope(
        &self,
        to: Address,
        msg: B::Msg,
    ) -> Result<Outgoing<B>, RuntimeSendError<B::Msg>> {
        let Some(mb) = self.entry(to).ok().and_then(|node| self.mailbox(node)) else {
            return Err(RuntimeSendError::Closed(msg));
        };
        let priority = msg.priority();
        self.inner.shared.external_flow.produce(1);
        Ok((mb, self.envelope(to, priority, Letter::User(msg))))
    }

    /// The message of a user envelope the mailbox refused, no longer counted as produced.
    fn refused(&self, env: Envelope<Letter<B>>) -> B::Msg {
        self.inner.shared.external_flow.consume(1);
        unwrap_user(env.payload)
    }

    /// Sends `msg` to agent `to` if its node's mailbox has room.
    ///
    /// # Errors
    ///
    /// [`RuntimeSendError::Full`] or [`RuntimeSendError::Closed`], with the message;
    /// [`RuntimeSendError::Refused`] if this runtime hosts one behaviour whose messages are
    /// not `X`s.
    pub fn try_send<X: Message>(
        &self,
        to: &AgentRef<X>,
        msg: X,
    ) -> Result<(), RuntimeSendError<X>> {
        let msg = B::carry(msg).map_err(RuntimeSendError::Refused)?;
        self.try_send_to(to.address(), msg).map_err(back::<B, X>)
    }

    /// Sends `msg` to agent `to`, waiting asynchronously while its node's mailbox is full.
    ///
    /// # Errors
    ///
    /// [`RuntimeSendError::Closed`] if the agent does not exist or the runtime has stopped,
    /// [`RuntimeSendError::Refused`] as for [`try_send`](Self::try_send); the message is
    /// given back.
    pub async fn send<X: Message>(
        &self,
        to: &AgentRef<X>,
        msg: X,
    ) -> Result<(), RuntimeSendError<X>> {
        let msg = B::carry(msg).map_err(RuntimeSendError::Refused)?;
        self.send_to(to.address(), msg).await.map_err(back::<B, X>)
    }

    /// Sends `msg` to agent `to`, parking the thread while its node's mailbox is full.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_blocking<X: Message>(
        &self,
        to: &AgentRef<X>,
        msg: X,
    ) -> Result<(), RuntimeSendError<X>> {
        let msg = B::carry(msg).map_err(RuntimeSendError::Refused)?;
        self.send_to_blocking(to.address(), msg)
            .map_err(back::<B, X>)
    }

    /// Sends one of the runtime's own messages to a bare address, if the destination's
    /// mailbox has room: an agent known only by its id (in a runtime of several behaviours
    /// an agent of another one refuses it as a dead letter, logged), or a cluster (the
    /// message then reaches the application inbox). Prefer [`try_send`](Self::try_send) and
    /// typed references.
    ///
    /// # Errors
    ///
    /// [`RuntimeSendError::Full`] or [`RuntimeSendError::Closed`], with the message.
    pub fn try_send_to(
        &self,
        to: impl Into<Address>,
        msg: B::Msg,
    ) -> Result<(), RuntimeSendError<B::Msg>> {
        let (mb, env) = self.user_envelope(to.into(), msg)?;
        mb.try_send(env).map_err(|e| match e {
            TrySendError::Full(e) => RuntimeSendError::Full(self.refused(e)),
            TrySendError::Closed(e) => RuntimeSendError::Closed(self.refused(e)),
        })
    }

    /// [`try_send_to`](Self::try_send_to), waiting asynchronously while the destination's
    /// mailbox is full.
    ///
    /// # Errors
    ///
    /// [`RuntimeSendError::Closed`] if the destination does not exist or has stopped.
    pub async fn send_to(
        &self,
        to: impl Into<Address>,
        msg: B::Msg,
    ) -> Result<(), RuntimeSendError<B::Msg>> {
        let (mb, env) = self.user_envelope(to.into(), msg)?;
        mb.send(env)
            .await
            .map_err(|e| RuntimeSendError::Closed(self.refused(e.0)))
    }

    /// [`try_send_to`](Self::try_send_to), parking the thread while the destination's
    /// mailbox is full.
    ///
    /// # Errors
    ///
    /// [`RuntimeSendError::Closed`] if the destination does not exist or has stopped.
    pub fn send_to_blocking(
        &self,
        to: impl Into<Address>,
        msg: B::Msg,
    ) -> Result<(), RuntimeSendError<B::Msg>> {
        let (mb, env) = self.user_envelope(to.into(), msg)?;
        mb.send_blocking(env)
            .map_err(|e| RuntimeSendError::Closed(self.refused(e.0)))
    }

    /// Asks agent `to` a question and waits (asynchronously) for the answer, for up to
    /// `timeout`. `request` builds the request from a [`ReplyTo`] (put it in the message;
    /// the agent answers with [`ReplyTo::send`]). Works under any executor.
    ///
    /// # Errors
    ///
    /// [`AskError::Unknown`] or [`AskError::NotRunning`] if there is no such agent running,
    /// [`AskError::Timeout`], [`AskError::Failed`] or [`AskError::Dropped`] if the agent
    /// failed or dropped the request, [`AskError::Shutdown`] if the runtime stopped first,
    /// [`AskError::WrongType`] if this runtime hosts one behaviour whose messages are not
    /// `X`s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator, ReplyTo};
    ///
    /// enum Msg { Double(u64, ReplyTo<u64>) }
    /// impl qorch_protocol::Message for Msg {}
    ///
    /// struct Doubler;
    /// impl Agent for Doubler {
    ///     type Msg = Msg;
    ///     fn handle(&mut self, msg: Msg, _: &mut Context<'_, Msg>) -> AgentResult {
    ///         let Msg::Double(n, reply) = msg;
    ///         reply.send(2 * n);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let rt = QuantumOrchestrator::<Doubler>::builder().workers(1).build().unwrap();
    /// let c = rt.manager().create_cluster("c").unwrap();
    /// let d = rt.manager().spawn(c.into(), |_| Doubler).unwrap();
    /// let h = rt.handle();
    /// let four = h.ask_blocking(&d, |r| Msg::Double(2, r), Duration::from_secs(5));
    /// assert_eq!(four, Ok(4));
    /// rt.shutdown();
    /// ```
    pub async fn ask<X: Message, R: Send + 'static>(
        &self,
        to: &AgentRef<X>,
        request: impl FnOnce(ReplyTo<R>) -> X,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let agent = to.id();
        let outcome = self.ask_outcome(*to, request);
        let sleep = self.inner.spawner.sleep(timeout);
        let mut outcome = std::pin::pin!(outcome);
        let mut sleep = std::pin::pin!(sleep);
        std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(r) = outcome.as_mut().poll(cx) {
                return std::task::Poll::Ready(r);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(Err(AskError::Timeout {
                    agent,
                    after: timeout,
                }));
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// [`ask`](Self::ask), parking the thread (no executor or timer needed).
    ///
    /// # Errors
    ///
    /// As [`ask`](Self::ask).
    pub fn ask_blocking<X: Message, R: Send + 'static>(
        &self,
        to: &AgentRef<X>,
        request: impl FnOnce(ReplyTo<R>) -> X,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let deadline = Instant::now().checked_add(timeout);
        qorch_protocol::block_on_until(self.ask_outcome(*to, request), deadline).unwrap_or(Err(
            AskError::Timeout {
                agent: to.id(),
                after: timeout,
            },
        ))
    }

    /// Sends an ask's request and waits for its outcome (without a timeout).
    async fn ask_outcome<X: Message, R: Send + 'static>(
        &self,
        to: AgentRef<X>,
        request: impl FnOnce(ReplyTo<R>) -> X,
    ) -> Result<R, AskError> {
        let agent = to.id();
        self.check_agent(agent)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let msg = request(ReplyTo::app(tx));
        let msg = match B::carry(msg) {
            Ok(m) => m,
            Err(m) => {
                drop(m);
                return Err(AskError::WrongType {
                    agent,
                    message: qorch_protocol::short_type_name::<X>(),
                });
            }
        };
        let (mb, env) = match self.user_envelope(to.address(), msg) {
            Ok(sent) => sent,
            Err(e) => {
                crate::ask::dropping(Refusal::NotRunning, || drop(e));
                return Err(AskError::NotRunning(agent));
            }
        };
        if let Err(e) = mb.send(env).await {
            let m = self.refused(e.0);
            crate::ask::dropping(Refusal::Shutdown, || drop(m));
            return Err(AskError::Shutdown(agent));
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(why)) => Err(why.error(agent)),
            Err(_) => Err(AskError::Shutdown(agent)),
        }
    }

    /// Whether agent `agent` is running here.
    fn check_agent(&self, agent: AgentId) -> Result<(), AskError> {
        let shared = &self.inner.shared;
        if shared.directory.agents.get(agent).is_some() {
            return Ok(());
        }
        if shared.remote.is_some() {
            // Perhaps in another process: the request travels, the timeout guards.
            return Ok(());
        }
        Err(shared.services.refusal(agent).error(agent))
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

    /// Delivers an envelope that came from another process (through a [`RemoteLink`](crate::RemoteLink)'s
    /// transport) to the agent or node it names, keeping its sender, sequence number and
    /// priority; waits while the entry node's mailbox is full.
    ///
    /// # Errors
    ///
    /// [`InjectError::Unknown`] if this runtime hosts no such address,
    /// [`InjectError::Stopped`] if it has stopped; the envelope is given back either way.
    pub async fn inject(&self, env: Envelope<Remote<B::Msg>>) -> Result<(), InjectError<B::Msg>> {
        let Ok(node) = self.entry(env.to) else {
            return Err(InjectError::Unknown(env));
        };
        let Some(mb) = self.mailbox(node) else {
            return Err(InjectError::Stopped(env));
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
        .map_err(|e| {
            if user {
                flow.consume(1);
            }
            InjectError::Stopped(e.0.map(|l| match l {
                Letter::User(m) => Remote::User(m),
                Letter::Ack(id) => Remote::Ack(id),
                _ => unreachable!("only user messages and acknowledgements are injected"),
            }))
        })
    }

    /// User messages sent and not yet handled (or counted as dead letters or sent to another
    /// process) in this runtime, from its counters: 0 when it is idle.
    pub fn in_flight(&self) -> u64 {
        self.inner.shared.in_flight()
    }

    async fn query<T>(
        &self,
        node: Option<NodeKey>,
        q: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Query,
    ) -> Result<T, RuntimeError> {
        if self.inner.shared.services.stopped.load(Ordering::Acquire) {
            return Err(RuntimeError::Stopped);
        }
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
        self.query(None, Query::Status).await
    }

    /// Every node's counts, summed (killed nodes' final counts included).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn stats(&self) -> Result<NodeStats, RuntimeError> {
        let mut total = self.detached_stats();
        for k in self.live_nodes() {
            if let Ok(s) = self.query(Some(k), Query::Stats).await {
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
            all.extend(self.query(Some(k), Query::Trace).await?);
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
        self.query(None, |tx| Query::Round(round, tx)).await
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

    /// Sends one of the runtime's letters to the node hosting `agent`, addressed to it.
    async fn to_agent(&self, agent: AgentId, payload: Letter<B>) -> Result<(), RuntimeError> {
        let to = Address::Agent(agent);
        let node = self.entry(to)?;
        let mb = self.mailbox(node).ok_or(RuntimeError::Stopped)?;
        mb.send(self.envelope(to, Priority::Control, payload))
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    /// Stops an agent: its `stopped` hook runs, its timers end, its watchers are told
    /// ([`TerminationReason::Stopped`](crate::TerminationReason)), and messages sent to it
    /// afterwards are dead letters. Messages it had been sent before are handled first only
    /// if they were ahead of the stop (it travels at Control priority).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if no agent of that id is hosted here,
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn stop<X>(&self, agent: &AgentRef<X>) -> Result<(), RuntimeError> {
        self.to_agent(agent.id(), Letter::StopAgent).await
    }

    /// Watches an agent: the returned [`Watch`] completes with its [`Terminated`](crate::Terminated)
    /// notice when it stops or fails for good (at once, with
    /// [`TerminationReason::NotRunning`](crate::TerminationReason), if it had terminated
    /// already).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if no agent of that id is hosted here,
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn watch<X>(&self, agent: &AgentRef<X>) -> Result<Watch, RuntimeError> {
        let agent = agent.id();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.to_agent(agent, Letter::Watch(Watcher::App(tx)))
            .await?;
        Ok(Watch { agent, rx })
    }

    /// [`watch`](Self::watch), parking the thread while the watch is placed.
    ///
    /// # Errors
    ///
    /// As [`watch`](Self::watch).
    pub fn watch_blocking<X>(&self, agent: &AgentRef<X>) -> Result<Watch, RuntimeError> {
        qorch_protocol::block_on_until(self.watch(agent), None)
            .unwrap_or(Err(RuntimeError::Stopped))
    }

    /// [`stop`](Self::stop), parking the thread while the stop is sent.
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    pub fn stop_blocking<X>(&self, agent: &AgentRef<X>) -> Result<(), RuntimeError> {
        qorch_protocol::block_on_until(self.stop(agent), None).unwrap_or(Err(RuntimeError::Stopped))
    }

    /// Registers agent `r` under `name`: in this runtime, and, if the runtime was built with
    /// a shared registry ([`RuntimeBuilder::registry`](crate::RuntimeBuilder::registry)),
    /// in every process that shares it. The name is freed when the agent terminates here
    /// (or with [`unregister`](Self::unregister)).
    ///
    /// # Errors
    ///
    /// [`RegistryError::Taken`] if another agent holds the name (here or in a process that
    /// shares the registry), [`RegistryError::Remote`] if the shared registry failed.
    pub async fn register<X: Message>(
        &self,
        name: &str,
        r: &AgentRef<X>,
    ) -> Result<(), RegistryError> {
        let services = &self.inner.shared.services;
        services.registry.register::<X>(name, r.id())?;
        if let Some(shared) = &self.inner.shared.registry
            && let Err(e) = shared
                .register(name, r.id(), std::any::type_name::<X>())
                .await
        {
            services.registry.unregister(name, r.id());
            return Err(e);
        }
        Ok(())
    }

    /// Frees `name` if agent `r` holds it; whether it did.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Remote`] if the shared registry failed.
    pub async fn unregister<X>(&self, name: &str, r: &AgentRef<X>) -> Result<bool, RegistryError> {
        let here = self.inner.shared.services.registry.unregister(name, r.id());
        if let Some(shared) = &self.inner.shared.registry {
            return Ok(shared.unregister(name, r.id()).await? || here);
        }
        Ok(here)
    }

    /// The agent registered under `name`, typed by the messages it accepts: this runtime's
    /// registry first, then the shared one.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotFound`], [`RegistryError::WrongType`] if the agent accepts
    /// another type than `X`, [`RegistryError::Remote`] if the shared registry failed.
    pub async fn lookup<X: Message>(&self, name: &str) -> Result<AgentRef<X>, RegistryError> {
        match self.inner.shared.services.registry.lookup::<X>(name) {
            Err(RegistryError::NotFound(_)) if self.inner.shared.registry.is_some() => {}
            done => return done,
        }
        let Some(shared) = &self.inner.shared.registry else {
            return Err(RegistryError::NotFound(name.to_owned()));
        };
        let (agent, type_name) = shared
            .lookup(name)
            .await?
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        if type_name != std::any::type_name::<X>() {
            return Err(crate::registry::wrong_type::<X>(name, &type_name));
        }
        Ok(AgentRef::from_id(agent))
    }

    /// A cluster manager on this handle.
    pub fn manager(&self) -> ClusterManager<B> {
        ClusterManager {
            handle: self.clone(),
        }
    }

    /// Stops every node and collects their reports (waits up to `wait`).
    pub(super) fn stop_nodes(&self, wait: Duration) -> ShutdownReport {
        self.inner
            .shared
            .services
            .shutting_down
            .store(true, Ordering::Release);
        let expected = self.live_nodes().len();
        let collector = Arc::new(ShutdownCollector::default());
        let env = self.envelope(
            Address::Orchestrator,
            Priority::Control,
            Letter::Stop(Arc::clone(&collector)),
        );
        let _ = self.inner.shared.orchestrator.send_blocking(env);
        let deadline = Instant::now().checked_add(wait);
        loop {
            let n = collector
                .reports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len();
            if n >= expected || deadline.is_some_and(|d| Instant::now() >= d) {
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
        out.left_in_inbox += self.inner.shared.app_backlog.load(Ordering::Relaxed);
        out
    }
}

/// A refused runtime message as the typed message it was (it was made from one).
fn back<B: Host, X: Message>(e: RuntimeSendError<B::Msg>) -> RuntimeSendError<X> {
    let typed = |m: B::Msg| match B::uncarry::<X>(m) {
        Ok(x) => x,
        Err(_) => unreachable!("the message was carried from an X"),
    };
    match e {
        RuntimeSendError::Full(m) => RuntimeSendError::Full(typed(m)),
        RuntimeSendError::Closed(m) => RuntimeSendError::Closed(typed(m)),
        RuntimeSendError::Refused(m) => RuntimeSendError::Refused(typed(m)),
    }
}

fn unwrap_user<B: Host>(letter: Letter<B>) -> B::Msg {
    match letter {
        Letter::User(m) => m,
        _ => unreachable!("only user letters are sent through this path"),
    }
}
