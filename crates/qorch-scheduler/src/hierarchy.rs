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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qorch_resources::{AgentId, Allocation, Grant, ResourceVector};
use rayon::prelude::*;

use crate::assign::bound::{Wildcards, lagrangian};
use crate::assign::solve::{FlatParams, FlatResult, solve_flat};
use crate::assign::{AssignmentBuilder, AssignmentProblem, NONE, within};
use crate::outcome::{LevelSummary, NodeId, ScheduleOutcome, SubSolve, efficiency};
use crate::polish::{Placement, PolishParams, polish};
use crate::problem::Flat;
use crate::scheduler::record;
use crate::{AllocationProblem, EnhancedQuboScheduler, ScheduleError};

/// A block of agents: anchor pool, allowed pools, current pools.
type BlockKey = (Option<usize>, Vec<u32>, Vec<u32>);

/// Capacity over a subset of the pools: dense pool indices and `pools * kinds` amounts.
#[derive(Debug, Clone, Default)]
struct Share {
    pools: Vec<u32>,
    cap: Vec<f64>,
}

/// A group of agents solved together: a tree node (all its agents) or the agents directly in
/// a node that also has children.
#[derive(Debug, Clone, Copy)]
enum Group {
    Node(usize),
    Direct(usize),
}

/// Per agent, where the level above put it: `(pool << 1) | full` (full: at the desired
/// amount), or `u64::MAX`. Written by a split for the agents of its groups only, before
/// those groups are solved, so parallel solves never touch the same entry.
type Hints = [AtomicU64];

fn hint(h: &Hints, a: usize) -> Option<(u32, bool)> {
    let x = h[a].load(Ordering::Relaxed);
    (x != u64::MAX).then_some(((x >> 1) as u32, x & 1 == 1))
}

fn set_hint(h: &Hints, a: usize, pool: u32, full: bool) {
    h[a].store(u64::from(pool) << 1 | u64::from(full), Ordering::Relaxed);
}

/// What a subtree's solve returns.
#[derive(Default)]
struct Solved {
    placements: Vec<(usize, Placement)>,
    records: Vec<SubSolve>,
}

/// Deadlines of the phases of a timed round.
#[derive(Clone, Copy)]
struct Deadlines {
    shares: Option<Instant>,
    leaves: Option<Instant>,
    polish: Option<Instant>,
}

/// A polish pass gaining less than this fraction of the objective is the last.
const POLISH_TOLERANCE: f64 = 1e-5;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn node_key(id: NodeId) -> u64 {
    match id {
        NodeId::Root => 0,
        NodeId::Cluster(c) => 1 << 40 | u64::from(c.get()),
        NodeId::SubCluster(s) => 2 << 40 | u64::from(s.get()),
    }
}

