//! The flat model every sub-problem is reduced to: a generalized assignment with optional
//! "unserved", pool-dependent demand and value per (item, option), and pairwise affinity.
//!
//! An *item* (an agent, or a block of agents at level 1) takes at most one of its *options*;
//! an option is a pool, a value and a demand vector on that pool. Items that must be assigned
//! (every job of a GAP instance) take exactly one. The objective, maximized, is
//!
//! ```text
//! sum_i value(choice_i)  -  sum_{(i,j)} w_ij [i and j not served on the same pool]
//! ```
//!
//! where an unserved item contributes its *unserved value* (0, or minus its migration cost),
//! subject to the capacity of every pool in every resource kind.

pub(crate) mod bound;
pub(crate) mod construct;
pub(crate) mod dense;
pub(crate) mod search;
pub(crate) mod solve;
pub(crate) mod state;
pub(crate) mod window;

use serde::{Deserialize, Serialize};

use crate::ScheduleError;

/// Marks an unserved item in the internal choice vectors.
pub(crate) const NONE: u32 = u32::MAX;

/// Relative slack of capacity checks: absorbs the rounding of sums, never a real excess.
/// Stricter than the resource manager's, so that every allocation the scheduler returns is
/// accepted by [`ResourceManager::apply_allocation`](qorch_resources::ResourceManager::apply_allocation).
pub(crate) const CAP_EPS: f64 = 1e-12;

/// Whether `load` fits within `cap` up to rounding.
#[inline]
pub(crate) fn within(load: f64, cap: f64) -> bool {
    load <= cap + CAP_EPS * cap.abs().max(1.0)
}

/// A validated flat assignment problem. Build one with [`AssignmentBuilder`].
///
/// # Examples
///
/// ```
/// use qorch_scheduler::AssignmentBuilder;
///
/// // Two pools of capacity 10 (one kind); three items, each fitting either pool.
/// let mut b = AssignmentBuilder::new(1, vec![10.0, 10.0]);
/// for (v, d) in [(5.0, 6.0), (4.0, 5.0), (3.0, 5.0)] {
///     let i = b.add_item(Some(0.0)); // may stay unserved
///     b.add_option(i, 0, v, &[d]);
///     b.add_option(i, 1, v, &[d]);
/// }
/// let p = b.build().unwrap();
/// assert_eq!((p.num_items(), p.num_pools(), p.num_options()), (3, 2, 6));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentProblem {
    pub(crate) kinds: usize,
    pub(crate) pools: usize,
    /// `pools * kinds`.
    pub(crate) capacity: Vec<f64>,
    /// Per kind: one over the mean positive capacity (makes kinds comparable).
    pub(crate) inv_scale: Vec<f64>,
    /// `items + 1` offsets into the option arrays.
    pub(crate) start: Vec<u32>,
    pub(crate) opt_pool: Vec<u32>,
    pub(crate) opt_value: Vec<f64>,
    /// `options * kinds`.
    pub(crate) opt_demand: Vec<f64>,
    /// Per item: may it stay unserved, and its value then.
    pub(crate) may_skip: Vec<bool>,
    pub(crate) skip_value: Vec<f64>,
    /// Symmetric affinity adjacency (CSR).
    pub(crate) aff_start: Vec<u32>,
    pub(crate) aff_other: Vec<u32>,
    pub(crate) aff_weight: Vec<f64>,
    /// Every item has exactly one option per pool, in pool order (GAP): option of item i on
    /// pool p is `start[i] + p`.
    pub(crate) dense: bool,
    /// All demands and capacities are integers (slack-bit encodings are exact).
    pub(crate) integral: bool,
}

impl AssignmentProblem {
    /// Number of items.
    pub fn num_items(&self) -> usize {
        self.may_skip.len()
    }

    /// Number of pools.
    pub fn num_pools(&self) -> usize {
        self.pools
    }

    /// Number of resource kinds.
    pub fn num_kinds(&self) -> usize {
        self.kinds
    }

    /// Number of options over all items.
    pub fn num_options(&self) -> usize {
        self.opt_pool.len()
    }

    /// Number of affinity edges.
    pub fn num_edges(&self) -> usize {
        self.aff_other.len() / 2
    }

