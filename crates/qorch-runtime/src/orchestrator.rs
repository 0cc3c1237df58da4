//! The root of the hierarchy: routes between clusters, delivers to the application, runs
//! report rounds, keeps the status tree. Plain Rust, driven by the executor.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use qorch_protocol::{Address, AgentId, Envelope, MailboxSender, Priority, TrySendError};
use qorch_resources::Grant;
use tokio::sync::oneshot;

use crate::Agent;
use crate::directory::{Hop, NodeKey};
use crate::letter::{AgentReport, AllocationBatch, Letter, Query, RoundReport, ShutdownCollector};
use crate::remote::Remote;
use crate::shared::{Dest, Shared};
use crate::status::{AgentCounts, ComponentStatus, StatusNode};

/// Counts kept by the orchestrator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OrchestratorStats {
    pub(crate) routed: u64,
    pub(crate) delivered_to_application: u64,
    pub(crate) application_overflow: u64,
    pub(crate) dead_letters: u64,
    /// Envelopes handed to the remote link (for another process).
    pub(crate) remote_out: u64,
}

struct Round {
    number: u64,
    waiting: HashSet<NodeKey>,
    agents: Vec<AgentReport>,
    affinity: Vec<(AgentId, AgentId, f64)>,
    reply: oneshot::Sender<RoundReport>,
}

pub(crate) struct OrchestratorCore<B: Agent> {
    shared: Arc<Shared<B>>,
    inbox: MailboxSender<Envelope<B::Msg>>,
    roots_seen: HashMap<NodeKey, (Instant, StatusNode)>,
    failed_roots: HashSet<NodeKey>,
    rounds: VecDeque<Round>,
    outbox: HashMap<Dest, VecDeque<Envelope<Letter<B>>>>,
    pub(crate) stats: OrchestratorStats,
    started: Instant,
    flow: Arc<crate::shared::Flow>,
}

impl<B: Agent> OrchestratorCore<B> {
    pub(crate) fn new(shared: Arc<Shared<B>>, inbox: MailboxSender<Envelope<B::Msg>>) -> Self {
        OrchestratorCore {
            flow: Arc::clone(&shared.orchestrator_flow),
            shared,
            inbox,
            roots_seen: HashMap::new(),
            failed_roots: HashSet::new(),
            rounds: VecDeque::new(),
            outbox: HashMap::new(),
            stats: OrchestratorStats::default(),
            started: Instant::now(),
        }
    }

    fn live_roots(&self) -> Vec<NodeKey> {
        let tree = self.shared.directory.tree.load();
        tree.roots()
            .filter(|r| !self.failed_roots.contains(r))
            .collect()
    }

