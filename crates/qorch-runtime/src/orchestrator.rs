//! The root of the hierarchy: routes between clusters, delivers to the application, runs
//! report rounds, keeps the status tree. Plain Rust, driven by the executor; it sends,
//! watches its children and gathers rounds with the same parts as the nodes
//! ([`Outbox`], [`ChildWatch`], [`Gathering`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qorch_protocol::{Address, AgentId, Envelope, MailboxSender, Priority, TrySendError};
use qorch_resources::Grant;
use tokio::sync::oneshot;

use crate::Host;
use crate::directory::{Hop, NodeKey};
use crate::letter::{AllocationBatch, Letter, Query, RoundReport, ShutdownCollector, letter, open};
use crate::outbox::{DeadLetters, Outbox, dead_letter};
use crate::remote::Remote;
use crate::round::Gathering;
use crate::shared::{Dest, Flow, Shared};
use crate::status::{AgentCounts, ComponentStatus, StatusNode};
use crate::watch::ChildWatch;

/// Counts kept by the orchestrator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OrchestratorStats {
    pub(crate) routed: u64,
    pub(crate) delivered_to_application: u64,
    /// Messages for the application that found its inbox full and waited here.
    pub(crate) application_backlogged: u64,
    /// Envelopes handed to the remote link (for another process).
    pub(crate) remote_out: u64,
}

/// The orchestrator holds no node's counts: what it cannot deliver goes to the runtime's
/// detached counts, which every total includes.
struct Detached<'a, B: Host>(&'a Shared<B>);

impl<B: Host> DeadLetters for Detached<'_, B> {
    fn count_dead(&mut self, user: u64, protocol: u64) {
        if user + protocol > 0 {
            self.0.count_dead_letters(user, protocol);
        }
    }
}

pub(crate) struct OrchestratorCore<B: Host> {
    shared: Arc<Shared<B>>,
    inbox: MailboxSender<Envelope<B::Msg>>,
    /// Messages for the application that found its inbox full, in order: they wait here
    /// until it reads (never dropped), and the orchestrator reports itself overloaded.
    backlog: VecDeque<Envelope<B::Msg>>,
    clusters: ChildWatch,
    /// Rounds in progress, oldest first, with who waits for each.
    rounds: VecDeque<(Gathering, oneshot::Sender<RoundReport>)>,
    outbox: Outbox<B>,
    pub(crate) stats: OrchestratorStats,
    started: Instant,
    flow: Arc<Flow>,
}

impl<B: Host> OrchestratorCore<B> {
    pub(crate) fn new(shared: Arc<Shared<B>>, inbox: MailboxSender<Envelope<B::Msg>>) -> Self {
        OrchestratorCore {
            flow: Arc::clone(&shared.orchestrator_flow),
            shared,
            inbox,
            backlog: VecDeque::new(),
            clusters: ChildWatch::default(),
            rounds: VecDeque::new(),
            outbox: Outbox::default(),
            stats: OrchestratorStats::default(),
            started: Instant::now(),
        }
    }

    fn live_roots(&self) -> Vec<NodeKey> {
        let tree = self.shared.directory.tree.load();
        tree.roots()
            .filter(|r| !self.clusters.is_failed(*r))
            .collect()
    }

    pub(crate) fn handle(&mut self, env: Envelope<Letter<B>>) {
        let now = Instant::now();
        let (header, payload) = open(env);
        match payload {
            Letter::User(msg) => {
                if header.to.is_agent() {
                    self.route(header.map(|()| Letter::User(msg)));
                } else {
                    self.deliver_to_application(header.map(|()| msg));
                }
            }
            Letter::Ack(id) => self.route(header.map(|()| Letter::Ack(id))),
            Letter::Heartbeat(k, tree) => self.clusters.heartbeat(k, *tree, now),
            Letter::Report(rep) => self.on_report(header.from, *rep),
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
            // For an agent: down the tree (or out to another process, or a dead letter).
            letter @ (Letter::Watch(_)
            | Letter::StopAgent
            | Letter::Notice(_)
            | Letter::Reply(_)) => {
                self.route(header.map(|()| letter));
            }
        }
        self.flush_outbox();
        if !self.backlog.is_empty() {
            self.flush_backlog();
        }
    }

    /// Hands a message to the application's inbox, behind any that wait for room. It counts
    /// as consumed by the runtime once here: the application has it to read.
    fn deliver_to_application(&mut self, env: Envelope<B::Msg>) {
        self.flow.consume(1);
        if self.backlog.is_empty() {
            match self.inbox.try_send(env) {
                Ok(()) => self.stats.delivered_to_application += 1,
                Err(TrySendError::Full(env)) => {
                    tracing::warn!(
                        "application inbox full: messages for the application wait in the \
                         orchestrator until it reads them"
                    );
                    self.stats.application_backlogged += 1;
                    self.backlog.push_back(env);
                }
                Err(TrySendError::Closed(_)) => self.shared.count_dead_letters(1, 0),
            }
        } else {
            self.stats.application_backlogged += 1;
            self.backlog.push_back(env);
        }
        self.note_backlog();
    }

