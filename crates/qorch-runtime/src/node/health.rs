//! A node's periodic work (agent timers, redeliveries, outbox retries, heartbeats, failure
//! detection of its children) and its status tree.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use qorch_protocol::{Address, Envelope, Message, Priority};

use super::NodeCore;
use crate::Host;
use crate::directory::NodeKey;
use crate::letter::{Letter, letter};
use crate::status::{AgentCounts, ComponentStatus, StatusNode};

impl<B: Host> NodeCore<B> {
    /// Periodic work: agent timers, redeliveries, outbox, heartbeats, failure detection.
    pub(crate) fn on_timer(&mut self) {
        let now = Instant::now();
        while let Some(Reverse(t)) = self.timers.peek() {
            if t.due > now {
                break;
            }
            let Reverse(mut t) = self.timers.pop().expect("peeked");
            // A timer ends with the instance of the agent that armed it.
            let current = self.slot_of(t.agent).is_some_and(|i| {
                self.slots[i].restarts == t.incarnation && self.slots[i].behaviour.is_some()
            });
            if !current {
                continue;
            }
            let (agent, priority) = (t.agent, t.msg.priority());
            let msg = match t.every.take() {
                Some((period, mut repeat)) => {
                    let next = repeat.next(&t.msg);
                    let msg = std::mem::replace(&mut t.msg, next);
                    if let Some(due) = t.next_due(period, now) {
                        self.timer_order += 1;
                        t.due = due;
                        t.order = self.timer_order;
                        t.every = Some((period, repeat));
                        self.timers.push(Reverse(t));
                    }
                    msg
                }
                None => t.msg,
            };
            self.telemetry.timers_fired += 1;
            // From the node: a timer's message has no sender.
            let env = Envelope {
                to: Address::Agent(agent),
                ..letter(self.address, priority, Letter::User(msg))
            };
            self.flow.produce(1);
            self.route(env);
        }
        if !self.asks.is_empty() {
            self.expire_asks(now);
        }
        let (resend, gave_up) = self.pending.due(now);
        self.stats.redeliveries += resend.len() as u64;
        self.stats.undeliverable += gave_up.len() as u64;
        self.flow.produce(resend.len() as u64);
        for env in resend {
            self.route(env.map(Letter::User));
        }
        self.flush_outbox();
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
        let tree = self.shared.directory.tree.load();
        let children: Vec<_> = self
            .children()
            .into_iter()
            .map(|c| (c, tree.info(c).clone()))
            .collect();
        drop(tree);
        for c in self
            .children
            .check(self.address, children, now, timeout, true)
        {
            self.round_child_failed(c);
        }
        if now.duration_since(self.last_heartbeat) >= interval {
            self.last_heartbeat = now;
            self.publish_metrics();
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
    pub(super) fn note_alive(&mut self, from: Address) {
        let tree = self.shared.directory.tree.load();
        if let Some(k) = tree.node_of(from)
            && tree.info(k).parent == Some(self.key)
        {
            self.children.alive(k, Instant::now());
        }
    }

    /// A child failed: the round in progress does not wait for it.
    pub(super) fn round_child_failed(&mut self, c: NodeKey) {
        if let Some(r) = &mut self.round {
            r.give_up(c);
        }
        self.maybe_finish_round();
    }

    /// This node's own status (its subtree's is in its children's lines).
    pub(super) fn own_status(&self) -> ComponentStatus {
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
    pub(super) fn status_tree(&self, now: Instant) -> StatusNode {
        let tree = self.shared.directory.tree.load();
        let info = tree.info(self.key);
        let failed = self.failed_agents;
        let restarted = self.restarted_agents.len() as u64;
        let total = self.slots.len() as u64;
        let children = self
            .children()
            .into_iter()
            .map(|c| {
                self.children
                    .status_of(c, tree.info(c), now, Duration::ZERO)
            })
            .collect();
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
}
