//! An assignment with its loads, value and affinity cost kept up to date move by move.

use super::{AssignmentProblem, NONE, within};

/// Per-pool member lists with O(1) removal.
#[derive(Debug, Clone)]
pub(crate) struct Members {
    pub(crate) list: Vec<Vec<u32>>,
    slot: Vec<u32>,
}

/// The incremental state of one assignment.
#[derive(Debug, Clone)]
pub(crate) struct State<'p> {
    pub(crate) p: &'p AssignmentProblem,
    pub(crate) choice: Vec<u32>,
    pub(crate) load: Vec<f64>,
    value: f64,
    aff: f64,
    pub(crate) members: Option<Members>,
}

impl<'p> State<'p> {
    /// The state of `choice` (global option indices, `NONE` for unserved).
    pub(crate) fn new(p: &'p AssignmentProblem, choice: Vec<u32>) -> Self {
        let mut load = vec![0.0; p.pools * p.kinds];
        let mut value = 0.0;
        for (i, &o) in choice.iter().enumerate() {
            value += item_value(p, i, o);
            if o != NONE {
                let base = p.opt_pool[o as usize] as usize * p.kinds;
                for (l, d) in load[base..base + p.kinds]
                    .iter_mut()
                    .zip(p.demand(o as usize))
                {
                    *l += d;
                }
            }
        }
        let mut aff = 0.0;
        for i in 0..p.num_items() {
            let pi = p.pool_of_choice(choice[i]);
            for (j, w) in p.neighbours(i) {
                if j > i && split(pi, p.pool_of_choice(choice[j])) {
                    aff += w;
                }
            }
        }
        State {
            p,
            choice,
            load,
            value,
            aff,
            members: None,
        }
    }

    /// Builds the per-pool member lists (kept up to date by [`apply`](Self::apply) from now on).
    pub(crate) fn track_members(&mut self) {
        let mut list = vec![Vec::new(); self.p.pools];
        let mut slot = vec![u32::MAX; self.choice.len()];
        for (i, &o) in self.choice.iter().enumerate() {
            if o != NONE {
                let pl = &mut list[self.p.opt_pool[o as usize] as usize];
                slot[i] = pl.len() as u32;
                pl.push(i as u32);
            }
        }
        self.members = Some(Members { list, slot });
    }

    /// The objective: values minus the affinity cost of split pairs.
    #[inline]
    pub(crate) fn objective(&self) -> f64 {
        self.value - self.aff
    }

    /// The pool of item `i` (`NONE` if unserved).
    #[inline]
    pub(crate) fn pool(&self, i: usize) -> u32 {
        self.p.pool_of_choice(self.choice[i])
    }

    /// The value item `i` contributes with option `o`.
    #[inline]
    pub(crate) fn value_of(&self, i: usize, o: u32) -> f64 {
        item_value(self.p, i, o)
    }

    /// The change of the affinity cost if item `i` moved to pool `to` (`NONE`: unserved).
    #[inline]
    pub(crate) fn delta_aff(&self, i: usize, to: u32) -> f64 {
        let from = self.pool(i);
        if from == to {
            return 0.0;
        }
        let mut d = 0.0;
        for (j, w) in self.p.neighbours(i) {
            let pj = self.pool(j);
            d += w * (f64::from(u8::from(split(to, pj))) - f64::from(u8::from(split(from, pj))));
        }
        d
    }

    /// The change of the affinity cost if items `i` and `j` exchanged pools.
    pub(crate) fn delta_aff_swap(&self, i: usize, j: usize) -> f64 {
        let (pi, pj) = (self.pool(i), self.pool(j));
        if pi == pj {
            return 0.0;
        }
        let mut d = 0.0;
        for (a, to, other) in [(i, pj, j), (j, pi, i)] {
            let from = self.pool(a);
            for (b, w) in self.p.neighbours(a) {
                if b == other {
                    continue; // i and j stay split after the exchange.
                }
                let pb = self.pool(b);
                d +=
                    w * (f64::from(u8::from(split(to, pb))) - f64::from(u8::from(split(from, pb))));
            }
        }
        d
    }

    /// The change of the objective if item `i` took option `o` (`NONE`: unserved).
    #[inline]
    pub(crate) fn delta_objective(&self, i: usize, o: u32) -> f64 {
        let d = self.value_of(i, o) - self.value_of(i, self.choice[i]);
        if self.p.has_neighbours(i) {
            d - self.delta_aff(i, self.p.pool_of_choice(o))
        } else {
            d
        }
    }

    /// Normalized excess of pool `p` over its capacity.
    #[inline]
    pub(crate) fn excess(&self, p: usize) -> f64 {
        let k = self.p.kinds;
        let mut e = 0.0;
        for r in 0..k {
            let over = self.load[p * k + r] - self.p.capacity[p * k + r];
            if over > 0.0 && !within(self.load[p * k + r], self.p.capacity[p * k + r]) {
                e += over * self.p.inv_scale[r];
            }
        }
        e
    }