impl EnhancedQuboScheduler {
    /// Allocates one round: shares of the pools to the clusters, then placements of agents
    /// within each cluster's share, at every level of the cluster tree; see the crate docs.
    ///
    /// `previous` is the last round's allocation: its pools serve as the current placement
    /// of agents whose [`AgentSpec::current`](crate::AgentSpec::current) is `None`, and its
    /// grants as the starting point of the search.
    ///
    /// Every grant in the outcome fits its pool together with the others (capacities are
    /// never exceeded), lies between the agent's minimum and desired amounts, and is on a pool
    /// the agent's filter allows.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] saying what is malformed (unknown pool, duplicate agent, invalid
    /// request or affinity) or why an agent can never be served.
    #[allow(
        clippy::too_many_lines,
        reason = "validation, levels and results in sequence"
    )]
    pub fn schedule(
        &self,
        problem: &AllocationProblem,
        previous: Option<&Allocation>,
    ) -> Result<ScheduleOutcome, ScheduleError> {
        let t0 = Instant::now();
        let prev = |a: AgentId| previous.and_then(|al| al.pool_of(a));
        let flat = problem.flatten(&prev)?;
        let limit = self.config.time_limit;
        let at = |f: f64| limit.map(|l| t0 + Duration::from_secs_f64(l.as_secs_f64() * f));
        let deadlines = Deadlines {
            shares: at(0.3),
            leaves: at(0.8),
            polish: at(0.95),
        };
        // Warm starts: the previous grant's pool and level, per agent; else the current pool
        // at the desired amount.
        let warm_start: Vec<Option<(u32, bool)>> =
            flat.agents
                .iter()
                .map(|a| {
                    let Some(g) = previous.and_then(|p| p.get(a.id)) else {
                        return a.current.map(|c| (c, true));
                    };
                    let pool = flat.pool_ids.iter().position(|&p| p == g.pool)? as u32;
                    let full = a.desired.iter().enumerate().all(|(k, d)| {
                        g.amount.get(qorch_resources::KindId(k as u16)) >= *d - 1e-12
                    });
                    Some((pool, full))
                })
                .collect();
        let all = Share {
            pools: (0..flat.pool_ids.len() as u32).collect(),
            cap: flat.capacity.clone(),
        };
        let roots: Vec<Group> = flat.roots.iter().map(|&r| Group::Node(r)).collect();
        let warm: Vec<AtomicU64> = warm_start
            .iter()
            .map(|w| AtomicU64::new(w.map_or(u64::MAX, |(p, f)| u64::from(p) << 1 | u64::from(f))))
            .collect();
        let solved = self.solve_groups(&flat, &roots, &all, 1, &warm, deadlines);
        let mut place: Vec<Placement> = vec![None; flat.agents.len()];
        for (a, p) in solved.placements {
            place[a] = p;
        }
        let mut records = solved.records;
        let evicted = enforce_capacity(&flat, &mut place);
        debug_assert_eq!(evicted, 0, "a leaf solve left a pool over capacity");
        // Reconciliation.
        let tr = Instant::now();
        let before = objective(&flat, &place);
        reconcile(&flat, &mut place, self.config.max_candidates);
        let reconciled = objective(&flat, &place);
        let reconcile_seconds = tr.elapsed().as_secs_f64();
        let tp = Instant::now();
        let polished = (self.config.polish_passes > 0).then(|| {
            let everyone: Vec<usize> = (0..flat.agents.len()).collect();
            let pools: Vec<u32> = (0..flat.pool_ids.len() as u32).collect();
            polish(
                &flat,
                &everyone,
                &pools,
                &flat.capacity,
                &mut place,
                &PolishParams {
                    passes: if limit.is_some() {
                        usize::MAX
                    } else {
                        self.config.polish_passes
                    },
                    tolerance: POLISH_TOLERANCE * reconciled.abs(),
                    swap_samples: 4,
                    candidates: self.config.polish_candidates,
                    seed: mix(self.config.seed ^ 0x00B0_115B),
                    deadline: deadlines.polish,
                },
            )
        });
        let objective_value = objective(&flat, &place);
        let bound = global_bound(&flat, self.config.bound_iterations, objective_value);
        let level = records.iter().map(|r| r.level).max().unwrap_or(0) + 1;
        // The root's own steps, recorded like sub-solves.
        let step =
            |level, solver: &str, search: String, energy: f64, gain, seconds, evaluations| {
                SubSolve {
                    level,
                    node: NodeId::Root,
                    items: flat.agents.len(),
                    options: 0,
                    windows: 0,
                    windows_improved: 0,
                    max_window_vars: 0,
                    solver: solver.into(),
                    solver_usage: Vec::new(),
                    search,
                    energy: -energy,
                    objective: gain,
                    bound,
                    seconds,
                    evaluations,
                }
            };
        records.push(step(
            level,
            "reconcile",
            "greedy fill and top-up".into(),
            reconciled,
            reconciled - before,
            reconcile_seconds,
            0,
        ));
        if let Some(st) = polished {
            records.push(step(
                level + 1,
                "polish",
                format!(
                    "exact relocations and swaps: {} passes, {} moves",
                    st.passes, st.moves
                ),
                objective_value,
                objective_value - reconciled,
                tp.elapsed().as_secs_f64(),
                st.evaluations,
            ));
        }
        let mut levels: BTreeMap<usize, LevelSummary> = BTreeMap::new();
        for r in &records {
            let l = levels.entry(r.level).or_insert_with(|| LevelSummary {
                level: r.level,
                subproblems: 0,
                items: 0,
                objective: 0.0,
                bound: 0.0,
                seconds: 0.0,
            });
            l.subproblems += 1;
            l.items += r.items;
            l.objective += r.objective;
            l.bound += r.bound;
            l.seconds += r.seconds;
        }
        let grants: Vec<(AgentId, Option<Grant>)> = flat
            .agents
            .iter()
            .zip(&place)
            .map(|(a, p)| {
                (
                    a.id,
                    p.as_ref().map(|(pool, amount)| {
                        Grant::new(
                            flat.pool_ids[*pool as usize],
                            ResourceVector::from_amounts(amount.clone()),
                        )
                    }),
                )
            })
            .collect();
        let served = place.iter().filter(|p| p.is_some()).count();
        let (value, migration, communication) = breakdown(&flat, &place);
        Ok(ScheduleOutcome {
            grants,
            objective: objective_value,
            value,
            migration_cost: migration,
            communication_cost: communication,
            bound,
            bound_kind: "lagrangian: capacities relaxed over every allowed pool and amount; affinity: half of each edge charged to an unserved endpoint, split pairs of served agents not charged".into(),
            efficiency: efficiency(objective_value, bound),
            served,
            unserved: flat.agents.len() - served,
            levels: levels.into_values().collect(),
            subsolves: records,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Solves sibling groups over `share`: splits it among them (if more than one), then
    /// solves each in parallel.
    fn solve_groups(
        &self,
        flat: &Flat,
        groups: &[Group],
        share: &Share,
        level: usize,
        warm: &Hints,
        deadlines: Deadlines,
    ) -> Solved {
        let groups: Vec<Group> = groups
            .iter()
            .copied()
            .filter(|g| !agents_of(flat, *g).is_empty())
            .collect();
        if groups.is_empty() {
            return Solved::default();
        }
        if groups.len() == 1 {
            return self.solve_group(flat, groups[0], share, level, warm, deadlines);
        }
        let (shares, rec) = self.split(flat, &groups, share, level, warm, deadlines);
        let run =
            |(g, s): (&Group, &Share)| self.solve_group(flat, *g, s, level + 1, warm, deadlines);
        let parts: Vec<Solved> = if self.config.parallel {
            groups.par_iter().zip(shares.par_iter()).map(run).collect()
        } else {
            groups.iter().zip(shares.iter()).map(run).collect()
        };
        let mut out = Solved {
            placements: Vec::new(),
            records: vec![rec],
        };
        for p in parts {
            out.placements.extend(p.placements);
            out.records.extend(p.records);
        }
        out
    }

    fn solve_group(
        &self,
        flat: &Flat,
        g: Group,
        share: &Share,
        level: usize,
        warm: &Hints,
        deadlines: Deadlines,
    ) -> Solved {
        if share.pools.is_empty() {
            // No capacity came down to this group (more groups than pools, say): its agents
            // wait unserved for the reconciliation pass, which offers whatever is left.
            return Solved {
                placements: agents_of(flat, g).iter().map(|&a| (a, None)).collect(),
                records: Vec::new(),
            };
        }
        match g {
            Group::Node(n) if !flat.nodes[n].children.is_empty() => {
                let node = &flat.nodes[n];
                let mut kids: Vec<Group> = node.children.iter().map(|&c| Group::Node(c)).collect();
                if !node.agents.is_empty() {
                    kids.push(Group::Direct(n));
                }
                self.solve_groups(flat, &kids, share, level, warm, deadlines)
            }
            _ => self.solve_leaf(flat, g, share, level, warm, deadlines),
        }
    }

    fn params(&self, options: usize, seed: u64, deadline: Option<Instant>) -> FlatParams<'_> {
        let mut p = FlatParams::from_config(&self.config, &self.solvers, options, seed);
        if deadline.is_some() {
            p.deadline = deadline;
            p.evaluations = u64::MAX;
        }
        p
    }

    /// Level `level`: shares of `share` for each group, by a flat problem over blocks.
    #[allow(
        clippy::too_many_lines,
        reason = "blocks, problem, solve and shares in sequence"
    )]
    fn split(
        &self,
        flat: &Flat,
        groups: &[Group],
        share: &Share,
        level: usize,
        hints: &Hints,
        deadlines: Deadlines,
    ) -> (Vec<Share>, SubSolve) {
        let k = flat.kinds;
        let local: HashMap<u32, usize> = share
            .pools
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i))
            .collect();
        let np = share.pools.len();
        let mean_pool = (0..np)
            .map(|q| flat.size(&share.cap[q * k..(q + 1) * k]))
            .sum::<f64>()
            / np.max(1) as f64;
        let block_size = (mean_pool / self.config.blocks_per_pool as f64).max(1e-12);
        // Blocks: (group, agents, anchor local pool).
        let mut blocks: Vec<(usize, Vec<usize>, Option<usize>)> = Vec::new();
        for (gi, &g) in groups.iter().enumerate() {
            let mut keyed: BTreeMap<BlockKey, Vec<usize>> = BTreeMap::new();
            for &a in agents_of(flat, g) {
                let ag = &flat.agents[a];
                let anchor = hint(hints, a)
                    .map(|h| h.0)
                    .or(ag.current)
                    .and_then(|p| local.get(&p).copied());
                keyed
                    .entry((
                        anchor,
                        ag.only.clone().unwrap_or_default(),
                        ag.except.clone(),
                    ))
                    .or_default()
                    .push(a);
            }
            for ((anchor, _, _), mut members) in keyed {
                members.sort_by(|&a, &b| {
                    flat.agents[b]
                        .weight
                        .total_cmp(&flat.agents[a].weight)
                        .then(a.cmp(&b))
                });
                let mut cur: Vec<usize> = Vec::new();
                let mut size = 0.0;
                for a in members {
                    size += flat.size(&flat.agents[a].desired);
                    cur.push(a);
                    if size >= block_size {
                        blocks.push((gi, std::mem::take(&mut cur), anchor));
                        size = 0.0;
                    }
                }
                if !cur.is_empty() {
                    blocks.push((gi, cur, anchor));
                }
            }
        }
        // Footprint of each group: local pools by anchored demand (for candidates).
        let mut footprint: Vec<BTreeMap<usize, f64>> = vec![BTreeMap::new(); groups.len()];
        for (gi, members, anchor) in &blocks {
            if let Some(q) = anchor {
                let s: f64 = members
                    .iter()
                    .map(|&a| flat.size(&flat.agents[a].desired))
                    .sum();
                *footprint[*gi].entry(*q).or_default() += s;
            }
        }
        let tops: Vec<Vec<usize>> = footprint
            .iter()
            .map(|f| {
                let mut v: Vec<(usize, f64)> = f.iter().map(|(q, s)| (*q, *s)).collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v.into_iter().take(2).map(|x| x.0).collect()
            })
            .collect();
        let mut b = AssignmentBuilder::new(k, share.cap.clone());
        let mut item_levels: Vec<Vec<(Vec<f64>, f64)>> = Vec::with_capacity(blocks.len());
        for (bi, (gi, members, anchor)) in blocks.iter().enumerate() {
            let mut desired = vec![0.0; k];
            let mut least = vec![0.0; k];
            let (mut v_des, mut v_min, mut mig, mut stay) = (0.0, 0.0, 0.0, 0.0);
            for &a in members {
                let ag = &flat.agents[a];
                let m = ag.min.as_ref().unwrap_or(&ag.desired);
                for r in 0..k {
                    desired[r] += ag.desired[r];
                    least[r] += m[r];
                }
                v_des += ag.weight * flat.size(&ag.desired);
                v_min += ag.weight * flat.size(m);
                if let Some(c) = ag.current {
                    let cost = flat.migration * flat.size(&ag.desired);
                    mig += cost;
                    if anchor.is_some_and(|q| share.pools[q] == c) {
                        stay += cost;
                    }
                }
            }
            let lvls = if least == desired {
                vec![(desired, v_des)]
            } else {
                vec![(desired, v_des), (least, v_min)]
            };
            let item = b.add_item(Some(-mig));
            let first = members[0];
            let cands = candidates(
                np,
                |q| flat.allows(first, share.pools[q]),
                anchor.iter().copied().chain(tops[*gi].iter().copied()),
                mix(bi as u64 ^ (level as u64) << 48),
                self.config.max_candidates,
            );
            for q in cands {
                for (amount, v) in &lvls {
                    let val = if Some(q) == *anchor {
                        v - mig + stay
                    } else {
                        v - mig
                    };
                    b.add_option(item, q, val, amount);
                }
            }
            item_levels.push(lvls);
        }
        // Affinity between blocks.
        let mut block_of: HashMap<usize, usize> = HashMap::new();
        for (bi, (_, members, _)) in blocks.iter().enumerate() {
            for &a in members {
                block_of.insert(a, bi);
            }
        }
        for (&a, &ba) in &block_of {
            for &(bb_agent, w) in &flat.adj[a] {
                let bb_agent = bb_agent as usize;
                if bb_agent > a
                    && let Some(&bb) = block_of.get(&bb_agent)
                    && bb != ba
                {
                    b.add_affinity(ba, bb, w);
                }
            }
        }
        let node = groups_parent_id(flat, groups);
        let seed = mix(self.config.seed ^ mix(level as u64) ^ node_key(node));
        let problem = b.build().expect("blocks are built valid");
        let params = self.params(problem.num_options(), seed, deadlines.shares);
        let r = solve_flat(&problem, &params);
        let mut shares: Vec<Share> = vec![Share::default(); groups.len()];
        let mut amount = vec![vec![0.0; np * k]; groups.len()];
        let mut unserved = vec![0.0; groups.len()];
        for (bi, (gi, members, _)) in blocks.iter().enumerate() {
            let o = r.choice[bi];
            if o == NONE {
                unserved[*gi] += flat.size(&item_levels[bi][0].0);
                continue;
            }
            let q = problem.opt_pool[o as usize] as usize;
            // The block's agents start where the block went, at the block's amount.
            let full = item_levels[bi].len() == 1
                || problem.opt_demand[o as usize * k..(o as usize + 1) * k]
                    == item_levels[bi][0].0[..];
            for &a in members {
                set_hint(hints, a, share.pools[q], full);
            }
            for x in 0..k {
                amount[*gi][q * k + x] += problem.opt_demand[o as usize * k + x];
            }
        }
        // Capacity no block took goes to the group with the largest share of the pool (or,
        // on a pool no block took, the group with the most unserved demand): one sizeable
        // share packs better than slivers spread over every group.
        for q in 0..np {
            let used: Vec<f64> = (0..k)
                .map(|x| amount.iter().map(|a| a[q * k + x]).sum())
                .collect();
            let size_of = |g: usize| flat.size(&amount[g][q * k..(q + 1) * k]);
            let owner = (0..groups.len())
                .max_by(|&a, &b| size_of(a).total_cmp(&size_of(b)).then(b.cmp(&a)))
                .filter(|&g| size_of(g) > 0.0)
                .or_else(|| {
                    (0..groups.len())
                        .filter(|&g| groups_allow(flat, groups[g], share.pools[q]))
                        .max_by(|&a, &b| unserved[a].total_cmp(&unserved[b]).then(b.cmp(&a)))
                });
            if let Some(g) = owner {
                for x in 0..k {
                    let left = (share.cap[q * k + x] - used[x]).max(0.0) * (1.0 - 1e-12);
                    amount[g][q * k + x] += left;
                }
            }
        }
        for g in 0..groups.len() {
            for q in 0..np {
                let v = &amount[g][q * k..(q + 1) * k];
                if v.iter().any(|x| *x > 0.0) {
                    shares[g].pools.push(share.pools[q]);
                    shares[g].cap.extend_from_slice(v);
                }
            }
        }
        (shares, record(level, node, &problem, &r))
    }

    /// Places the agents of a leaf group within `share`.
    #[allow(
        clippy::too_many_lines,
        reason = "problem, warm start, solve and grants in sequence"
    )]
    fn solve_leaf(
        &self,
        flat: &Flat,
        g: Group,
        share: &Share,
        level: usize,
        warm: &Hints,
        deadlines: Deadlines,
    ) -> Solved {
        let agents = agents_of(flat, g);
        let node = match g {
            Group::Node(n) | Group::Direct(n) => flat.nodes[n].id,
        };
        let k = flat.kinds;
        let local: HashMap<u32, usize> = share
            .pools
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i))
            .collect();
        let item_of: HashMap<usize, usize> =
            agents.iter().enumerate().map(|(i, &a)| (a, i)).collect();
        let np = share.pools.len();
        let mut b = AssignmentBuilder::new(k, share.cap.clone());
        let mut initial: Vec<Option<u32>> = Vec::with_capacity(agents.len());
        let mut any_warm = false;
        for (i, &a) in agents.iter().enumerate() {
            let ag = &flat.agents[a];
            let mig = if ag.current.is_some() {
                flat.migration * flat.size(&ag.desired)
            } else {
                0.0
            };
            let item = b.add_item(Some(-mig));
            let cur = ag.current.and_then(|p| local.get(&p).copied());
            let w = hint(warm, a).and_then(|(p, full)| local.get(&p).map(|&q| (q, full)));
            let partners = flat.adj[a]
                .iter()
                .filter_map(|&(j, _)| flat.agents[j as usize].current)
                .filter_map(|p| local.get(&p).copied())
                .take(2);
            let cands = candidates(
                np,
                |q| flat.allows(a, share.pools[q]),
                cur.into_iter().chain(w.map(|x| x.0)).chain(partners),
                mix(u64::from(ag.id.get()) ^ mix(level as u64)),
                self.config.max_candidates,
            );
            let levels: Vec<&Vec<f64>> = std::iter::once(&ag.desired)
                .chain(ag.min.as_ref())
                .collect();
            for &q in &cands {
                for amount in &levels {
                    let v = flat.value(a, amount, Some(share.pools[q]));
                    b.add_option(item, q, v, amount);
                }
            }
            initial.push(w.and_then(|(q, full)| {
                any_warm = true;
                let pos = cands.iter().position(|&c| c == q)?;
                Some(pos as u32 * levels.len() as u32 + u32::from(!full && levels.len() > 1))
            }));
            let _ = i;
        }
        for (i, &a) in agents.iter().enumerate() {
            for &(j, w) in &flat.adj[a] {
                if let Some(&jj) = item_of.get(&(j as usize))
                    && jj > i
                {
                    b.add_affinity(i, jj, w);
                }
            }
        }
        let problem = b.build().expect("leaf items are built valid");
        let seed = mix(self.config.seed
            ^ mix(level as u64 + 1000)
            ^ node_key(node)
            ^ u64::from(matches!(g, Group::Direct(_))) << 60);
        let mut params = self.params(problem.num_options(), seed, deadlines.leaves);
        if any_warm {
            // Options the builder dropped shift indices: keep only starts that still exist.
            let start: Vec<u32> = initial
                .iter()
                .enumerate()
                .map(|(i, c)| match c {
                    Some(k) if problem.start[i] + k < problem.start[i + 1] => problem.start[i] + k,
                    _ => NONE,
                })
                .collect();
            params.initial = Some(start);
        }
        let mut r: FlatResult = solve_flat(&problem, &params);
        let mut placements: Vec<(usize, Placement)> = agents
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let o = r.choice[i];
                let p = (o != NONE).then(|| {
                    let q = problem.opt_pool[o as usize] as usize;
                    (
                        share.pools[q],
                        problem.opt_demand[o as usize * k..(o as usize + 1) * k].to_vec(),
                    )
                });
                (a, p)
            })
            .collect();
        // The candidates were a few pools per agent: offer what is left anywhere in the
        // share to the agents left unserved, heaviest first.
        let gained = fill_share(flat, share, &local, &mut placements);
        r.objective += gained;
        Solved {
            placements,
            records: vec![record(level, node, &problem, &r)],
        }
    }
}

