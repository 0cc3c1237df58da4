//! A cluster or sub-cluster: hosts agents, routes envelopes, supervises, aggregates.
//!
//! `NodeCore` is plain Rust: the executor feeds it envelopes and timer ticks and it never
//! blocks. Every delivery, including one between two agents of the same node, goes through a
//! mailbox, so priorities hold and the node always yields between messages.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qorch_protocol::{Address, AgentId, Envelope, EnvelopeId, Priority, TrySendError};
use qorch_resources::Grant;

use crate::agent::{Context, Effects};
use crate::directory::{Hop, IN_TRANSIT, NodeKey};
use crate::letter::{
    AgentReport, AllocationBatch, Factory, Letter, Moved, NodeShutdown, NodeStats, Query,
    RoundReport, ShutdownCollector, TraceEvent,
};
use crate::reliable::{Dedup, Pending};
use crate::shared::{Dest, Flow, Shared};
use crate::status::{AgentCounts, ComponentStatus, StatusNode};
use crate::{Agent, panic_guard};

/// One hosted agent.
pub(crate) struct Slot<B: Agent> {
    id: AgentId,
    behaviour: Option<B>,
    factory: Factory<B>,
    grant: Option<Grant>,
    restarts: u32,
    seq: u64,
    random: u64,
}

struct Timer<M> {
    due: Instant,
    order: u64,
    agent: AgentId,
    msg: M,
}

impl<M> PartialEq for Timer<M> {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl<M> Eq for Timer<M> {}
impl<M> PartialOrd for Timer<M> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<M> Ord for Timer<M> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(o.due, o.order))
    }
}

/// A round in progress: the agents reported so far and the children still to report.
struct RoundState {
    round: u64,
    waiting: HashSet<NodeKey>,
    agents: Vec<AgentReport>,
    affinity: Vec<(AgentId, AgentId, f64)>,
}

/// The outcome of handling one envelope, for the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Continue,
    /// Close the mailbox, drain it through `drain_one`, then `finish_stop`.
    Stop,
    /// Stop at once (fault injection).
    Kill,
}

pub(crate) struct NodeCore<B: Agent> {
    key: NodeKey,
    address: Address,
    shared: Arc<Shared<B>>,
    flow: Arc<Flow>,
    slots: Vec<Slot<B>>,
    /// Envelopes for agents routed here that have not arrived yet (spawn or move in flight).
    waiting: HashMap<AgentId, Vec<Envelope<Letter<B>>>>,
    /// Envelopes from this node to itself (between its own agents), per lane: they skip the
    /// mailbox; the executor serves them between mailbox letters, by priority.
    local: [VecDeque<Envelope<Letter<B>>>; 4],
    outbox: HashMap<Dest, VecDeque<Envelope<Letter<B>>>>,
    pending: Pending<B::Msg>,
    dedup: Dedup,
    timers: BinaryHeap<Reverse<Timer<B::Msg>>>,
    timer_order: u64,
    tick: u64,
    children_seen: HashMap<NodeKey, (Instant, StatusNode)>,
    failed_children: HashSet<NodeKey>,
    last_heartbeat: Instant,
    last_expire: Instant,
    round: Option<RoundState>,
    stats: NodeStats,
    trace: Option<Vec<TraceEvent>>,
    effects: Effects<B::Msg>,
    stopping: Option<NodeShutdown>,
    collector: Option<Arc<ShutdownCollector>>,
    failed_agents: u64,
    restarted_agents: HashSet<AgentId>,
    /// Sampled agent-to-agent message counts since the last round.
    affinity: HashMap<(AgentId, AgentId), u32>,
}

impl<B: Agent> NodeCore<B> {
    pub(crate) fn new(key: NodeKey, address: Address, shared: Arc<Shared<B>>) -> Self {
        panic_guard::install();
        let cfg = &shared.config;
        let now = Instant::now();
        let dedup_window = cfg.redelivery_timeout * (cfg.max_deliveries + 2);
        NodeCore {
            key,
            address,
            trace: cfg.trace.then(Vec::new),
            pending: Pending::new(cfg.redelivery_timeout, cfg.max_deliveries),
            dedup: Dedup::new(dedup_window),
            flow: shared.flow(key),
            shared,
            slots: Vec::new(),
            waiting: HashMap::new(),
            local: Default::default(),
            outbox: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_order: 0,
            tick: 0,
            children_seen: HashMap::new(),
            failed_children: HashSet::new(),
            last_heartbeat: now,
            last_expire: now,
            round: None,
            stats: NodeStats::default(),
            effects: Effects::default(),
            stopping: None,
            collector: None,
            failed_agents: 0,
            restarted_agents: HashSet::new(),
            affinity: HashMap::new(),
        }
    }

