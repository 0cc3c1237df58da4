//! Move-based local search: shift one item, swap two, eject one to make room for another.
//!
//! * [`descent`] keeps every capacity and improves the objective with first-improving shifts
//!   and ejections until a sweep finds nothing: O(options) per item and sweep, for large
//!   problems.
//! * [`tabu`] searches the penalized objective `objective - alpha * excess` (strategic
//!   oscillation: `alpha` grows while the search is infeasible and shrinks while it is
//!   feasible), taking the best non-tabu shift or swap each iteration; moving an item back
//!   to a pool it just left is tabu for a while, unless it reaches a new best feasible
//!   solution. This is how the strong heuristics for the generalized assignment problem work
//!   (Diaz & Fernandez 2001; Yagiura, Ibaraki & Glover 2004, who add ejection chains).

use std::time::Instant;

use rand::{Rng, RngExt};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::state::State;
use super::{AssignmentProblem, NONE};

/// Gains below this are rounding noise.
pub(crate) const EPS: f64 = 1e-9;

/// A work budget: move evaluations, a deadline, and a target objective.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub(crate) left: u64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) target: Option<f64>,
}

impl Work {
    pub(crate) fn new(evaluations: u64, deadline: Option<Instant>, target: Option<f64>) -> Self {
        Work {
            left: evaluations,
            deadline,
            target,
        }
    }

    /// Spends `n` evaluations; true when the budget is gone.
    #[inline]
    pub(crate) fn spend(&mut self, n: u64) -> bool {
        self.left = self.left.saturating_sub(n);
        self.left == 0
    }

