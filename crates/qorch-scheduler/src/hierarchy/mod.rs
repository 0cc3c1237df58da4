//! [`EnhancedQuboScheduler::schedule`]: level by level down the cluster tree.
//!
//! 1. **Shares.** At a node with several children (the top-level clusters at level 1), each
//!    child's agents are summarized as *blocks*: agents with the same current pool and pool
//!    filter, sorted by weight, grouped until a block is about `1 / blocks_per_pool` of a
//!    mean pool. Blocks are items of a flat problem over the node's capacity (value: the
//!    block's served value; unserved: minus the migration its anchored agents would pay;
//!    affinity: the summed weight of the agent pairs the two blocks split). Its solution gives
//!    each child a capacity share per pool; the capacity no block took is handed to the
//!    children in proportion to their shares.
//! 2. **Placement.** At a leaf (a node without children, or the agents directly in a node
//!    that also has children), agents are items of a flat problem over the leaf's share: a
//!    few candidate pools each (the current pool, the pools of affinity partners, and pools
//!    spread over the share), at the desired amount or at the minimum.
//! 3. Children of a node are solved in parallel on rayon's threads, each with a seed derived
//!    from the round's seed, its level and its id: the result does not depend on the thread
//!    count or on scheduling.
//! 4. **Reconciliation.** Capacity left anywhere is offered to agents still unserved
//!    (heaviest first), then agents granted less than they desired are topped up on their
//!    pool.
//! 5. **Polish** ([`crate::polish`]): a local search over the whole allocation, across the
//!    shares the levels drew, whose moves (serve, unserve, relocate, swap) are scored with
//!    the amounts that are optimal for who is on each pool. The levels above see an agent at
//!    two amounts only and never move it out of its cluster's share; on the synthetic
//!    rounds this pass lifts the efficiency from about 0.93 to about 0.98.
//!
//! The outcome's bound is a Lagrangian bound of the whole, unrestricted problem (every
//! allowed pool, both amounts; of the affinity costs only the floor that unserved agents
//! cause, half of each incident edge): valid for any allocation, so
//! `efficiency = objective / bound` measures the hierarchy's loss as well as the solver's.
//! It needs no placement, so it is computed on rayon's other threads while the polish runs.
//!
//! This file holds what the steps share (shares, groups, the hints the levels pass down, the
//! candidate pools of an item, the objective of a placement); the steps are in `round.rs`
//! (one round, start to outcome), `levels.rs` (the recursion down the tree), `shares.rs`,
//! `leaf.rs` and `reconcile.rs`; the bound is [`crate::global_bound`].

mod leaf;
mod levels;
mod reconcile;
mod round;
mod shares;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::outcome::{NodeId, SubSolve};
use crate::polish::Placement;
use crate::problem::Flat;

/// Capacity over a subset of the pools: dense pool indices and `pools * kinds` amounts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Share {
    pools: Vec<u32>,
    cap: Vec<f64>,
}

/// A group of agents solved together: a tree node (all its agents) or the agents directly in
/// a node that also has children.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Group {
    Node(usize),
    Direct(usize),
}

/// Per agent, where the level above put it: `(pool << 1) | full` (full: at the desired
/// amount), or `u64::MAX`. Written by a split for the agents of its groups only, before
/// those groups are solved, so parallel solves never touch the same entry.
pub(crate) type Hints = [AtomicU64];

pub(crate) fn hint(h: &Hints, a: usize) -> Option<(u32, bool)> {
    let x = h[a].load(Ordering::Relaxed);
    (x != u64::MAX).then_some(((x >> 1) as u32, x & 1 == 1))
}

pub(crate) fn set_hint(h: &Hints, a: usize, pool: u32, full: bool) {
    h[a].store(u64::from(pool) << 1 | u64::from(full), Ordering::Relaxed);
}

/// What a subtree's solve returns.
#[derive(Default)]
pub(crate) struct Solved {
    placements: Vec<(usize, Placement)>,
    records: Vec<SubSolve>,
}

/// Deadlines of the phases of a timed round.
#[derive(Clone, Copy)]
pub(crate) struct Deadlines {
    shares: Option<Instant>,
    leaves: Option<Instant>,
    polish: Option<Instant>,
}

pub(crate) fn node_key(id: NodeId) -> u64 {
    match id {
        NodeId::Root => 0,
        NodeId::Cluster(c) => 1 << 40 | u64::from(c.get()),
        NodeId::SubCluster(s) => 2 << 40 | u64::from(s.get()),
    }
}

/// The agents of a group.
pub(crate) fn agents_of(flat: &Flat, g: Group) -> &[usize] {
    match g {
        Group::Node(n) => &flat.nodes[n].all,
        Group::Direct(n) => &flat.nodes[n].agents,
    }
}

/// Up to `max` candidate pools (local indices) allowed by `allowed`: the `preferred` ones
/// first, then pools spread over the list by a stride from `hash`.
pub(crate) fn candidates(
    np: usize,
    allowed: impl Fn(usize) -> bool,
    preferred: impl Iterator<Item = usize>,
    hash: u64,
    max: usize,
) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(max);
    for q in preferred {
        if out.len() < max && !out.contains(&q) && allowed(q) {
            out.push(q);
        }
    }
    if np == 0 {
        return out;
    }
    let start = (hash % np as u64) as usize;
    let stride = (np / max.max(1)).max(1);
    let mut tried = 0;
    let mut q = start;
    while out.len() < max && tried < np {
        if !out.contains(&q) && allowed(q) {
            out.push(q);
        }
        tried += 1;
        q = (q + stride) % np;
        if tried % max.max(1) == 0 {
            q = (q + 1) % np;
        }
    }
    out
}

/// The value part, the migration cost and the communication cost of a placement.
pub(crate) fn breakdown(flat: &Flat, place: &[Placement]) -> (f64, f64, f64) {
    let mut value = 0.0;
    let mut migration = 0.0;
    for (a, p) in place.iter().enumerate() {
        let ag = &flat.agents[a];
        if let Some((_, amount)) = p {
            value += ag.weight * flat.size(amount);
        }
        let pool = p.as_ref().map(|x| x.0);
        if ag.current.is_some() && ag.current != pool {
            migration += flat.migration * flat.size(&ag.desired);
        }
    }
    let mut communication = 0.0;
    for (a, edges) in flat.adj.iter().enumerate() {
        let pa = place[a].as_ref().map(|x| x.0);
        for &(b, w) in edges {
            let b = b as usize;
            if b > a {
                let pb = place[b].as_ref().map(|x| x.0);
                if pa.is_none() || pa != pb {
                    communication += w;
                }
            }
        }
    }
    (value, migration, communication)
}

pub(crate) fn objective(flat: &Flat, place: &[Placement]) -> f64 {
    let (v, m, c) = breakdown(flat, place);
    v - m - c
}