    /// How long this node's timer work may wait: the timer resolution while it has work
    /// that the timer retries (an outbox, unacknowledged messages, held messages) or an agent
    /// timer due soon; otherwise until the next heartbeat (and failure check) is due. Idle
    /// nodes then wake once per heartbeat instead of every resolution.
    pub(crate) fn timer_delay(&self, now: Instant) -> Duration {
        let cfg = &self.shared.config;
        let res = cfg.timer_resolution;
        // The next heartbeat (and failure check) is due then.
        let idle = (self.last_heartbeat + cfg.heartbeat_interval)
            .saturating_duration_since(now)
            .max(res);
        if !self.outbox.is_empty() || self.pending.len() > 0 || !self.waiting.is_empty() {
            return res;
        }
        match self.timers.peek() {
            Some(Reverse(t)) => t.due.saturating_duration_since(now).clamp(res, idle),
            None => idle,
        }
    }

    /// Handles one envelope from the mailbox.
    pub(crate) fn handle(&mut self, env: Envelope<Letter<B>>) -> Control {
        self.stats.by_priority[env.priority.lane()] += 1;
        if !env.from.is_agent() && env.from != self.address && env.from != Address::Orchestrator {
            self.note_alive(env.from);
        }
        let Envelope {
            from,
            to,
            priority,
            seq,
            correlation,
            deadline,
            ack_required,
            payload,
        } = env;
        let control = match payload {
            Letter::User(msg) => {
                let env = Envelope {
                    from,
                    to,
                    priority,
                    seq,
                    correlation,
                    deadline,
                    ack_required,
                    payload: msg,
                };
                self.on_user(env);
                Control::Continue
            }
            Letter::Ack(id) => {
                self.pending.ack(id);
                Control::Continue
            }
            Letter::Tick(n) => {
                self.on_tick(n);
                Control::Continue
            }
            Letter::Collect(round) => {
                self.on_collect(round);
                Control::Continue
            }
            Letter::Report(rep) => {
                self.on_report(from, *rep);
                Control::Continue
            }
            Letter::Allocate(batch) => {
                self.on_allocate(*batch);
                Control::Continue
            }
            Letter::Heartbeat(child, tree) => {
                self.failed_children.remove(&child);
                self.children_seen.insert(child, (Instant::now(), *tree));
                Control::Continue
            }
            Letter::Spawn(ids, factory) => {
                self.on_spawn(&ids, &factory);
                Control::Continue
            }
            Letter::Adopt(moved) => {
                self.on_adopt(moved);
                Control::Continue
            }
            Letter::MoveOut(ids, to) => {
                self.on_move_out(&ids, to);
                Control::Continue
            }
            Letter::Query(q) => {
                self.on_query(q);
                Control::Continue
            }
            Letter::Stop(collector) => {
                self.begin_stop(collector);
                Control::Stop
            }
            Letter::Kill => Control::Kill,
        };
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
        control
    }

    // ---- user messages -------------------------------------------------------------------

    /// The slot of agent `a` if this node hosts it.
    #[inline]
    fn slot_of(&self, a: AgentId) -> Option<usize> {
        let (node, slot) = self.shared.directory.agents.get(a)?;
        let i = slot as usize;
        (node == self.key && slot != IN_TRANSIT && i < self.slots.len() && self.slots[i].id == a)
            .then_some(i)
    }

    fn on_user(&mut self, env: Envelope<B::Msg>) {
        match env.to {
            Address::Agent(a) => {
                if let Some(i) = self.slot_of(a) {
                    self.deliver(i, env);
                } else if self.shared.directory.agents.node(a) == Some(self.key) {
                    // On its way here (spawn or move in flight): hold it.
                    self.waiting
                        .entry(a)
                        .or_default()
                        .push(env.map(Letter::User));
                } else {
                    self.route(env.map(Letter::User));
                }
            }
            to if to == self.address => {
                // For the application: up to the orchestrator's inbox.
                self.send_dest(Dest::Orchestrator, env.map(Letter::User));
            }
            _ => self.route(env.map(Letter::User)),
        }
    }

