//! Agents arriving (spawned, adopted from another node) and leaving (moved out), with
//! their state, grant and held messages.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::Arc;

use qorch_protocol::{AgentId, Priority};

use super::{NodeCore, Slot};
use crate::Host;
use crate::directory::{IN_TRANSIT, NodeKey};
use crate::letter::{Factory, Letter, Moved};
use crate::shared::Dest;

impl<B: Host> NodeCore<B> {
    /// Hosts an agent here, in the next slot.
    pub(super) fn add_slot(&mut self, mut slot: Slot<B>) -> usize {
        let i = self.slots.len();
        if let Some(b) = &slot.behaviour {
            slot.kind = u16::try_from(self.telemetry.behaviour(b.behaviour())).unwrap_or(0);
        }
        self.shared
            .directory
            .agents
            .set(slot.id, Some((self.key, i as u32)));
        self.slots.push(slot);
        i
    }

    /// Delivers what was held for an agent that has now arrived.
    pub(super) fn release_waiting(&mut self, id: AgentId) {
        if let Some(envs) = self.waiting.remove(&id) {
            for env in envs {
                let _ = self.handle(env);
            }
        }
    }

    /// New agents: built by the factory, started, then their held messages delivered.
    pub(super) fn on_spawn(&mut self, ids: &[AgentId], factory: &Factory<B>) {
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
                kind: 0,
            };
            let i = self.add_slot(slot);
            self.run_hook(i, None, B::started);
        }
        for &id in ids {
            self.release_waiting(id);
        }
    }

    /// Agents moving in, with their state.
    pub(super) fn on_adopt(&mut self, moved: Vec<Moved<B>>) {
        let ids: Vec<AgentId> = moved.iter().map(|m| m.id).collect();
        for m in moved {
            if !m.watchers.is_empty() {
                self.watchers.insert(m.id, m.watchers);
            }
            for (correlation, p) in m.asks {
                if let Some(d) = p.deadline {
                    self.ask_deadlines.push(Reverse((d, correlation)));
                }
                self.asks.insert(correlation, p);
            }
            for mut t in m.timers {
                self.timer_order += 1;
                t.order = self.timer_order;
                self.timers.push(Reverse(t));
            }
            self.add_slot(Slot {
                id: m.id,
                behaviour: Some(m.behaviour),
                factory: m.factory,
                grant: m.grant,
                restarts: m.restarts,
                seq: m.seq,
                random: m.random,
                kind: 0,
            });
        }
        for id in ids {
            self.release_waiting(id);
        }
    }

    /// Hands agents over to another node, with their state.
    pub(super) fn on_move_out(&mut self, ids: &[AgentId], to: NodeKey) {
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
        // Their timers go with them.
        let (mut going, staying): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_vec()
            .into_iter()
            .partition(|Reverse(t)| moved.iter().any(|s| s.id == t.agent));
        self.timers = staying.into();
        going.sort();
        // And their asks.
        let leaving: HashSet<AgentId> = moved.iter().map(|s| s.id).collect();
        let mut asks: Vec<_> = if self.asks.is_empty() {
            Vec::new()
        } else {
            self.asks
                .extract_if(|_, p| leaving.contains(&p.asker))
                .collect()
        };
        let moved: Vec<Moved<B>> = moved
            .into_iter()
            .map(|s| {
                let timers = going
                    .extract_if(.., |Reverse(t)| t.agent == s.id)
                    .map(|Reverse(t)| t)
                    .collect();
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
                    watchers: self.watchers.remove(&s.id).unwrap_or_default(),
                    timers,
                    asks: asks.extract_if(.., |(_, p)| p.asker == s.id).collect(),
                }
            })
            .collect();
        if !moved.is_empty() {
            self.send_letter(Dest::Node(to), Priority::Control, Letter::Adopt(moved));
        }
    }
}
