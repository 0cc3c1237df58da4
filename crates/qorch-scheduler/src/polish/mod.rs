//! Polish: an exact local search over placements, run after the QUBO-based solves.
//!
//! Given who is on a pool, the best amounts are known in closed form. Value is linear per
//! kind and grants may take any amount between minimum and desired, kind by kind, so each
//! agent on a pool gets its minimum and what is left of a kind goes to the heaviest agents
//! first: a fractional knapsack per pool and kind, whose value as a function of the room
//! left is concave and piecewise linear ([`Lane::fill`]). The solves before this one see an
//! agent at two levels only (desired or minimum) and top agents up at the end; here every
//! move (serving, unserving or relocating an agent, or swapping two) is scored with the
//! optimal amounts it leads to, migration and communication included, and is made only if
//! it gains. The final grants are those optimal amounts.
//!
//! A lane keeps its flexible parts sorted by weight with prefix sums, so that the value of
//! a lane with one agent added and one removed is a few binary searches; an accepted move
//! rebuilds the two pools' lanes from the changed position on.

mod lanes;

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::assign::search::shuffle;
use crate::problem::Flat;

use lanes::{Flex, Lane, MAX_CLASSES, Part, Parts};

/// A hint to load the cache line holding `x` (no effect where the target has no such hint).
#[inline]
#[allow(unsafe_code, reason = "a prefetch hint reads nothing and cannot fault")]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint: it never faults and changes no memory; `x` is a
    // valid reference anyway, and SSE is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::from_ref(x).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// How many agents ahead in a pass's order the polish asks for an agent's fields.
const PREFETCH_AHEAD: usize = 8;

/// One agent's placement: dense pool and amount.
pub(crate) type Placement = Option<(u32, Vec<f64>)>;

/// Gains below this are rounding, not progress.
const EPS: f64 = 1e-12;

/// Budget and seed of a polish.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolishParams {
    /// Passes over the agents (each stops early once a pass gains nothing).
    pub(crate) passes: usize,
    /// Members of a full pool tried per swap attempt.
    pub(crate) swap_samples: usize,
    /// Candidate pools per agent beyond its own, its home and its partners' pools (all of
    /// them when the scope has at most this many).
    pub(crate) candidates: usize,
    /// A pass that gains no more than this is the last.
    pub(crate) tolerance: f64,
    pub(crate) seed: u64,
    pub(crate) deadline: Option<Instant>,
}

/// What a polish did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PolishStats {
    pub(crate) passes: usize,
    pub(crate) moves: u64,
    pub(crate) gained: f64,
    pub(crate) evaluations: u64,
}

/// The scope's agents in local terms, one array per field (the search visits them in
/// shuffled order, so compact arrays matter more than records).
struct Members {
    weight: Vec<f64>,
    /// Weight class (index into the distinct weights, heaviest first), when lanes use them.
    class: Vec<u32>,
    /// Minimum and flexible amount (desired minus minimum), `kinds` per agent.
    min: Vec<f64>,
    flex: Vec<f64>,
    /// Local pool of the current placement (`u32::MAX`: none, or outside the scope).
    home: Vec<u32>,
    /// Cost of leaving the current placement (0 without one).
    migration: Vec<f64>,
    /// Local pools an agent may use; `None`: all of them.
    allowed: Vec<Option<Vec<u32>>>,
    /// Neighbours in the scope and weights, in compressed rows.
    adj_start: Vec<u32>,
    adj: Vec<(u32, f64)>,
}

impl Members {
    fn allows(&self, i: usize, q: u32) -> bool {
        self.allowed[i]
            .as_ref()
            .is_none_or(|l| l.binary_search(&q).is_ok())
    }

    fn adj(&self, i: usize) -> &[(u32, f64)] {
        &self.adj[self.adj_start[i] as usize..self.adj_start[i + 1] as usize]
    }
}

