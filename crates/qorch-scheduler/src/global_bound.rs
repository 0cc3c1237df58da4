//! The global bound: a Lagrangian bound of the whole, unrestricted allocation problem,
//! priced per pool class (minimized by [`crate::dual`]) or, with too many classes, per pool.

use rayon::prelude::*;

use crate::assign::bound::{Wildcards, lagrangian};
use crate::assign::{AssignmentBuilder, AssignmentProblem};
use crate::problem::Flat;

/// The Lagrangian bound of the whole problem, with affinity costs reduced to what unserved
/// agents surely cause ([`Flat::unserved_affinity_floor`]): with at most 64
/// distinct pool capacities, one multiplier per pool *class* (pools of equal capacity) and
/// kind, which for pools of a few types gives the LP relaxation's value; otherwise one per
/// pool, with each agent's other allowed pools priced kind by kind ([`global_bound_pools`]).
/// The class dual is minimized by the bundle method of [`crate::dual`] (on the synthetic
/// rounds it reaches the LP value `HiGHS` computes, where subgradient steps stalled about 2%
/// above it).
///
/// In two steps, so that the first can run while the polish still changes the allocation:
/// [`class_part`] needs no allocation, and `global_bound` ends with the final objective (the
/// bound is never below it) or, without a class part, computes the per-pool bound.
pub(crate) fn global_bound(
    flat: &Flat,
    iterations: usize,
    class: Option<f64>,
    objective: f64,
) -> f64 {
    class.map_or_else(
        || global_bound_pools(flat, iterations, objective),
        |b| b.max(objective),
    )
}

/// Items per parallel chunk of the class bound (fixed: sums do not depend on threads).
const CHUNK: usize = 8192;

/// The class-priced part of [`global_bound`], or `None` with more than 64 pool classes.
/// `objective` is that of any allocation no better than the final one (the reconciled one,
/// before the polish): the bundle method's path does not depend on it until its value
/// reaches it, and from there `global_bound` keeps only the final objective, so the value
/// is the one a call after the polish would give.
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
pub(crate) fn class_part(flat: &Flat, iterations: usize, objective: f64) -> Option<f64> {
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
    // Per agent, dense and fixed across evaluations: a unit's value, the desired and least
    // amounts, the class of its current pool (`u32::MAX`: none).
    let unit: Vec<f64> = flat
        .agents
        .iter()
        .map(|ag| ag.weight / flat.active_kinds)
        .collect();
    let mut desired = Vec::with_capacity(n * k);
    let mut least = Vec::with_capacity(n * k);
    for ag in &flat.agents {
        desired.extend_from_slice(&ag.desired);
        least.extend_from_slice(ag.min.as_ref().unwrap_or(&ag.desired));
    }
    let home: Vec<u32> = flat
        .agents
        .iter()
        .map(|ag| ag.current.map_or(u32::MAX, |p| class_of[p as usize] as u32))
        .collect();
    let eval = |mu: &[f64]| -> (f64, Vec<f64>) {
        // The multipliers kind by kind, so that an agent's classes are one contiguous loop.
        let by_kind: Vec<f64> = (0..k)
            .flat_map(|r| (0..nc).map(move |c| mu[c * k + r]))
            .collect();
        let parts: Vec<(f64, Vec<f64>)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ch| {
                let mut usage = vec![0.0; nc * k];
                let mut sum = 0.0;
                let mut value = vec![0.0; nc];
                for a in ch * CHUNK..((ch + 1) * CHUNK).min(n) {
                    let u = unit[a];
                    // Grants may take any amount in [min, desired] per kind, and the value
                    // is linear per kind: the best grant on a class takes, kind by kind, the
                    // desired amount where a unit is worth more than its price, else the
                    // minimum; `max` of the two products picks it without a branch (the
                    // same number: amounts are non-negative and the minimum is at most the
                    // desired amount). Each class's sum is taken in the same order as one
                    // class at a time would (migration first, then kind by kind).
                    value.fill(-migration[a]);
                    if let Some(v) = value.get_mut(home[a] as usize) {
                        *v = 0.0;
                    }
                    for r in 0..k {
                        let (d, l, scale) =
                            (desired[a * k + r], least[a * k + r], flat.inv_mean[r]);
                        for (v, m) in value.iter_mut().zip(&by_kind[r * nc..(r + 1) * nc]) {
                            let coef = (u - m) * scale;
                            *v += (coef * d).max(coef * l);
                        }
                    }
                    let mut best = unserved[a];
                    let mut pick: Option<usize> = None;
                    for (c, &v) in value.iter().enumerate() {
                        if allowed[a] >> c & 1 == 1 && v > best {
                            best = v;
                            pick = Some(c);
                        }
                    }
                    sum += best;
                    if let Some(c) = pick {
                        for r in 0..k {
                            let coef = (u - mu[c * k + r]) * flat.inv_mean[r];
                            let amount = if coef > 0.0 {
                                desired[a * k + r]
                            } else {
                                least[a * k + r]
                            };
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