/// The last guard of the capacity invariant: on any pool whose placements exceed its
/// capacity in some kind (a sub-solve that ended infeasible, which is a bug), evicts agents,
/// lightest weight first, until it fits. Returns how many it evicted; the reconciliation pass
/// that follows may place them again where there is room.
fn enforce_capacity(flat: &Flat, place: &mut [Placement]) -> usize {
    let k = flat.kinds;
    let np = flat.pool_ids.len();
    let mut load = vec![0.0; np * k];
    let mut on: Vec<Vec<usize>> = vec![Vec::new(); np];
    for (a, p) in place.iter().enumerate() {
        if let Some((pool, amount)) = p {
            let q = *pool as usize;
            for r in 0..k {
                load[q * k + r] += amount[r];
            }
            on[q].push(a);
        }
    }
    let over =
        |load: &[f64], q: usize| (0..k).any(|r| !within(load[q * k + r], flat.capacity[q * k + r]));
    let mut evicted = 0;
    for q in 0..np {
        if !over(&load, q) {
            continue;
        }
        on[q].sort_by(|&x, &y| {
            flat.agents[x]
                .weight
                .total_cmp(&flat.agents[y].weight)
                .then(x.cmp(&y))
        });
        for &a in &on[q] {
            if !over(&load, q) {
                break;
            }
            if let Some((_, amount)) = place[a].take() {
                for r in 0..k {
                    load[q * k + r] -= amount[r];
                }
                evicted += 1;
            }
        }
    }
    evicted
}