    fn deliver(&mut self, i: usize, env: Envelope<B::Msg>) {
        self.flow.consume(1);
        let id = env.id();
        if self.slots[i].behaviour.is_none() {
            self.stats.dead_letters += 1;
            tracing::debug!(agent = %self.slots[i].id, "dead letter: agent failed");
            return;
        }
        if env.ack_required && self.dedup.contains(&id) {
            self.stats.duplicates += 1;
            self.send_ack(env.from, id);
            return;
        }
        let (from, correlation, ack) = (env.from, env.correlation, env.ack_required);
        let lane = env.priority.lane();
        let agent = self.slots[i].id;
        let _span = tracing::trace_span!("handle", agent = agent.0, node = %self.address).entered();
        let msg = env.payload;
        let ok = self.run_hook(i, Some(from), correlation, |b, ctx| b.handle(msg, ctx));
        if ok {
            self.stats.handled += 1;
            self.stats.handled_by_priority[lane] += 1;
            if let Some(t) = &mut self.trace {
                t.push(TraceEvent {
                    agent,
                    envelope: id,
                });
            }
            if ack {
                self.dedup.insert(id, Instant::now());
                self.send_ack(from, id);
            }
        } else if !ack {
            // The message went down with its handler; reliable messages are redelivered by
            // their sender, others are counted here.
            self.stats.dead_letters += 1;
        }
    }

