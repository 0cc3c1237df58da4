//! Ticks down the tree, report rounds up (one aggregated report per node), allocations
//! down (split by subtree).

use std::collections::{HashMap, HashSet};

use qorch_protocol::{Address, AgentId, Priority};
use qorch_resources::Grant;

use super::NodeCore;
use crate::Host;
use crate::directory::{Hop, NodeKey};
use crate::letter::{AgentReport, AllocationBatch, Letter, RoundReport};
use crate::round::Gathering;
use crate::shared::Dest;
use crate::status::ComponentStatus;

impl<B: Host> NodeCore<B> {
    /// Runs every agent's `on_tick`, then passes the tick down.
    pub(super) fn on_tick(&mut self, n: u64) {
        self.tick = n;
        for i in 0..self.slots.len() {
            self.run_hook(i, None, |b, ctx| b.on_tick(n, ctx));
        }
        for c in self.children() {
            self.send_letter(Dest::Node(c), Priority::Normal, Letter::Tick(n));
        }
        self.flow
            .tick
            .store(n, std::sync::atomic::Ordering::Release);
    }

    /// Starts this node's part of report round `round`: its own agents' lines, and a
    /// collection letter to every live child.
    pub(super) fn on_collect(&mut self, round: u64) {
        let mut agents = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let failed = s.behaviour.is_none();
            agents.push(AgentReport {
                agent: s.id,
                host: self.address,
                request: s.behaviour.as_ref().and_then(Host::demand),
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
            .filter(|c| !self.children.is_failed(*c))
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
        self.round = Some(Gathering::new(round, waiting, agents, affinity));
        self.maybe_finish_round();
    }

    /// A child's report for the round in progress.
    pub(super) fn on_report(&mut self, from: Address, rep: RoundReport) {
        let child = self.shared.directory.tree.load().node_of(from);
        if let Some(r) = &mut self.round
            && r.round() == rep.round
        {
            r.add(child, rep);
        }
        self.maybe_finish_round();
    }

    /// Sends the merged report up once every live child has reported.
    pub(super) fn maybe_finish_round(&mut self) {
        if self.round.as_ref().is_some_and(Gathering::is_complete) {
            let report = self.round.take().expect("checked").into_report();
            let parent = self.parent_dest();
            self.send_letter(parent, Priority::Normal, Letter::Report(Box::new(report)));
        }
    }

    /// Grants: this node's agents' `on_allocation`, the rest split by child subtree.
    pub(super) fn on_allocate(&mut self, batch: AllocationBatch) {
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
            self.run_hook(i, None, move |b, ctx| b.on_allocation(g.as_ref(), ctx));
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
}
