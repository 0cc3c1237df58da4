//! What nodes and the orchestrator share to send letters: a per-destination FIFO outbox for
//! full mailboxes, and one way to count what cannot be delivered.
//!
//! A full mailbox never blocks a sender: the envelope waits in the outbox, behind any earlier
//! one for the same destination (order kept), and is retried on the next letter or timer
//! tick. A closed mailbox (a killed node) makes the envelope a dead letter: a user message
//! is counted as consumed (the flow accounting still balances) and as a dead letter, a
//! runtime letter as a dead protocol letter. Nothing is dropped uncounted.

use std::collections::{HashMap, VecDeque};

use qorch_protocol::{Envelope, TrySendError};

use crate::Host;
use crate::letter::{Letter, NodeStats};
use crate::shared::{Dest, Flow, Shared};

/// Where a sender counts the envelopes it could not deliver: a node into its own
/// [`NodeStats`], the orchestrator into the runtime's detached counts.
pub(crate) trait DeadLetters {
    /// Counts `user` user messages and `protocol` runtime letters.
    fn count_dead(&mut self, user: u64, protocol: u64);
}

impl DeadLetters for NodeStats {
    fn count_dead(&mut self, user: u64, protocol: u64) {
        self.dead_letters += user;
        self.dead_protocol_letters += protocol;
    }
}

/// Counts an envelope that cannot be delivered. A user message is consumed (reported, not
/// silently dropped), so that the flow accounting still balances.
pub(crate) fn dead_letter<B: Host>(letter: &Letter<B>, counts: &mut impl DeadLetters, flow: &Flow) {
    if letter.is_user() {
        counts.count_dead(1, 0);
        flow.consume(1);
    } else {
        counts.count_dead(0, 1);
    }
}

/// Envelopes waiting for room in full mailboxes, per destination, in the order they were
/// sent.
pub(crate) struct Outbox<B: Host> {
    queues: HashMap<Dest, VecDeque<Envelope<Letter<B>>>>,
}

impl<B: Host> Default for Outbox<B> {
    fn default() -> Self {
        Outbox {
            queues: HashMap::new(),
        }
    }
}

impl<B: Host> Outbox<B> {
    /// Nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Envelopes waiting, over every destination.
    pub(crate) fn len(&self) -> u64 {
        self.queues.values().map(|q| q.len() as u64).sum()
    }

    /// Sends `env` to `dest`: behind the envelopes already waiting for it, or into its
    /// mailbox now. Returns `true` if it had to wait (the mailbox was full); a closed mailbox
    /// makes it a dead letter.
    pub(crate) fn send(
        &mut self,
        shared: &Shared<B>,
        dest: Dest,
        env: Envelope<Letter<B>>,
        counts: &mut impl DeadLetters,
        flow: &Flow,
    ) -> bool {
        if let Some(q) = self.queues.get_mut(&dest)
            && !q.is_empty()
        {
            q.push_back(env);
            return false;
        }
        match shared.try_send(dest, env) {
            Ok(()) => false,
            Err(TrySendError::Full(env)) => {
                self.queues.entry(dest).or_default().push_back(env);
                true
            }
            Err(TrySendError::Closed(env)) => {
                dead_letter(&env.payload, counts, flow);
                false
            }
        }
    }

    /// Retries every destination in order, until its mailbox is full again; envelopes for a
    /// closed mailbox become dead letters.
    pub(crate) fn flush(&mut self, shared: &Shared<B>, counts: &mut impl DeadLetters, flow: &Flow) {
        let (mut user, mut protocol) = (0, 0);
        self.queues.retain(|&dest, q| {
            while let Some(env) = q.pop_front() {
                match shared.try_send(dest, env) {
                    Ok(()) => {}
                    Err(TrySendError::Full(env)) => {
                        q.push_front(env);
                        break;
                    }
                    Err(TrySendError::Closed(env)) => {
                        if env.payload.is_user() {
                            user += 1;
                        } else {
                            protocol += 1;
                        }
                    }
                }
            }
            !q.is_empty()
        });
        counts.count_dead(user, protocol);
        flow.consume(user);
    }

    /// Empties the outbox (its owner was killed); returns the user messages that were in it.
    pub(crate) fn lose(&mut self) -> u64 {
        self.queues
            .drain()
            .flat_map(|(_, q)| q)
            .filter(|e| e.payload.is_user())
            .count() as u64
    }
}