/// Places unserved agents of a leaf on any pool of its share with room (every pool, not
/// only their candidates), heaviest first, at the desired amount or else the minimum.
/// Returns the objective gained.
fn fill_share(
    flat: &Flat,
    share: &Share,
    local: &HashMap<u32, usize>,
    placements: &mut [(usize, Placement)],
) -> f64 {
    let k = flat.kinds;
    let np = share.pools.len();
    let mut load = vec![0.0; np * k];
    for (_, p) in placements.iter() {
        if let Some((pool, amount)) = p {
            let q = local[pool];
            for r in 0..k {
                load[q * k + r] += amount[r];
            }
        }
    }
    let mut waiting: Vec<usize> = (0..placements.len())
        .filter(|&i| placements[i].1.is_none())
        .collect();
    waiting.sort_by(|&x, &y| {
        let (a, b) = (placements[x].0, placements[y].0);
        flat.agents[b]
            .weight
            .total_cmp(&flat.agents[a].weight)
            .then(a.cmp(&b))
    });
    let mut gained = 0.0;
    for i in waiting {
        let a = placements[i].0;
        let ag = &flat.agents[a];
        let mut done = false;
        for amount in std::iter::once(&ag.desired).chain(ag.min.as_ref()) {
            // The pool that would be fullest after placing (best fit), to keep room elsewhere.
            let mut best: Option<(f64, usize)> = None;
            for q in 0..np {
                if !flat.allows(a, share.pools[q]) {
                    continue;
                }
                let ok = (0..k).all(|r| within(load[q * k + r] + amount[r], share.cap[q * k + r]));
                if !ok {
                    continue;
                }
                let slack: f64 = (0..k)
                    .map(|r| {
                        (share.cap[q * k + r] - load[q * k + r] - amount[r]) * flat.inv_mean[r]
                    })
                    .sum();
                if best.is_none_or(|b| slack < b.0) {
                    best = Some((slack, q));
                }
            }
            if let Some((_, q)) = best {
                let pool = share.pools[q];
                let gain = flat.value(a, amount, Some(pool)) - flat.value(a, amount, None);
                if gain <= 0.0 {
                    continue;
                }
                for r in 0..k {
                    load[q * k + r] += amount[r];
                }
                placements[i].1 = Some((pool, amount.clone()));
                gained += gain;
                done = true;
                break;
            }
        }
        let _ = done;
    }
    gained
}

