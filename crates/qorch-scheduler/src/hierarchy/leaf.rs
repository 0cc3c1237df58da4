//! Leaf placement: the agents of a leaf group as items of a flat problem over the group's
//! share, then what is left of the share offered to those left unserved.

use std::collections::HashMap;

use qorch_qubo::splitmix64;

use super::{Deadlines, Group, Hints, Share, Solved, agents_of, candidates, hint, node_key};
use crate::EnhancedQuboScheduler;
use crate::assign::solve::{FlatResult, solve_flat};
use crate::assign::{AssignmentBuilder, NONE, within};
use crate::polish::Placement;
use crate::problem::Flat;
use crate::scheduler::record;

impl EnhancedQuboScheduler {
    /// Places the agents of a leaf group within `share`.
    #[allow(
        clippy::too_many_lines,
        reason = "problem, warm start, solve and grants in sequence"
    )]
    pub(crate) fn solve_leaf(
        &self,
        flat: &Flat,
        g: Group,
        share: &Share,
        level: usize,
        warm: &Hints,
        deadlines: Deadlines,
    ) -> Solved {
        let _span = tracing::debug_span!("subsolve", kind = "leaf", level).entered();
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
                splitmix64(u64::from(ag.id.get()) ^ splitmix64(level as u64)),
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
        let seed = splitmix64(
            self.config.seed
                ^ splitmix64(level as u64 + 1000)
                ^ node_key(node)
                ^ u64::from(matches!(g, Group::Direct(_))) << 60,
        );
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
