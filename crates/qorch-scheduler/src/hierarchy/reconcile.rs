//! The root's last steps: the capacity guard, the reconciliation (leftover capacity to
//! unserved agents, then top-ups) and the call of the polish, with the global bound's class
//! part beside it.

use std::time::Instant;

use qorch_qubo::splitmix64;

use super::objective;
use crate::EnhancedQuboScheduler;
use crate::assign::within;
use crate::polish::{Placement, PolishParams, PolishStats, polish};
use crate::problem::Flat;

/// A polish pass gaining less than this fraction of the objective is the last.
const POLISH_TOLERANCE: f64 = 1e-5;

/// What the root's last steps did, for their records.
pub(crate) struct LastSteps {
    /// The objective before the reconciliation.
    pub(crate) before: f64,
    /// The objective after the reconciliation (before the polish).
    pub(crate) reconciled: f64,
    pub(crate) reconcile_seconds: f64,
    /// When the polish started (its record counts the time until it is written).
    pub(crate) polish_start: Instant,
    /// The polish's statistics, if it ran (`polish_passes > 0`).
    pub(crate) polished: Option<PolishStats>,
}

/// The capacity guard after the levels (a leaf never leaves a pool over capacity; should
/// one, its lightest agents there are unserved), then the placement's objective.
pub(crate) fn capacity_guard(flat: &Flat, place: &mut [Placement]) -> f64 {
    let evicted = enforce_capacity(flat, place);
    debug_assert_eq!(evicted, 0, "a leaf solve left a pool over capacity");
    objective(flat, place)
}

impl EnhancedQuboScheduler {
    /// The steps after the levels, on the whole placement: the reconciliation, then the
    /// polish (until `deadline`, in a timed round), with `beside` running on rayon's other
    /// threads during the polish, given the reconciled objective (which the polish only
    /// raises). `before` is the placement's objective (after [`capacity_guard`]).
    pub(crate) fn reconcile_and_polish<R: Send>(
        &self,
        flat: &Flat,
        place: &mut [Placement],
        before: f64,
        deadline: Option<Instant>,
        beside: impl FnOnce(f64) -> R + Send,
    ) -> (LastSteps, R) {
        // Reconciliation.
        let tr = Instant::now();
        reconcile(flat, place, self.config.max_candidates);
        let reconciled = objective(flat, place);
        let reconcile_seconds = tr.elapsed().as_secs_f64();
        let polish_start = Instant::now();
        let mut run_polish = || {
            (self.config.polish_passes > 0).then(|| {
                let everyone: Vec<usize> = (0..flat.agents.len()).collect();
                let pools: Vec<u32> = (0..flat.pool_ids.len() as u32).collect();
                polish(
                    flat,
                    &everyone,
                    &pools,
                    &flat.capacity,
                    place,
                    &PolishParams {
                        passes: if self.config.time_limit.is_some() {
                            usize::MAX
                        } else {
                            self.config.polish_passes
                        },
                        tolerance: POLISH_TOLERANCE * reconciled.abs(),
                        swap_samples: 4,
                        candidates: self.config.polish_candidates,
                        seed: splitmix64(self.config.seed ^ 0x00B0_115B),
                        deadline,
                    },
                )
            })
        };
        let (polished, other) = if self.config.parallel {
            rayon::join(run_polish, || beside(reconciled))
        } else {
            (run_polish(), beside(reconciled))
        };
        let last = LastSteps {
            before,
            reconciled,
            reconcile_seconds,
            polish_start,
            polished,
        };
        (last, other)
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
