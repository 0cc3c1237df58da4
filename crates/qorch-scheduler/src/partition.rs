//! Re-clustering as balanced graph partitioning: which agents should live in which leaf of
//! the hierarchy, given who talks to whom.
//!
//! A plan has three phases, each solved with the QUBO engine:
//!
//! 1. **Affinity moves.** Every agent whose observed traffic goes mostly to another leaf (at
//!    least `min_pull` of it, twice what stays home, half of all its traffic) gets a one-hot
//!    choice among its current leaf and the two leaves that pull it most. The QUBO rewards
//!    the affinity kept inside a leaf (linear terms for partners that stay, couplings for
//!    partners that may move too) and penalizes leaves that drift from the mean size
//!    (`mu (size - mean)^2`). Simulated annealing and descent solve it, and the plan keeps
//!    the start if they find nothing better.
//! 2. **Merges.** Within a group of siblings, while the two smallest leaves are both below
//!    `merge_below` times the mean size, the smaller moves into the other. It stays as an
//!    empty spare.
//! 3. **Splits.** A leaf above `split_above` times the mean is cut in two by a balanced
//!    min-cut QUBO: the cut affinity plus `lambda (|half| - n/2)^2`. The leaving half goes to
//!    an empty spare sibling, or to a new one.
//!
//! The plan is only data: `qorch_optimizer::recluster` applies it to a running runtime.
//!
//! ```
//! use qorch_scheduler::{Grouping, ReclusterPolicy, Step, plan_reclustering};
//!
//! // Two leaves; agents 0-3 talk among themselves, agent 3 sits in the wrong leaf.
//! let g = Grouping {
//!     leaf_of: vec![Some(0), Some(0), Some(0), Some(1), Some(1), Some(1), Some(1)],
//!     group: vec![0, 0],
//!     live: vec![true, true],
//! };
//! let edges = [(0, 3, 10.0), (1, 3, 10.0), (2, 3, 10.0), (4, 5, 5.0), (5, 6, 5.0)];
//! let plan = plan_reclustering(&g, &edges, &ReclusterPolicy::default());
//! assert_eq!(plan.steps, vec![Step::Move(vec![(3, 0)])]);
//! assert!(plan.cross_after < plan.cross_before);
//! ```

use std::collections::{BTreeMap, HashMap};

use qorch_qubo::{
    Budget, Qubo, QuboBuilder, SimulatedAnnealing, SolveOptions, Solver, SteepestDescent,
};
use serde::{Deserialize, Serialize};

/// Where every agent lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grouping {
    /// Per agent (indexed by id): its leaf, or `None` if it is absent (never spawned, lost).
    pub leaf_of: Vec<Option<u32>>,
    /// Per leaf: its sibling group (leaves with the same parent share one). Merges and
    /// splits stay within a group.
    pub group: Vec<u32>,
    /// Per leaf: whether it can host agents (false for failed or removed nodes).
    pub live: Vec<bool>,
}

/// Settings of a re-clustering pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclusterPolicy {
    /// A leaf larger than this many times the mean leaf size is split.
    pub split_above: f64,
    /// Two sibling leaves smaller than this many times the mean are merged.
    pub merge_below: f64,
    /// Least affinity towards another leaf for an agent to move there: observed traffic is
    /// sampled, and a single sample is no evidence.
    pub min_pull: f64,
    /// Seed of the solvers.
    pub seed: u64,
}

impl Default for ReclusterPolicy {
    fn default() -> Self {
        ReclusterPolicy {
            split_above: 2.0,
            merge_below: 0.5,
            min_pull: 0.0,
            seed: 0,
        }
    }
}

/// One step of a plan, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Agents to other leaves: `(agent, leaf)`.
    Move(Vec<(u32, u32)>),
    /// Every agent of leaf `from` (listed) into its sibling `into`.
    Merge {
        /// The leaf emptied.
        from: u32,
        /// The sibling that takes its agents.
        into: u32,
        /// Its agents.
        agents: Vec<u32>,
    },
    /// The `leaving` agents of `leaf` go to leaf `to`: an empty sibling, or, when `to` is
    /// not a leaf yet (`to >= ` the number of leaves so far), a new sibling of `leaf` that
    /// the applier creates, in the order of the steps.
    Split {
        /// The leaf split.
        leaf: u32,
        /// Where the leaving half goes.
        to: u32,
        /// The leaving half.
        leaving: Vec<u32>,
    },
}

