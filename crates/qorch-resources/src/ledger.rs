//! The allocation ledger: every change to the resource state, in order, with its context.
//!
//! A [`Ledger`] is append-only. Each [`LedgerEntry`] carries a sequence number, the round and
//! time it happened in (both supplied by the caller, so that simulations stay deterministic),
//! the [`Reason`], and, for changes made by the optimizer, the round's objective and the
//! solver's name. Entries can be queried by agent, by pool, by round and by time; the ledger
//! serializes with serde, and [`ResourceManager::replay`](crate::ResourceManager::replay)
//! rebuilds the exact state (pools, requests, holdings, and the ledger itself) from it.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::{AgentId, Pool, PoolId, ResourceRequest, ResourceVector};

/// Why a change happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Set-up: kinds and pools registered, capacities changed by an operator.
    #[default]
    Configuration,
    /// An agent asked for resources (or changed its request).
    Request,
    /// The optimizer's rebalancing round.
    Rebalance,
    /// An agent gave resources back.
    Release,
    /// A component failed and its resources were reclaimed.
    Failure,
    /// Anything else, with a short description.
    Other(String),
}

/// The context of a change: when, why, and (for optimizer changes) with what result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChangeContext {
    /// The rebalancing round the change belongs to.
    pub round: u64,
    /// The caller's clock, in milliseconds (simulation time or wall-clock time).
    pub at_ms: u64,
    /// Why.
    pub reason: Reason,
    /// The objective of the round's allocation, for optimizer changes.
    pub objective: Option<f64>,
    /// The solver that produced the allocation, for optimizer changes.
    pub solver: Option<String>,
}

impl ChangeContext {
    /// A context with a round, a time and a reason.
    pub fn new(round: u64, at_ms: u64, reason: Reason) -> Self {
        ChangeContext {
            round,
            at_ms,
            reason,
            objective: None,
            solver: None,
        }
    }

    /// Adds the objective and the solver of an optimizer round.
    #[must_use]
    pub fn with_solution(mut self, objective: f64, solver: impl Into<String>) -> Self {
        self.objective = Some(objective);
        self.solver = Some(solver.into());
        self
    }
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerEvent {
    /// A resource kind was registered.
    KindAdded {
        /// Its name.
        name: String,
    },
    /// A pool was registered.
    PoolAdded {
        /// The pool, with its capacity.
        pool: Pool,
    },
    /// A pool's capacity changed.
    CapacityChanged {
        /// The pool.
        pool: PoolId,
        /// The new capacity.
        capacity: ResourceVector,
    },
    /// An agent filed (or replaced) its request.
    Requested {
        /// The agent.
        agent: AgentId,
        /// The request.
        request: ResourceRequest,
    },
    /// An agent withdrew its request.
    Withdrawn {
        /// The agent.
        agent: AgentId,
    },
    /// Resources were granted.
    Granted {
        /// The agent.
        agent: AgentId,
        /// The pool.
        pool: PoolId,
        /// The amount added to the agent's holding on that pool.
        amount: ResourceVector,
    },
    /// Resources were released.
    Released {
        /// The agent.
        agent: AgentId,
        /// The pool.
        pool: PoolId,
        /// The amount taken from the agent's holding on that pool.
        amount: ResourceVector,
    },
}

impl LedgerEvent {
    /// The agent the event concerns, if any.
    pub fn agent(&self) -> Option<AgentId> {
        match self {
            LedgerEvent::Requested { agent, .. }
            | LedgerEvent::Withdrawn { agent }
            | LedgerEvent::Granted { agent, .. }
            | LedgerEvent::Released { agent, .. } => Some(*agent),
            _ => None,
        }
    }

    /// The pool the event concerns, if any.
    pub fn pool(&self) -> Option<PoolId> {
        match self {
            LedgerEvent::PoolAdded { pool } => Some(pool.id),
            LedgerEvent::CapacityChanged { pool, .. }
            | LedgerEvent::Granted { pool, .. }
            | LedgerEvent::Released { pool, .. } => Some(*pool),
            _ => None,
        }
    }
}

/// One change, with its place in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the ledger (0, 1, 2, ...).
    pub seq: u64,
    /// When and why.
    pub context: ChangeContext,
    /// What.
    pub event: LedgerEvent,
}

/// The serialized form: just the entries (the indexes are rebuilt on load).
#[derive(Serialize, Deserialize)]
struct LedgerData {
    entries: Vec<LedgerEntry>,
}

