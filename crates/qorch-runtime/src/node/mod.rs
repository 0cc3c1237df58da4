//! A cluster or sub-cluster: hosts agents, routes envelopes, supervises, aggregates.
//!
//! `NodeCore` is plain Rust: the executor feeds it envelopes and timer ticks and it never
//! blocks. Every delivery, including one between two agents of the same node, goes through a
//! mailbox or the node's local queue, so priorities hold and the node always yields between
//! messages. The node's work is cut by concern:
//!
//! * `agents`: delivering user messages to hosted agents, their hooks under supervision
//!   (restart or fail), and the effects of a successful hook (sends, reliable copies, timers);
//! * `routing`: one hop towards a destination, the local queue, the outbox, dead letters;
//! * `rounds`: ticks down the tree, report rounds up, allocations down;
//! * `moves`: agents arriving (spawn, adoption) and leaving (move out);
//! * `lifecycle`: stopping agents, watches and their notices;
//! * `health`: the periodic work (timers, redeliveries, heartbeats, failure detection) and
//!   the status tree;
//! * `shutdown`: the graceful stop and its report.

mod agents;
mod asks;
mod health;
mod lifecycle;
mod moves;
mod rounds;
mod routing;
mod shutdown;

pub(crate) use asks::PendingAsk;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qorch_protocol::{Address, AgentId, Envelope};
use qorch_resources::Grant;

use crate::agent::Effects;
use crate::directory::NodeKey;
use crate::letter::{
    Factory, Letter, NodeShutdown, NodeStats, Query, ShutdownCollector, TraceEvent, open,
};
use crate::monitor::Watcher;
use crate::outbox::Outbox;
use crate::reliable::{Dedup, Pending};
use crate::round::Gathering;
use crate::shared::{Flow, Shared};
use crate::telemetry::NodeTelemetry;
use crate::timer::Timer;
use crate::watch::ChildWatch;
use crate::{Host, panic_guard};

/// One hosted agent.
pub(crate) struct Slot<B: Host> {
    id: AgentId,
    behaviour: Option<B>,
    factory: Factory<B>,
    grant: Option<Grant>,
    restarts: u32,
    seq: u64,
    random: u64,
    /// Its behaviour type's index in this node's metrics (set when it arrives).
    kind: u16,
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

pub(crate) struct NodeCore<B: Host> {
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
    outbox: Outbox<B>,
    pending: Pending<B::Msg>,
    dedup: Dedup,
    timers: BinaryHeap<Reverse<Timer<B::Msg>>>,
    timer_order: u64,
    tick: u64,
    children: ChildWatch,
    last_heartbeat: Instant,
    last_expire: Instant,
    round: Option<Gathering>,
    stats: NodeStats,
    trace: Option<Vec<TraceEvent>>,
    effects: Effects<B::Msg>,
    stopping: Option<NodeShutdown>,
    collector: Option<Arc<ShutdownCollector>>,
    failed_agents: u64,
    restarted_agents: HashSet<AgentId>,
    /// Who watches each agent hosted here.
    watchers: HashMap<AgentId, Vec<Watcher<B::Msg>>>,
    /// Agents to stop once the letter being handled is done.
    to_stop: Vec<AgentId>,
    /// When agents restarted within their restart period (only those restarted lately).
    restart_times: HashMap<AgentId, VecDeque<Instant>>,
    /// The replies being routed (a buffer kept for its capacity).
    replies: Vec<crate::ask::ReplyOut>,
    /// Asks by this node's agents waiting for their outcome, by correlation number.
    asks: HashMap<u64, PendingAsk<B::Msg>, foldhash::fast::RandomState>,
    /// Their deadlines (entries of asks that ended are skipped).
    ask_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Sampled agent-to-agent message counts since the last round.
    affinity: HashMap<(AgentId, AgentId), u32, foldhash::fast::RandomState>,
    /// Metrics counted here and published with the periodic work.
    telemetry: NodeTelemetry,
    /// Messages delivered to agents, for the sampling of their spans.
    delivered: u64,
}

impl<B: Host> NodeCore<B> {
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
            outbox: Outbox::default(),
            timers: BinaryHeap::new(),
            timer_order: 0,
            tick: 0,
            children: ChildWatch::default(),
            last_heartbeat: now,
            last_expire: now,
            round: None,
            stats: NodeStats::default(),
            effects: Effects::for_node(key.0),
            stopping: None,
            collector: None,
            failed_agents: 0,
            restarted_agents: HashSet::new(),
            restart_times: HashMap::new(),
            watchers: HashMap::new(),
            to_stop: Vec::new(),
            replies: Vec::new(),
            asks: HashMap::default(),
            ask_deadlines: BinaryHeap::new(),
            affinity: HashMap::default(),
            telemetry: NodeTelemetry::new(),
            delivered: 0,
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
        if self.timer_urgent() {
            return res;
        }
        match self.next_due() {
            Some(due) => due.saturating_duration_since(now).clamp(res, idle),
            None => idle,
        }
    }

