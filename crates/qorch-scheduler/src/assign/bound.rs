//! Upper bounds by Lagrangian relaxation of the capacity constraints.
//!
//! With multipliers `lambda_pr >= 0` on the capacities, the relaxed problem separates by item:
//!
//! ```text
//! L(lambda) = sum_{p,r} lambda_pr cap_pr
//!           + sum_i max( unserved_i, max_o value_o - sum_r lambda_{pool(o) r} demand_or )
//! ```
//!
//! and `L(lambda)` bounds the objective from above for *every* `lambda >= 0` (affinity costs
//! are non-negative and are dropped, which keeps the bound valid). Each item's choice has the
//! integrality property, so the best `lambda` gives exactly the LP relaxation's value: for the
//! generalized assignment problem this is the classical LP bound. The multipliers are tuned by
//! subgradient descent with Polyak steps towards the best known feasible objective; the result
//! is the smallest `L` seen, valid whatever the number of iterations.
//!
//! Items may carry a *wildcard* option: "any allowed pool not listed", with one value and one
//! demand, used when the options were restricted to a few candidate pools but the bound must
//! cover every pool the item may use. Its relaxed value takes, per kind, the smallest
//! multiplier over the allowed pools: `value - sum_r demand_r min_p lambda_pr`, which is at
//! least the true maximum over those pools, so the bound stays valid.

use rayon::prelude::*;

use super::AssignmentProblem;

/// Extra options per item, each standing for every allowed pool: a value and a demand, the
/// same on any of those pools.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Wildcards {
    /// `items + 1` offsets into `value`.
    pub(crate) start: Vec<u32>,
    pub(crate) value: Vec<f64>,
    /// `entries * kinds`.
    pub(crate) demand: Vec<f64>,
    /// Per item: pools its wildcards may not use (besides those with explicit options, which
    /// they may harmlessly cover too). Empty: any pool.
    pub(crate) except: Vec<Vec<u32>>,
}

/// The result of a bound computation.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    /// The bound (an upper bound on the objective).
    pub(crate) value: f64,
    /// The multipliers of the best bound, normalized (per unit of `demand * inv_scale`),
    /// `pools * kinds`.
    pub(crate) lambda: Vec<f64>,
    /// Subgradient iterations done.
    pub(crate) iterations: usize,
}

/// Items per parallel chunk (fixed, so that sums do not depend on the thread count).
const CHUNK: usize = 4096;

/// Per-kind smallest multipliers, for wildcard options.
struct Cheapest {
    /// Per kind: up to `KEEP` (multiplier, pool) pairs, smallest first.
    best: Vec<Vec<(f64, u32)>>,
}

const KEEP: usize = 16;

impl Cheapest {
    fn new(lambda: &[f64], pools: usize, kinds: usize) -> Self {
        let best = (0..kinds)
            .map(|r| {
                let mut v: Vec<(f64, u32)> = (0..pools)
                    .map(|p| (lambda[p * kinds + r], p as u32))
                    .collect();
                let keep = KEEP.min(v.len());
                if keep < v.len() {
                    v.select_nth_unstable_by(keep, |a, b| a.0.total_cmp(&b.0));
                    v.truncate(keep);
                }
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                v
            })
            .collect();
        Cheapest { best }
    }

    /// The smallest multiplier of kind `r` over pools not in `except`, and its pool.
    fn min(
        &self,
        r: usize,
        except: &[u32],
        lambda: &[f64],
        pools: usize,
        kinds: usize,
    ) -> Option<(f64, u32)> {
        if let Some(&x) = self.best[r].iter().find(|(_, p)| !except.contains(p)) {
            return Some(x);
        }
        (0..pools as u32)
            .filter(|p| !except.contains(p))
            .map(|p| (lambda[p as usize * kinds + r], p))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }
}