/// The append-only history of a [`ResourceManager`](crate::ResourceManager).
///
/// Queries by agent and by pool use indexes kept beside the entries (not serialized; rebuilt
/// when a ledger is deserialized); queries by round and time use binary search, since rounds
/// and times never decrease (the manager refuses a change dated before the last one).
///
/// # Examples
///
/// ```
/// use qorch_resources::{
///     AgentId, ChangeContext, Ledger, PoolKind, Reason, ResourceKinds, ResourceManager,
///     ResourceVector,
/// };
///
/// let mut m = ResourceManager::new(&ResourceKinds::from_names(["cpu"]));
/// let setup = ChangeContext::new(0, 0, Reason::Configuration);
/// let p = m.add_pool("node-a", PoolKind::Node, &ResourceVector::from(vec![8.0]), &setup).unwrap();
/// let round = ChangeContext::new(1, 1_000, Reason::Rebalance).with_solution(4.0, "tabu");
/// m.grant(AgentId(1), p, &ResourceVector::from(vec![4.0]), &round).unwrap();
///
/// let json = serde_json::to_string(m.ledger()).unwrap();
/// let ledger: Ledger = serde_json::from_str(&json).unwrap();
/// assert_eq!(ledger.for_agent(AgentId(1)).count(), 1);
/// assert_eq!(ResourceManager::replay(&ledger).unwrap(), m);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "LedgerData", into = "LedgerData")]
pub struct Ledger {
    entries: Vec<LedgerEntry>,
    by_agent: BTreeMap<AgentId, Vec<usize>>,
    by_pool: BTreeMap<PoolId, Vec<usize>>,
}

impl From<LedgerData> for Ledger {
    fn from(data: LedgerData) -> Self {
        let mut l = Ledger::default();
        for e in data.entries {
            l.push_entry(e);
        }
        l
    }
}

impl From<Ledger> for LedgerData {
    fn from(l: Ledger) -> Self {
        LedgerData { entries: l.entries }
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Appends an event (the manager calls this after applying it).
    pub(crate) fn record(&mut self, context: &ChangeContext, event: LedgerEvent) {
        let seq = self.entries.len() as u64;
        self.push_entry(LedgerEntry {
            seq,
            context: context.clone(),
            event,
        });
    }

    fn push_entry(&mut self, e: LedgerEntry) {
        let i = self.entries.len();
        if let Some(a) = e.event.agent() {
            self.by_agent.entry(a).or_default().push(i);
        }
        if let Some(p) = e.event.pool() {
            self.by_pool.entry(p).or_default().push(i);
        }
        self.entries.push(e);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the ledger is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// The last entry.
    pub fn last(&self) -> Option<&LedgerEntry> {
        self.entries.last()
    }

    /// The entries that concern `agent`, oldest first.
    pub fn for_agent(&self, agent: AgentId) -> impl Iterator<Item = &LedgerEntry> {
        self.indexed(self.by_agent.get(&agent))
    }

    /// The entries that concern `pool`, oldest first.
    pub fn for_pool(&self, pool: PoolId) -> impl Iterator<Item = &LedgerEntry> {
        self.indexed(self.by_pool.get(&pool))
    }

    fn indexed<'a>(&'a self, idx: Option<&'a Vec<usize>>) -> impl Iterator<Item = &'a LedgerEntry> {
        idx.into_iter().flatten().map(|&i| &self.entries[i])
    }

    /// The entries of the rounds in `rounds`, oldest first.
    pub fn in_rounds(&self, rounds: RangeInclusive<u64>) -> &[LedgerEntry] {
        let lo = self
            .entries
            .partition_point(|e| e.context.round < *rounds.start());
        let hi = self
            .entries
            .partition_point(|e| e.context.round <= *rounds.end());
        &self.entries[lo..hi.max(lo)]
    }

    /// The entries dated within `from_ms..=to_ms`, oldest first.
    pub fn between(&self, from_ms: u64, to_ms: u64) -> &[LedgerEntry] {
        let lo = self.entries.partition_point(|e| e.context.at_ms < from_ms);
        let hi = self.entries.partition_point(|e| e.context.at_ms <= to_ms);
        &self.entries[lo..hi.max(lo)]
    }

    /// The entries up to and including round `round` (a prefix: replaying it gives the state
    /// at the end of that round).
    pub fn through_round(&self, round: u64) -> &[LedgerEntry] {
        let hi = self.entries.partition_point(|e| e.context.round <= round);
        &self.entries[..hi]
    }
}
