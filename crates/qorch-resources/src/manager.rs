//! The [`ResourceManager`]: pools, requests, grants and releases, every change in the ledger.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::{ChangeContext, Ledger, LedgerEvent};
use crate::{
    AgentId, Allocation, Grant, KindId, Pool, PoolId, PoolKind, RequestError, ResourceKinds,
    ResourceRequest, ResourceVector,
};

/// Relative slack allowed when comparing amounts against capacities and holdings (absorbs
/// floating-point rounding of sums, never a real excess).
const TOLERANCE: f64 = 1e-9;

/// Why a resource operation was refused. Nothing changes when an operation fails.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    /// The pool id was never registered.
    #[error("unknown pool {0}: register it with add_pool first")]
    UnknownPool(PoolId),
    /// A vector has more amounts than there are resource kinds.
    #[error("a vector of {len} amounts does not fit the {kinds} registered resource kinds")]
    UnknownKind {
        /// Amounts given.
        len: usize,
        /// Kinds registered.
        kinds: usize,
    },
    /// An amount is negative, NaN or infinite.
    #[error("amounts must be finite and non-negative, got {0:?}")]
    InvalidAmount(Vec<f64>),
    /// The request itself is malformed.
    #[error("invalid request of {agent}: {source}")]
    InvalidRequest {
        /// The agent.
        agent: AgentId,
        /// What is wrong with it.
        source: RequestError,
    },
    /// The request's minimum fits no pool it may use, even an empty one.
    #[error(
        "request of {agent} is larger than any pool it may use: its minimum {min:?} fits no pool's capacity (add a larger pool or lower the minimum)"
    )]
    RequestTooLarge {
        /// The agent.
        agent: AgentId,
        /// The minimum asked for.
        min: Vec<f64>,
    },
    /// A grant larger than what is free on the pool.
    #[error("{pool} has {free} of {kind} free, {requested} was asked for")]
    InsufficientCapacity {
        /// The pool.
        pool: PoolId,
        /// The kind that does not fit.
        kind: String,
        /// Amount asked for.
        requested: f64,
        /// Amount free.
        free: f64,
    },
    /// A release of more than the agent holds.
    #[error("{agent} holds {held} of {kind} on {pool} and cannot release {released}")]
    OverRelease {
        /// The agent.
        agent: AgentId,
        /// The pool.
        pool: PoolId,
        /// The kind.
        kind: String,
        /// Amount held.
        held: f64,
        /// Amount to release.
        released: f64,
    },
    /// A new capacity below what is already granted.
    #[error("{pool} has {used} of {kind} granted; its capacity cannot drop to {capacity}")]
    CapacityBelowUse {
        /// The pool.
        pool: PoolId,
        /// The kind.
        kind: String,
        /// The new capacity.
        capacity: f64,
        /// Amount granted.
        used: f64,
    },
    /// A change dated before the last one (rounds and times must not decrease).
    #[error(
        "change at round {round}, {at_ms} ms comes before the last one (round {last_round}, {last_at_ms} ms); rounds and times must not decrease"
    )]
    OutOfOrder {
        /// The change's round.
        round: u64,
        /// The change's time.
        at_ms: u64,
        /// The last round.
        last_round: u64,
        /// The last time.
        last_at_ms: u64,
    },
    /// Replaying a ledger failed at an entry.
    #[error("ledger entry {seq} cannot be replayed: {source}")]
    Replay {
        /// The entry.
        seq: u64,
        /// Why.
        source: Box<ResourceError>,
    },
}