/// A re-clustering plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclusterPlan {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// Agents that change leaf.
    pub moved: usize,
    /// Leaves merged away.
    pub merges: usize,
    /// Leaves split.
    pub splits: usize,
    /// Share of the affinity weight between agents of different leaves, before.
    pub cross_before: f64,
    /// And after the plan.
    pub cross_after: f64,
}

/// The working state of a plan.
struct Work {
    leaf_of: Vec<Option<u32>>,
    members: Vec<Vec<u32>>,
    group: Vec<u32>,
    live: Vec<bool>,
}

impl Work {
    fn new(g: &Grouping) -> Work {
        let mut members = vec![Vec::new(); g.group.len()];
        for (a, l) in g.leaf_of.iter().enumerate() {
            if let Some(l) = *l
                && (l as usize) < members.len()
            {
                members[l as usize].push(a as u32);
            }
        }
        Work {
            leaf_of: g.leaf_of.clone(),
            members,
            group: g.group.clone(),
            live: g.live.clone(),
        }
    }

    fn mean_size(&self) -> f64 {
        let sizes: Vec<usize> = self
            .members
            .iter()
            .zip(&self.live)
            .filter(|(m, live)| **live && !m.is_empty())
            .map(|(m, _)| m.len())
            .collect();
        sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64
    }

    fn apply(&mut self, moves: &[(u32, u32)]) {
        for &(a, to) in moves {
            let Some(from) = self.leaf_of[a as usize] else {
                continue;
            };
            let m = &mut self.members[from as usize];
            if let Some(i) = m.iter().position(|&x| x == a) {
                m.remove(i);
            }
            self.members[to as usize].push(a);
            self.leaf_of[a as usize] = Some(to);
        }
    }

    fn cross_share(&self, edges: &[(u32, u32, f64)]) -> f64 {
        let (mut cross, mut total) = (0.0, 0.0);
        for &(a, b, w) in edges {
            let (Some(Some(la)), Some(Some(lb))) =
                (self.leaf_of.get(a as usize), self.leaf_of.get(b as usize))
            else {
                continue;
            };
            total += w;
            if la != lb {
                cross += w;
            }
        }
        if total > 0.0 { cross / total } else { 0.0 }
    }
}

/// Plans a re-clustering pass. `edges` are `(a, b, weight)` between agent ids (any order,
/// duplicates summed); agents outside `grouping.leaf_of` or absent are ignored.
pub fn plan_reclustering(
    grouping: &Grouping,
    edges: &[(u32, u32, f64)],
    policy: &ReclusterPolicy,
) -> ReclusterPlan {
    let mut w = Work::new(grouping);
    let cross_before = w.cross_share(edges);
    let adj = adjacency(&w, edges);
    let mut steps = Vec::new();
    let mut moved = 0;

    let moves = affinity_moves(&w, &adj, policy.min_pull, policy.seed);
    if !moves.is_empty() {
        moved += moves.len();
        w.apply(&moves);
        steps.push(Step::Move(moves));
    }

    let mean = w.mean_size();
    let mut merges = 0;
    let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for l in 0..w.members.len() {
        if w.live[l] && !w.members[l].is_empty() {
            groups.entry(w.group[l]).or_default().push(l as u32);
        }
    }
    for (_, mut sibs) in groups {
        loop {
            sibs.retain(|&l| !w.members[l as usize].is_empty());
            if sibs.len() < 2 {
                break;
            }
            sibs.sort_by_key(|&l| (w.members[l as usize].len(), l));
            let (a, b) = (sibs[0], sibs[1]);
            let small = policy.merge_below * mean;
            if w.members[a as usize].len() as f64 >= small
                || w.members[b as usize].len() as f64 >= small
            {
                break;
            }
            let agents = w.members[a as usize].clone();
            let moves: Vec<(u32, u32)> = agents.iter().map(|&x| (x, b)).collect();
            moved += agents.len();
            w.apply(&moves);
            steps.push(Step::Merge {
                from: a,
                into: b,
                agents,
            });
            merges += 1;
        }
    }

    let mut splits = 0;
    let big: Vec<u32> = (0..w.members.len() as u32)
        .filter(|&l| {
            w.live[l as usize] && w.members[l as usize].len() as f64 > policy.split_above * mean
        })
        .collect();
    for l in big {
        let leaving = bisect(&w.members[l as usize], &adj, policy.seed ^ u64::from(l));
        let group = w.group[l as usize];
        let spare = (0..w.members.len() as u32).find(|&s| {
            s != l
                && w.live[s as usize]
                && w.members[s as usize].is_empty()
                && w.group[s as usize] == group
        });
        let to = spare.unwrap_or_else(|| {
            w.members.push(Vec::new());
            w.group.push(group);
            w.live.push(true);
            (w.members.len() - 1) as u32
        });
        let moves: Vec<(u32, u32)> = leaving.iter().map(|&a| (a, to)).collect();
        moved += leaving.len();
        w.apply(&moves);
        steps.push(Step::Split {
            leaf: l,
            to,
            leaving,
        });
        splits += 1;
    }
    ReclusterPlan {
        steps,
        moved,
        merges,
        splits,
        cross_before,
        cross_after: w.cross_share(edges),
    }
}