    /// Runs a hook of agent `i` under supervision; applies its effects if it succeeds;
    /// restarts the agent (or marks it failed) if it panics or returns an error.
    fn run_hook(
        &mut self,
        i: usize,
        sender: Option<Address>,
        correlation: Option<qorch_protocol::CorrelationId>,
        f: impl FnOnce(&mut B, &mut Context<'_, B::Msg>) -> crate::AgentResult,
    ) -> bool {
        let parent = self.address;
        let tick = self.tick;
        let slot = &mut self.slots[i];
        let Some(behaviour) = slot.behaviour.as_mut() else {
            return false;
        };
        let mut effects = std::mem::take(&mut self.effects);
        let mut ctx = Context {
            id: slot.id,
            parent,
            sender,
            correlation,
            grant: slot.grant.as_ref(),
            tick,
            random: &mut slot.random,
            effects: &mut effects,
        };
        let result = panic_guard::run(|| catch_unwind(AssertUnwindSafe(|| f(behaviour, &mut ctx))));
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.0),
            Err(payload) => Err(panic_guard::message(payload.as_ref())),
        };
        match outcome {
            Ok(()) => {
                self.apply_effects(i, &mut effects);
                self.effects = effects;
                true
            }
            Err(reason) => {
                effects.sends.clear();
                effects.timers.clear();
                self.effects = effects;
                self.restart(i, &reason);
                false
            }
        }
    }

    fn restart(&mut self, i: usize, reason: &str) {
        self.stats.restarts += 1;
        let budget = self.shared.config.restart_budget;
        let slot = &mut self.slots[i];
        slot.restarts += 1;
        let id = slot.id;
        if slot.restarts > budget {
            tracing::warn!(agent = id.0, node = %self.address, %reason, "agent failed: restart budget exhausted");
            slot.behaviour = None;
            self.failed_agents += 1;
            self.restarted_agents.remove(&id);
            return;
        }
        tracing::info!(agent = id.0, node = %self.address, %reason, restarts = slot.restarts, "restarting agent");
        slot.behaviour = Some((slot.factory)(id));
        self.restarted_agents.insert(id);
        // A failing `started` restarts (or fails) the agent again inside `run_hook`.
        self.run_hook(i, None, None, B::started);
    }

    fn apply_effects(&mut self, i: usize, effects: &mut Effects<B::Msg>) {
        let from = Address::Agent(self.slots[i].id);
        self.flow.produce(effects.sends.len() as u64);
        let sample = u64::from(self.shared.config.affinity_sample);
        for out in effects.sends.drain(..) {
            self.slots[i].seq += 1;
            let seq = self.slots[i].seq;
            if sample > 0
                && seq.is_multiple_of(sample)
                && let Address::Agent(to) = out.to
            {
                *self.affinity.entry((self.slots[i].id, to)).or_insert(0) += 1;
            }
            let mut env = Envelope {
                from,
                to: out.to,
                priority: out.priority,
                seq,
                correlation: out.correlation,
                deadline: None,
                ack_required: false,
                payload: out.msg,
            };
            if let Some(copy) = out.reliable {
                env.ack_required = true;
                let now = Instant::now();
                let keep = Envelope {
                    from: env.from,
                    to: env.to,
                    priority: env.priority,
                    seq: env.seq,
                    correlation: env.correlation,
                    deadline: env.deadline,
                    ack_required: true,
                    payload: copy(&env.payload),
                };
                self.pending.insert(keep, copy, now);
            }
            self.route(env.map(Letter::User));
        }
        let agent = self.slots[i].id;
        if effects.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        for (delay, msg) in effects.timers.drain(..) {
            self.timer_order += 1;
            self.timers.push(Reverse(Timer {
                due: now + delay,
                order: self.timer_order,
                agent,
                msg,
            }));
        }
    }

    fn send_ack(&mut self, to: Address, id: EnvelopeId) {
        let env = Envelope {
            from: self.address,
            to,
            priority: Priority::Control,
            seq: 0,
            correlation: None,
            deadline: None,
            ack_required: false,
            payload: Letter::Ack(id),
        };
        self.route(env);
    }

    // ---- routing ---------------------------------------------------------------------------

    /// Whether envelopes are waiting in the local queue.
    pub(crate) fn has_local(&self) -> bool {
        self.local.iter().any(|q| !q.is_empty())
    }

    /// The next local envelope, unless the mailbox holds one of higher priority (`mailbox`:
    /// the highest class waiting there).
    pub(crate) fn pop_local(&mut self, mailbox: Option<Priority>) -> Option<Envelope<Letter<B>>> {
        let lane = self.local.iter().position(|q| !q.is_empty())?;
        if mailbox.is_some_and(|p| p.lane() < lane) {
            return None;
        }
        self.local[lane].pop_front()
    }

    /// Sends an envelope one hop towards its destination.
    fn route(&mut self, env: Envelope<Letter<B>>) {
        // Fast path: an agent of this node.
        if let Address::Agent(a) = env.to
            && self.slot_of(a).is_some()
        {
            self.local[env.priority.lane()].push_back(env);
            return;
        }
        let tree = self.shared.directory.tree.load();
        let Ok(target) = self.shared.directory.resolve(&tree, env.to) else {
            drop(tree);
            // Hosted by another process, perhaps: the orchestrator holds the way out.
            if self.shared.remote.is_some()
                && matches!(env.payload, Letter::User(_) | Letter::Ack(_))
            {
                self.stats.forwarded += 1;
                self.send_dest(Dest::Orchestrator, env);
            } else {
                tracing::debug!(to = %env.to, "dead letter: unknown address");
                self.dead_letter(&env);
            }
            return;
        };
        let dest = match tree.next_hop(Some(self.key), target) {
            Hop::Here => Dest::Node(self.key),
            Hop::Down(c) | Hop::Up(Some(c)) => Dest::Node(c),
            Hop::Up(None) => Dest::Orchestrator,
            Hop::Unreachable => {
                self.dead_letter(&env);
                return;
            }
        };
        drop(tree);
        if dest != Dest::Node(self.key) {
            self.stats.forwarded += 1;
        }
        self.send_dest(dest, env);
    }

    fn send_dest(&mut self, dest: Dest, env: Envelope<Letter<B>>) {
        if dest == Dest::Node(self.key) {
            self.local[env.priority.lane()].push_back(env);
            return;
        }
        if let Some(q) = self.outbox.get_mut(&dest)
            && !q.is_empty()
        {
            q.push_back(env);
            return;
        }
        match self.shared.try_send(dest, env) {
            Ok(()) => {}
            Err(TrySendError::Full(env)) => {
                self.stats.backpressured += 1;
                self.outbox.entry(dest).or_default().push_back(env);
            }
            Err(TrySendError::Closed(env)) => self.dead_letter(&env),
        }
    }

    /// Counts an envelope that cannot be delivered (user messages are consumed: reported, not
    /// silently dropped).
    fn dead_letter(&mut self, env: &Envelope<Letter<B>>) {
        if matches!(env.payload, Letter::User(_)) {
            self.stats.dead_letters += 1;
            self.flow.consume(1);
        } else {
            self.stats.dead_protocol_letters += 1;
        }
    }

    fn flush_outbox(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut dead = 0;
        let mut dead_user = 0;
        let keys: Vec<Dest> = self.outbox.keys().copied().collect();
        for dest in keys {
            let q = self.outbox.get_mut(&dest).expect("key listed");
            while let Some(env) = q.pop_front() {
                match shared.try_send(dest, env) {
                    Ok(()) => {}
                    Err(TrySendError::Full(env)) => {
                        q.push_front(env);
                        break;
                    }
                    Err(TrySendError::Closed(env)) => {
                        dead += 1;
                        dead_user += u64::from(matches!(env.payload, Letter::User(_)));
                    }
                }
            }
            if q.is_empty() {
                self.outbox.remove(&dest);
            }
        }
        self.stats.dead_letters += dead_user;
        self.stats.dead_protocol_letters += dead - dead_user;
        self.flow.consume(dead_user);
    }

    /// Fault injection: everything this node held is lost. User messages among it are
    /// counted (consumed as lost), so that the flow accounting still balances.
    pub(crate) fn lose(&mut self, remaining: &[Envelope<Letter<B>>]) {
        let mut lost = remaining
            .iter()
            .filter(|e| matches!(e.payload, Letter::User(_)))
            .count() as u64;
        for q in &mut self.local {
            lost += q
                .drain(..)
                .filter(|e| matches!(e.payload, Letter::User(_)))
                .count() as u64;
        }
        for (_, envs) in self.waiting.drain() {
            lost += envs
                .iter()
                .filter(|e| matches!(e.payload, Letter::User(_)))
                .count() as u64;
        }
        for q in self.outbox.values_mut() {
            lost += q
                .drain(..)
                .filter(|e| matches!(e.payload, Letter::User(_)))
                .count() as u64;
        }
        self.stats.dead_letters += lost;
        self.flow.consume(lost);
        self.shared
            .detached_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .merge(&self.stats);
        for s in &self.slots {
            self.shared.directory.agents.set(s.id, None);
        }
    }

    // ---- hierarchy -----------------------------------------------------------------------

    fn children(&self) -> Vec<NodeKey> {
        let tree = self.shared.directory.tree.load();
        tree.info(self.key)
            .children
            .iter()
            .copied()
            .filter(|c| !tree.info(*c).removed)
            .collect()
    }

    fn parent_dest(&self) -> Dest {
        let tree = self.shared.directory.tree.load();
        tree.info(self.key)
            .parent
            .map_or(Dest::Orchestrator, Dest::Node)
    }

    fn send_letter(&mut self, dest: Dest, priority: Priority, letter: Letter<B>) {
        let env = Envelope {
            from: self.address,
            to: self.address,
            priority,
            seq: 0,
            correlation: None,
            deadline: None,
            ack_required: false,
            payload: letter,
        };
        self.send_dest(dest, env);
    }

    fn on_tick(&mut self, n: u64) {
        self.tick = n;
        for i in 0..self.slots.len() {
            self.run_hook(i, None, None, |b, ctx| b.on_tick(n, ctx));
        }
        for c in self.children() {
            self.send_letter(Dest::Node(c), Priority::Normal, Letter::Tick(n));
        }
        self.flow
            .tick
            .store(n, std::sync::atomic::Ordering::Release);
    }

    fn on_collect(&mut self, round: u64) {
        let mut agents = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let failed = s.behaviour.is_none();
            agents.push(AgentReport {
                agent: s.id,
                host: self.address,
                request: s.behaviour.as_ref().and_then(Agent::demand),
                pool: s.grant.as_ref().map(|g| g.pool),
                status: if failed {
                    ComponentStatus::Failed
                } else if self.restarted_agents.contains(&s.id) {
                    ComponentStatus::Degraded
                } else {
                    ComponentStatus::Healthy
                },
            });
        }
        let waiting: HashSet<NodeKey> = self
            .children()
            .into_iter()
            .filter(|c| !self.failed_children.contains(c))
            .collect();
        for &c in &waiting {
            self.send_letter(Dest::Node(c), Priority::Normal, Letter::Collect(round));
        }
        let scale = f64::from(self.shared.config.affinity_sample.max(1));
        let mut affinity: Vec<(AgentId, AgentId, f64)> = self
            .affinity
            .drain()
            .map(|((a, b), n)| (a, b, f64::from(n) * scale))
            .collect();
        affinity.sort_by_key(|e| (e.0, e.1));
        self.round = Some(RoundState {
            round,
            waiting,
            agents,
            affinity,
        });
        self.maybe_finish_round();
    }

    fn on_report(&mut self, from: Address, rep: RoundReport) {
        let tree = self.shared.directory.tree.load();
        let child = tree.node_of(from);
        drop(tree);
        if let Some(r) = &mut self.round
            && r.round == rep.round
        {
            if let Some(c) = child {
                r.waiting.remove(&c);
            }
            r.agents.extend(rep.agents);
            r.affinity.extend(rep.affinity);
        }
        self.maybe_finish_round();
    }

    fn maybe_finish_round(&mut self) {
        let done = self.round.as_ref().is_some_and(|r| r.waiting.is_empty());
        if done {
            let r = self.round.take().expect("checked");
            let report = RoundReport {
                round: r.round,
                agents: r.agents,
                affinity: r.affinity,
            };
            let parent = self.parent_dest();
            self.send_letter(parent, Priority::Normal, Letter::Report(Box::new(report)));
        }
    }

    fn on_allocate(&mut self, batch: AllocationBatch) {
        let tree = self.shared.directory.tree.load();
        let mut down: HashMap<NodeKey, Vec<(AgentId, Option<Grant>)>> = HashMap::new();
        let mut mine = Vec::new();
        for (agent, grant) in batch.grants {
            if let Some(i) = self.slot_of(agent) {
                mine.push((i, grant));
            } else if let Some(host) = self.shared.directory.agents.node(agent)
                && let Hop::Down(c) = tree.next_hop(Some(self.key), Some(host))
            {
                down.entry(c).or_default().push((agent, grant));
            }
            // Otherwise the agent moved away or failed meanwhile: the next round allocates it
            // again.
        }
        drop(tree);
        for (i, grant) in mine {
            self.slots[i].grant.clone_from(&grant);
            let g = grant.clone();
            self.run_hook(i, None, None, move |b, ctx| {
                b.on_allocation(g.as_ref(), ctx)
            });
        }
        let mut children: Vec<_> = down.into_iter().collect();
        children.sort_by_key(|(k, _)| *k);
        for (c, grants) in children {
            let b = AllocationBatch {
                round: batch.round,
                grants,
            };
            self.send_letter(Dest::Node(c), Priority::High, Letter::Allocate(Box::new(b)));
        }
    }

    // ---- agents arriving and leaving ---------------------------------------------------------

    fn add_slot(&mut self, slot: Slot<B>) -> usize {
        let i = self.slots.len();
        self.shared
            .directory
            .agents
            .set(slot.id, Some((self.key, i as u32)));
        self.slots.push(slot);
        i
    }

    fn release_waiting(&mut self, id: AgentId) {
        if let Some(envs) = self.waiting.remove(&id) {
            for env in envs {
                let _ = self.handle(env);
            }
        }
    }

    fn on_spawn(&mut self, ids: &[AgentId], factory: &Factory<B>) {
        let seed = self.shared.config.seed;
        for &id in ids {
            let slot = Slot {
                id,
                behaviour: Some(factory(id)),
                factory: Arc::clone(factory),
                grant: None,
                restarts: 0,
                seq: 0,
                random: seed ^ (u64::from(id.0) << 32 | 0x5bd1_e995),
            };
            let i = self.add_slot(slot);
            self.run_hook(i, None, None, B::started);
        }
        for &id in ids {
            self.release_waiting(id);
        }
    }

    fn on_adopt(&mut self, moved: Vec<Moved<B>>) {
        let ids: Vec<AgentId> = moved.iter().map(|m| m.id).collect();
        for m in moved {
            self.add_slot(Slot {
                id: m.id,
                behaviour: Some(m.behaviour),
                factory: m.factory,
                grant: m.grant,
                restarts: m.restarts,
                seq: m.seq,
                random: m.random,
            });
        }
        for id in ids {
            self.release_waiting(id);
        }
    }

    fn on_move_out(&mut self, ids: &[AgentId], to: NodeKey) {
        let mut moved = Vec::new();
        let wanted: HashSet<AgentId> = ids.iter().copied().collect();
        let mut keep = Vec::with_capacity(self.slots.len());
        for s in self.slots.drain(..) {
            if wanted.contains(&s.id) && s.behaviour.is_some() {
                moved.push(s);
            } else {
                keep.push(s);
            }
        }
        self.slots = keep;
        for (i, s) in self.slots.iter().enumerate() {
            self.shared
                .directory
                .agents
                .set(s.id, Some((self.key, i as u32)));
        }
        let moved: Vec<Moved<B>> = moved
            .into_iter()
            .map(|s| {
                self.shared
                    .directory
                    .agents
                    .set(s.id, Some((to, IN_TRANSIT)));
                Moved {
                    id: s.id,
                    behaviour: s.behaviour.expect("filtered"),
                    factory: s.factory,
                    grant: s.grant,
                    restarts: s.restarts,
                    seq: s.seq,
                    random: s.random,
                }
            })
            .collect();
        if !moved.is_empty() {
            self.send_letter(Dest::Node(to), Priority::Control, Letter::Adopt(moved));
        }
    }

    fn on_query(&mut self, q: Query) {
        match q {
            Query::Stats(tx) => {
                let _ = tx.send(self.stats);
            }
            Query::Trace(tx) => {
                let _ = tx.send(self.trace.clone().unwrap_or_default());
            }
            Query::Barrier(b) => b.arrive(),
            Query::Round(..) | Query::Status(_) => {}
        }
    }

    // ---- timers, heartbeats, status ------------------------------------------------------------

    /// Periodic work: agent timers, redeliveries, outbox, heartbeats, failure detection.
    pub(crate) fn on_timer(&mut self) {
        let now = Instant::now();
        while let Some(Reverse(t)) = self.timers.peek() {
            if t.due > now {
                break;
            }
            let Reverse(t) = self.timers.pop().expect("peeked");
            let env = Envelope {
                from: Address::Agent(t.agent),
                to: Address::Agent(t.agent),
                priority: qorch_protocol::Message::priority(&t.msg),
                seq: 0,
                correlation: None,
                deadline: None,
                ack_required: false,
                payload: Letter::User(t.msg),
            };
            self.flow.produce(1);
            self.route(env);
        }
        let (resend, gave_up) = self.pending.due(now);
        self.stats.redeliveries += resend.len() as u64;
        self.stats.undeliverable += gave_up.len() as u64;
        self.flow.produce(resend.len() as u64);
        for env in resend {
            self.route(env.map(Letter::User));
        }
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
        if now.duration_since(self.last_expire) >= self.shared.config.redelivery_timeout {
            self.dedup.expire(now);
            self.last_expire = now;
        }
        let cfg = &self.shared.config;
        let (interval, timeout) = (cfg.heartbeat_interval, cfg.heartbeat_timeout);
        if now.duration_since(self.last_heartbeat) < interval {
            return;
        }
        // Children silent past the timeout are failed. A child's silence counts from the
        // first time this node looked for it, so that a child that dies before its first
        // heartbeat is failed too.
        for c in self.children() {
            let (seen, _) = self.children_seen.entry(c).or_insert_with(|| {
                let info = self.shared.directory.tree.load().info(c).clone();
                (
                    now,
                    StatusNode {
                        address: info.address,
                        name: info.name,
                        status: ComponentStatus::Starting,
                        agents: AgentCounts::default(),
                        silent_ms: 0,
                        children: Vec::new(),
                    },
                )
            });
            let silent = now.duration_since(*seen);
            if silent > timeout && self.failed_children.insert(c) {
                tracing::warn!(node = %self.address, child = ?c, ?silent, "child missed its heartbeats: failed");
                self.round_child_failed(c);
            }
        }
        if now.duration_since(self.last_heartbeat) >= interval {
            self.last_heartbeat = now;
            let tree = self.status_tree(now);
            let parent = self.parent_dest();
            self.send_letter(
                parent,
                Priority::Control,
                Letter::Heartbeat(self.key, Box::new(tree)),
            );
        }
    }

    /// A letter from `from`: if it is a child, it is alive.
    fn note_alive(&mut self, from: Address) {
        let tree = self.shared.directory.tree.load();
        if let Some(k) = tree.node_of(from)
            && tree.info(k).parent == Some(self.key)
            && let Some(seen) = self.children_seen.get_mut(&k)
        {
            seen.0 = Instant::now();
            self.failed_children.remove(&k);
        }
    }

    fn round_child_failed(&mut self, c: NodeKey) {
        if let Some(r) = &mut self.round {
            r.waiting.remove(&c);
        }
        self.maybe_finish_round();
    }

    fn own_status(&self) -> ComponentStatus {
        if self.stopping.is_some() {
            ComponentStatus::Stopping
        } else if !self.outbox.is_empty() {
            ComponentStatus::Overloaded
        } else if self.failed_agents > 0 || !self.restarted_agents.is_empty() {
            ComponentStatus::Degraded
        } else {
            ComponentStatus::Healthy
        }
    }

    /// This node's subtree as it knows it.
    fn status_tree(&self, now: Instant) -> StatusNode {
        let tree = self.shared.directory.tree.load();
        let info = tree.info(self.key);
        let failed = self.failed_agents;
        let restarted = self.restarted_agents.len() as u64;
        let total = self.slots.len() as u64;
        let mut children = Vec::new();
        for c in self.children() {
            let child_info = tree.info(c);
            let mut node = match self.children_seen.get(&c) {
                Some((t, n)) => {
                    let mut n = n.clone();
                    n.silent_ms = now.duration_since(*t).as_millis() as u64;
                    n
                }
                None => StatusNode {
                    address: child_info.address,
                    name: child_info.name.clone(),
                    status: ComponentStatus::Starting,
                    agents: AgentCounts::default(),
                    silent_ms: 0,
                    children: Vec::new(),
                },
            };
            if self.failed_children.contains(&c) {
                node.status = ComponentStatus::Failed;
            }
            children.push(node);
        }
        StatusNode {
            address: self.address,
            name: info.name.clone(),
            status: self.own_status(),
            agents: AgentCounts {
                total,
                healthy: total - failed - restarted,
                restarted,
                failed,
            },
            silent_ms: 0,
            children,
        }
    }

    // ---- shutdown --------------------------------------------------------------------------

    fn begin_stop(&mut self, collector: Arc<ShutdownCollector>) {
        self.stopping = Some(NodeShutdown::default());
        for c in self.children() {
            self.send_letter(
                Dest::Node(c),
                Priority::Control,
                Letter::Stop(Arc::clone(&collector)),
            );
        }
        self.collector = Some(collector);
    }

    /// Handles one envelope drained from the closed mailbox: user messages are still
    /// delivered (in priority order); protocol letters are counted as left over.
    pub(crate) fn drain_one(&mut self, env: Envelope<Letter<B>>) {
        let lane = env.priority.lane();
        match env.payload {
            Letter::User(_) | Letter::Ack(_) | Letter::Tick(_) | Letter::Allocate(_) => {
                let _ = self.handle(env);
            }
            _ => {
                if let Some(s) = &mut self.stopping {
                    s.left_in_mailbox[lane] += 1;
                }
            }
        }
    }

    /// Ends the stop: stops the agents and files this node's report.
    pub(crate) fn finish_stop(&mut self) {
        for i in 0..self.slots.len() {
            let parent = self.address;
            let tick = self.tick;
            let slot = &mut self.slots[i];
            if let Some(b) = slot.behaviour.as_mut() {
                let mut effects = Effects::default();
                let mut ctx = Context {
                    id: slot.id,
                    parent,
                    sender: None,
                    correlation: None,
                    grant: slot.grant.as_ref(),
                    tick,
                    random: &mut slot.random,
                    effects: &mut effects,
                };
                let _ = panic_guard::run(|| catch_unwind(AssertUnwindSafe(|| b.stopped(&mut ctx))));
            }
        }
        let mut report = self.stopping.take().unwrap_or_default();
        for (lane, q) in self.local.iter().enumerate() {
            report.left_in_mailbox[lane] += q.len() as u64;
        }
        report.left_in_outbox = self.outbox.values().map(|q| q.len() as u64).sum();
        report.unacknowledged = self.pending.len() as u64;
        report.stats = self.stats;
        if let Some(c) = self.collector.take() {
            c.reports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(report);
        }
        for s in &self.slots {
            self.shared.directory.agents.set(s.id, None);
        }
    }
}