/// `L(lambda)` and, per pool and kind, the normalized load of the relaxed choices.
fn evaluate(p: &AssignmentProblem, wild: Option<&Wildcards>, lambda: &[f64]) -> (f64, Vec<f64>) {
    let k = p.kinds;
    let cheapest = wild.map(|_| Cheapest::new(lambda, p.pools, k));
    let n = p.num_items();
    let chunks: Vec<(f64, Vec<f64>)> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut usage = vec![0.0; p.pools * k];
            let mut sum = 0.0;
            for i in c * CHUNK..((c + 1) * CHUNK).min(n) {
                // Best relaxed choice: (value, Some(option) | wildcard marker).
                let mut best = if p.may_skip[i] {
                    p.skip_value[i]
                } else {
                    f64::NEG_INFINITY
                };
                let mut pick: Option<usize> = None;
                for o in p.options(i) {
                    let base = p.opt_pool[o] as usize * k;
                    let mut rv = p.opt_value[o];
                    for r in 0..k {
                        rv -= lambda[base + r] * p.opt_demand[o * k + r] * p.inv_scale[r];
                    }
                    if rv > best {
                        best = rv;
                        pick = Some(o);
                    }
                }
                let mut wild_pools = [u32::MAX; 8];
                let mut pick_wild: Option<usize> = None;
                if let (Some(ws), Some(ch)) = (wild, &cheapest) {
                    let except = &ws.except[i];
                    // The cheapest pool per kind, shared by this item's entries.
                    let mut mins = [(0.0, u32::MAX); 8];
                    let mut ok = true;
                    for r in 0..k.min(8) {
                        match ch.min(r, except, lambda, p.pools, k) {
                            Some(x) => mins[r] = x,
                            None => ok = false,
                        }
                    }
                    for e in ws.start[i] as usize..ws.start[i + 1] as usize {
                        let mut rv = ws.value[e];
                        let mut e_ok = ok;
                        for r in 0..k {
                            let d = ws.demand[e * k + r];
                            if d == 0.0 {
                                continue;
                            }
                            let l = if r < 8 {
                                mins[r].0
                            } else if let Some(x) = ch.min(r, except, lambda, p.pools, k) {
                                x.0
                            } else {
                                e_ok = false;
                                0.0
                            };
                            rv -= l * d * p.inv_scale[r];
                        }
                        if e_ok && rv > best {
                            best = rv;
                            pick_wild = Some(e);
                            for r in 0..k.min(8) {
                                wild_pools[r] = mins[r].1;
                            }
                        }
                    }
                }
                sum += best;
                if let (Some(e), Some(ws)) = (pick_wild, wild) {
                    for r in 0..k.min(wild_pools.len()) {
                        let d = ws.demand[e * k + r];
                        if d > 0.0 && wild_pools[r] != u32::MAX {
                            usage[wild_pools[r] as usize * k + r] += d * p.inv_scale[r];
                        }
                    }
                } else if let Some(o) = pick {
                    let base = p.opt_pool[o] as usize * k;
                    for r in 0..k {
                        usage[base + r] += p.opt_demand[o * k + r] * p.inv_scale[r];
                    }
                }
            }
            (sum, usage)
        })
        .collect();
    let mut total = 0.0;
    let mut usage = vec![0.0; p.pools * k];
    for (s, u) in chunks {
        total += s;
        for (a, b) in usage.iter_mut().zip(u) {
            *a += b;
        }
    }
    for pool in 0..p.pools {
        for r in 0..k {
            total += lambda[pool * k + r] * p.capacity[pool * k + r] * p.inv_scale[r];
        }
    }
    (total, usage)
}

/// Minimizes `L(lambda)` by subgradient descent for up to `iterations` steps, with Polyak
/// steps towards `target` (the best known feasible objective; `None`: 1% below the bound).
pub(crate) fn lagrangian(
    p: &AssignmentProblem,
    wild: Option<&Wildcards>,
    iterations: usize,
    target: Option<f64>,
    start: Option<&[f64]>,
) -> Bound {
    let k = p.kinds;
    let mut lambda = start.map_or_else(|| vec![0.0; p.pools * k], <[f64]>::to_vec);
    let (mut ub, mut usage) = evaluate(p, wild, &lambda);
    let mut best = Bound {
        value: ub,
        lambda: lambda.clone(),
        iterations: 0,
    };
    let mut theta = 1.0;
    let mut stall = 0;
    for it in 1..=iterations {
        // Subgradient of L: normalized capacity minus normalized relaxed load.
        let g: Vec<f64> = (0..p.pools * k)
            .map(|x| p.capacity[x] * p.inv_scale[x % k] - usage[x])
            .collect();
        // Components at lambda = 0 with positive g cannot decrease: project them out.
        let norm2: f64 = g
            .iter()
            .zip(&lambda)
            .filter(|(gx, l)| !(**l <= 0.0 && **gx > 0.0))
            .map(|(gx, _)| gx * gx)
            .sum();
        if norm2 <= 1e-18 {
            best.iterations = it;
            break; // The relaxed solution is feasible: L equals its value, optimal.
        }
        let goal = target
            .filter(|t| *t < best.value)
            .unwrap_or(best.value - 0.01 * best.value.abs().max(1e-9));
        let step = theta * (ub - goal).max(1e-12 * ub.abs().max(1.0)) / norm2;
        for (l, gx) in lambda.iter_mut().zip(&g) {
            *l = (*l - step * gx).max(0.0);
        }
        (ub, usage) = evaluate(p, wild, &lambda);
        best.iterations = it;
        if ub < best.value - 1e-12 * best.value.abs().max(1.0) {
            best.value = ub;
            best.lambda.clone_from(&lambda);
            stall = 0;
        } else {
            stall += 1;
            if stall >= 10 {
                theta /= 2.0;
                stall = 0;
                if theta < 1e-4 {
                    break;
                }
            }
        }
    }
    best
}

/// The reduced value of option `o` under normalized multipliers `lambda`.
#[inline]
pub(crate) fn reduced(p: &AssignmentProblem, lambda: &[f64], o: usize) -> f64 {
    let k = p.kinds;
    let base = p.opt_pool[o] as usize * k;
    let mut rv = p.opt_value[o];
    for r in 0..k {
        rv -= lambda[base + r] * p.opt_demand[o * k + r] * p.inv_scale[r];
    }
    rv
}