/// The resource domain's state: kinds, pools, pending requests and holdings, with an
/// [`Ledger`] of every change.
///
/// Pools are numbered in registration order (`PoolId(0)`, `PoolId(1)`, ...). An agent may
/// hold resources on several pools (a node and a link, say); the optimizer's
/// [`Allocation`]s give each agent at most one grant, applied with
/// [`apply_allocation`](Self::apply_allocation). Every mutating method takes a
/// [`ChangeContext`] and records one ledger entry per change, so that
/// [`replay`](Self::replay) rebuilds the state exactly.
///
/// # Examples
///
/// ```
/// use qorch_resources::{
///     AgentId, ChangeContext, PoolFilter, PoolKind, Reason, ResourceError, ResourceKinds,
///     ResourceManager, ResourceRequest, ResourceVector,
/// };
///
/// let mut m = ResourceManager::new(&ResourceKinds::standard());
/// let setup = ChangeContext::new(0, 0, Reason::Configuration);
/// let cap = ResourceVector::from(vec![16.0, 64.0, 10.0]);
/// let node = m.add_pool("node-1", PoolKind::Node, &cap, &setup).unwrap();
///
/// let ctx = ChangeContext::new(1, 10, Reason::Request);
/// let want = ResourceVector::from(vec![4.0, 8.0, 1.0]);
/// m.request(AgentId(1), ResourceRequest::exact(want.clone()), &ctx).unwrap();
/// m.grant(AgentId(1), node, &want.clone(), &ctx).unwrap();
/// assert_eq!(m.free(node).unwrap().amounts(), &[12.0, 56.0, 9.0]);
///
/// // Releasing more than is held is refused, and nothing changes.
/// let err = m.release(AgentId(1), node, &want.scaled(2.0), &ctx).unwrap_err();
/// assert!(matches!(err, ResourceError::OverRelease { .. }));
/// assert_eq!(m.held(AgentId(1), node).unwrap(), &want);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceManager {
    kinds: ResourceKinds,
    pools: Vec<Pool>,
    used: Vec<ResourceVector>,
    holdings: BTreeMap<(AgentId, PoolId), ResourceVector>,
    requests: BTreeMap<AgentId, ResourceRequest>,
    ledger: Ledger,
}

impl ResourceManager {
    /// A manager with these kinds and no pools. The kinds are recorded in the ledger.
    pub fn new(kinds: &ResourceKinds) -> Self {
        let mut m = ResourceManager {
            kinds: ResourceKinds::from_names(Vec::<String>::new()),
            pools: Vec::new(),
            used: Vec::new(),
            holdings: BTreeMap::new(),
            requests: BTreeMap::new(),
            ledger: Ledger::new(),
        };
        let ctx = ChangeContext::default();
        for (_, name) in kinds.iter() {
            // The default context is round 0 at time 0: never out of order on an empty ledger.
            let _ = m.add_kind(name, &ctx);
        }
        m
    }

    /// Rebuilds a manager from a ledger by applying its entries in order. The result equals
    /// the manager that wrote the ledger (state and ledger).
    ///
    /// # Errors
    ///
    /// [`ResourceError::Replay`] naming the first entry that cannot be applied (a ledger that
    /// was edited or truncated in the middle).
    pub fn replay(ledger: &Ledger) -> Result<ResourceManager, ResourceError> {
        Self::replay_entries(ledger.entries())
    }

    /// Rebuilds the state after a prefix of a ledger's entries (for example
    /// [`Ledger::through_round`]).
    ///
    /// # Errors
    ///
    /// As [`replay`](Self::replay).
    pub fn replay_entries(
        entries: &[crate::LedgerEntry],
    ) -> Result<ResourceManager, ResourceError> {
        let mut m = ResourceManager {
            kinds: ResourceKinds::from_names(Vec::<String>::new()),
            pools: Vec::new(),
            used: Vec::new(),
            holdings: BTreeMap::new(),
            requests: BTreeMap::new(),
            ledger: Ledger::new(),
        };
        for e in entries {
            let ctx = &e.context;
            let r = match &e.event {
                LedgerEvent::KindAdded { name } => m.add_kind(name, ctx).map(drop),
                LedgerEvent::PoolAdded { pool } => {
                    if pool.id == PoolId(m.pools.len() as u32) {
                        m.add_pool(pool.name.clone(), pool.kind, &pool.capacity, ctx)
                            .map(drop)
                    } else {
                        Err(ResourceError::UnknownPool(pool.id))
                    }
                }
                LedgerEvent::CapacityChanged { pool, capacity } => {
                    m.set_capacity(*pool, capacity, ctx)
                }
                LedgerEvent::Requested { agent, request } => {
                    m.request(*agent, request.clone(), ctx)
                }
                LedgerEvent::Withdrawn { agent } => m.withdraw(*agent, ctx).map(drop),
                LedgerEvent::Granted {
                    agent,
                    pool,
                    amount,
                } => m.grant(*agent, *pool, amount, ctx),
                LedgerEvent::Released {
                    agent,
                    pool,
                    amount,
                } => m.release(*agent, *pool, amount, ctx),
            };
            r.map_err(|source| ResourceError::Replay {
                seq: e.seq,
                source: Box::new(source),
            })?;
        }
        Ok(m)
    }