/// The local search's state over a scope of agents and pools.
struct Polisher<'a> {
    kinds: usize,
    np: u32,
    m: Members,
    lanes: Vec<Lane>,
    /// Per local pool: its agents (local) and each agent's index there.
    on: Vec<Vec<u32>>,
    slot: Vec<u32>,
    at: Vec<Option<u32>>,
    /// Per kind: the value of one unit (the size's scale).
    scale: &'a [f64],
}

impl Polisher<'_> {
    fn part(&self, i: usize, r: usize) -> Part {
        Part {
            w: self.m.weight[i],
            lo: self.m.min[i * self.kinds + r],
            f: self.m.flex[i * self.kinds + r],
            agent: i as u32,
            class: self.m.class[i],
        }
    }

    /// Asks the CPU to load agent `i`'s fields before they are needed (the passes visit
    /// agents in random order, so each visit would otherwise wait on several cache misses).
    #[inline]
    fn prefetch(&self, i: usize) {
        let k = self.kinds;
        prefetch(&self.m.weight[i]);
        prefetch(&self.m.class[i]);
        prefetch(&self.m.min[i * k]);
        prefetch(&self.m.flex[i * k]);
        prefetch(&self.m.home[i]);
        prefetch(&self.m.migration[i]);
        prefetch(&self.m.allowed[i]);
        prefetch(&self.m.adj_start[i]);
        prefetch(&self.at[i]);
        prefetch(&self.slot[i]);
    }

    /// Loads the placements of agent `i`'s partners (its adjacency row is loaded by now).
    #[inline]
    fn prefetch_partners(&self, i: usize) {
        let row = self.m.adj(i);
        if let Some(first) = row.first() {
            prefetch(first);
        }
        for &(j, _) in row.iter().take(4) {
            prefetch(&self.at[j as usize]);
        }
    }

    /// Change of pool `q`'s value with `out` leaving and `inn` joining; `None` if infeasible.
    fn pool_delta(&self, q: u32, out: Option<usize>, inn: Option<usize>) -> Option<f64> {
        let k = self.kinds;
        let mut d = 0.0;
        for r in 0..k {
            let lane = &self.lanes[q as usize * k + r];
            let after =
                lane.value_with(out.map(|i| self.part(i, r)), inn.map(|i| self.part(i, r)))?;
            d += self.scale[r] * (after - lane.value);
        }
        Some(d)
    }

    /// Migration cost of `i` at `at`.
    fn migration(&self, i: usize, at: Option<u32>) -> f64 {
        if at == Some(self.m.home[i]) {
            0.0
        } else {
            self.m.migration[i]
        }
    }

    /// Change of the communication cost if `i` moves to `to` (the others where they are).
    fn comm_delta(&self, i: usize, to: Option<u32>) -> f64 {
        let from = self.at[i];
        let split = |x: Option<u32>, y: Option<u32>| x.is_none() || x != y;
        self.m
            .adj(i)
            .iter()
            .map(|&(j, w)| {
                let pj = self.at[j as usize];
                match (split(to, pj), split(from, pj)) {
                    (true, false) => w,
                    (false, true) => -w,
                    _ => 0.0,
                }
            })
            .sum()
    }

    /// Gain of moving `i` to `to`, given `leave`, the change of its own pool's value when
    /// it leaves; `None` if infeasible.
    fn relocate_gain(&self, i: usize, leave: f64, to: Option<u32>) -> Option<f64> {
        let from = self.at[i];
        if from == to {
            return None;
        }
        let mut g = leave;
        if let Some(q) = to {
            g += self.pool_delta(q, None, Some(i))?;
        }
        g -= self.migration(i, to) - self.migration(i, from);
        g -= self.comm_delta(i, to);
        Some(g)
    }

    /// Gain of exchanging the places of `i` and `j` (different places, one may be unserved).
    fn swap_gain(&mut self, i: usize, j: usize) -> Option<f64> {
        let (pi, pj) = (self.at[i], self.at[j]);
        if pi == pj {
            return None;
        }
        let mut g = 0.0;
        if let Some(p) = pi {
            g += self.pool_delta(p, Some(i), Some(j))?;
        }
        if let Some(q) = pj {
            g += self.pool_delta(q, Some(j), Some(i))?;
        }
        g -= self.migration(i, pj) - self.migration(i, pi);
        g -= self.migration(j, pi) - self.migration(j, pj);
        // Communication: move i first, then j with i already moved.
        let c1 = self.comm_delta(i, pj);
        self.at[i] = pj;
        let c2 = self.comm_delta(j, pi);
        self.at[i] = pi;
        Some(g - c1 - c2)
    }

    fn leave(&mut self, i: usize) {
        let k = self.kinds;
        if let Some(p) = self.at[i].take() {
            for r in 0..k {
                let part = self.part(i, r);
                self.lanes[p as usize * k + r].remove(&part);
            }
            let list = &mut self.on[p as usize];
            let s = self.slot[i] as usize;
            list.swap_remove(s);
            if let Some(&moved) = list.get(s) {
                self.slot[moved as usize] = s as u32;
            }
        }
    }

    fn join(&mut self, i: usize, to: Option<u32>) {
        let k = self.kinds;
        if let Some(q) = to {
            for r in 0..k {
                let part = self.part(i, r);
                self.lanes[q as usize * k + r].insert(&part);
            }
            self.slot[i] = self.on[q as usize].len() as u32;
            self.on[q as usize].push(i as u32);
        }
        self.at[i] = to;
    }

    /// Local pools worth trying for `i`: all it may use if they are few, else its home, its
    /// partners' pools and `max` drawn at random.
    fn candidates(&self, i: usize, rng: &mut Xoshiro256PlusPlus, max: usize, out: &mut Vec<u32>) {
        out.clear();
        let here = self.at[i];
        let push = |q: u32, out: &mut Vec<u32>| {
            if Some(q) != here && !out.contains(&q) && self.m.allows(i, q) {
                out.push(q);
            }
        };
        let allowed = self.m.allowed[i].as_deref();
        let count = allowed.map_or(self.np as usize, <[u32]>::len);
        if count <= max + 1 {
            match allowed {
                Some(list) => list.iter().for_each(|&q| push(q, out)),
                None => (0..self.np).for_each(|q| push(q, out)),
            }
            return;
        }
        if self.m.home[i] != u32::MAX {
            push(self.m.home[i], out);
        }
        for &(j, _) in self.m.adj(i) {
            if let Some(q) = self.at[j as usize] {
                push(q, out);
            }
        }
        for _ in 0..max {
            let x = rng.random_range(0..count);
            push(allowed.map_or(x as u32, |l| l[x]), out);
        }
    }
}

