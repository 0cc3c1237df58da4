//! A specialized tabu-search kernel for dense single-kind problems without affinity (the
//! generalized assignment problem's shape: every item has one option on every pool).
//!
//! It searches the same penalized objective as the generic [`tabu`](super::search::tabu),
//! `objective - sum_p alpha_p excess_p`, with the same moves (shift one item, swap two), but
//! over flat arrays indexed `item * pools + pool`, with one penalty weight per pool (raised
//! while the pool is over capacity, lowered while it is not: Yagiura, Ibaraki & Glover's
//! adaptive weights), and with the swap neighbourhood scanned in full for small problems and
//! through each item's best pools otherwise. About ten times the generic kernel's speed.

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::search::{EPS, Incumbent, Work, initial_alpha};
use super::state::State;
use super::{AssignmentProblem, NONE, within};

/// Whether the dense kernel applies.
pub(crate) fn applies(p: &AssignmentProblem) -> bool {
    p.dense && p.kinds == 1 && p.aff_other.is_empty() && p.may_skip.iter().all(|m| !m)
}

/// Settings of one tabu run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenseParams {
    /// Iterations without a new incumbent before returning.
    pub(crate) stall: u64,
    /// Tabu tenure: a move back is forbidden for `tenure + random(0..tenure)` iterations.
    pub(crate) tenure: u64,
    /// Shifts from which ejection chains start, per iteration.
    pub(crate) chain_starts: usize,
    /// Restrict every item's moves to its best pools (`ranked`).
    pub(crate) restricted: bool,
}

/// The dense kernel's state.
pub(crate) struct Dense<'p> {
    p: &'p AssignmentProblem,
    m: usize,
    n: usize,
    pub(crate) pool: Vec<u32>,
    load: Vec<f64>,
    cap: Vec<f64>,
    alpha: Vec<f64>,
    alpha0: f64,
    objective: f64,
    members: Vec<Vec<u32>>,
    slot: Vec<u32>,
    tabu: Vec<u64>,
    iter: u64,
}

#[inline]
fn ex(l: f64, c: f64) -> f64 {
    if within(l, c) { 0.0 } else { l - c }
}

impl<'p> Dense<'p> {
    /// From a choice vector with every item served.
    pub(crate) fn new(p: &'p AssignmentProblem, choice: &[u32]) -> Self {
        let m = p.pools;
        let n = p.num_items();
        let pool: Vec<u32> = choice
            .iter()
            .enumerate()
            .map(|(i, &o)| if o == NONE { 0 } else { o - p.start[i] })
            .collect();
        let mut d = Dense {
            p,
            m,
            n,
            pool,
            load: vec![0.0; m],
            cap: p.capacity.clone(),
            // Per raw unit of resource (the generic kernel's weights are per normalized unit).
            alpha: vec![initial_alpha(p) * p.inv_scale[0]; m],
            alpha0: initial_alpha(p) * p.inv_scale[0],
            objective: 0.0,
            members: vec![Vec::new(); m],
            slot: vec![0; n],
            tabu: vec![0; n * m],
            iter: 0,
        };
        d.rebuild();
        d
    }

    fn rebuild(&mut self) {
        self.load.iter_mut().for_each(|l| *l = 0.0);
        self.members.iter_mut().for_each(Vec::clear);
        self.objective = 0.0;
        for i in 0..self.n {
            let q = self.pool[i] as usize;
            self.load[q] += self.d(i, q);
            self.objective += self.v(i, q);
            self.slot[i] = self.members[q].len() as u32;
            self.members[q].push(i as u32);
        }
    }

    #[inline]
    fn v(&self, i: usize, q: usize) -> f64 {
        self.p.opt_value[i * self.m + q]
    }

    #[inline]
    fn d(&self, i: usize, q: usize) -> f64 {
        self.p.opt_demand[i * self.m + q]
    }