/// Whether some agent of the group may use dense pool `p` (checks the first few).
fn groups_allow(flat: &Flat, g: Group, p: u32) -> bool {
    agents_of(flat, g)
        .iter()
        .take(16)
        .any(|&a| flat.allows(a, p))
}

/// The agents of a group.
fn agents_of(flat: &Flat, g: Group) -> &[usize] {
    match g {
        Group::Node(n) => &flat.nodes[n].all,
        Group::Direct(n) => &flat.nodes[n].agents,
    }
}

/// The node whose children `groups` are (for naming the level's record).
fn groups_parent_id(flat: &Flat, groups: &[Group]) -> NodeId {
    let first = match groups[0] {
        Group::Node(n) | Group::Direct(n) => n,
    };
    if flat.roots.contains(&first) {
        return NodeId::Root;
    }
    flat.nodes
        .iter()
        .find(|nd| nd.children.contains(&first))
        .map_or(NodeId::Root, |nd| nd.id)
}

/// Up to `max` candidate pools (local indices) allowed by `allowed`: the `preferred` ones
/// first, then pools spread over the list by a stride from `hash`.
fn candidates(
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
fn breakdown(flat: &Flat, place: &[Placement]) -> (f64, f64, f64) {
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

fn objective(flat: &Flat, place: &[Placement]) -> f64 {
    let (v, m, c) = breakdown(flat, place);
    v - m - c
}

/// Offers free capacity to unserved agents (heaviest first), then tops up agents granted
/// less than desired.
#[allow(clippy::too_many_lines, reason = "two passes over the same tables")]
fn reconcile(flat: &Flat, place: &mut [Placement], max_candidates: usize) {
    let k = flat.kinds;
    let np = flat.pool_ids.len();
    let mut load = vec![0.0; np * k];
    for (pool, amount) in place.iter().flatten() {
        for r in 0..k {
            load[*pool as usize * k + r] += amount[r];
        }
    }
    let fits = |load: &[f64], p: usize, v: &[f64]| {
        (0..k).all(|r| within(load[p * k + r] + v[r], flat.capacity[p * k + r]))
    };
    let free_size = |load: &[f64], p: usize| {
        let free: Vec<f64> = (0..k)
            .map(|r| (flat.capacity[p * k + r] - load[p * k + r]).max(0.0))
            .collect();
        flat.size(&free)
    };
    let mut by_free: Vec<usize> = (0..np).collect();
    by_free.sort_by(|&a, &b| {
        free_size(&load, b)
            .total_cmp(&free_size(&load, a))
            .then(a.cmp(&b))
    });
    let mut waiting: Vec<usize> = (0..place.len()).filter(|&a| place[a].is_none()).collect();
    waiting.sort_by(|&a, &b| {
        let (x, y) = (&flat.agents[a], &flat.agents[b]);
        y.weight.total_cmp(&x.weight).then(a.cmp(&b))
    });
    let mut cursor = 0;
    for a in waiting {
        let ag = &flat.agents[a];
        let partners = flat.adj[a]
            .iter()
            .filter_map(|&(j, _)| place[j as usize].as_ref().map(|x| x.0 as usize));
        let mut tried: Vec<usize> = ag
            .current
            .map(|p| p as usize)
            .into_iter()
            .chain(partners)
            .take(3)
            .collect();
        if let Some(list) = &ag.only {
            tried.extend(list.iter().map(|&p| p as usize));
        } else {
            for t in 0..max_candidates.min(np) {
                tried.push(by_free[(cursor + t) % np]);
            }
        }
        cursor = (cursor + 1) % np.max(1);
        let levels: Vec<&Vec<f64>> = std::iter::once(&ag.desired)
            .chain(ag.min.as_ref())
            .collect();
        'outer: for amount in levels {
            for &p in &tried {
                if flat.allows(a, p as u32) && fits(&load, p, amount) {
                    // Only if serving here beats leaving it unserved (migration included).
                    let gain = flat.value(a, amount, Some(p as u32)) - flat.value(a, amount, None);
                    let split_cost: f64 = flat.adj[a]
                        .iter()
                        .filter(|&&(j, _)| {
                            place[j as usize]
                                .as_ref()
                                .is_some_and(|x| x.0 as usize == p)
                        })
                        .map(|&(_, w)| -w)
                        .sum();
                    if gain - split_cost <= 0.0 {
                        continue;
                    }
                    for r in 0..k {
                        load[p * k + r] += amount[r];
                    }
                    place[a] = Some((p as u32, amount.clone()));
                    break 'outer;
                }
            }
        }
    }
    // Top-up, kind by kind: what a pool has left of a kind goes to the agents on it that got
    // less of that kind than they desired, heaviest first (each unit is worth the agent's
    // weight, so this is the best use of it).
    let mut on_pool: Vec<Vec<usize>> = vec![Vec::new(); np];
    for (a, p) in place.iter().enumerate() {
        if let Some((pool, amount)) = p
            && *amount != flat.agents[a].desired
        {
            on_pool[*pool as usize].push(a);
        }
    }
    for (p, list) in on_pool.iter_mut().enumerate() {
        list.sort_by(|&a, &b| {
            flat.agents[b]
                .weight
                .total_cmp(&flat.agents[a].weight)
                .then(a.cmp(&b))
        });
        for r in 0..k {
            let mut room = (flat.capacity[p * k + r] - load[p * k + r]) * (1.0 - 1e-12);
            for &a in list.iter() {
                if room <= 0.0 {
                    break;
                }
                let Some((_, amount)) = place[a].as_mut() else {
                    continue;
                };
                let want = flat.agents[a].desired[r] - amount[r];
                if want <= 0.0 {
                    continue;
                }
                let give = want.min(room);
                amount[r] += give;
                load[p * k + r] += give;
                room -= give;
            }
        }
    }
}

/// The Lagrangian bound of the whole problem, with affinity costs reduced to what unserved
/// agents surely cause ([`Flat::unserved_affinity_floor`]): with at most 64
/// distinct pool capacities, one multiplier per pool *class* (pools of equal capacity) and
/// kind, which for pools of a few types gives the LP relaxation's value; otherwise one per
/// pool, with each agent's other allowed pools priced kind by kind ([`global_bound_pools`]).
/// The class dual is minimized by the bundle method of [`crate::dual`] (on the synthetic
/// rounds it reaches the LP value `HiGHS` computes, where subgradient steps stalled about 2%
/// above it).
fn global_bound(flat: &Flat, iterations: usize, objective: f64) -> f64 {
    class_bound(flat, iterations, objective)
        .unwrap_or_else(|| global_bound_pools(flat, iterations, objective))
}

/// Items per parallel chunk of the class bound (fixed: sums do not depend on threads).
const CHUNK: usize = 8192;

/// The class-priced Lagrangian bound, or `None` with more than 64 pool classes.
///
/// With multipliers `mu_ck >= 0` per class `c` and kind `k` (every pool of a class shares
/// them, a restriction that keeps the bound valid),
/// `L(mu) = sum_ck mu_ck C_ck + sum_a max(unserved_a, max_{level, allowed c} v - mu_c d)`,
/// where `C_ck` is the class's total capacity and `v` the level's value, minus migration
/// unless `c` holds the agent's current pool (the relaxation lets it stay, another
/// relaxation that keeps the bound valid).
#[allow(
    clippy::too_many_lines,
    reason = "one subgradient loop with its tables"
)]
fn class_bound(flat: &Flat, iterations: usize, objective: f64) -> Option<f64> {
    let k = flat.kinds;
    let np = flat.pool_ids.len();
    let mut class_of = vec![0_usize; np];
    let mut keys: Vec<Vec<u64>> = Vec::new();
    for p in 0..np {
        let key: Vec<u64> = flat.capacity[p * k..(p + 1) * k]
            .iter()
            .map(|x| x.to_bits())
            .collect();
        class_of[p] = if let Some(c) = keys.iter().position(|x| *x == key) {
            c
        } else {
            if keys.len() == 64 {
                return None;
            }
            keys.push(key);
            keys.len() - 1
        };
    }
    let nc = keys.len();
    let mut cap = vec![0.0; nc * k];
    let mut count = vec![0_usize; nc];
    for p in 0..np {
        count[class_of[p]] += 1;
        for r in 0..k {
            cap[class_of[p] * k + r] += flat.capacity[p * k + r] * flat.inv_mean[r];
        }
    }
    let all: u64 = if nc == 64 {
        u64::MAX
    } else {
        (1_u64 << nc) - 1
    };
    // Per agent: allowed classes, the class of its current pool, its migration cost.
    let allowed: Vec<u64> = flat
        .agents
        .iter()
        .map(|ag| match &ag.only {
            Some(list) => list.iter().fold(0, |m, &p| m | 1 << class_of[p as usize]),
            None if ag.except.is_empty() => all,
            None => {
                let mut excluded = vec![0_usize; nc];
                for &p in &ag.except {
                    excluded[class_of[p as usize]] += 1;
                }
                (0..nc)
                    .filter(|&c| excluded[c] < count[c])
                    .fold(0, |m, c| m | 1 << c)
            }
        })
        .collect();
    let n = flat.agents.len();
    // Per agent, fixed across evaluations: its migration cost and the unserved option's value.
    let migration: Vec<f64> = flat
        .agents
        .iter()
        .map(|ag| {
            if ag.current.is_some() {
                flat.migration * flat.size(&ag.desired)
            } else {
                0.0
            }
        })
        .collect();
    let unserved: Vec<f64> = (0..n)
        .map(|a| -migration[a] - flat.unserved_affinity_floor(a))
        .collect();
    let eval = |mu: &[f64]| -> (f64, Vec<f64>) {
        let parts: Vec<(f64, Vec<f64>)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ch| {
                let mut usage = vec![0.0; nc * k];
                let mut sum = 0.0;
                for a in ch * CHUNK..((ch + 1) * CHUNK).min(n) {
                    let ag = &flat.agents[a];
                    let mig = migration[a];
                    let home = ag.current.map(|p| class_of[p as usize]);
                    let mut best = unserved[a];
                    let mut pick: Option<usize> = None;
                    let lo = ag.min.as_ref().unwrap_or(&ag.desired);
                    let unit = ag.weight / flat.active_kinds;
                    // Grants may take any amount in [min, desired] per kind, and the value is
                    // linear per kind: the best grant on a class takes, kind by kind, the
                    // desired amount where a unit is worth more than its price, else the
                    // minimum.
                    for c in 0..nc {
                        if allowed[a] >> c & 1 == 0 {
                            continue;
                        }
                        let mut rv = if home == Some(c) { 0.0 } else { -mig };
                        for r in 0..k {
                            let coef = (unit - mu[c * k + r]) * flat.inv_mean[r];
                            rv += coef * if coef > 0.0 { ag.desired[r] } else { lo[r] };
                        }
                        if rv > best {
                            best = rv;
                            pick = Some(c);
                        }
                    }
                    sum += best;
                    if let Some(c) = pick {
                        for r in 0..k {
                            let coef = (unit - mu[c * k + r]) * flat.inv_mean[r];
                            let amount = if coef > 0.0 { ag.desired[r] } else { lo[r] };
                            usage[c * k + r] += amount * flat.inv_mean[r];
                        }
                    }
                }
                (sum, usage)
            })
            .collect();
        let mut total: f64 = (0..nc * k).map(|x| mu[x] * cap[x]).sum();
        let mut usage = vec![0.0; nc * k];
        for (s, u) in parts {
            total += s;
            for (a, b) in usage.iter_mut().zip(u) {
                *a += b;
            }
        }
        (total, usage)
    };
    let scale = flat
        .agents
        .iter()
        .map(|ag| ag.weight / flat.active_kinds)
        .fold(0.0_f64, f64::max);
    let dual = crate::dual::minimize(
        vec![0.0; nc * k],
        scale,
        iterations.max(1) * 2,
        objective,
        |mu| {
            let (value, usage) = eval(mu);
            let g = (0..nc * k).map(|x| cap[x] - usage[x]).collect();
            (value, g)
        },
    );
    Some(dual.value.max(objective))
}