/// Sorted adjacency lists over the present agents (duplicate edges summed).
fn adjacency(w: &Work, edges: &[(u32, u32, f64)]) -> Vec<Vec<(u32, f64)>> {
    let present = |a: u32| {
        w.leaf_of
            .get(a as usize)
            .copied()
            .flatten()
            .is_some_and(|l| w.live.get(l as usize).copied().unwrap_or(false))
    };
    let mut sorted: Vec<(u32, u32, f64)> = edges
        .iter()
        .filter(|e| e.0 != e.1 && e.2 > 0.0 && e.2.is_finite() && present(e.0) && present(e.1))
        .map(|&(a, b, x)| (a.min(b), a.max(b), x))
        .collect();
    sorted.sort_by_key(|e| (e.0, e.1));
    let mut adj = vec![Vec::new(); w.leaf_of.len()];
    let mut i = 0;
    while i < sorted.len() {
        let (a, b, mut x) = sorted[i];
        while i + 1 < sorted.len() && (sorted[i + 1].0, sorted[i + 1].1) == (a, b) {
            i += 1;
            x += sorted[i].2;
        }
        adj[a as usize].push((b, x));
        adj[b as usize].push((a, x));
        i += 1;
    }
    adj
}

/// Phase 1 (see the module docs): the moves of the affinity QUBO.
#[allow(
    clippy::too_many_lines,
    reason = "one model: variables, affinity, one-hot, balance"
)]
fn affinity_moves(w: &Work, adj: &[Vec<(u32, f64)>], min_pull: f64, seed: u64) -> Vec<(u32, u32)> {
    let mean = w.mean_size().max(1.0);
    let mut movable: Vec<(u32, Vec<u32>, f64)> = Vec::new();
    let mut pull: BTreeMap<u32, f64> = BTreeMap::new();
    for (a, nbrs) in adj.iter().enumerate() {
        let Some(cur) = w.leaf_of[a] else { continue };
        if nbrs.is_empty() {
            continue;
        }
        pull.clear();
        for &(b, x) in nbrs {
            if let Some(l) = w.leaf_of[b as usize] {
                *pull.entry(l).or_insert(0.0) += x;
            }
        }
        let here = pull.get(&cur).copied().unwrap_or(0.0);
        let total: f64 = nbrs.iter().map(|e| e.1).sum();
        let mut others: Vec<(u32, f64)> = pull
            .iter()
            .filter(|&(&l, &x)| l != cur && x >= min_pull && x > 2.0 * here && x >= 0.5 * total)
            .map(|(&l, &x)| (l, x))
            .collect();
        if others.is_empty() {
            continue;
        }
        others.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        let mut cands = vec![cur];
        cands.extend(others.iter().take(2).map(|o| o.0));
        movable.push((a as u32, cands, total));
    }
    if movable.is_empty() {
        return Vec::new();
    }
    movable.truncate(50_000);
    let index_of: HashMap<u32, usize> = movable.iter().enumerate().map(|(i, m)| (m.0, i)).collect();
    let mut first_var = Vec::with_capacity(movable.len());
    let mut nvars = 0;
    for m in &movable {
        first_var.push(nvars);
        nvars += m.1.len();
    }
    let var = |i: usize, leaf: u32| {
        movable[i]
            .1
            .iter()
            .position(|&l| l == leaf)
            .map(|k| first_var[i] + k)
    };
    let mut q = QuboBuilder::new(nvars);
    let mean_pull = movable.iter().map(|m| m.2).sum::<f64>() / movable.len() as f64;
    let mu = 0.5 * mean_pull / mean;
    for (i, (a, cands, total)) in movable.iter().enumerate() {
        for &(b, x) in &adj[*a as usize] {
            match index_of.get(&b) {
                None => {
                    if let Some(l) = w.leaf_of[b as usize]
                        && let Some(v) = var(i, l)
                    {
                        q.add_linear(v, -x);
                    }
                }
                Some(&j) if j > i => {
                    for &c in cands {
                        if let (Some(u), Some(v)) = (var(i, c), var(j, c)) {
                            q.add_quadratic(u, v, -x);
                        }
                    }
                }
                Some(_) => {}
            }
        }
        let vars: Vec<usize> = (first_var[i]..first_var[i] + cands.len()).collect();
        q.add_one_hot(&vars, 1.0 + 2.0 * total);
    }
    let mut vars_of_leaf: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (_, cands, _)) in movable.iter().enumerate() {
        for (k, &c) in cands.iter().enumerate() {
            vars_of_leaf.entry(c).or_default().push(first_var[i] + k);
        }
    }
    for (leaf, vars) in &vars_of_leaf {
        let fixed = w.members[*leaf as usize]
            .iter()
            .filter(|a| !index_of.contains_key(a))
            .count() as f64;
        let d = fixed - mean;
        for (k, &u) in vars.iter().enumerate() {
            q.add_linear(u, mu * (2.0 * d + 1.0));
            for &v in &vars[k + 1..] {
                q.add_quadratic(u, v, 2.0 * mu);
            }
        }
    }
    let Ok(qubo) = q.build() else {
        return Vec::new();
    };
    let mut start = vec![false; nvars];
    for &f in &first_var {
        start[f] = true;
    }
    let Some(sol) = anneal(&qubo, &start, seed) else {
        return Vec::new();
    };
    if qubo.energy(&sol) >= qubo.energy(&start) {
        return Vec::new();
    }
    movable
        .iter()
        .enumerate()
        .filter_map(|(i, (a, cands, _))| {
            let chosen: Vec<u32> = cands
                .iter()
                .enumerate()
                .filter(|(k, _)| sol[first_var[i] + k])
                .map(|(_, &c)| c)
                .collect();
            match chosen[..] {
                [c] if c != cands[0] => Some((*a, c)),
                _ => None,
            }
        })
        .collect()
}

