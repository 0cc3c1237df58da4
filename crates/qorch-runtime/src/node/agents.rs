//! The hosted agents: delivering user messages to them, running their hooks under
//! supervision (a panic or an `Err` restarts the agent, or fails it past its budget), and
//! applying the effects of a successful hook (sends, reliable copies, timers).

use std::cmp::Reverse;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use qorch_protocol::{Address, AgentId, Envelope, EnvelopeId, Priority};

use super::NodeCore;
use crate::agent::{Context, Sink};
use crate::ask::{self, Refusal};
use crate::directory::IN_TRANSIT;
use crate::letter::{Letter, TraceEvent, letter};
use crate::monitor::{TerminationReason, Watcher};
use crate::reliable::copy_reliable;
use crate::shared::Dest;
use crate::timer::Timer;
use crate::{AgentResult, Host, panic_guard};

impl<B: Host> NodeCore<B> {
    /// The slot of agent `a` if this node hosts it.
    #[inline]
    pub(super) fn slot_of(&self, a: AgentId) -> Option<usize> {
        let (node, slot) = self.shared.directory.agents.get(a)?;
        let i = slot as usize;
        (node == self.key && slot != IN_TRANSIT && i < self.slots.len() && self.slots[i].id == a)
            .then_some(i)
    }

    /// A user message: delivered to an agent of this node, held for one on its way here,
    /// sent up for the application, or routed on.
    pub(super) fn on_user(&mut self, env: Envelope<B::Msg>) {
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

    /// Delivers a message to the agent in slot `i` (once, for a reliable one).
    pub(super) fn deliver(&mut self, i: usize, env: Envelope<B::Msg>) {
        self.flow.consume(1);
        let id = env.id();
        let Some(behaviour) = self.slots[i].behaviour.as_ref() else {
            self.stats.dead_letters += 1;
            tracing::debug!(agent = %self.slots[i].id, "dead letter: agent failed");
            ask::dropping(Refusal::NotRunning, || drop(env));
            return;
        };
        let kind = usize::from(self.slots[i].kind);
        if !behaviour.accepts(&env.payload) {
            self.stats.dead_letters += 1;
            tracing::warn!(
                agent = self.slots[i].id.0,
                behaviour = behaviour.behaviour(),
                message = B::message_type(&env.payload),
                "dead letter: the agent does not accept this message type"
            );
            return;
        }
        if env.ack_required && self.dedup.contains(&id) {
            self.stats.duplicates += 1;
            self.send_ack(env.from, id);
            return;
        }
        let (from, ack) = (env.from, env.ack_required);
        let lane = env.priority.lane();
        let agent = self.slots[i].id;
        self.delivered += 1;
        let every = u64::from(self.shared.config.message_span_sample);
        let _span = (every > 0 && self.delivered.is_multiple_of(every)).then(|| {
            tracing::trace_span!("handle", agent = agent.0, node = %self.address).entered()
        });
        let started = self.telemetry.sample_handling().then(Instant::now);
        let msg = env.payload;
        // The sender is an agent; messages from the application, timers and the runtime
        // have none.
        let sender = from.is_agent().then_some(from);
        let ok = self.run_hook(i, sender, |b, ctx| b.handle(msg, ctx));
        if ok {
            self.telemetry.handled(kind, lane, started);
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
    pub(super) fn run_hook(
        &mut self,
        i: usize,
        sender: Option<Address>,
        f: impl FnOnce(&mut B, &mut Context<'_, B::Msg>) -> AgentResult,
    ) -> bool {
        let parent = self.address;
        let tick = self.tick;
        let slot = &mut self.slots[i];
        let Some(behaviour) = slot.behaviour.as_mut() else {
            return false;
        };
        let mut ctx = Context {
            id: slot.id,
            parent,
            sender,
            grant: slot.grant.as_ref(),
            tick,
            random: &mut slot.random,
            incarnation: slot.restarts,
            sink: Sink::Typed(&mut self.effects),
            services: &self.shared.services,
            hosts: B::hosted(),
        };
        ask::enter_node_thread();
        let mark = ask::queued();
        let result = panic_guard::run(|| catch_unwind(AssertUnwindSafe(|| f(behaviour, &mut ctx))));
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.chain()),
            Err(payload) => Err(panic_guard::message(payload.as_ref())),
        };
        match outcome {
            Ok(()) => {
                self.apply_effects(i);
                true
            }
            Err(reason) => {
                self.effects.discard();
                ask::fail_since(mark);
                self.restart(i, &reason);
                false
            }
        }
    }

    /// After a failed hook: a fresh instance from the factory, within the behaviour's (or
    /// the runtime's) restart intensity; past it the agent is failed for good. Both are
    /// logged, at WARN and ERROR, with the agent, its behaviour and the reason.
    pub(super) fn restart(&mut self, i: usize, reason: &str) {
        self.stats.restarts += 1;
        let now = Instant::now();
        let slot = &mut self.slots[i];
        let intensity = (slot.behaviour.as_ref())
            .and_then(Host::restart_intensity)
            .unwrap_or(self.shared.config.restart);
        slot.restarts += 1;
        let id = slot.id;
        let recent = match intensity.within {
            None => slot.restarts,
            Some(period) => {
                let times = self.restart_times.entry(id).or_default();
                times.push_back(now);
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > period)
                {
                    times.pop_front();
                }
                times.len() as u32
            }
        };
        let behaviour = slot.behaviour.as_ref().map_or("?", Host::behaviour);
        let kind = usize::from(slot.kind);
        self.telemetry
            .restart(kind, recent > intensity.max_restarts);
        if recent > intensity.max_restarts {
            tracing::error!(
                agent = id.0,
                behaviour,
                node = %self.address,
                %reason,
                restarts = recent,
                within = ?intensity.within,
                "agent failed for good: restart intensity exceeded"
            );
            let gone = slot.behaviour.take();
            ask::dropping(Refusal::Failed, || drop(gone));
            self.failed_agents += 1;
            self.restarted_agents.remove(&id);
            self.restart_times.remove(&id);
            self.terminated(id, &TerminationReason::Failed(reason.to_owned()));
            return;
        }
        tracing::warn!(
            agent = id.0,
            behaviour,
            node = %self.address,
            %reason,
            restarts = slot.restarts,
            "agent failed: restarting it"
        );
        let fresh = (slot.factory)(id);
        let old = slot.behaviour.replace(fresh);
        ask::dropping(Refusal::Failed, || drop(old));
        self.restarted_agents.insert(id);
        // A failing `started` restarts (or fails) the agent again inside `run_hook`.
        self.run_hook(i, None, B::started);
    }

    /// What a successful hook asked for: sends (reliable ones kept until acknowledged), a
    /// stop, watches and timers. The effects sit in `self.effects` (the hook's context wrote them there); each list is
    /// taken out while it is applied and put back empty, so its capacity is reused.
    pub(super) fn apply_effects(&mut self, i: usize) {
        let from = Address::Agent(self.slots[i].id);
        let spawns = if self.effects.common.spawns.is_empty() {
            Vec::new()
        } else {
            self.reserve_spawns();
            std::mem::take(&mut self.effects.common.spawns)
        };
        if !self.effects.common.foreign.is_empty() {
            self.carry_foreign();
        }
        let mut sends = std::mem::take(&mut self.effects.typed.sends);
        self.flow.produce(sends.len() as u64);
        let kind = usize::from(self.slots[i].kind);
        let sample = u64::from(self.shared.config.affinity_sample);
        for out in sends.drain(..) {
            self.telemetry.sent(kind, out.priority.lane());
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
                correlation: None,
                deadline: None,
                ack_required: false,
                payload: out.msg,
            };
            if let Some(copy) = out.reliable {
                env.ack_required = true;
                let keep = copy_reliable(&env, copy);
                self.pending.insert(keep, copy, Instant::now());
            }
            self.route(env.map(Letter::User));
        }
        self.effects.typed.sends = sends;
        let (agent, incarnation) = (self.slots[i].id, self.slots[i].restarts);
        if !self.effects.typed.asks.is_empty() {
            self.telemetry
                .asks(kind, self.effects.typed.asks.len() as u64);
            self.apply_asks(agent, incarnation);
        }
        if std::mem::take(&mut self.effects.common.stop) {
            self.to_stop.push(agent);
        }
        if !self.effects.typed.watches.is_empty() {
            self.apply_watches(agent, incarnation);
        }
        if !self.effects.typed.timers.is_empty() || !self.effects.common.cancels.is_empty() {
            self.apply_timers(agent, incarnation);
        }
        if !spawns.is_empty() {
            self.place_spawns(spawns);
        }
    }