    /// The options of item `i`, as global option indices.
    #[inline]
    pub(crate) fn options(&self, i: usize) -> std::ops::Range<usize> {
        self.start[i] as usize..self.start[i + 1] as usize
    }

    /// The demand of option `o`.
    #[inline]
    pub(crate) fn demand(&self, o: usize) -> &[f64] {
        &self.opt_demand[o * self.kinds..(o + 1) * self.kinds]
    }

    /// The size of option `o`'s demand in units of a mean pool (sum over kinds).
    #[inline]
    pub(crate) fn size(&self, o: usize) -> f64 {
        self.demand(o)
            .iter()
            .zip(&self.inv_scale)
            .map(|(d, s)| d * s)
            .sum()
    }

    /// The affinity neighbours of item `i`.
    #[inline]
    pub(crate) fn neighbours(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = self.aff_start[i] as usize..self.aff_start[i + 1] as usize;
        self.aff_other[r.clone()]
            .iter()
            .zip(&self.aff_weight[r])
            .map(|(&j, &w)| (j as usize, w))
    }

    /// Whether item `i` has affinity edges.
    #[inline]
    pub(crate) fn has_neighbours(&self, i: usize) -> bool {
        self.aff_start[i] != self.aff_start[i + 1]
    }

    /// The option of item `i` on pool `p` with the highest value, if any.
    pub(crate) fn option_on(&self, i: usize, p: usize) -> Option<usize> {
        if self.dense {
            return Some(self.start[i] as usize + p);
        }
        let r = self.options(i);
        let pools = &self.opt_pool[r.clone()];
        // Options are sorted by (pool, value descending).
        let k = pools.partition_point(|&q| (q as usize) < p);
        (k < pools.len() && pools[k] as usize == p).then_some(r.start + k)
    }

    /// The pool of item `i` under `choice` (`NONE` if unserved).
    #[inline]
    pub(crate) fn pool_of_choice(&self, o: u32) -> u32 {
        if o == NONE {
            NONE
        } else {
            self.opt_pool[o as usize]
        }
    }

    /// The objective of a solution (see the module docs).
    ///
    /// # Panics
    ///
    /// If the solution does not belong to this problem.
    pub fn objective(&self, solution: &AssignmentSolution) -> f64 {
        let choice = self.global(solution);
        state::State::new(self, choice).objective()
    }

    /// Whether a solution respects every capacity and assigns every item that must be.
    ///
    /// # Panics
    ///
    /// If the solution does not belong to this problem.
    pub fn is_feasible(&self, solution: &AssignmentSolution) -> bool {
        let choice = self.global(solution);
        let s = state::State::new(self, choice);
        s.is_feasible()
    }

    pub(crate) fn global(&self, solution: &AssignmentSolution) -> Vec<u32> {
        assert_eq!(
            solution.choices.len(),
            self.num_items(),
            "the solution has one choice per item"
        );
        solution
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Some(k) => {
                    let o = self.start[i] + k;
                    assert!(o < self.start[i + 1], "option {k} of item {i} out of range");
                    o
                }
                None => NONE,
            })
            .collect()
    }

    pub(crate) fn local(&self, choice: &[u32]) -> AssignmentSolution {
        AssignmentSolution {
            choices: choice
                .iter()
                .enumerate()
                .map(|(i, &o)| (o != NONE).then(|| o - self.start[i]))
                .collect(),
        }
    }

    /// Number of options of item `i` (valid option indices are `0..num_options_of(i)`).
    ///
    /// # Panics
    ///
    /// If the item does not exist.
    pub fn num_options_of(&self, i: usize) -> u32 {
        self.start[i + 1] - self.start[i]
    }

    /// The pool of option `k` of item `i`.
    ///
    /// # Panics
    ///
    /// If the item or option does not exist.
    pub fn option_pool(&self, i: usize, k: u32) -> usize {
        let o = self.start[i] + k;
        assert!(o < self.start[i + 1], "option {k} of item {i} out of range");
        self.opt_pool[o as usize] as usize
    }
}