    /// The resource kinds.
    pub fn kinds(&self) -> &ResourceKinds {
        &self.kinds
    }

    /// The pools, by id.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// A pool.
    pub fn pool(&self, pool: PoolId) -> Option<&Pool> {
        self.pools.get(pool.index())
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The pending requests, by agent.
    pub fn requests(&self) -> &BTreeMap<AgentId, ResourceRequest> {
        &self.requests
    }

    /// What `agent` holds on `pool`.
    pub fn held(&self, agent: AgentId, pool: PoolId) -> Option<&ResourceVector> {
        self.holdings.get(&(agent, pool))
    }

    /// Everything `agent` holds, by pool.
    pub fn holdings_of(&self, agent: AgentId) -> impl Iterator<Item = (PoolId, &ResourceVector)> {
        self.holdings
            .range((agent, PoolId(0))..=(agent, PoolId(u32::MAX)))
            .map(|((_, p), v)| (*p, v))
    }

    /// Amounts granted on a pool.
    pub fn used(&self, pool: PoolId) -> Option<&ResourceVector> {
        self.used.get(pool.index())
    }

    /// Amounts still free on a pool.
    pub fn free(&self, pool: PoolId) -> Option<ResourceVector> {
        let p = self.pools.get(pool.index())?;
        Some(p.capacity.saturating_sub(&self.used[pool.index()]))
    }

    /// The current holdings as an [`Allocation`], for agents holding on exactly one pool
    /// (agents holding on several pools are listed with their first pool's holding).
    pub fn allocation(&self) -> Allocation {
        let mut a = Allocation::new();
        for ((agent, pool), v) in &self.holdings {
            if a.get(*agent).is_none() {
                a.insert(*agent, Grant::new(*pool, v.clone()));
            }
        }
        a
    }

    fn check_order(&self, ctx: &ChangeContext) -> Result<(), ResourceError> {
        if let Some(last) = self.ledger.last() {
            let l = &last.context;
            if ctx.round < l.round || ctx.at_ms < l.at_ms {
                return Err(ResourceError::OutOfOrder {
                    round: ctx.round,
                    at_ms: ctx.at_ms,
                    last_round: l.round,
                    last_at_ms: l.at_ms,
                });
            }
        }
        Ok(())
    }

    fn check_vector(&self, v: &ResourceVector) -> Result<(), ResourceError> {
        if v.len() > self.kinds.len() {
            return Err(ResourceError::UnknownKind {
                len: v.len(),
                kinds: self.kinds.len(),
            });
        }
        if !v.is_valid() {
            return Err(ResourceError::InvalidAmount(v.amounts().to_vec()));
        }
        Ok(())
    }

    fn check_pool(&self, pool: PoolId) -> Result<(), ResourceError> {
        if pool.index() < self.pools.len() {
            Ok(())
        } else {
            Err(ResourceError::UnknownPool(pool))
        }
    }

    fn kind_name(&self, k: usize) -> String {
        self.kinds
            .name(KindId(k as u16))
            .map_or_else(|| format!("kind {k}"), str::to_owned)
    }

    /// Registers a resource kind (existing pools get capacity 0 of it).
    ///
    /// # Errors
    ///
    /// [`ResourceError::OutOfOrder`].
    pub fn add_kind(&mut self, name: &str, ctx: &ChangeContext) -> Result<KindId, ResourceError> {
        self.check_order(ctx)?;
        let id = self.kinds.add(name);
        self.ledger.record(
            ctx,
            LedgerEvent::KindAdded {
                name: name.to_owned(),
            },
        );
        Ok(id)
    }

    /// Registers a pool with its capacity and returns its id.
    ///
    /// # Errors
    ///
    /// An invalid capacity (more amounts than kinds, negative or non-finite), or
    /// [`ResourceError::OutOfOrder`].
    pub fn add_pool(
        &mut self,
        name: impl Into<String>,
        kind: PoolKind,
        capacity: &ResourceVector,
        ctx: &ChangeContext,
    ) -> Result<PoolId, ResourceError> {
        self.check_order(ctx)?;
        self.check_vector(capacity)?;
        let id = PoolId(self.pools.len() as u32);
        let pool = Pool {
            id,
            name: name.into(),
            kind,
            capacity: capacity.resized(self.kinds.len()),
        };
        self.pools.push(pool.clone());
        self.used.push(ResourceVector::zeros(self.kinds.len()));
        self.ledger.record(ctx, LedgerEvent::PoolAdded { pool });
        Ok(id)
    }

    /// Changes a pool's capacity.
    ///
    /// # Errors
    ///
    /// Unknown pool, invalid capacity, a capacity below what is granted, or out of order.
    pub fn set_capacity(
        &mut self,
        pool: PoolId,
        capacity: &ResourceVector,
        ctx: &ChangeContext,
    ) -> Result<(), ResourceError> {
        self.check_order(ctx)?;
        self.check_pool(pool)?;
        self.check_vector(capacity)?;
        let capacity = capacity.resized(self.kinds.len());
        let used = &self.used[pool.index()];
        for (k, (&c, &u)) in capacity.amounts().iter().zip(used.amounts()).enumerate() {
            if u > c * (1.0 + TOLERANCE) + TOLERANCE {
                return Err(ResourceError::CapacityBelowUse {
                    pool,
                    kind: self.kind_name(k),
                    capacity: c,
                    used: u,
                });
            }
        }
        self.pools[pool.index()].capacity = capacity.clone();
        self.ledger
            .record(ctx, LedgerEvent::CapacityChanged { pool, capacity });
        Ok(())
    }

    /// Files (or replaces) an agent's request.
    ///
    /// # Errors
    ///
    /// A malformed request, a filter naming an unknown pool, more amounts than kinds, a
    /// minimum that fits no allowed pool ([`ResourceError::RequestTooLarge`]), or out of
    /// order.
    pub fn request(
        &mut self,
        agent: AgentId,
        request: ResourceRequest,
        ctx: &ChangeContext,
    ) -> Result<(), ResourceError> {
        self.check_order(ctx)?;
        request
            .validate()
            .map_err(|source| ResourceError::InvalidRequest { agent, source })?;
        self.check_vector(&request.desired)?;
        self.check_vector(&request.min)?;
        if let crate::PoolFilter::Only(ps) | crate::PoolFilter::Except(ps) = &request.pools {
            for p in ps {
                self.check_pool(*p)?;
            }
        }
        let fits = self
            .pools
            .iter()
            .any(|p| request.pools.allows(p.id) && request.min.fits_within(&p.capacity, TOLERANCE));
        if !fits {
            return Err(ResourceError::RequestTooLarge {
                agent,
                min: request.min.amounts().to_vec(),
            });
        }
        self.requests.insert(agent, request.clone());
        self.ledger
            .record(ctx, LedgerEvent::Requested { agent, request });
        Ok(())
    }

    /// Withdraws an agent's request; returns it (or `None` if there was none, in which case
    /// nothing is recorded).
    ///
    /// # Errors
    ///
    /// [`ResourceError::OutOfOrder`].
    pub fn withdraw(
        &mut self,
        agent: AgentId,
        ctx: &ChangeContext,
    ) -> Result<Option<ResourceRequest>, ResourceError> {
        self.check_order(ctx)?;
        let r = self.requests.remove(&agent);
        if r.is_some() {
            self.ledger.record(ctx, LedgerEvent::Withdrawn { agent });
        }
        Ok(r)
    }

    /// Adds `amount` on `pool` to what `agent` holds there.
    ///
    /// # Errors
    ///
    /// Unknown pool, invalid amount, not enough free capacity, or out of order.
    pub fn grant(
        &mut self,
        agent: AgentId,
        pool: PoolId,
        amount: &ResourceVector,
        ctx: &ChangeContext,
    ) -> Result<(), ResourceError> {
        self.check_order(ctx)?;
        self.check_pool(pool)?;
        self.check_vector(amount)?;
        let amount = amount.resized(self.kinds.len());
        let cap = &self.pools[pool.index()].capacity;
        let used = &self.used[pool.index()];
        for k in 0..amount.len() {
            let (a, c, u) = (amount.amounts()[k], cap.amounts()[k], used.amounts()[k]);
            if u + a > c * (1.0 + TOLERANCE) + TOLERANCE {
                return Err(ResourceError::InsufficientCapacity {
                    pool,
                    kind: self.kind_name(k),
                    requested: a,
                    free: (c - u).max(0.0),
                });
            }
        }
        self.used[pool.index()].add_assign(&amount);
        self.holdings
            .entry((agent, pool))
            .or_insert_with(|| ResourceVector::zeros(self.kinds.len()))
            .add_assign(&amount);
        self.ledger.record(
            ctx,
            LedgerEvent::Granted {
                agent,
                pool,
                amount,
            },
        );
        Ok(())
    }

    /// Takes `amount` on `pool` back from `agent`. A holding that reaches zero disappears.
    ///
    /// # Errors
    ///
    /// Unknown pool, invalid amount, more than is held ([`ResourceError::OverRelease`]), or
    /// out of order.
    pub fn release(
        &mut self,
        agent: AgentId,
        pool: PoolId,
        amount: &ResourceVector,
        ctx: &ChangeContext,
    ) -> Result<(), ResourceError> {
        self.check_order(ctx)?;
        self.check_pool(pool)?;
        self.check_vector(amount)?;
        let amount = amount.resized(self.kinds.len());
        let zero = ResourceVector::zeros(self.kinds.len());
        let held = self.holdings.get(&(agent, pool)).unwrap_or(&zero);
        for k in 0..amount.len() {
            let (a, h) = (amount.amounts()[k], held.amounts()[k]);
            if a > h * (1.0 + TOLERANCE) + TOLERANCE {
                return Err(ResourceError::OverRelease {
                    agent,
                    pool,
                    kind: self.kind_name(k),
                    held: h,
                    released: a,
                });
            }
        }
        let mut rest = held.clone();
        rest.sub_assign(&amount);
        let rest = ResourceVector::from_amounts(
            rest.amounts()
                .iter()
                .map(|&x| {
                    if x.abs() <= TOLERANCE {
                        0.0
                    } else {
                        x.max(0.0)
                    }
                })
                .collect(),
        );
        if rest.is_zero() {
            self.holdings.remove(&(agent, pool));
        } else {
            self.holdings.insert((agent, pool), rest);
        }
        let used = &mut self.used[pool.index()];
        used.sub_assign(&amount);
        *used = ResourceVector::from_amounts(used.amounts().iter().map(|x| x.max(0.0)).collect());
        self.ledger.record(
            ctx,
            LedgerEvent::Released {
                agent,
                pool,
                amount,
            },
        );
        Ok(())
    }

    /// Releases everything `agent` holds (one ledger entry per pool).
    ///
    /// # Errors
    ///
    /// [`ResourceError::OutOfOrder`].
    pub fn release_all(
        &mut self,
        agent: AgentId,
        ctx: &ChangeContext,
    ) -> Result<(), ResourceError> {
        self.check_order(ctx)?;
        let held: Vec<(PoolId, ResourceVector)> = self
            .holdings_of(agent)
            .map(|(p, v)| (p, v.clone()))
            .collect();
        for (p, v) in held {
            self.release(agent, p, &v, ctx)?;
        }
        Ok(())
    }

    /// Makes the holdings equal to `allocation`: agents absent from it lose what they hold,
    /// the others hold exactly their grant. Applies the releases first, then the grants,
    /// recording only the differences; checks the whole allocation first, so that a failure
    /// changes nothing.
    ///
    /// # Errors
    ///
    /// An unknown pool, an invalid amount, an allocation that exceeds a pool's capacity, or
    /// out of order.
    pub fn apply_allocation(
        &mut self,
        allocation: &Allocation,
        ctx: &ChangeContext,
    ) -> Result<(), ResourceError> {
        self.check_order(ctx)?;
        let kinds = self.kinds.len();
        for (_, g) in allocation.iter() {
            self.check_pool(g.pool)?;
            self.check_vector(&g.amount)?;
        }
        let loads = allocation.pool_loads(self.pools.len(), kinds);
        for (p, load) in loads.iter().enumerate() {
            let cap = &self.pools[p].capacity;
            for k in 0..kinds {
                let (l, c) = (load.amounts()[k], cap.amounts()[k]);
                if l > c * (1.0 + TOLERANCE) + TOLERANCE {
                    return Err(ResourceError::InsufficientCapacity {
                        pool: PoolId(p as u32),
                        kind: self.kind_name(k),
                        requested: l,
                        free: c,
                    });
                }
            }
        }
        // Releases: every holding above its target.
        let mut releases = Vec::new();
        for ((agent, pool), held) in &self.holdings {
            let target = match allocation.get(*agent) {
                Some(g) if g.pool == *pool => g.amount.resized(kinds),
                _ => ResourceVector::zeros(kinds),
            };
            let excess = held.saturating_sub(&target);
            if !excess.is_zero() {
                releases.push((*agent, *pool, excess));
            }
        }
        for (agent, pool, amount) in releases {
            self.release(agent, pool, &amount, ctx)?;
        }
        for (agent, g) in allocation.iter() {
            let zero = ResourceVector::zeros(kinds);
            let held = self.holdings.get(&(agent, g.pool)).unwrap_or(&zero);
            let missing = g.amount.resized(kinds).saturating_sub(held);
            if !missing.is_zero() {
                self.grant(agent, g.pool, &missing, ctx)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PoolFilter, Reason};

    fn v(x: &[f64]) -> ResourceVector {
        ResourceVector::from(x.to_vec())
    }

    fn setup() -> (ResourceManager, PoolId, PoolId) {
        let mut m = ResourceManager::new(&ResourceKinds::from_names(["cpu", "mem"]));
        let c = ChangeContext::new(0, 0, Reason::Configuration);
        let a = m
            .add_pool("a", PoolKind::Node, &v(&[4.0, 8.0]), &c)
            .unwrap();
        let b = m
            .add_pool("b", PoolKind::Node, &v(&[2.0, 2.0]), &c)
            .unwrap();
        (m, a, b)
    }

    #[test]
    fn errors_name_what_is_wrong_and_change_nothing() {
        let (mut m, a, _) = setup();
        let c = ChangeContext::new(1, 1, Reason::Request);
        let before = m.clone();
        assert_eq!(
            m.grant(AgentId(1), PoolId(9), &v(&[1.0]), &c),
            Err(ResourceError::UnknownPool(PoolId(9)))
        );
        assert!(matches!(
            m.grant(AgentId(1), a, &v(&[-1.0]), &c),
            Err(ResourceError::InvalidAmount(_))
        ));
        assert!(matches!(
            m.grant(AgentId(1), a, &v(&[f64::NAN]), &c),
            Err(ResourceError::InvalidAmount(_))
        ));
        assert!(matches!(
            m.grant(AgentId(1), a, &v(&[1.0, 1.0, 1.0]), &c),
            Err(ResourceError::UnknownKind { len: 3, kinds: 2 })
        ));
        let err = m.grant(AgentId(1), a, &v(&[5.0, 1.0]), &c).unwrap_err();
        assert!(err.to_string().contains("cpu"), "{err}");
        let big = ResourceRequest::exact(v(&[3.0, 9.0]));
        assert!(matches!(
            m.request(AgentId(1), big, &c),
            Err(ResourceError::RequestTooLarge { .. })
        ));
        let only_b =
            ResourceRequest::new(v(&[3.0]), v(&[3.0]), 1.0, PoolFilter::Only(vec![PoolId(1)]))
                .unwrap();
        assert!(matches!(
            m.request(AgentId(1), only_b, &c),
            Err(ResourceError::RequestTooLarge { .. })
        ));
        let unknown = ResourceRequest::new(
            v(&[1.0]),
            v(&[1.0]),
            1.0,
            PoolFilter::Except(vec![PoolId(7)]),
        )
        .unwrap();
        assert_eq!(
            m.request(AgentId(1), unknown, &c),
            Err(ResourceError::UnknownPool(PoolId(7)))
        );
        assert!(matches!(
            m.release(AgentId(1), a, &v(&[1.0]), &c),
            Err(ResourceError::OverRelease { .. })
        ));
        assert_eq!(m, before);
    }

    #[test]
    fn grants_releases_and_capacity() {
        let (mut m, a, b) = setup();
        let c = ChangeContext::new(1, 5, Reason::Rebalance);
        m.grant(AgentId(1), a, &v(&[2.0, 4.0]), &c).unwrap();
        m.grant(AgentId(1), b, &v(&[1.0]), &c).unwrap();
        assert_eq!(m.holdings_of(AgentId(1)).count(), 2);
        assert_eq!(m.free(a).unwrap(), v(&[2.0, 4.0]));
        assert!(matches!(
            m.set_capacity(a, &v(&[1.0, 8.0]), &c),
            Err(ResourceError::CapacityBelowUse { .. })
        ));
        m.set_capacity(a, &v(&[2.0, 8.0]), &c).unwrap();
        m.release(AgentId(1), a, &v(&[2.0, 4.0]), &c).unwrap();
        assert_eq!(m.held(AgentId(1), a), None);
        m.release_all(AgentId(1), &c).unwrap();
        assert_eq!(m.holdings_of(AgentId(1)).count(), 0);
        assert_eq!(m.used(b).unwrap(), &v(&[0.0, 0.0]));
        let early = ChangeContext::new(0, 100, Reason::Rebalance);
        assert!(matches!(
            m.grant(AgentId(1), a, &v(&[1.0]), &early),
            Err(ResourceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn apply_allocation_records_only_differences_and_is_atomic() {
        let (mut m, a, b) = setup();
        let c1 = ChangeContext::new(1, 1, Reason::Rebalance).with_solution(3.0, "tabu");
        let mut alloc = Allocation::new();
        alloc.insert(AgentId(1), Grant::new(a, v(&[2.0, 2.0])));
        alloc.insert(AgentId(2), Grant::new(b, v(&[1.0, 1.0])));
        m.apply_allocation(&alloc, &c1).unwrap();
        assert_eq!(m.allocation(), alloc);
        let n = m.ledger().len();
        // Same allocation again: no entries.
        m.apply_allocation(&alloc, &ChangeContext::new(2, 2, Reason::Rebalance))
            .unwrap();
        assert_eq!(m.ledger().len(), n);
        // Agent 2 moves to a, agent 1 shrinks: releases before grants.
        let mut next = Allocation::new();
        next.insert(AgentId(1), Grant::new(a, v(&[1.0, 2.0])));
        next.insert(AgentId(2), Grant::new(a, v(&[3.0, 1.0])));
        m.apply_allocation(&next, &ChangeContext::new(3, 3, Reason::Rebalance))
            .unwrap();
        assert_eq!(m.allocation(), next);
        // Over capacity: refused, nothing changes.
        let before = m.clone();
        let mut bad = next.clone();
        bad.insert(AgentId(3), Grant::new(a, v(&[1.0])));
        assert!(
            m.apply_allocation(&bad, &ChangeContext::new(4, 4, Reason::Rebalance))
                .is_err()
        );
        assert_eq!(m, before);
        assert_eq!(ResourceManager::replay(m.ledger()).unwrap(), m);
        // The state at the end of round 1.
        let r1 = ResourceManager::replay_entries(m.ledger().through_round(1)).unwrap();
        assert_eq!(r1.allocation(), alloc);
        assert_eq!(m.ledger().in_rounds(3..=3).len(), 3);
        assert!(m.ledger().for_pool(b).count() >= 3);
    }
}