/// Simulated annealing (a few hundred sweeps: these models have a few variables per agent
/// and weak couplings), polished by steepest descent; the better of that and `start`.
fn anneal(qubo: &Qubo, start: &[bool], seed: u64) -> Option<Vec<bool>> {
    let sa = SimulatedAnnealing {
        sweeps_per_read: 300,
        reads: Some(1),
        ..SimulatedAnnealing::default()
    };
    let annealed = sa
        .solve(qubo, &SolveOptions::new(Budget::sweeps(300), seed))
        .ok()?;
    let polished = SteepestDescent
        .solve(
            qubo,
            &SolveOptions::new(Budget::default(), seed).with_initial(&annealed.assignment),
        )
        .ok()?;
    if polished.energy < qubo.energy(start) {
        Some(polished.assignment)
    } else {
        Some(start.to_vec())
    }
}

/// Phase 3: the half of `members` that leaves, by a balanced min-cut QUBO.
fn bisect(members: &[u32], adj: &[Vec<(u32, f64)>], seed: u64) -> Vec<u32> {
    let n = members.len();
    if n > 4_000 {
        // The balance term is dense; past this size a split by id keeps it cheap.
        return members[n / 2..].to_vec();
    }
    let index: HashMap<u32, usize> = members.iter().enumerate().map(|(i, &a)| (a, i)).collect();
    let mut q = QuboBuilder::new(n);
    let mut total = 0.0;
    for (i, &a) in members.iter().enumerate() {
        for &(b, x) in &adj[a as usize] {
            if let Some(&j) = index.get(&b)
                && j > i
            {
                // Cut of the pair: x_i + x_j - 2 x_i x_j.
                q.add_linear(i, x);
                q.add_linear(j, x);
                q.add_quadratic(i, j, -2.0 * x);
                total += x;
            }
        }
    }
    let lambda = (total / n as f64).max(1e-3);
    let half = n as f64 / 2.0;
    for i in 0..n {
        q.add_linear(i, lambda * (1.0 - 2.0 * half));
        for j in i + 1..n {
            q.add_quadratic(i, j, 2.0 * lambda);
        }
    }
    let start: Vec<bool> = (0..n).map(|i| i >= n / 2).collect();
    let chosen = q
        .build()
        .ok()
        .and_then(|qubo| anneal(&qubo, &start, seed))
        .unwrap_or(start);
    let out: Vec<u32> = members
        .iter()
        .zip(&chosen)
        .filter(|(_, x)| **x)
        .map(|(a, _)| *a)
        .collect();
    if out.is_empty() || out.len() == n {
        members[n / 2..].to_vec()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `leaves` leaves in one group; `sizes[l]` agents in leaf `l`, ids in order.
    fn grouping(sizes: &[usize]) -> Grouping {
        let mut leaf_of = Vec::new();
        for (l, &n) in sizes.iter().enumerate() {
            leaf_of.extend(std::iter::repeat_n(Some(l as u32), n));
        }
        Grouping {
            leaf_of,
            group: vec![0; sizes.len()],
            live: vec![true; sizes.len()],
        }
    }

    #[test]
    fn small_siblings_merge_and_a_large_leaf_splits_along_its_communities() {
        // Leaf 0: two cliques of 20 (ids 0-19, 20-39), no edge between them; leaves 1, 2: 4
        // agents each; leaf 3: 12. Mean 15: 40 > 2 x 15 splits, 4 and 4 < 7.5 merge.
        let g = grouping(&[40, 4, 4, 12]);
        let mut edges = Vec::new();
        for c in [0_u32, 20] {
            for a in c..c + 20 {
                for b in a + 1..c + 20 {
                    edges.push((a, b, 1.0));
                }
            }
        }
        let plan = plan_reclustering(&g, &edges, &ReclusterPolicy::default());
        assert_eq!((plan.merges, plan.splits), (1, 1), "{plan:?}");
        let Some(Step::Split { leaf, to, leaving }) = plan.steps.last() else {
            panic!("{plan:?}");
        };
        assert_eq!(*leaf, 0);
        // The merge emptied a sibling: the split reuses it instead of a new leaf.
        assert!(matches!(plan.steps[0], Step::Merge { from, .. } if from == *to));
        let mut leaving = leaving.clone();
        leaving.sort_unstable();
        assert!(leaving == (0..20).collect::<Vec<_>>() || leaving == (20..40).collect::<Vec<_>>());
        assert_eq!(plan.cross_after, 0.0, "the cut follows the cliques");
    }

    #[test]
    fn a_split_without_a_spare_asks_for_a_new_leaf() {
        let g = grouping(&[50, 10, 10, 10]);
        let plan = plan_reclustering(&g, &[], &ReclusterPolicy::default());
        assert_eq!(plan.splits, 1);
        assert!(
            matches!(plan.steps[..], [Step::Split { leaf: 0, to: 4, ref leaving }] if leaving.len() == 25)
        );
    }

    #[test]
    fn weak_evidence_moves_nobody_and_absent_agents_are_ignored() {
        let mut g = grouping(&[3, 3]);
        g.leaf_of[5] = None;
        let edges = [(0, 3, 1.0), (0, 5, 50.0)];
        let policy = ReclusterPolicy {
            min_pull: 2.0,
            ..ReclusterPolicy::default()
        };
        let plan = plan_reclustering(&g, &edges, &policy);
        assert!(plan.steps.is_empty(), "{plan:?}");
        assert_eq!(plan.moved, 0);
    }
}