    /// Whether the budget (evaluations or time) is gone; checks the clock.
    pub(crate) fn exhausted(&self) -> bool {
        self.left == 0 || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// The best feasible solution found so far, with the times it improved.
#[derive(Debug, Clone)]
pub(crate) struct Incumbent {
    pub(crate) choice: Vec<u32>,
    pub(crate) objective: f64,
    pub(crate) feasible: bool,
    /// (seconds since the solve started, objective) at each improvement.
    pub(crate) trace: Vec<(f64, f64)>,
    pub(crate) start: Instant,
}

impl Incumbent {
    pub(crate) fn new(start: Instant) -> Self {
        Incumbent {
            choice: Vec::new(),
            objective: f64::NEG_INFINITY,
            feasible: false,
            trace: Vec::new(),
            start,
        }
    }

    /// Keeps `s` if it is feasible and better. Returns whether it was kept.
    pub(crate) fn offer(&mut self, s: &State<'_>) -> bool {
        let obj = s.objective();
        if obj > self.objective + EPS * obj.abs().max(1.0) && s.is_feasible() {
            self.objective = obj;
            self.choice.clone_from(&s.choice);
            self.feasible = true;
            self.trace.push((self.start.elapsed().as_secs_f64(), obj));
            return true;
        }
        false
    }

    /// Whether the target objective is reached.
    pub(crate) fn reached(&self, target: Option<f64>) -> bool {
        target.is_some_and(|t| self.feasible && self.objective >= t - EPS * t.abs().max(1.0))
    }
}

/// First-improvement descent that keeps every capacity. Returns whether anything improved.
pub(crate) fn descent(s: &mut State<'_>, rng: &mut Xoshiro256PlusPlus, work: &mut Work) -> bool {
    let p = s.p;
    let n = p.num_items();
    if n == 0 {
        return false;
    }
    if s.members.is_none() {
        s.track_members();
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    shuffle(&mut order, rng);
    let mut any = false;
    loop {
        let mut improved = false;
        for (t, &i) in order.iter().enumerate() {
            if t % 256 == 0 && work.exhausted() {
                return any;
            }
            if improve_item(s, i as usize, rng, work) {
                improved = true;
            }
        }
        any |= improved;
        if !improved || work.exhausted() {
            return any;
        }
    }
}

/// Tries the best improving feasible shift of item `i`, then ejections. Returns whether the
/// objective improved.
pub(crate) fn improve_item(
    s: &mut State<'_>,
    i: usize,
    rng: &mut Xoshiro256PlusPlus,
    work: &mut Work,
) -> bool {
    let p = s.p;
    let cur = s.choice[i];
    let opts = p.options(i);
    work.spend(opts.len() as u64 + 1);
    let mut best = NONE;
    let mut best_gain = EPS;
    let mut blocked: Vec<(f64, u32)> = Vec::new();
    if p.may_skip[i] && cur != NONE {
        let g = s.delta_objective(i, NONE);
        if g > best_gain {
            best_gain = g;
            best = NONE;
        }
    }
    let mut found = best_gain > EPS;
    for o in opts {
        let o = o as u32;
        if o == cur {
            continue;
        }
        let g = s.delta_objective(i, o);
        if g <= EPS {
            continue;
        }
        if s.fits(i, o) {
            if g > best_gain {
                best_gain = g;
                best = o;
                found = true;
            }
        } else {
            blocked.push((g, o));
        }
    }
    if found {
        s.apply(i, best);
        return true;
    }
    // Ejection: make room on the pool of a blocked option by moving one of its items away.
    blocked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for &(_, o) in blocked.iter().take(2) {
        if eject(s, i, o, rng, work) {
            return true;
        }
    }
    false
}

/// Tries to place item `i` on option `o` (whose pool is full) by first moving one item `j`
/// off that pool to its best alternative (another pool, a smaller option, `i`'s old pool, or
/// unserved). Keeps the pair of moves if both fit and the objective improves.
fn eject(
    s: &mut State<'_>,
    i: usize,
    o: u32,
    rng: &mut Xoshiro256PlusPlus,
    work: &mut Work,
) -> bool {
    const SAMPLE: usize = 6;
    let p = s.p;
    let q = p.opt_pool[o as usize] as usize;
    let old_i = s.choice[i];
    let members = &s.members.as_ref().expect("tracked").list[q];
    if members.is_empty() {
        return false;
    }
    let picks: Vec<u32> = if members.len() <= SAMPLE {
        members.clone()
    } else {
        let off = rng.random_range(0..members.len());
        (0..SAMPLE)
            .map(|t| members[(off + t * members.len() / SAMPLE) % members.len()])
            .collect()
    };
    let before = s.objective();
    let mut best: Option<(f64, usize, u32)> = None;
    // Move i first (it may overload q), then try each pick's alternatives off q; the picks'
    // moves are scored without being made.
    s.apply(i, o);
    let moved = s.objective() - before;
    for j in picks {
        let j = j as usize;
        if j == i {
            continue;
        }
        let old_j = s.choice[j];
        for oj in p
            .options(j)
            .take(4)
            .map(|x| x as u32)
            .chain(p.may_skip[j].then_some(NONE))
        {
            if oj == old_j {
                continue;
            }
            work.spend(1);
            let pj = p.pool_of_choice(oj);
            if pj as usize == q && oj != NONE {
                let smaller = p
                    .demand(oj as usize)
                    .iter()
                    .zip(p.demand(old_j as usize))
                    .all(|(a, b)| a <= b);
                if !smaller {
                    continue;
                }
            }
            // `fits` checks j's new pool with j's old load freed when it is q; q must also
            // fit once j has left it for another pool.
            if !s.fits(j, oj) || (pj as usize != q && !s.fits_without(q, old_j)) {
                continue;
            }
            let total = moved + s.delta_objective(j, oj);
            if total > EPS && best.is_none_or(|b| total > b.0) {
                best = Some((total, j, oj));
            }
        }
    }
    s.apply(i, old_i);
    if let Some((_, j, oj)) = best {
        s.apply(i, o);
        s.apply(j, oj);
        debug_assert!(s.pool_ok(q));
        return true;
    }
    false
}

/// Settings of the tabu search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TabuParams {
    /// Iterations without a new best before returning.
    pub(crate) stall: u64,
}

/// Per item, its options sorted by reduced value (best first), for swap neighbourhoods.
pub(crate) fn ranked_options(p: &AssignmentProblem, lambda: &[f64], width: usize) -> Vec<Vec<u32>> {
    (0..p.num_items())
        .map(|i| {
            let mut v: Vec<u32> = p.options(i).map(|o| o as u32).collect();
            v.sort_by(|&a, &b| {
                super::bound::reduced(p, lambda, b as usize)
                    .total_cmp(&super::bound::reduced(p, lambda, a as usize))
            });
            v.truncate(width);
            v
        })
        .collect()
}

/// The penalty weight's starting value: the median value per unit of normalized demand.
pub(crate) fn initial_alpha(p: &AssignmentProblem) -> f64 {
    let mut r: Vec<f64> = (0..p.num_options())
        .filter_map(|o| {
            let sz = p.size(o);
            (sz > 0.0).then(|| p.opt_value[o].abs() / sz)
        })
        .collect();
    if r.is_empty() {
        return 1.0;
    }
    let mid = r.len() / 2;
    let (_, m, _) = r.select_nth_unstable_by(mid, f64::total_cmp);
    m.max(1e-9)
}

#[derive(Debug, Clone, Copy)]
enum Move {
    Shift(usize, u32),
    Swap(usize, u32, usize, u32),
}

/// Penalized tabu search from `s`; offers every feasible improvement to `inc`. Returns after
/// `params.stall` iterations without a new incumbent, or when the budget ends.
#[allow(
    clippy::too_many_lines,
    reason = "one loop with two neighbourhoods reads best in one piece"
)]
pub(crate) fn tabu(
    s: &mut State<'_>,
    rng: &mut Xoshiro256PlusPlus,
    work: &mut Work,
    inc: &mut Incumbent,
    ranked: &[Vec<u32>],
    alpha: &mut f64,
    params: TabuParams,
) {
    let p = s.p;
    let n = p.num_items();
    if n == 0 {
        return;
    }
    if s.members.is_none() {
        s.track_members();
    }
    let alpha0 = initial_alpha(p);
    let mut tabu_opt = vec![0_u64; p.num_options()];
    let mut tabu_skip = vec![0_u64; n];
    let tenure = 5 + (n as u64 / 10).min(25);
    let mut excess = s.total_excess();
    let mut since_best = 0_u64;
    let mut iter = 0_u64;
    inc.offer(s);
    while since_best < params.stall {
        iter += 1;
        since_best += 1;
        if iter.is_multiple_of(16) && (work.exhausted() || inc.reached(work.target)) {
            return;
        }
        let obj = s.objective();
        let feasible_now = s.missing() == 0;
        let best_obj = inc.objective;
        let mut best_move: Option<Move> = None;
        let mut best_score = f64::NEG_INFINITY;
        let mut ties = 0_u32;
        let off = rng.random_range(0..n);
        let mut evals = 0_u64;
        // Shifts.
        for t in 0..n {
            let i = (off + t) % n;
            let cur = s.choice[i];
            let skip = p.may_skip[i].then_some(NONE);
            for o in p.options(i).map(|x| x as u32).chain(skip) {
                if o == cur {
                    continue;
                }
                evals += 1;
                let dobj = s.delta_objective(i, o);
                let dex = s.delta_excess(i, o);
                let score = dobj - *alpha * dex;
                if score < best_score {
                    continue;
                }
                let is_tabu = if o == NONE {
                    tabu_skip[i] > iter
                } else {
                    tabu_opt[o as usize] > iter
                };
                if is_tabu
                    && !(feasible_now && excess + dex <= 1e-12 && obj + dobj > best_obj + EPS)
                {
                    continue;
                }
                if score > best_score {
                    best_score = score;
                    best_move = Some(Move::Shift(i, o));
                    ties = 1;
                } else {
                    ties += 1;
                    if rng.random_range(0..ties) == 0 {
                        best_move = Some(Move::Shift(i, o));
                    }
                }
            }
        }
        // Swaps: i goes to a pool q among its best options, j on q comes to i's pool. Only
        // when no shift improves the penalized objective (swaps cost far more to scan).
        let members = &s.members.as_ref().expect("tracked").list;
        let scan_swaps = best_score <= 1e-12;
        for t in 0..if scan_swaps { n } else { 0 } {
            let i = (off + t) % n;
            let oi_cur = s.choice[i];
            if oi_cur == NONE {
                continue;
            }
            let pi = p.opt_pool[oi_cur as usize] as usize;
            for &oi in &ranked[i] {
                let q = p.opt_pool[oi as usize] as usize;
                if q == pi {
                    continue;
                }
                for &j in &members[q] {
                    let j = j as usize;
                    if j < i
                        && ranked[j]
                            .iter()
                            .any(|&x| p.opt_pool[x as usize] as usize == pi)
                    {
                        continue; // Evaluated from j's side.
                    }
                    let Some(oj) = p.option_on(j, pi) else {
                        continue;
                    };
                    let oj = oj as u32;
                    let oj_cur = s.choice[j];
                    evals += 1;
                    let mut dobj = s.value_of(i, oi) - s.value_of(i, oi_cur) + s.value_of(j, oj)
                        - s.value_of(j, oj_cur);
                    if p.has_neighbours(i) || p.has_neighbours(j) {
                        dobj -= s.delta_aff_swap(i, j);
                    }
                    let dex = swap_excess(s, pi, q, oi_cur, oj, oj_cur, oi);
                    let score = dobj - *alpha * dex;
                    if score < best_score {
                        continue;
                    }
                    let is_tabu = tabu_opt[oi as usize] > iter || tabu_opt[oj as usize] > iter;
                    if is_tabu
                        && !(feasible_now && excess + dex <= 1e-12 && obj + dobj > best_obj + EPS)
                    {
                        continue;
                    }
                    if score > best_score {
                        best_score = score;
                        best_move = Some(Move::Swap(i, oi, j, oj));
                        ties = 1;
                    } else {
                        ties += 1;
                        if rng.random_range(0..ties) == 0 {
                            best_move = Some(Move::Swap(i, oi, j, oj));
                        }
                    }
                }
            }
        }
        work.spend(evals);
        let Some(mv) = best_move else {
            return; // Everything tabu: nothing to do.
        };
        let mut stamp = |o: u32, i: usize, rng: &mut Xoshiro256PlusPlus| {
            let until = iter + tenure + rng.random_range(0..tenure);
            if o == NONE {
                tabu_skip[i] = until;
            } else {
                tabu_opt[o as usize] = until;
            }
        };
        match mv {
            Move::Shift(i, o) => {
                let old = s.choice[i];
                s.apply(i, o);
                stamp(old, i, rng);
            }
            Move::Swap(i, oi, j, oj) => {
                let (old_i, old_j) = (s.choice[i], s.choice[j]);
                s.apply(i, oi);
                s.apply(j, oj);
                stamp(old_i, i, rng);
                stamp(old_j, j, rng);
            }
        }
        excess = s.total_excess();
        if excess > 1e-12 {
            *alpha = (*alpha * 1.1).min(alpha0 * 1e4);
        } else {
            *alpha = (*alpha / 1.1).max(alpha0 * 1e-3);
            if inc.offer(s) {
                since_best = 0;
            }
        }
        if iter.is_multiple_of(4096) {
            s.resync();
            excess = s.total_excess();
        }
    }
}

/// The change of total excess when `i` (option `oi_cur` on pool `pi`) moves to `oi` on `q`
/// and `j` (option `oj_cur` on `q`) moves to `oj` on `pi`.
#[inline]
fn swap_excess(
    s: &State<'_>,
    pi: usize,
    q: usize,
    oi_cur: u32,
    oj: u32,
    oj_cur: u32,
    oi: u32,
) -> f64 {
    let p = s.p;
    let k = p.kinds;
    let mut d = 0.0;
    for (pool, minus, plus) in [(pi, oi_cur, oj), (q, oj_cur, oi)] {
        for r in 0..k {
            let l = s.load[pool * k + r];
            let c = p.capacity[pool * k + r];
            let nl = l - p.opt_demand[minus as usize * k + r] + p.opt_demand[plus as usize * k + r];
            let before = if super::within(l, c) { 0.0 } else { l - c };
            let after = if super::within(nl, c) { 0.0 } else { nl - c };
            d += (after - before) * p.inv_scale[r];
        }
    }
    d
}

/// Fisher-Yates shuffle with the crate's generator.
pub(crate) fn shuffle<T>(v: &mut [T], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
