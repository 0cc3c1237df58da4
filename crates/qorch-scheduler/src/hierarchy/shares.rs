//! Shares: a level's capacity split among sibling groups by a flat problem over blocks of
//! their agents (same anchor pool and pool filter, grouped by weight).

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use qorch_qubo::splitmix64;

use super::{Deadlines, Group, Hints, Share, agents_of, candidates, hint, node_key, set_hint};
use crate::EnhancedQuboScheduler;
use crate::assign::solve::solve_flat;
use crate::assign::{AssignmentBuilder, NONE};
use crate::outcome::{NodeId, SubSolve};
use crate::problem::Flat;
use crate::scheduler::record;

/// A block of agents: anchor pool, allowed pools, current pools.
type BlockKey = (Option<usize>, Vec<u32>, Vec<u32>);

/// A pool of a share below this fraction of the share's largest is a sliver: left out of the
/// mean pool that sizes blocks.
const SLIVER: f64 = 0.01;

/// A block: its group, its agents and its anchor (local pool).
type Block = (usize, Vec<usize>, Option<usize>);

impl EnhancedQuboScheduler {
    /// Level `level`: shares of `share` for each group, by a flat problem over blocks.
    #[allow(
        clippy::too_many_lines,
        reason = "blocks, problem, solve and shares in sequence"
    )]
    pub(crate) fn split(
        &self,
        flat: &Flat,
        groups: &[Group],
        share: &Share,
        level: usize,
        hints: &Hints,
        deadlines: Deadlines,
    ) -> (Vec<Share>, SubSolve) {
        let k = flat.kinds;
        let mut local = vec![u32::MAX; flat.pool_ids.len()];
        for (i, &p) in share.pools.iter().enumerate() {
            local[p as usize] = i as u32;
        }
        let np = share.pools.len();
        // The mean pool of the share, over the pools that hold at least 1% of the largest:
        // a share that is a few sizeable pools and many slivers (what a cluster holds once
        // the polish has spread its agents over the pools) would otherwise have a tiny mean
        // and make every agent its own block.
        let sizes: Vec<f64> = (0..np)
            .map(|q| flat.size(&share.cap[q * k..(q + 1) * k]))
            .collect();
        let largest = sizes.iter().copied().fold(0.0_f64, f64::max);
        let (sum, count) = sizes
            .iter()
            .filter(|&&x| x >= SLIVER * largest)
            .fold((0.0, 0_usize), |(s, n), &x| (s + x, n + 1));
        let mean_pool = sum / count.max(1) as f64;
        let block_size = (mean_pool / self.config.blocks_per_pool as f64).max(1e-12);
        // Blocks: (group, agents, anchor local pool), group by group (on rayon's threads;
        // the order does not depend on them).
        let group_blocks = |(gi, &g): (usize, &Group)| {
            let mut blocks: Vec<Block> = Vec::new();
            let mut keyed: BTreeMap<BlockKey, Vec<usize>> = BTreeMap::new();
            for &a in agents_of(flat, g) {
                let ag = &flat.agents[a];
                let anchor = hint(hints, a).map(|h| h.0).or(ag.current).and_then(|p| {
                    let q = local[p as usize];
                    (q != u32::MAX).then_some(q as usize)
                });
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
            blocks
        };
        let per_group: Vec<Vec<Block>> = if self.config.parallel {
            groups.par_iter().enumerate().map(group_blocks).collect()
        } else {
            groups.iter().enumerate().map(group_blocks).collect()
        };
        let blocks: Vec<Block> = per_group.into_iter().flatten().collect();
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
                splitmix64(bi as u64 ^ (level as u64) << 48),
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
        // Affinity between blocks, block by block (a fixed order: the builder sums parallel
        // edges in the order they come).
        let block_of = BlockIndex::new(flat.agents.len(), &blocks);
        for (ba, (_, members, _)) in blocks.iter().enumerate() {
            for &a in members {
                for &(other, w) in &flat.adj[a] {
                    if other as usize > a
                        && let Some(bb) = block_of.get(other as usize)
                        && bb != ba
                    {
                        b.add_affinity(ba, bb, w);
                    }
                }
            }
        }
        let node = groups_parent_id(flat, groups);
        let seed = splitmix64(self.config.seed ^ splitmix64(level as u64) ^ node_key(node));
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
}

/// The block of each agent of a split: a dense table when the split holds a good part of
/// all agents (the top level), else a hash map (a split deep in a large tree holds a few
/// thousand of millions: a dense table per split would cost more to clear than to use).
enum BlockIndex {
    Dense(Vec<u32>),
    Sparse(HashMap<u32, u32, foldhash::fast::RandomState>),
}

impl BlockIndex {
    fn new(agents: usize, blocks: &[Block]) -> Self {
        let members: usize = blocks.iter().map(|b| b.1.len()).sum();
        let numbered = blocks
            .iter()
            .enumerate()
            .flat_map(|(bi, (_, list, _))| list.iter().map(move |&a| (a, bi as u32)));
        if members.saturating_mul(8) >= agents {
            let mut dense = vec![u32::MAX; agents];
            for (a, bi) in numbered {
                dense[a] = bi;
            }
            BlockIndex::Dense(dense)
        } else {
            let mut sparse =
                HashMap::with_capacity_and_hasher(members, foldhash::fast::RandomState::default());
            sparse.extend(numbered.map(|(a, bi)| (a as u32, bi)));
            BlockIndex::Sparse(sparse)
        }
    }

    fn get(&self, agent: usize) -> Option<usize> {
        match self {
            BlockIndex::Dense(d) => d.get(agent).filter(|&&b| b != u32::MAX),
            BlockIndex::Sparse(m) => m.get(&(agent as u32)),
        }
        .map(|&b| b as usize)
    }
}

/// Whether some agent of the group may use dense pool `p` (checks the first few).
fn groups_allow(flat: &Flat, g: Group, p: u32) -> bool {
    agents_of(flat, g)
        .iter()
        .take(16)
        .any(|&a| flat.allows(a, p))
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