/// The Lagrangian bound with one multiplier per pool: per agent its current pool explicitly
/// (no migration there), every other allowed pool as a wildcard (minus migration), at both
/// amounts; affinity costs reduced to the unserved floor.
fn global_bound_pools(flat: &Flat, iterations: usize, objective: f64) -> f64 {
    let k = flat.kinds;
    let mut b = AssignmentBuilder::new(k, flat.capacity.clone());
    let mut wild = Wildcards {
        start: vec![0],
        ..Wildcards::default()
    };
    for (a, ag) in flat.agents.iter().enumerate() {
        let mig = if ag.current.is_some() {
            flat.migration * flat.size(&ag.desired)
        } else {
            0.0
        };
        let item = b.add_item(Some(-mig - flat.unserved_affinity_floor(a)));
        // One dominating option per pool: the value of the desired amount with the demand of
        // the minimum (every grant in [min, desired] is worth at most that and uses at
        // least that).
        let lo = ag.min.as_ref().unwrap_or(&ag.desired);
        if let Some(list) = &ag.only {
            for &p in list {
                b.add_option(item, p as usize, flat.value(a, &ag.desired, Some(p)), lo);
            }
            wild.except.push(Vec::new());
        } else {
            if let Some(c) = ag.current
                && flat.allows(a, c)
            {
                b.add_option(item, c as usize, flat.value(a, &ag.desired, Some(c)), lo);
            }
            wild.value.push(ag.weight * flat.size(&ag.desired) - mig);
            wild.demand.extend_from_slice(lo);
            wild.except.push(ag.except.clone());
        }
        wild.start.push(wild.value.len() as u32);
    }
    let p: AssignmentProblem = b.build().expect("bound items are built valid");
    let bound = lagrangian(&p, Some(&wild), iterations, Some(objective), None);
    bound.value.max(objective)
}
