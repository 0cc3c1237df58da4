//! The graceful stop: children first, the accepted messages still delivered, then the
//! agents' `stopped` hooks and the node's report.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use qorch_protocol::{Envelope, Priority};

use super::NodeCore;
use crate::agent::{Context, Effects, Sink};
use crate::letter::{Letter, NodeShutdown, ShutdownCollector};
use crate::monitor::{Terminated, TerminationReason, Watcher};
use crate::shared::Dest;
use crate::{Host, panic_guard};

impl<B: Host> NodeCore<B> {
    /// Stop asked: passes it down; the executor then closes the mailbox and drains it.
    pub(super) fn begin_stop(&mut self, collector: Arc<ShutdownCollector>) {
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
            Letter::User(_)
            | Letter::Reply(_)
            | Letter::Ack(_)
            | Letter::Tick(_)
            | Letter::Allocate(_) => {
                let _ = self.handle(env);
            }
            _ => {
                if let Some(s) = &mut self.stopping {
                    s.left_in_mailbox[lane] += 1;
                }
            }
        }
    }

    /// Runs the `stopped` hook of the agent in slot `i`, if it is running (its effects are
    /// not applied: it is leaving).
    pub(super) fn run_stopped(&mut self, i: usize) {
        let parent = self.address;
        let tick = self.tick;
        let slot = &mut self.slots[i];
        if let Some(b) = slot.behaviour.as_mut() {
            let mut effects = Effects::for_node(self.key.0);
            let mut ctx = Context {
                id: slot.id,
                parent,
                sender: None,
                grant: slot.grant.as_ref(),
                tick,
                random: &mut slot.random,
                incarnation: slot.restarts,
                sink: Sink::Typed(&mut effects),
                services: &self.shared.services,
                hosts: B::hosted(),
            };
            let _ = panic_guard::run(|| catch_unwind(AssertUnwindSafe(|| b.stopped(&mut ctx))));
        }
    }

    /// Ends the stop: stops the agents and files this node's report.
    pub(crate) fn finish_stop(&mut self) {
        for i in 0..self.slots.len() {
            self.run_stopped(i);
            // Requests the agent held are answered now, with the reason.
            let gone = self.slots[i].behaviour.take();
            crate::ask::dropping(crate::ask::Refusal::Shutdown, || drop(gone));
        }
        // The application's watches end with the runtime.
        for (agent, watchers) in std::mem::take(&mut self.watchers) {
            for w in watchers {
                if let Watcher::App(tx) = w {
                    let _ = tx.send(Terminated {
                        agent,
                        reason: TerminationReason::Shutdown,
                    });
                }
            }
        }
        let mut report = self.stopping.take().unwrap_or_default();
        for (lane, q) in self.local.iter().enumerate() {
            report.left_in_mailbox[lane] += q.len() as u64;
        }
        report.left_in_outbox = self.outbox.len();
        report.unacknowledged = self.pending.len() as u64;
        report.stats = self.stats;
        self.publish_metrics();
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
