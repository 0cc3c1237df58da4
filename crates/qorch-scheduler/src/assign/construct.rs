//! Starting solutions and the repair step that makes any assignment feasible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use qorch_qubo::TotalF64;
use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::bound::reduced;
use super::state::State;
use super::{AssignmentProblem, NONE};

/// Greedy construction guided by Lagrangian multipliers: items in order of *regret* (how much
/// they lose if denied their best reduced option) when some must be served, or of value per
/// shadow cost of their resources when all may stay unserved; each placed on its best option
/// that fits
/// (by reduced value, plus the affinity with items already placed); an item that fits nowhere
/// stays unserved, or, if it must be served, goes where it overloads least (repair and search
/// fix that later).
pub(crate) fn greedy(p: &AssignmentProblem, lambda: &[f64]) -> Vec<u32> {
    let n = p.num_items();
    let all_optional = p.may_skip.iter().all(|m| *m);
    let mut regret: Vec<(f64, u32)> = (0..n)
        .map(|i| {
            if all_optional {
                // Knapsack-like: value per shadow cost of the resources, best option.
                let best = p
                    .options(i)
                    .map(|o| {
                        let v = p.opt_value[o] - p.skip_value[i];
                        let cost = p.opt_value[o] - reduced(p, lambda, o);
                        if cost > 1e-15 {
                            v / cost
                        } else if v > 0.0 {
                            f64::MAX
                        } else {
                            0.0
                        }
                    })
                    .fold(f64::NEG_INFINITY, f64::max);
                return (best, i as u32);
            }
            let mut first = if p.may_skip[i] {
                p.skip_value[i]
            } else {
                f64::NEG_INFINITY
            };
            let mut second = f64::NEG_INFINITY;
            for o in p.options(i) {
                let r = reduced(p, lambda, o);
                if r > first {
                    second = first;
                    first = r;
                } else if r > second {
                    second = r;
                }
            }
            let reg = if second.is_finite() {
                first - second
            } else {
                f64::MAX
            };
            (reg, i as u32)
        })
        .collect();
    regret.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut s = State::new(p, vec![NONE; n]);
    for &(_, i) in &regret {
        let i = i as usize;
        let mut best = NONE;
        let mut best_score = if p.may_skip[i] {
            p.skip_value[i]
        } else {
            f64::NEG_INFINITY
        };
        for o in p.options(i) {
            if !s.fits(i, o as u32) {
                continue;
            }
            let mut score = reduced(p, lambda, o);
            if p.has_neighbours(i) {
                score -= s.delta_aff(i, p.opt_pool[o]);
            }
            if score > best_score {
                best_score = score;
                best = o as u32;
            }
        }
        if best == NONE && !p.may_skip[i] {
            // Least added excess, then best reduced value.
            let mut key = (f64::INFINITY, f64::NEG_INFINITY);
            for o in p.options(i) {
                let k = (s.delta_excess(i, o as u32), reduced(p, lambda, o));
                if k.0 < key.0 || (k.0 == key.0 && k.1 > key.1) {
                    key = k;
                    best = o as u32;
                }
            }
        }
        s.apply(i, best);
    }
    s.choice
}

