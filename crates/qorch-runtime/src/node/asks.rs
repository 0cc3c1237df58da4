//! Asks at a node: the asks its agents made (waiting for a reply, a refusal or their
//! deadline), the replies its agents sent (routed to the askers), and agents spawned from
//! hooks.

use std::cmp::Reverse;
use std::time::Instant;

use qorch_protocol::{Address, AgentId, Envelope, Priority};

use super::NodeCore;
use crate::Host;
use crate::agent::Outgoing;
use crate::any::cast;
use crate::ask::{self, AskError, Completion, Refusal};
use crate::directory::IN_TRANSIT;
use crate::letter::{Letter, Reply, letter};

/// An ask waiting for its outcome, kept by the asker's node (it moves with the asker).
pub(crate) struct PendingAsk<M> {
    pub(crate) asker: AgentId,
    /// The asker's instance: an ask ends with it, like a timer.
    pub(crate) incarnation: u32,
    pub(crate) target: AgentId,
    pub(crate) deadline: Option<Instant>,
    pub(crate) timeout: std::time::Duration,
    pub(crate) done: Completion<M>,
}

impl<B: Host> NodeCore<B> {
    /// The asks a hook made: each waits here for its outcome.
    pub(super) fn apply_asks(&mut self, agent: AgentId, incarnation: u32) {
        let now = Instant::now();
        let mut asks = std::mem::take(&mut self.effects.typed.asks);
        for a in asks.drain(..) {
            let deadline = now.checked_add(a.timeout);
            if let Some(d) = deadline {
                self.ask_deadlines.push(Reverse((d, a.correlation)));
            }
            self.asks.insert(
                a.correlation,
                PendingAsk {
                    asker: agent,
                    incarnation,
                    target: a.target,
                    deadline,
                    timeout: a.timeout,
                    done: a.done,
                },
            );
        }
        self.effects.typed.asks = asks;
        // Deadlines of asks that ended stay in the heap until due; rebuild it when they
        // outnumber the live ones, so that a long timeout under many asks costs no memory.
        if self.ask_deadlines.len() > 4 * self.asks.len() + 64 {
            self.ask_deadlines = self
                .asks
                .iter()
                .filter_map(|(c, p)| p.deadline.map(|d| Reverse((d, *c))))
                .collect();
        }
    }

    /// Messages of another type than this runtime's: carried if it can (a runtime of
    /// several behaviours carries any), refused as dead letters otherwise.
    pub(super) fn carry_foreign(&mut self) {
        let mut foreign = std::mem::take(&mut self.effects.common.foreign);
        for out in foreign.drain(..) {
            match B::carry_any(out.msg) {
                Ok(msg) => self.effects.typed.sends.push(Outgoing {
                    to: out.to,
                    priority: out.priority,
                    msg,
                    reliable: out.reliable.and_then(|c| cast(c).ok()),
                }),
                Err(msg) => {
                    self.stats.dead_letters += 1;
                    tracing::warn!(
                        to = %out.to,
                        message = msg.type_name(),
                        node = %self.address,
                        "dead letter: this runtime hosts one behaviour, which does not accept this message type"
                    );
                }
            }
        }
        self.effects.common.foreign = foreign;
    }

    /// Marks the agents a hook spawned as on their way (so that messages sent to them now
    /// wait for them); [`place_spawns`](Self::place_spawns) creates them after the hook's
    /// other effects.
    pub(super) fn reserve_spawns(&mut self) {
        let tree = self.shared.directory.tree.load();
        for s in &self.effects.common.spawns {
            if let Some(node) = tree.node_of(s.host) {
                self.shared
                    .directory
                    .agents
                    .set(s.id, Some((node, IN_TRANSIT)));
            }
        }
    }

    /// Creates the agents a hook spawned: here, or at their node.
    pub(super) fn place_spawns(&mut self, spawns: Vec<crate::spawn::SpawnSpec>) {
        for spec in spawns {
            let (id, host, behaviour) = (spec.id, spec.host, spec.behaviour);
            let Ok(factory) = B::adopt(spec) else {
                tracing::error!(
                    agent = id.0,
                    behaviour,
                    "spawn refused: this runtime hosts another behaviour"
                );
                self.shared.directory.agents.set(id, None);
                continue;
            };
            if host == self.address {
                self.on_spawn(&[id], &factory);
            } else {
                let env = Envelope {
                    to: host,
                    ..letter(
                        self.address,
                        Priority::Control,
                        Letter::Spawn(vec![id], factory),
                    )
                };
                self.route(env);
            }
        }
    }