/// A solution: for every item, the index of its chosen option, or `None` for unserved.
///
/// Option indices count the item's options as the problem stores them: sorted by pool (then
/// by value, highest first), without those the builder dropped because they can never fit.
/// [`AssignmentProblem::option_pool`] gives an option's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentSolution {
    /// One choice per item.
    pub choices: Vec<Option<u32>>,
}

/// Builds an [`AssignmentProblem`] item by item.
#[derive(Debug, Clone)]
pub struct AssignmentBuilder {
    kinds: usize,
    capacity: Vec<f64>,
    items: Vec<(bool, f64)>,
    /// (item, pool, value, demand start)
    options: Vec<(u32, u32, f64, usize)>,
    demands: Vec<f64>,
    edges: Vec<(u32, u32, f64)>,
    error: Option<ScheduleError>,
}

impl AssignmentBuilder {
    /// A problem with `kinds` resource kinds and `capacity.len() / kinds` pools, whose
    /// capacities are given pool by pool.
    pub fn new(kinds: usize, capacity: Vec<f64>) -> Self {
        let mut b = AssignmentBuilder {
            kinds,
            capacity,
            items: Vec::new(),
            options: Vec::new(),
            demands: Vec::new(),
            edges: Vec::new(),
            error: None,
        };
        if kinds == 0 || !b.capacity.len().is_multiple_of(kinds) {
            b.error = Some(ScheduleError::InvalidConfig(format!(
                "{} capacities do not split into pools of {kinds} kinds",
                b.capacity.len()
            )));
        } else if b.capacity.is_empty() {
            b.error = Some(ScheduleError::NoPools);
        }
        b
    }

    /// Number of pools.
    pub fn num_pools(&self) -> usize {
        self.capacity.len().checked_div(self.kinds).unwrap_or(0)
    }

    /// Adds an item and returns its index. `unserved` is the value of leaving it unserved, or
    /// `None` if it must be assigned.
    pub fn add_item(&mut self, unserved: Option<f64>) -> usize {
        self.items
            .push((unserved.is_some(), unserved.unwrap_or(0.0)));
        self.items.len() - 1
    }