/// Makes `s` respect every capacity: on each overloaded pool, evicts the item that loses
/// least per unit of the overloaded resources (its value net of its best alternative that
/// fits: another pool, a smaller option on the same pool, or unserved), moving it to that
/// alternative, until the pool fits. Items that must be served and fit nowhere else are
/// moved where they overload least, and only if that lowers the total excess; returns
/// whether the result is feasible (always, when every item may stay unserved).
pub(crate) fn repair(s: &mut State<'_>, rng: &mut Xoshiro256PlusPlus) -> bool {
    let p = s.p;
    if s.members.is_none() {
        s.track_members();
    }
    let mut guard = 0_usize;
    let limit = 4 * p.num_items() + 16;
    for pool in 0..p.pools {
        if s.pool_ok(pool) {
            continue;
        }
        // Lazy greedy: every member's key once, then pop the cheapest, re-price it against
        // the current loads, and move it only if it is still no worse than the next one
        // (else push it back). One scan of the pool instead of one per move, which made
        // repair quadratic in the members of a pool.
        let mut heap: BinaryHeap<Reverse<(TotalF64, u32)>> =
            s.members.as_ref().expect("tracked").list[pool]
                .iter()
                .filter_map(|&i| {
                    let (key, _) = leave_key(s, i as usize, pool)?;
                    // Small random tie-breaking keeps repeated repairs from cycling.
                    let jitter = 1.0 + 1e-9 * rng.random_range(0.0..1.0);
                    Some(Reverse((TotalF64(key * jitter), i)))
                })
                .collect();
        while !s.pool_ok(pool) {
            guard += 1;
            if guard > limit {
                return s.is_feasible();
            }
            let Some(Reverse((_, i))) = heap.pop() else {
                break; // Nothing can leave this pool: only mandatory items that fit nowhere.
            };
            let Some((key, alt)) = leave_key(s, i as usize, pool) else {
                continue;
            };
            if let Some(Reverse((next, _))) = heap.peek()
                && key > next.0
            {
                heap.push(Reverse((TotalF64(key), i)));
                continue;
            }
            s.apply(i as usize, alt);
            // A smaller option keeps the item on this pool: it may have to shrink or leave
            // again, so it goes back into the heap at its new price.
            if let Some((key, _)) = leave_key(s, i as usize, pool) {
                heap.push(Reverse((TotalF64(key), i)));
            }
        }
    }
    if s.is_feasible() {
        return true;
    }
    // Mandatory items left on overloaded pools: move one where it adds the least excess,
    // if that lowers the total (the penalized search takes it from here).
    let mut improved = true;
    while improved && !s.is_feasible() {
        improved = false;
        guard += 1;
        if guard > limit {
            break;
        }
        let mut best: Option<(f64, usize, u32)> = None;
        for pool in 0..p.pools {
            if s.pool_ok(pool) {
                continue;
            }
            for &i in &s.members.as_ref().expect("tracked").list[pool] {
                let i = i as usize;
                for o in p.options(i) {
                    let o = o as u32;
                    if p.opt_pool[o as usize] as usize == pool {
                        continue;
                    }
                    let d = s.delta_excess(i, o);
                    if d < -1e-12 && best.is_none_or(|b| d < b.0) {
                        best = Some((d, i, o));
                    }
                }
            }
        }
        if let Some((_, i, o)) = best {
            s.apply(i, o);
            improved = true;
        }
    }
    s.is_feasible()
}

/// What moving item `i` off overloaded `pool` costs per unit of the overloaded kinds it frees,
/// and where it would go; `None` if it frees nothing or has nowhere to go.
fn leave_key(s: &State<'_>, i: usize, pool: usize) -> Option<(f64, u32)> {
    let p = s.p;
    let k = p.kinds;
    let cur = s.choice[i];
    if cur == NONE || p.opt_pool[cur as usize] as usize != pool {
        return None;
    }
    let size: f64 = (0..k)
        .filter(|&r| !super::within(s.load[pool * k + r], p.capacity[pool * k + r]))
        .map(|r| p.opt_demand[cur as usize * k + r] * p.inv_scale[r])
        .sum();
    if size <= 0.0 {
        return None;
    }
    let alt = best_alternative(s, i, pool)?;
    Some((-s.delta_objective(i, alt) / size, alt))
}

/// The best option for item `i` other than staying on `pool` at its current size: one that
/// fits (another pool, a smaller option on `pool`), or unserved if allowed.
fn best_alternative(s: &State<'_>, i: usize, pool: usize) -> Option<u32> {
    let p = s.p;
    let cur = s.choice[i];
    let mut best = p.may_skip[i].then_some(NONE);
    let mut best_gain = if p.may_skip[i] {
        s.delta_objective(i, NONE)
    } else {
        f64::NEG_INFINITY
    };
    for o in p.options(i) {
        let o32 = o as u32;
        if o32 == cur {
            continue;
        }
        if p.opt_pool[o] as usize == pool {
            // A smaller option on the same pool must shrink every overloaded kind.
            let smaller = p
                .demand(o)
                .iter()
                .zip(p.demand(cur as usize))
                .all(|(a, b)| a <= b)
                && p.demand(o) != p.demand(cur as usize);
            if !smaller {
                continue;
            }
        } else if !s.fits(i, o32) {
            continue;
        }
        let g = s.delta_objective(i, o32);
        if g > best_gain {
            best_gain = g;
            best = Some(o32);
        }
    }
    best
}