    /// Whether timer work waits that is due within the resolution (an outbox, reliable
    /// sends, held messages).
    pub(crate) fn timer_urgent(&self) -> bool {
        !self.outbox.is_empty() || self.pending.len() > 0 || !self.waiting.is_empty()
    }

    /// Whether an alarm due at `at`, set when [`timer_urgent`](Self::timer_urgent) was
    /// `urgent_then`, may come too late for the node's timer work now, without reading the
    /// clock. `false` means [`timer_delay`](Self::timer_delay) cannot ask for an earlier
    /// alarm: urgent work was already waiting then (so `at` is within the resolution of that
    /// moment), or none is; every agent timer and ask deadline is due at `at` or later; and
    /// the heartbeat part only moves when the alarm fires.
    pub(crate) fn may_need_earlier_alarm(&self, at: Instant, urgent_then: bool) -> bool {
        if self.timer_urgent() && !urgent_then {
            return true;
        }
        self.next_due().is_some_and(|due| due < at)
    }

    /// When the earliest agent timer or ask deadline is due.
    fn next_due(&self) -> Option<Instant> {
        match (self.timers.peek(), self.next_ask_deadline()) {
            (Some(Reverse(t)), Some(a)) => Some(t.due.min(a)),
            (Some(Reverse(t)), None) => Some(t.due),
            (None, a) => a,
        }
    }

    /// Handles one envelope from the mailbox.
    pub(crate) fn handle(&mut self, env: Envelope<Letter<B>>) -> Control {
        self.stats.by_priority[env.priority.lane()] += 1;
        if !env.from.is_agent() && env.from != self.address && env.from != Address::Orchestrator {
            self.note_alive(env.from);
        }
        let (header, payload) = open(env);
        let from = header.from;
        let control = match payload {
            Letter::User(msg) => {
                self.on_user(header.map(|()| msg));
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
                self.children.heartbeat(child, *tree, Instant::now());
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
            Letter::Watch(w) => {
                self.on_watch(header, w);
                Control::Continue
            }
            Letter::StopAgent => {
                self.on_stop_agent(header);
                Control::Continue
            }
            Letter::Notice(n) => {
                self.on_notice(header, *n);
                Control::Continue
            }
            Letter::Reply(r) => {
                self.on_reply(header, r);
                Control::Continue
            }
        };
        self.route_replies();
        self.reap_stopped();
        self.route_replies();
        self.flush_outbox();
        control
    }

    /// A letter taken out of the mailbox (not the local queue), for the time-in-mailbox
    /// sample.
    #[inline]
    pub(crate) fn note_dequeued(&mut self, env: &Envelope<Letter<B>>) {
        self.telemetry.dequeued(env.priority.lane());
    }

    /// Samples the mailbox's depth per lane (rate-limited inside).
    pub(crate) fn sample_mailbox(
        &mut self,
        mailbox: &qorch_protocol::PriorityMailbox<Envelope<Letter<B>>>,
    ) {
        self.telemetry
            .sample_mailbox(Instant::now(), |p| mailbox.lane_len(p));
    }

    /// Publishes this node's metrics (deltas since the last publication).
    pub(super) fn publish_metrics(&mut self) {
        let tree = self.shared.directory.tree.load();
        let name = &tree.info(self.key).name;
        self.telemetry.publish(name, &self.stats);
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
}