    /// The choice vector (global option indices).
    pub(crate) fn choice(&self) -> Vec<u32> {
        (0..self.n)
            .map(|i| self.p.start[i] + self.pool[i])
            .collect()
    }

    fn feasible(&self) -> bool {
        self.load.iter().zip(&self.cap).all(|(l, c)| within(*l, *c))
    }

    fn shift(&mut self, i: usize, q: usize) {
        let p = self.pool[i] as usize;
        self.load[p] -= self.d(i, p);
        self.load[q] += self.d(i, q);
        self.objective += self.v(i, q) - self.v(i, p);
        let s = self.slot[i] as usize;
        let list = &mut self.members[p];
        list.swap_remove(s);
        if s < list.len() {
            self.slot[list[s] as usize] = s as u32;
        }
        self.slot[i] = self.members[q].len() as u32;
        self.members[q].push(i as u32);
        self.pool[i] = q as u32;
    }

    /// Restarts the walk from `choice` (tabu list and weights kept).
    pub(crate) fn reset(&mut self, choice: &[u32]) {
        for (i, &o) in choice.iter().enumerate() {
            self.pool[i] = o - self.p.start[i];
        }
        self.rebuild();
    }

    /// Moves `k` random items to random pools.
    pub(crate) fn perturb(&mut self, k: usize, rng: &mut Xoshiro256PlusPlus) {
        for _ in 0..k {
            let i = rng.random_range(0..self.n);
            let q = rng.random_range(0..self.m);
            if q != self.pool[i] as usize {
                self.shift(i, q);
                self.tabu[i * self.m + q] = 0;
            }
        }
    }

    fn offer(&self, inc: &mut Incumbent) -> bool {
        if !self.feasible() || self.objective <= inc.objective + EPS * self.objective.abs().max(1.0)
        {
            return false;
        }
        let s = State::new(self.p, self.choice());
        inc.offer(&s)
    }