    /// Sends the replies queued on this thread (sent, or requests dropped) to their askers.
    /// A reply goes straight to the asker's node (one hop, like a reply port), not along
    /// the tree: it is the runtime's letter, ordered with nothing but its ask.
    pub(super) fn route_replies(&mut self) {
        let mut replies = std::mem::take(&mut self.replies);
        ask::take_replies(&mut replies);
        for r in replies.drain(..) {
            self.flow.produce(1);
            let env = Envelope {
                to: Address::Agent(r.asker),
                ..letter(
                    self.address,
                    Priority::High,
                    Letter::Reply(Box::new(Reply {
                        correlation: r.correlation,
                        outcome: r.outcome,
                    })),
                )
            };
            match self.shared.directory.agents.node(r.asker) {
                Some(node) => self.send_dest(crate::shared::Dest::Node(node), env),
                // Elsewhere (another process) or gone: the tree knows.
                None => self.route(env),
            }
        }
        self.replies = replies;
    }

    /// A reply (or refusal) for an agent: completes its ask if the agent is here.
    pub(super) fn on_reply(&mut self, header: Envelope<()>, reply: Box<Reply>) {
        let Address::Agent(asker) = header.to else {
            self.flow.consume(1);
            return;
        };
        if self.slot_of(asker).is_none() {
            if !self.pass_on(asker, header, Letter::Reply(reply)) {
                // The asker is gone: nobody waits for it.
                self.flow.consume(1);
            }
            return;
        }
        self.flow.consume(1);
        let Reply {
            correlation,
            outcome,
        } = *reply;
        let Some(p) = self.asks.remove(&correlation) else {
            tracing::debug!(agent = asker.0, "late reply: the ask had ended");
            return;
        };
        let outcome = outcome.map_err(|why| why.error(p.target));
        self.complete(p, outcome, true);
    }

    /// Hands an ask's outcome to its asker as one of its messages, if the instance that
    /// asked is still running: at once when it comes with the reply letter being handled
    /// (`now`), through the local queue otherwise (a timeout, found by the timer).
    fn complete(
        &mut self,
        p: PendingAsk<B::Msg>,
        outcome: Result<Box<dyn std::any::Any + Send>, AskError>,
        now: bool,
    ) {
        let Some(i) = self.slot_of(p.asker).filter(|&i| {
            self.slots[i].restarts == p.incarnation && self.slots[i].behaviour.is_some()
        }) else {
            return;
        };
        self.flow.produce(1);
        let env = Envelope {
            from: Address::Agent(p.target),
            to: Address::Agent(p.asker),
            priority: Priority::High,
            seq: 0,
            correlation: None,
            deadline: None,
            ack_required: false,
            payload: (p.done)(outcome),
        };
        if now {
            self.deliver(i, env);
        } else {
            self.route(env.map(Letter::User));
        }
    }

    /// Asks past their deadline end with [`AskError::Timeout`].
    pub(super) fn expire_asks(&mut self, now: Instant) {
        while let Some(Reverse((due, correlation))) = self.ask_deadlines.peek().copied() {
            if due > now {
                break;
            }
            self.ask_deadlines.pop();
            if self
                .asks
                .get(&correlation)
                .is_some_and(|p| p.deadline == Some(due))
                && let Some(p) = self.asks.remove(&correlation)
            {
                self.telemetry.ask_timeouts += 1;
                let e = AskError::Timeout {
                    agent: p.target,
                    after: p.timeout,
                };
                self.complete(p, Err(e), false);
            }
        }
        if self.asks.is_empty() {
            self.ask_deadlines.clear();
        }
    }

    /// The earliest ask deadline, for the node's timer.
    pub(super) fn next_ask_deadline(&self) -> Option<Instant> {
        self.ask_deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Drops a letter that cannot be delivered to `to`, telling any asker why.
    pub(super) fn drop_refused(&self, to: Address, letter: Letter<B>) {
        let why = match to {
            Address::Agent(a) => self.shared.services.refusal(a),
            _ => Refusal::Unknown,
        };
        ask::dropping(why, || drop(letter));
    }
}