    pub(crate) fn handle(&mut self, env: Envelope<Letter<B>>) {
        let now = Instant::now();
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
        match payload {
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
                if to.is_agent() {
                    self.route(env.map(Letter::User));
                } else {
                    self.deliver_to_application(env);
                }
            }
            Letter::Ack(id) => {
                let env = Envelope {
                    from,
                    to,
                    priority,
                    seq,
                    correlation,
                    deadline,
                    ack_required,
                    payload: Letter::Ack(id),
                };
                self.route(env);
            }
            Letter::Heartbeat(k, tree) => {
                self.failed_roots.remove(&k);
                self.roots_seen.insert(k, (now, *tree));
            }
            Letter::Report(rep) => self.on_report(from, *rep),
            Letter::Query(Query::Round(round, reply)) => self.start_round(round, reply),
            Letter::Query(Query::Status(reply)) => {
                let _ = reply.send(self.status_tree(now));
            }
            Letter::Query(Query::Barrier(b)) => b.arrive(),
            Letter::Tick(n) => {
                for r in self.live_roots() {
                    self.send_letter(Dest::Node(r), Priority::Normal, Letter::Tick(n));
                }
            }
            Letter::Allocate(batch) => self.allocate(*batch),
            Letter::Stop(collector) => self.stop(&collector),
            Letter::Query(Query::Stats(_) | Query::Trace(_))
            | Letter::Collect(_)
            | Letter::Spawn(..)
            | Letter::Adopt(_)
            | Letter::MoveOut(..)
            | Letter::Kill => {}
        }
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
    }

    fn deliver_to_application(&mut self, env: Envelope<B::Msg>) {
        self.flow.consume(1);
        match self.inbox.try_send(env) {
            Ok(()) => self.stats.delivered_to_application += 1,
            Err(TrySendError::Full(_)) => {
                self.stats.application_overflow += 1;
                tracing::warn!("application inbox full: message counted as overflow");
            }
            Err(TrySendError::Closed(_)) => {
                self.stats.dead_letters += 1;
                self.shared.count_dead_letters(1, 0);
            }
        }
    }

    fn route(&mut self, env: Envelope<Letter<B>>) {
        let tree = self.shared.directory.tree.load();
        let Ok(target) = self.shared.directory.resolve(&tree, env.to) else {
            drop(tree);
            self.forward_remote(env);
            return;
        };
        let hop = tree.next_hop(None, target);
        drop(tree);
        match hop {
            Hop::Down(c) => {
                self.stats.routed += 1;
                self.send_dest(Dest::Node(c), env);
            }
            _ => self.dead_letter(&env),
        }
    }

    /// Hands an envelope for an address no node here hosts to the remote link, if any.
    fn forward_remote(&mut self, env: Envelope<Letter<B>>) {
        let Some(link) = self.shared.remote.as_ref() else {
            self.dead_letter(&env);
            return;
        };
        let user = matches!(env.payload, Letter::User(_));
        let Some(out) = env.filter_map(|l| match l {
            Letter::User(m) => Some(Remote::User(m)),
            Letter::Ack(id) => Some(Remote::Ack(id)),
            _ => None,
        }) else {
            self.dead_letter_parts(false);
            return;
        };
        match link.forward(out) {
            Ok(()) => {
                self.stats.remote_out += 1;
                if user {
                    self.flow.consume(1);
                }
            }
            Err(_) => self.dead_letter_parts(user),
        }
    }

    fn send_dest(&mut self, dest: Dest, env: Envelope<Letter<B>>) {
        if let Some(q) = self.outbox.get_mut(&dest)
            && !q.is_empty()
        {
            q.push_back(env);
            return;
        }
        match self.shared.try_send(dest, env) {
            Ok(()) => {}
            Err(TrySendError::Full(env)) => self.outbox.entry(dest).or_default().push_back(env),
            Err(TrySendError::Closed(env)) => self.dead_letter(&env),
        }
    }

    fn dead_letter(&mut self, env: &Envelope<Letter<B>>) {
        self.dead_letter_parts(matches!(env.payload, Letter::User(_)));
    }

    /// Counts an envelope that cannot be delivered (a user message, or a protocol letter).
    fn dead_letter_parts(&mut self, user: bool) {
        self.stats.dead_letters += 1;
        if user {
            self.flow.consume(1);
            self.shared.count_dead_letters(1, 0);
        } else {
            self.shared.count_dead_letters(0, 1);
        }
    }

    fn send_letter(&mut self, dest: Dest, priority: Priority, letter: Letter<B>) {
        let env = Envelope {
            from: Address::Orchestrator,
            to: Address::Orchestrator,
            priority,
            seq: 0,
            correlation: None,
            deadline: None,
            ack_required: false,
            payload: letter,
        };
        self.send_dest(dest, env);
    }

    fn flush_outbox(&mut self) {
        let keys: Vec<Dest> = self.outbox.keys().copied().collect();
        let mut dead = Vec::new();
        for dest in keys {
            let q = self.outbox.get_mut(&dest).expect("key listed");
            while let Some(env) = q.pop_front() {
                match self.shared.try_send(dest, env) {
                    Ok(()) => {}
                    Err(TrySendError::Full(env)) => {
                        q.push_front(env);
                        break;
                    }
                    Err(TrySendError::Closed(env)) => dead.push(env),
                }
            }
            if q.is_empty() {
                self.outbox.remove(&dest);
            }
        }
        for env in &dead {
            self.dead_letter(env);
        }
    }

    fn start_round(&mut self, round: u64, reply: oneshot::Sender<RoundReport>) {
        let waiting: HashSet<NodeKey> = self.live_roots().into_iter().collect();
        for &r in &waiting {
            self.send_letter(Dest::Node(r), Priority::Normal, Letter::Collect(round));
        }
        self.rounds.push_back(Round {
            number: round,
            waiting,
            agents: Vec::new(),
            affinity: Vec::new(),
            reply,
        });
        self.finish_rounds();
    }

    fn on_report(&mut self, from: Address, rep: RoundReport) {
        let tree = self.shared.directory.tree.load();
        let root = tree.node_of(from);
        drop(tree);
        if let Some(r) = self.rounds.iter_mut().find(|r| r.number == rep.round) {
            if let Some(k) = root {
                r.waiting.remove(&k);
            }
            r.agents.extend(rep.agents);
            r.affinity.extend(rep.affinity);
        }
        self.finish_rounds();
    }

    fn finish_rounds(&mut self) {
        while self.rounds.front().is_some_and(|r| r.waiting.is_empty()) {
            let mut r = self.rounds.pop_front().expect("checked");
            r.agents.sort_by_key(|a| a.agent);
            r.affinity.sort_by_key(|a| (a.0, a.1));
            let _ = r.reply.send(RoundReport {
                round: r.number,
                agents: r.agents,
                affinity: r.affinity,
            });
        }
    }

    fn allocate(&mut self, batch: AllocationBatch) {
        let tree = self.shared.directory.tree.load();
        let mut per_root: HashMap<NodeKey, Vec<(AgentId, Option<Grant>)>> = HashMap::new();
        for (agent, grant) in batch.grants {
            if let Some(host) = self.shared.directory.agents.node(agent)
                && let Hop::Down(root) = tree.next_hop(None, Some(host))
            {
                per_root.entry(root).or_default().push((agent, grant));
            }
        }
        drop(tree);
        let mut roots: Vec<_> = per_root.into_iter().collect();
        roots.sort_by_key(|(k, _)| *k);
        for (root, grants) in roots {
            let b = AllocationBatch {
                round: batch.round,
                grants,
            };
            self.send_letter(
                Dest::Node(root),
                Priority::High,
                Letter::Allocate(Box::new(b)),
            );
        }
    }

    fn stop(&mut self, collector: &Arc<ShutdownCollector>) {
        let tree = self.shared.directory.tree.load();
        let roots: Vec<NodeKey> = tree.roots().collect();
        drop(tree);
        for r in roots {
            self.send_letter(
                Dest::Node(r),
                Priority::Control,
                Letter::Stop(Arc::clone(collector)),
            );
        }
    }

    /// Periodic work: failure detection of the clusters, backpressure retries.
    pub(crate) fn on_timer(&mut self) {
        let now = Instant::now();
        let timeout = self.shared.config.heartbeat_timeout;
        for r in self.live_roots() {
            let silent = self.roots_seen.get(&r).map(|(t, _)| now.duration_since(*t));
            if silent.is_some_and(|s| s > timeout) && self.failed_roots.insert(r) {
                tracing::warn!(cluster = ?r, "cluster missed its heartbeats: failed");
                for round in &mut self.rounds {
                    round.waiting.remove(&r);
                }
            }
        }
        self.finish_rounds();
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
    }

    /// The status tree as the orchestrator knows it from the clusters' heartbeats.
    pub(crate) fn status_tree(&self, now: Instant) -> StatusNode {
        let tree = self.shared.directory.tree.load();
        let mut children = Vec::new();
        for r in tree.roots() {
            let info = tree.info(r);
            let mut node = match self.roots_seen.get(&r) {
                Some((t, n)) => {
                    let mut n = n.clone();
                    n.silent_ms = now.duration_since(*t).as_millis() as u64;
                    n
                }
                None => StatusNode {
                    address: info.address,
                    name: info.name.clone(),
                    status: ComponentStatus::Starting,
                    agents: AgentCounts::default(),
                    silent_ms: now.duration_since(self.started).as_millis() as u64,
                    children: Vec::new(),
                },
            };
            if self.failed_roots.contains(&r) {
                node.status = ComponentStatus::Failed;
            }
            children.push(node);
        }
        StatusNode {
            address: Address::Orchestrator,
            name: "orchestrator".to_owned(),
            status: if self.outbox.is_empty() {
                ComponentStatus::Healthy
            } else {
                ComponentStatus::Overloaded
            },
            agents: AgentCounts::default(),
            silent_ms: 0,
            children,
        }
    }
}