    /// Adds an option to item `item`: `value` if the item is placed on `pool`, using
    /// `demand` (one amount per kind). Options that exceed the pool's capacity are dropped
    /// by [`build`](Self::build) (they can never be chosen).
    pub fn add_option(
        &mut self,
        item: usize,
        pool: usize,
        value: f64,
        demand: &[f64],
    ) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let bad = |why: String| ScheduleError::InvalidItem { item, why };
        if item >= self.items.len() {
            self.error = Some(bad("no such item".into()));
        } else if pool >= self.num_pools() {
            self.error = Some(bad(format!("pool {pool} out of range")));
        } else if demand.len() != self.kinds {
            self.error = Some(bad(format!(
                "demand has {} amounts, expected {}",
                demand.len(),
                self.kinds
            )));
        } else if !value.is_finite() || demand.iter().any(|d| !d.is_finite() || *d < 0.0) {
            self.error = Some(bad(format!(
                "value {value} and demand {demand:?} must be finite, demand non-negative"
            )));
        } else {
            self.options
                .push((item as u32, pool as u32, value, self.demands.len()));
            self.demands.extend_from_slice(demand);
        }
        self
    }

    /// Adds an affinity edge: the objective loses `weight` unless items `a` and `b` are served
    /// on the same pool. Repeated edges add up.
    pub fn add_affinity(&mut self, a: usize, b: usize, weight: f64) -> &mut Self {
        if self.error.is_some() || weight == 0.0 {
            return self;
        }
        if a == b || a >= self.items.len() || b >= self.items.len() {
            self.error = Some(ScheduleError::InvalidItem {
                item: a,
                why: format!("affinity edge ({a}, {b}) must join two different existing items"),
            });
        } else if !(weight.is_finite() && weight > 0.0) {
            self.error = Some(ScheduleError::InvalidItem {
                item: a,
                why: format!("affinity weight must be positive and finite, got {weight}"),
            });
        } else {
            self.edges.push((a as u32, b as u32, weight));
        }
        self
    }

    /// Validates and builds the problem.
    ///
    /// # Errors
    ///
    /// The first invalid input, or [`ScheduleError::NoFeasibleOption`] for an item that must be
    /// assigned but has no option that fits.
    #[allow(clippy::too_many_lines, reason = "one validation pass per input table")]
    pub fn build(self) -> Result<AssignmentProblem, ScheduleError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let kinds = self.kinds;
        let pools = self.num_pools();
        if self.capacity.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return Err(ScheduleError::InvalidConfig(
                "capacities must be finite and non-negative".into(),
            ));
        }
        let n = self.items.len();
        let mut by_item: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (k, &(i, p, _, d)) in self.options.iter().enumerate() {
            let cap = &self.capacity[p as usize * kinds..(p as usize + 1) * kinds];
            let fits = self.demands[d..d + kinds]
                .iter()
                .zip(cap)
                .all(|(a, c)| within(*a, *c));
            if fits {
                by_item[i as usize].push(k);
            }
        }
        let mut start = Vec::with_capacity(n + 1);
        let mut opt_pool = Vec::with_capacity(self.options.len());
        let mut opt_value = Vec::with_capacity(self.options.len());
        let mut opt_demand = Vec::with_capacity(self.options.len() * kinds);
        let mut dense = true;
        start.push(0_u32);
        for (i, opts) in by_item.iter_mut().enumerate() {
            if opts.is_empty() && !self.items[i].0 {
                return Err(ScheduleError::NoFeasibleOption { item: i });
            }
            opts.sort_by(|&a, &b| {
                let (oa, ob) = (&self.options[a], &self.options[b]);
                oa.1.cmp(&ob.1).then(ob.2.total_cmp(&oa.2))
            });
            dense &= opts.len() == pools
                && opts
                    .iter()
                    .enumerate()
                    .all(|(p, &k)| self.options[k].1 as usize == p);
            for &k in opts.iter() {
                let (_, p, v, d) = self.options[k];
                opt_pool.push(p);
                opt_value.push(v);
                opt_demand.extend_from_slice(&self.demands[d..d + kinds]);
            }
            start.push(
                u32::try_from(opt_pool.len()).map_err(|_| {
                    ScheduleError::InvalidConfig("more than 4 billion options".into())
                })?,
            );
        }
        // Affinity: merge duplicates, symmetric CSR.
        let mut edges: Vec<(u32, u32, f64)> = self
            .edges
            .iter()
            .map(|&(a, b, w)| (a.min(b), a.max(b), w))
            .collect();
        edges.sort_by_key(|&(a, b, _)| (a, b));
        let mut merged: Vec<(u32, u32, f64)> = Vec::with_capacity(edges.len());
        for e in edges {
            match merged.last_mut() {
                Some(l) if l.0 == e.0 && l.1 == e.1 => l.2 += e.2,
                _ => merged.push(e),
            }
        }
        let (rows, adj) = qorch_qubo::symmetric_csr(n, &merged);
        let aff_start: Vec<u32> = rows.iter().map(|&s| s as u32).collect();
        let aff_other: Vec<u32> = adj.iter().map(|c| c.var).collect();
        let aff_weight: Vec<f64> = adj.iter().map(|c| c.weight).collect();
        let inv_scale = (0..kinds)
            .map(|r| {
                let (sum, cnt) = (0..pools)
                    .map(|p| self.capacity[p * kinds + r])
                    .filter(|c| *c > 0.0)
                    .fold((0.0, 0_usize), |(s, c), x| (s + x, c + 1));
                if cnt == 0 { 1.0 } else { cnt as f64 / sum }
            })
            .collect();
        let integral = self.capacity.iter().all(|c| c.fract() == 0.0)
            && opt_demand.iter().all(|d: &f64| d.fract() == 0.0);
        Ok(AssignmentProblem {
            kinds,
            pools,
            capacity: self.capacity,
            inv_scale,
            start,
            opt_pool,
            opt_value,
            opt_demand,
            may_skip: self.items.iter().map(|x| x.0).collect(),
            skip_value: self.items.iter().map(|x| x.1).collect(),
            aff_start,
            aff_other,
            aff_weight,
            dense: dense && n > 0,
            integral,
        })
    }
}

#[cfg(test)]
mod tests;