    /// Normalized excess of pool `p` after removing option `minus` and adding option `plus`
    /// (either may be `NONE`).
    #[inline]
    pub(crate) fn excess_with(&self, p: usize, minus: u32, plus: u32) -> f64 {
        let k = self.p.kinds;
        let mut e = 0.0;
        for r in 0..k {
            let mut l = self.load[p * k + r];
            if minus != NONE {
                l -= self.p.opt_demand[minus as usize * k + r];
            }
            if plus != NONE {
                l += self.p.opt_demand[plus as usize * k + r];
            }
            let c = self.p.capacity[p * k + r];
            if l > c && !within(l, c) {
                e += (l - c) * self.p.inv_scale[r];
            }
        }
        e
    }

    /// The change of the total excess if item `i` took option `o`.
    #[inline]
    pub(crate) fn delta_excess(&self, i: usize, o: u32) -> f64 {
        let cur = self.choice[i];
        let (from, to) = (self.p.pool_of_choice(cur), self.p.pool_of_choice(o));
        if from == to {
            if from == NONE {
                return 0.0;
            }
            let p = from as usize;
            return self.excess_with(p, cur, o) - self.excess(p);
        }
        let mut d = 0.0;
        if from != NONE {
            d += self.excess_with(from as usize, cur, NONE) - self.excess(from as usize);
        }
        if to != NONE {
            d += self.excess_with(to as usize, NONE, o) - self.excess(to as usize);
        }
        d
    }

    /// Whether option `o` of item `i` fits (counting `i`'s current load as freed if it is on
    /// the same pool).
    #[inline]
    pub(crate) fn fits(&self, i: usize, o: u32) -> bool {
        if o == NONE {
            return true;
        }
        let k = self.p.kinds;
        let p = self.p.opt_pool[o as usize] as usize;
        let cur = self.choice[i];
        let same = cur != NONE && self.p.opt_pool[cur as usize] as usize == p;
        (0..k).all(|r| {
            let mut l = self.load[p * k + r] + self.p.opt_demand[o as usize * k + r];
            if same {
                l -= self.p.opt_demand[cur as usize * k + r];
            }
            within(l, self.p.capacity[p * k + r])
        })
    }

    /// Whether pool `p` is within its capacity once option `o` (on `p`) has left it.
    #[inline]
    pub(crate) fn fits_without(&self, p: usize, o: u32) -> bool {
        let k = self.p.kinds;
        (0..k).all(|r| {
            within(
                self.load[p * k + r] - self.p.opt_demand[o as usize * k + r],
                self.p.capacity[p * k + r],
            )
        })
    }

    /// Whether pool `p` is within its capacity.
    #[inline]
    pub(crate) fn pool_ok(&self, p: usize) -> bool {
        let k = self.p.kinds;
        (0..k).all(|r| within(self.load[p * k + r], self.p.capacity[p * k + r]))
    }

    /// Total normalized excess.
    pub(crate) fn total_excess(&self) -> f64 {
        (0..self.p.pools).map(|p| self.excess(p)).sum()
    }

    /// Items that must be served but are not.
    pub(crate) fn missing(&self) -> usize {
        self.choice
            .iter()
            .enumerate()
            .filter(|(i, o)| **o == NONE && !self.p.may_skip[*i])
            .count()
    }

    /// Within every capacity, every mandatory item served.
    pub(crate) fn is_feasible(&self) -> bool {
        self.missing() == 0 && (0..self.p.pools).all(|p| self.pool_ok(p))
    }

    /// Sets item `i` to option `o`.
    pub(crate) fn apply(&mut self, i: usize, o: u32) {
        let cur = self.choice[i];
        if cur == o {
            return;
        }
        let k = self.p.kinds;
        let (from, to) = (self.p.pool_of_choice(cur), self.p.pool_of_choice(o));
        if self.p.has_neighbours(i) {
            self.aff += self.delta_aff(i, to);
        }
        self.value += self.value_of(i, o) - self.value_of(i, cur);
        if cur != NONE {
            let b = from as usize * k;
            for r in 0..k {
                self.load[b + r] -= self.p.opt_demand[cur as usize * k + r];
            }
        }
        if o != NONE {
            let b = to as usize * k;
            for r in 0..k {
                self.load[b + r] += self.p.opt_demand[o as usize * k + r];
            }
        }
        self.choice[i] = o;
        if from != to
            && let Some(m) = &mut self.members
        {
            if from != NONE {
                let list = &mut m.list[from as usize];
                let s = m.slot[i] as usize;
                list.swap_remove(s);
                if s < list.len() {
                    m.slot[list[s] as usize] = s as u32;
                }
                m.slot[i] = u32::MAX;
            }
            if to != NONE {
                let list = &mut m.list[to as usize];
                m.slot[i] = list.len() as u32;
                list.push(i as u32);
            }
        }
    }

    /// Recomputes value, affinity cost and loads from scratch (removes rounding drift).
    pub(crate) fn resync(&mut self) {
        let fresh = State::new(self.p, std::mem::take(&mut self.choice));
        self.choice = fresh.choice;
        self.load = fresh.load;
        self.value = fresh.value;
        self.aff = fresh.aff;
    }
}

/// The value item `i` contributes with option `o` (`NONE`: its unserved value).
#[inline]
pub(crate) fn item_value(p: &AssignmentProblem, i: usize, o: u32) -> f64 {
    if o == NONE {
        p.skip_value[i]
    } else {
        p.opt_value[o as usize]
    }
}

/// Whether two items on pools `a` and `b` count as split (not both served on one pool).
#[inline]
pub(crate) fn split(a: u32, b: u32) -> bool {
    a == NONE || a != b
}