    /// Moves what waits for the application into its inbox, as room allows.
    fn flush_backlog(&mut self) {
        while let Some(env) = self.backlog.pop_front() {
            match self.inbox.try_send(env) {
                Ok(()) => self.stats.delivered_to_application += 1,
                Err(TrySendError::Full(env)) => {
                    self.backlog.push_front(env);
                    break;
                }
                Err(TrySendError::Closed(_)) => self.shared.count_dead_letters(1, 0),
            }
        }
        self.note_backlog();
    }

    fn note_backlog(&self) {
        self.shared.app_backlog.store(
            self.backlog.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
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
            _ => self.dead_letter(&env.payload),
        }
    }

    /// Hands an envelope for an address no node here hosts to the remote link, if any.
    fn forward_remote(&mut self, env: Envelope<Letter<B>>) {
        let Some(link) = self.shared.remote.as_ref() else {
            self.dead_letter(&env.payload);
            return;
        };
        let user = env.payload.is_user();
        let (header, payload) = open(env);
        let remote = match payload {
            Letter::User(m) => Remote::User(m),
            Letter::Ack(id) => Remote::Ack(id),
            other => {
                self.dead_letter(&other);
                return;
            }
        };
        match link.forward(header.map(|()| remote)) {
            Ok(()) => {
                self.stats.remote_out += 1;
                if user {
                    self.flow.consume(1);
                }
            }
            Err(back) => {
                let back = back.payload;
                let letter = match back {
                    Remote::User(m) => Letter::User(m),
                    Remote::Ack(id) => Letter::Ack(id),
                };
                self.dead_letter(&letter);
            }
        }
    }

    fn dead_letter(&mut self, letter: &Letter<B>) {
        dead_letter(letter, &mut Detached(&self.shared), &self.flow);
    }

    fn send_dest(&mut self, dest: Dest, env: Envelope<Letter<B>>) {
        self.outbox.send(
            &self.shared,
            dest,
            env,
            &mut Detached(&self.shared),
            &self.flow,
        );
    }

    fn send_letter(&mut self, dest: Dest, priority: Priority, payload: Letter<B>) {
        self.send_dest(dest, letter(Address::Orchestrator, priority, payload));
    }

    fn flush_outbox(&mut self) {
        if !self.outbox.is_empty() {
            self.outbox
                .flush(&self.shared, &mut Detached(&self.shared), &self.flow);
        }
    }

    fn start_round(&mut self, round: u64, reply: oneshot::Sender<RoundReport>) {
        let waiting: HashSet<NodeKey> = self.live_roots().into_iter().collect();
        for &r in &waiting {
            self.send_letter(Dest::Node(r), Priority::Normal, Letter::Collect(round));
        }
        self.rounds.push_back((
            Gathering::new(round, waiting, Vec::new(), Vec::new()),
            reply,
        ));
        self.finish_rounds();
    }

    fn on_report(&mut self, from: Address, rep: RoundReport) {
        let root = self.shared.directory.tree.load().node_of(from);
        if let Some((r, _)) = self.rounds.iter_mut().find(|(r, _)| r.round() == rep.round) {
            r.add(root, rep);
        }
        self.finish_rounds();
    }

    fn finish_rounds(&mut self) {
        while self.rounds.front().is_some_and(|(r, _)| r.is_complete()) {
            let (r, reply) = self.rounds.pop_front().expect("checked");
            let mut report = r.into_report();
            report.agents.sort_by_key(|a| a.agent);
            report.affinity.sort_by_key(|a| (a.0, a.1));
            let _ = reply.send(report);
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
        let tree = self.shared.directory.tree.load();
        let roots: Vec<_> = self
            .live_roots()
            .into_iter()
            .map(|r| (r, tree.info(r).clone()))
            .collect();
        drop(tree);
        for r in self
            .clusters
            .check(Address::Orchestrator, roots, now, timeout, false)
        {
            for (round, _) in &mut self.rounds {
                round.give_up(r);
            }
        }
        self.finish_rounds();
        self.flush_outbox();
        if !self.backlog.is_empty() {
            self.flush_backlog();
        }
    }

    /// The status tree as the orchestrator knows it from the clusters' heartbeats.
    pub(crate) fn status_tree(&self, now: Instant) -> StatusNode {
        let tree = self.shared.directory.tree.load();
        let unseen_for: Duration = now.duration_since(self.started);
        let children = tree
            .roots()
            .map(|r| self.clusters.status_of(r, tree.info(r), now, unseen_for))
            .collect();
        StatusNode {
            address: Address::Orchestrator,
            name: "orchestrator".to_owned(),
            status: if self.outbox.is_empty() && self.backlog.is_empty() {
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