/// Polishes the placements of `agents` (global indices) over local pools `pools` (global
/// dense ids) with capacities `cap` (`pools * kinds`). `place[i]` is agent `agents[i]`'s
/// placement, on one of `pools` or `None`; on return every placement is feasible within
/// `cap` with the optimal amounts. Affinity to agents outside the scope is left out (as the
/// scope's own sub-problem leaves it out).
#[allow(
    clippy::too_many_lines,
    reason = "set-up, search loop and grants in sequence"
)]
pub(crate) fn polish(
    flat: &Flat,
    agents: &[usize],
    pools: &[u32],
    cap: &[f64],
    place: &mut [Placement],
    params: &PolishParams,
) -> PolishStats {
    let k = flat.kinds;
    let np = pools.len();
    let n = agents.len();
    let mut stats = PolishStats::default();
    if n == 0 || np == 0 {
        return stats;
    }
    let mut local_pool = vec![u32::MAX; flat.pool_ids.len()];
    for (q, &p) in pools.iter().enumerate() {
        local_pool[p as usize] = q as u32;
    }
    let mut local_of = vec![u32::MAX; flat.agents.len()];
    for (i, &a) in agents.iter().enumerate() {
        local_of[a] = i as u32;
    }
    let every_pool = np == flat.pool_ids.len();
    let mut m = Members {
        weight: Vec::with_capacity(n),
        class: vec![0; n],
        min: Vec::with_capacity(n * k),
        flex: Vec::with_capacity(n * k),
        home: Vec::with_capacity(n),
        migration: Vec::with_capacity(n),
        allowed: Vec::with_capacity(n),
        adj_start: Vec::with_capacity(n + 1),
        adj: Vec::new(),
    };
    m.adj_start.push(0);
    for &a in agents {
        let ag = &flat.agents[a];
        let lo = ag.min.as_ref().unwrap_or(&ag.desired);
        m.weight.push(ag.weight);
        m.min.extend_from_slice(lo);
        m.flex
            .extend(ag.desired.iter().zip(lo).map(|(d, l)| (d - l).max(0.0)));
        m.home
            .push(ag.current.map_or(u32::MAX, |c| local_pool[c as usize]));
        m.migration.push(if ag.current.is_some() {
            flat.migration * flat.size(&ag.desired)
        } else {
            0.0
        });
        let unrestricted = ag.only.is_none() && ag.except.is_empty() && every_pool;
        m.allowed.push((!unrestricted).then(|| {
            (0..np as u32)
                .filter(|&q| flat.allows(a, pools[q as usize]))
                .collect()
        }));
        m.adj.extend(flat.adj[a].iter().filter_map(|&(j, w)| {
            let l = local_of[j as usize];
            (l != u32::MAX).then_some((l, w))
        }));
        m.adj_start.push(m.adj.len() as u32);
    }
    // Weight classes: the distinct weights, heaviest first, if there are few.
    let mut weights: Vec<f64> = m.weight.clone();
    weights.sort_by(|a, b| b.total_cmp(a));
    weights.dedup();
    let classes = weights.len() <= MAX_CLASSES;
    if classes {
        for i in 0..n {
            m.class[i] = weights.partition_point(|&w| w > m.weight[i]) as u32;
        }
    }
    let mut on: Vec<Vec<u32>> = vec![Vec::new(); np];
    let mut slot = vec![0_u32; n];
    let mut at: Vec<Option<u32>> = vec![None; n];
    let mut sums = vec![(0.0_f64, 0.0_f64); np * k];
    let mut parts: Vec<Vec<Flex>> = vec![Vec::new(); np * k];
    for (i, p) in place.iter().enumerate() {
        let Some((pool, _)) = p else { continue };
        let q = local_pool[*pool as usize];
        debug_assert_ne!(q, u32::MAX, "a placement outside the polish scope");
        if q == u32::MAX {
            continue;
        }
        at[i] = Some(q);
        slot[i] = on[q as usize].len() as u32;
        on[q as usize].push(i as u32);
        for r in 0..k {
            let x = q as usize * k + r;
            let lo = m.min[i * k + r];
            sums[x].0 += lo;
            sums[x].1 += m.weight[i] * lo;
            if m.flex[i * k + r] > 0.0 {
                parts[x].push(Flex {
                    weight: m.weight[i],
                    amount: m.flex[i * k + r],
                    agent: i as u32,
                });
            }
        }
    }
    let lanes: Vec<Lane> = parts
        .into_iter()
        .enumerate()
        .map(|(x, items)| {
            let parts = if classes {
                let mut p = Parts::classes(weights.clone());
                if let Parts::Classes { f, count, .. } = &mut p {
                    for it in &items {
                        let c = m.class[it.agent as usize] as usize;
                        f[c] += it.amount;
                        count[c] += 1;
                    }
                }
                p.rebuild_from(0);
                p
            } else {
                Parts::blocks(items)
            };
            Lane::new(cap[x], sums[x].0, sums[x].1, parts)
        })
        .collect();
    let scale: Vec<f64> = flat
        .inv_mean
        .iter()
        .map(|s| s / flat.active_kinds)
        .collect();
    let mut s = Polisher {
        kinds: k,
        np: np as u32,
        m,
        lanes,
        on,
        slot,
        at,
        scale: &scale,
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut cands: Vec<u32> = Vec::new();
    let mut blocked: Vec<u32> = Vec::new();
    'passes: for _ in 0..params.passes {
        shuffle(&mut order, &mut rng);
        let mut gained = 0.0;
        for (step, &i) in order.iter().enumerate() {
            if let Some(&ahead) = order.get(step + PREFETCH_AHEAD) {
                s.prefetch(ahead);
            }
            if let Some(&ahead) = order.get(step + PREFETCH_AHEAD / 2) {
                s.prefetch_partners(ahead);
            }
            if step % 256 == 0 && params.deadline.is_some_and(|d| Instant::now() >= d) {
                break 'passes;
            }
            s.candidates(i, &mut rng, params.candidates, &mut cands);
            // Best relocation (unserving included).
            let mut best: Option<(f64, Option<u32>)> = None;
            blocked.clear();
            let leave = s.at[i].map_or(0.0, |p| {
                s.pool_delta(p, Some(i), None)
                    .expect("leaving a pool keeps it feasible")
            });
            for to in cands.iter().map(|&q| Some(q)).chain(std::iter::once(None)) {
                stats.evaluations += 1;
                match s.relocate_gain(i, leave, to) {
                    Some(g) if g > EPS && best.is_none_or(|b| g > b.0) => best = Some((g, to)),
                    None => blocked.extend(to),
                    _ => {}
                }
            }
            if let Some((g, to)) = best {
                s.leave(i);
                s.join(i, to);
                stats.moves += 1;
                gained += g;
                continue;
            }
            // Swaps with a few members of the pools it did not fit.
            let mut swap: Option<(f64, usize)> = None;
            for &q in &blocked {
                let len = s.on[q as usize].len();
                for _ in 0..params.swap_samples.min(len) {
                    let j = s.on[q as usize][rng.random_range(0..len)] as usize;
                    if s.at[i].is_some_and(|p| !s.m.allows(j, p)) {
                        continue;
                    }
                    stats.evaluations += 1;
                    if let Some(g) = s.swap_gain(i, j)
                        && g > EPS
                        && swap.is_none_or(|b| g > b.0)
                    {
                        swap = Some((g, j));
                    }
                }
            }
            if let Some((g, j)) = swap {
                let (pi, pj) = (s.at[i], s.at[j]);
                s.leave(i);
                s.leave(j);
                s.join(i, pj);
                s.join(j, pi);
                stats.moves += 1;
                gained += g;
            }
        }
        stats.gained += gained;
        stats.passes += 1;
        if gained <= params.tolerance.max(EPS) {
            break;
        }
    }
    // Grants: minimums, then each pool's room, kind by kind, to the heaviest first.
    for (i, p) in place.iter_mut().enumerate() {
        *p = s.at[i].map(|q| (pools[q as usize], s.m.min[i * k..(i + 1) * k].to_vec()));
    }
    for q in 0..np {
        let mut list: Vec<u32> = s.on[q].clone();
        list.sort_by(|&a, &b| {
            s.m.weight[b as usize]
                .total_cmp(&s.m.weight[a as usize])
                .then(a.cmp(&b))
        });
        for r in 0..k {
            let used: f64 = list.iter().map(|&i| s.m.min[i as usize * k + r]).sum();
            let mut room = (cap[q * k + r] - used) * (1.0 - 1e-12);
            for &i in &list {
                if room <= 0.0 {
                    break;
                }
                let give = s.m.flex[i as usize * k + r].min(room);
                if let Some((_, amount)) = place[i as usize].as_mut() {
                    amount[r] += give;
                }
                room -= give;
            }
        }
    }
    stats
}