    /// Runs tabu search until `params.stall` iterations pass without a new incumbent or the
    /// budget ends.
    #[allow(clippy::too_many_lines, reason = "the move scan is one tight loop")]
    pub(crate) fn run(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        work: &mut Work,
        inc: &mut Incumbent,
        ranked: &[Vec<u32>],
        params: DenseParams,
    ) {
        let (n, m) = (self.n, self.m);
        if n == 0 || m < 2 {
            return;
        }
        self.offer(inc);
        let mut since = 0_u64;
        let mut starts: Vec<(f64, usize, usize)> = Vec::with_capacity(params.chain_starts + 1);
        // Large problems: each item's moves go to its best pools by reduced value only.
        let restricted = params.restricted && !ranked.is_empty();
        let mut allowed = vec![false; if restricted { n * m } else { 0 }];
        if restricted {
            for (i, r) in ranked.iter().enumerate() {
                for &q in r {
                    allowed[i * m + q as usize] = true;
                }
            }
        }
        while since < params.stall {
            self.iter += 1;
            since += 1;
            if self.iter.is_multiple_of(32) && (work.exhausted() || inc.reached(work.target)) {
                return;
            }
            let it = self.iter;
            let best_obj = inc.objective;
            let mut best = f64::NEG_INFINITY;
            let mut mv: (usize, usize, usize, usize) = (usize::MAX, 0, usize::MAX, 0);
            starts.clear();
            let mut floor = f64::NEG_INFINITY;
            let mut ties = 0_u32;
            let mut evals = 0_u64;
            let exc: Vec<f64> = (0..m).map(|q| ex(self.load[q], self.cap[q])).collect();
            let off = rng.random_range(0..n);
            // Shifts.
            for t in 0..n {
                let i = (off + t) % n;
                let p = self.pool[i] as usize;
                let base = i * m;
                let dp = self.p.opt_demand[base + p];
                let vp = self.p.opt_value[base + p];
                let gain_p = self.alpha[p] * (exc[p] - ex(self.load[p] - dp, self.cap[p]));
                let targets = if restricted { ranked[i].len() } else { m };
                for k in 0..targets {
                    let q = if restricted { ranked[i][k] as usize } else { k };
                    if q == p {
                        continue;
                    }
                    let dq = self.p.opt_demand[base + q];
                    let lq = self.load[q] + dq;
                    let add = if lq <= self.cap[q] {
                        0.0
                    } else {
                        ex(lq, self.cap[q]) - exc[q]
                    };
                    let dobj = self.p.opt_value[base + q] - vp;
                    // Chain start candidates: the best gains ignoring q's capacity.
                    let lead = dobj + gain_p;
                    if lead > floor && self.tabu[base + q] <= it {
                        if starts.len() < params.chain_starts {
                            starts.push((lead, i, q));
                        } else {
                            let (k, _) = starts
                                .iter()
                                .enumerate()
                                .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                                .expect("non-empty");
                            starts[k] = (lead, i, q);
                            floor = starts.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
                        }
                    }
                    let score = dobj + gain_p - self.alpha[q] * add;
                    if score < best {
                        continue;
                    }
                    if self.tabu[base + q] > it {
                        // Aspiration: a new best feasible solution.
                        let new_feasible = feasible_now_after(
                            &exc,
                            p,
                            q,
                            ex(self.load[p] - dp, self.cap[p]),
                            ex(lq, self.cap[q]),
                        );
                        if !(new_feasible && self.objective + dobj > best_obj + EPS) {
                            continue;
                        }
                    }
                    if score > best {
                        best = score;
                        mv = (i, q, usize::MAX, 0);
                        ties = 1;
                    } else {
                        ties += 1;
                        if rng.random_range(0..ties) == 0 {
                            mv = (i, q, usize::MAX, 0);
                        }
                    }
                }
                evals += m as u64;
            }
            // Swaps: i (on p) to q, j (on q) to p; every pair once.
            for i in 0..n {
                let p = self.pool[i] as usize;
                let bi = i * m;
                let (dip, vip) = (self.p.opt_demand[bi + p], self.p.opt_value[bi + p]);
                let targets = if restricted { ranked[i].len() } else { m };
                for k in 0..targets {
                    let q = if restricted { ranked[i][k] as usize } else { k };
                    if q == p || (!restricted && q < p) {
                        continue;
                    }
                    let (diq, viq) = (self.p.opt_demand[bi + q], self.p.opt_value[bi + q]);
                    let tabu_i = self.tabu[bi + q] > it;
                    let lp0 = self.load[p] - dip;
                    let lq0 = self.load[q] + diq;
                    for &j in &self.members[q] {
                        let j = j as usize;
                        let bj = j * m;
                        if restricted && !allowed[bj + p] {
                            continue;
                        }
                        let (djq, vjq) = (self.p.opt_demand[bj + q], self.p.opt_value[bj + q]);
                        let (djp, vjp) = (self.p.opt_demand[bj + p], self.p.opt_value[bj + p]);
                        evals += 1;
                        let (ep, eq) = (ex(lp0 + djp, self.cap[p]), ex(lq0 - djq, self.cap[q]));
                        let dobj = viq + vjp - vip - vjq;
                        let score =
                            dobj - self.alpha[p] * (ep - exc[p]) - self.alpha[q] * (eq - exc[q]);
                        if score < best {
                            continue;
                        }
                        if tabu_i || self.tabu[bj + p] > it {
                            let new_feasible = feasible_now_after(&exc, p, q, ep, eq);
                            if !(new_feasible && self.objective + dobj > best_obj + EPS) {
                                continue;
                            }
                        }
                        if score > best {
                            best = score;
                            mv = (i, q, j, p);
                            ties = 1;
                        } else {
                            ties += 1;
                            if rng.random_range(0..ties) == 0 {
                                mv = (i, q, j, p);
                            }
                        }
                    }
                }
            }
            // Ejection chains of two shifts: i (on p) to q, then j (on q) to r (r = p is a
            // swap). Started from the most promising shifts: the best objective gains
            // regardless of q's capacity, which the ejection of j relieves.
            starts.sort_by(|a, b| b.0.total_cmp(&a.0));
            for &(_, i, q) in starts.iter().take(params.chain_starts) {
                let p = self.pool[i] as usize;
                let bi = i * m;
                let (dip, vip) = (self.p.opt_demand[bi + p], self.p.opt_value[bi + p]);
                let (diq, viq) = (self.p.opt_demand[bi + q], self.p.opt_value[bi + q]);
                let tabu_i = self.tabu[bi + q] > it;
                let lp0 = self.load[p] - dip;
                let lq0 = self.load[q] + diq;
                for &j in &self.members[q] {
                    let j = j as usize;
                    let bj = j * m;
                    let (djq, vjq) = (self.p.opt_demand[bj + q], self.p.opt_value[bj + q]);
                    let lq = lq0 - djq;
                    let eq = ex(lq, self.cap[q]);
                    for r in 0..m {
                        if r == q || r == p {
                            continue;
                        }
                        evals += 1;
                        let (djr, vjr) = (self.p.opt_demand[bj + r], self.p.opt_value[bj + r]);
                        let dobj = viq - vip + vjr - vjq;
                        let (ep, er, pen) = if r == p {
                            let ep = ex(lp0 + djr, self.cap[p]);
                            (ep, ep, self.alpha[p] * (ep - exc[p]))
                        } else {
                            let ep = ex(lp0, self.cap[p]);
                            let er = ex(self.load[r] + djr, self.cap[r]);
                            (
                                ep,
                                er,
                                self.alpha[p] * (ep - exc[p]) + self.alpha[r] * (er - exc[r]),
                            )
                        };
                        let score = dobj - pen - self.alpha[q] * (eq - exc[q]);
                        if score < best {
                            continue;
                        }
                        if tabu_i || self.tabu[bj + r] > it {
                            let ok = ep <= 0.0
                                && er <= 0.0
                                && eq <= 0.0
                                && exc
                                    .iter()
                                    .enumerate()
                                    .all(|(x, e)| x == p || x == q || x == r || *e <= 0.0);
                            if !(ok && self.objective + dobj > best_obj + EPS) {
                                continue;
                            }
                        }
                        if score > best {
                            best = score;
                            mv = (i, q, j, r);
                            ties = 1;
                        } else {
                            ties += 1;
                            if rng.random_range(0..ties) == 0 {
                                mv = (i, q, j, r);
                            }
                        }
                    }
                }
            }
            work.spend(evals);
            let (i, q, j, r) = mv;
            if i == usize::MAX {
                return;
            }
            let tenure = params.tenure.max(1);
            let p = self.pool[i] as usize;
            self.shift(i, q);
            self.tabu[i * m + p] = it + tenure + rng.random_range(0..tenure);
            if j != usize::MAX {
                self.shift(j, r);
                self.tabu[j * m + q] = it + tenure + rng.random_range(0..tenure);
            }
            // Adaptive weights.
            let mut any_over = false;
            for r in 0..m {
                if within(self.load[r], self.cap[r]) {
                    self.alpha[r] = (self.alpha[r] / 1.01).max(self.alpha0 * 0.01);
                } else {
                    any_over = true;
                    self.alpha[r] = (self.alpha[r] * 1.05).min(self.alpha0 * 100.0);
                }
            }
            if !any_over && self.offer(inc) {
                since = 0;
            }
            if self.iter.is_multiple_of(8192) {
                self.rebuild();
            }
        }
    }
}

/// Whether every pool is within capacity after a move that sets the excess of `p` to `ep`
/// and of `q` to `eq`.
#[inline]
fn feasible_now_after(exc: &[f64], p: usize, q: usize, ep: f64, eq: f64) -> bool {
    ep <= 0.0
        && eq <= 0.0
        && exc
            .iter()
            .enumerate()
            .all(|(r, e)| r == p || r == q || *e <= 0.0)
}