    /// The watches a hook placed: each goes to the watched agent's node.
    fn apply_watches(&mut self, agent: AgentId, incarnation: u32) {
        let from = Address::Agent(agent);
        let mut watches = std::mem::take(&mut self.effects.typed.watches);
        for (target, make) in watches.drain(..) {
            let watcher = Watcher::Agent {
                agent,
                incarnation,
                make,
            };
            let env = Envelope {
                to: Address::Agent(target),
                ..letter(from, Priority::High, Letter::Watch(watcher))
            };
            self.route(env);
        }
        self.effects.typed.watches = watches;
    }

    /// The timers a hook armed and cancelled.
    fn apply_timers(&mut self, agent: AgentId, incarnation: u32) {
        for id in self.effects.common.cancels.drain(..) {
            self.timers.retain(|Reverse(t)| t.id != id);
        }
        let now = Instant::now();
        let mut timers = std::mem::take(&mut self.effects.typed.timers);
        self.telemetry.timers_armed += timers.len() as u64;
        for spec in timers.drain(..) {
            // A delay too large to represent never fires.
            let Some(due) = now.checked_add(spec.delay) else {
                continue;
            };
            self.timer_order += 1;
            self.timers.push(Reverse(Timer {
                due,
                order: self.timer_order,
                agent,
                incarnation,
                id: spec.id,
                every: spec.every,
                msg: spec.msg,
            }));
        }
        self.effects.typed.timers = timers;
    }

    /// Acknowledges a reliable message to its sender.
    pub(super) fn send_ack(&mut self, to: Address, id: EnvelopeId) {
        let ack = letter(self.address, Priority::Control, Letter::Ack(id));
        self.route(Envelope { to, ..ack });
    }
}
