//! Agents' lifecycle at their node: stopping (by themselves or from outside), watches and the
//! [`Terminated`] notices they give. A stop asked in a hook takes effect after the letter
//! being handled (`reap_stopped`), so that no slot moves under a loop over the agents.

use qorch_protocol::{Address, AgentId, Envelope, Priority};

use super::NodeCore;
use crate::Host;
use crate::letter::{Letter, Notice};
use crate::monitor::{Terminated, TerminationReason, Watcher};

/// Where a letter for one agent goes from this node.
enum Target {
    /// Hosted here, in this slot.
    Here(usize),
    /// On its way here (spawn or move in flight): hold the letter.
    Arriving,
    /// Hosted by another node (or process): route it on.
    Elsewhere,
    /// Nowhere.
    Gone,
}

impl<B: Host> NodeCore<B> {
    fn target(&self, agent: AgentId) -> Target {
        if let Some(i) = self.slot_of(agent) {
            return Target::Here(i);
        }
        match self.shared.directory.agents.node(agent) {
            Some(k) if k == self.key => Target::Arriving,
            Some(_) => Target::Elsewhere,
            None if self.shared.remote.is_some() => Target::Elsewhere,
            None => Target::Gone,
        }
    }

    /// Holds or routes a letter for an agent not hosted here; `false` if it is nowhere.
    pub(super) fn pass_on(
        &mut self,
        agent: AgentId,
        header: Envelope<()>,
        letter: Letter<B>,
    ) -> bool {
        match self.target(agent) {
            Target::Arriving => {
                self.waiting
                    .entry(agent)
                    .or_default()
                    .push(header.map(|()| letter));
                true
            }
            Target::Elsewhere => {
                self.route(header.map(|()| letter));
                true
            }
            Target::Here(_) | Target::Gone => false,
        }
    }

    /// A watch of the agent the letter is addressed to.
    pub(super) fn on_watch(&mut self, header: Envelope<()>, watcher: Watcher<B::Msg>) {
        let Address::Agent(agent) = header.to else {
            return;
        };
        match self.target(agent) {
            Target::Here(i) if self.slots[i].behaviour.is_some() => {
                self.watchers.entry(agent).or_default().push(watcher);
            }
            Target::Here(_) | Target::Gone => {
                let reason = TerminationReason::NotRunning;
                self.notify(watcher, Terminated { agent, reason });
            }
            Target::Arriving | Target::Elsewhere => {
                self.pass_on(agent, header, Letter::Watch(watcher));
            }
        }
    }

    /// A stop of the agent the letter is addressed to.
    pub(super) fn on_stop_agent(&mut self, header: Envelope<()>) {
        let Address::Agent(agent) = header.to else {
            return;
        };
        if let Target::Here(_) = self.target(agent) {
            self.to_stop.push(agent);
        } else if !self.pass_on(agent, header, Letter::StopAgent) {
            self.stats.dead_protocol_letters += 1;
        }
    }

    /// A notice for the watcher the letter is addressed to.
    pub(super) fn on_notice(&mut self, header: Envelope<()>, n: Notice<B::Msg>) {
        let Address::Agent(watcher) = header.to else {
            return;
        };
        match self.target(watcher) {
            Target::Here(i) => {
                // The watch ended with the instance that placed it.
                if self.slots[i].restarts == n.incarnation && self.slots[i].behaviour.is_some() {
                    self.flow.produce(1);
                    self.deliver(i, header.map(|()| (n.make)(n.terminated)));
                }
            }
            Target::Arriving | Target::Elsewhere => {
                self.pass_on(watcher, header, Letter::Notice(Box::new(n)));
            }
            Target::Gone => {}
        }
    }

    /// Tells a watcher.
    pub(super) fn notify(&mut self, watcher: Watcher<B::Msg>, notice: Terminated) {
        match watcher {
            Watcher::App(tx) => {
                let _ = tx.send(notice);
            }
            Watcher::Agent {
                agent,
                incarnation,
                make,
            } => {
                let env = Envelope {
                    from: Address::Agent(notice.agent),
                    to: Address::Agent(agent),
                    priority: Priority::High,
                    seq: 0,
                    correlation: None,
                    deadline: None,
                    ack_required: false,
                    payload: Letter::Notice(Box::new(Notice {
                        incarnation,
                        terminated: notice,
                        make,
                    })),
                };
                self.route(env);
            }
        }
    }

    /// Tells everyone watching `agent` that it terminated.
    pub(super) fn terminated(&mut self, agent: AgentId, reason: &TerminationReason) {
        let freed = self.shared.services.registry.forget(agent);
        if !freed.is_empty() {
            tracing::debug!(agent = agent.0, names = ?freed, "registered names freed");
            if let Some(shared) = &self.shared.registry {
                shared.forget(agent, freed);
            }
        }
        for w in self.watchers.remove(&agent).unwrap_or_default() {
            let notice = Terminated {
                agent,
                reason: reason.clone(),
            };
            self.notify(w, notice);
        }
    }

    /// Stops the agents asked to stop while the last letter was handled: their `stopped`
    /// hooks run, their slots go (messages to them are dead letters from now on), and their
    /// watchers are told.
    pub(super) fn reap_stopped(&mut self) {
        while let Some(agent) = self.to_stop.pop() {
            let Some(i) = self.slot_of(agent) else {
                continue;
            };
            self.run_stopped(i);
            let last = self.slots.len() - 1;
            self.slots.swap(i, last);
            let gone = self.slots.pop();
            crate::ask::dropping(crate::ask::Refusal::NotRunning, || drop(gone));
            if i < last {
                let moved = self.slots[i].id;
                self.shared
                    .directory
                    .agents
                    .set(moved, Some((self.key, i as u32)));
            }
            self.shared.directory.agents.set(agent, None);
            self.restarted_agents.remove(&agent);
            self.restart_times.remove(&agent);
            tracing::debug!(agent = agent.0, node = %self.address, "agent stopped");
            self.terminated(agent, &TerminationReason::Stopped);
        }
    }
}
