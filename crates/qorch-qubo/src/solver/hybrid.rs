//! Annealing with consensus coarsening: replicas agree on most of the structure; the rest is
//! searched with moves that flip whole clusters.

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::cea::ClusterExact;
use super::descent::descend;
use super::sa::{IntModel, Schedule, anneal, sweeps_available};
use super::{
    Budget, HoudayerTempering, Run, SimulatedAnnealing, Solution, SolveError, SolveOptions, Solver,
    check_initial, default_beta_range, random_assignment, rng,
};
use crate::{FlipState, Qubo, QuboBuilder};

/// The default solver: simulated annealing, then rounds of *consensus coarsening*.
///
/// Independent low-energy states of a large sparse model (a 2D spin glass, say) agree on most
/// pairs of neighbouring variables and differ in large regions whose orientation single flips
/// cannot fix: an annealer's residual defects are big droplets. Each round:
///
/// 1. Merge every coupled pair of variables whose relative value (equal or opposite) is the
///    same in all current replicas and in the best state (union-find); each resulting cluster
///    becomes one variable of a *coarse* model whose value says whether the whole cluster is
///    flipped relative to the best state.
/// 2. Solve the coarse model (far smaller, with moves that flip whole clusters), map its best
///    state back, descend to a local minimum, and keep it if it is better. A coarse model of
///    at least `recurse_above` variables is itself a hard sparse model (a coarse-grained spin
///    glass, on a lattice), so it is solved by this same method, recursively: clusters of
///    clusters, in the spirit of Houdayer and Martin's renormalization for discrete
///    optimization. Smaller ones are annealed. The coarse solution is then polished by
///    `exact_moves` cluster-exact moves (below).
/// 3. Refresh the replicas by re-annealing from the best state, slightly perturbed, from a
///    moderate temperature, keeping their *final* states (which differ from the best where the
///    structure is uncertain), each polished by up to `exact_moves` cluster-exact moves.
///
/// A *cluster-exact move* (Hartmann's cluster-exact approximation) visits the variables in
/// random order and keeps each one whose couplings to those already kept can all be made
/// non-positive by complementing some of them; with every other variable clamped, that set is
/// a submodular model, and a minimum s-t cut gives its exact optimum. On a 2D spin glass the
/// set holds about two thirds of the variables, so one move re-optimizes most of the model
/// exactly, and it never raises the energy. It cannot flip a region that contains a variable
/// left out, so it complements the coarsening (whole droplets) rather than replacing it: the
/// replicas' own energies barely change (a few units on a 20,000-variable torus), but the
/// small defects it removes no longer split the clusters on which the replicas agree.
///
/// Before all this, a *lattice-like* model (mean degree at most `tempering_max_degree`, most
/// couplings on a cycle of length 3 or 4: a 2D spin glass such as the toroidal G-set graphs)
/// whose budget pays for at least `tempering_min_rounds` rounds goes, whole budget, to
/// [`HoudayerTempering`], whose cluster moves equilibrate such models faster. On a 2,000-vertex
/// +-1 torus, 10 s of it reached the best cut seen on every seed, where the rounds above ended
/// up to 0.3% short; on a 10,000-vertex torus (about 5,000 rounds in 10 s) the two tie, and
/// on 20,000 vertices the rounds above win.
///
/// The budget: `initial_share` of it goes to `replicas` independent initial reads; the rest
/// to rounds. Under a time limit the sweep rate is measured on probe anneals. On models
/// too small to coarsen usefully it simply keeps annealing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HybridAnnealing {
    /// Replicas whose consensus defines the clusters (at least 2).
    pub replicas: usize,
    /// Share of the budget spent on the initial independent reads.
    pub initial_share: f64,
    /// Fraction of variables flipped at random before a re-anneal.
    pub perturbation: f64,
    /// Where re-anneals start, as a fraction of the way (on a log scale) from the hot to the
    /// cold end of the default temperature range.
    pub restart_temperature: f64,
    /// Coarse models with at least this many variables, and at most half as many as the model
    /// they coarsen, are solved recursively by the hybrid itself; others by one annealing read.
    /// `usize::MAX` never recurses.
    #[serde(default = "default_recurse_above")]
    pub recurse_above: usize,
    /// Lattice-like models (mean degree at most this) are handed to [`HoudayerTempering`]
    /// when the budget pays for `tempering_min_rounds` of its rounds; `0.0` never does.
    #[serde(default = "default_tempering_max_degree")]
    pub tempering_max_degree: f64,
    /// Rounds (one sweep of each replica and one cluster move per temperature) that
    /// [`HoudayerTempering`] needs at least, for the hand-over.
    #[serde(default = "default_tempering_min_rounds")]
    pub tempering_min_rounds: u64,
    /// Cluster-exact moves (each the exact optimum over a random set of variables whose
    /// couplings can be made non-positive, the rest clamped: a minimum cut) applied to each
    /// coarse solution, and at most this many to each refreshed replica: the count halves
    /// (down to one) after a replica whose energy they did not lower and doubles back after
    /// one whose energy they did, so that models where they do not pay (sparse random graphs,
    /// whose frustrated cycles are long) spend little on them. `0` applies none. Each move
    /// counts as one sweep of its model.
    #[serde(default = "default_exact_moves")]
    pub exact_moves: usize,
}

fn default_recurse_above() -> usize {
    300
}

fn default_tempering_max_degree() -> f64 {
    4.5
}

fn default_tempering_min_rounds() -> u64 {
    4_000
}

fn default_exact_moves() -> usize {
    15
}

impl Default for HybridAnnealing {
    fn default() -> Self {
        HybridAnnealing {
            replicas: 6,
            initial_share: 0.35,
            perturbation: 0.15,
            restart_temperature: 0.4,
            recurse_above: default_recurse_above(),
            tempering_max_degree: default_tempering_max_degree(),
            tempering_min_rounds: default_tempering_min_rounds(),
            exact_moves: default_exact_moves(),
        }
    }
}

/// Union-find root with path halving.
fn root(parent: &mut [u32], mut v: u32) -> u32 {
    while parent[v as usize] != v {
        let p = parent[v as usize];
        parent[v as usize] = parent[p as usize];
        v = p;
    }
    v
}

/// Clusters of variables whose relative values agree in all `states` and `best`: returns the
/// cluster of each variable and the number of clusters.
fn consensus_clusters(qubo: &Qubo, states: &[Vec<bool>], best: &[bool]) -> (Vec<u32>, usize) {
    let n = qubo.num_vars();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    for i in 0..n {
        for c in qubo.neighbors(i) {
            let j = c.var as usize;
            if j < i {
                continue;
            }
            let rel = best[i] != best[j];
            if states.iter().all(|s| (s[i] != s[j]) == rel) {
                let (a, b) = (root(&mut parent, i as u32), root(&mut parent, j as u32));
                if a != b {
                    parent[a as usize] = b;
                }
            }
        }
    }
    let mut id = vec![u32::MAX; n];
    let mut cluster = vec![0_u32; n];
    let mut k = 0_u32;
    for i in 0..n {
        let r = root(&mut parent, i as u32) as usize;
        if id[r] == u32::MAX {
            id[r] = k;
            k += 1;
        }
        cluster[i] = id[r];
    }
    (cluster, k as usize)
}

/// Whether the coupling graph looks like a low-dimensional lattice, where tempering with
/// cluster moves works best: mean degree at most `max_mean_degree`, no degree above twice
/// that, and at least half the couplings on a cycle of length 3 or 4 (every coupling of a
/// square lattice is on two 4-cycles; a sparse random graph, locally a tree, has almost none).
fn lattice_like(qubo: &Qubo, max_mean_degree: f64) -> bool {
    let n = qubo.num_vars();
    let m = qubo.num_interactions();
    if n == 0 || 2.0 * m as f64 > max_mean_degree * n as f64 {
        return false;
    }
    if (0..n).any(|i| qubo.neighbors(i).len() as f64 > 2.0 * max_mean_degree) {
        return false;
    }
    // mark[v]: v is a neighbour of the current j.
    let mut mark = vec![false; n];
    let mut on_cycle = 0_usize;
    for i in 0..n {
        for c in qubo.neighbors(i) {
            let j = c.var as usize;
            if j < i {
                continue;
            }
            for d in qubo.neighbors(j) {
                mark[d.var as usize] = true;
            }
            // A triangle i-k-j, or a square i-k-l-j.
            let short = qubo.neighbors(i).iter().any(|e| {
                let k = e.var as usize;
                k != j
                    && (mark[k]
                        || qubo
                            .neighbors(k)
                            .iter()
                            .any(|f| f.var as usize != i && mark[f.var as usize]))
            });
            on_cycle += usize::from(short);
            for d in qubo.neighbors(j) {
                mark[d.var as usize] = false;
            }
        }
    }
    2 * on_cycle >= m
}

/// The model over cluster flips: variable `c` set means every variable of cluster `c` takes the
/// opposite of its value in `best`. Its energy of `o` equals the full energy of that state.
fn coarse_model(qubo: &Qubo, cluster: &[u32], k: usize, best: &[bool]) -> Qubo {
    let s = |v: bool| if v { 1.0 } else { 0.0 };
    let mut b = QuboBuilder::new(k);
    let mut offset = qubo.offset();
    // x_i = s_i + (1 - 2 s_i) o_c(i)
    for (i, &a) in qubo.linear().iter().enumerate() {
        let si = s(best[i]);
        offset += a * si;
        b.add_linear(cluster[i] as usize, a * (1.0 - 2.0 * si));
    }
    for (i, j, w) in qubo.interactions() {
        let (si, sj) = (s(best[i]), s(best[j]));
        let (ci, cj) = (cluster[i] as usize, cluster[j] as usize);
        offset += w * si * sj;
        b.add_linear(ci, w * sj * (1.0 - 2.0 * si));
        b.add_linear(cj, w * si * (1.0 - 2.0 * sj));
        b.add_quadratic(ci, cj, w * (1.0 - 2.0 * si) * (1.0 - 2.0 * sj));
    }
    b.add_offset(offset);
    b.build_unbounded()
        .expect("a coarse model of a valid model is valid")
}

impl HybridAnnealing {
    /// Applies `count` cluster-exact moves to `x`, offers the result and adapts `count` (see
    /// `exact_moves`); returns whether the budget allows going on.
    fn polish(
        &self,
        qubo: &Qubo,
        moves: &mut ClusterExact,
        x: &mut [bool],
        run: &mut Run<'_>,
        r: &mut Xoshiro256PlusPlus,
        count: &mut usize,
    ) -> bool {
        if self.exact_moves == 0 {
            return true;
        }
        let mut go = true;
        let before = qubo.energy(x);
        for _ in 0..*count {
            moves.step(qubo, x, r);
            if run.add_sweeps(1) {
                go = false;
                break;
            }
        }
        let after = qubo.energy(x);
        *count = if after < before {
            (2 * *count).min(self.exact_moves)
        } else {
            (*count / 2).max(1)
        };
        run.offer(x, after);
        go
    }
}

impl Solver for HybridAnnealing {
    fn name(&self) -> &str {
        "hybrid"
    }

    #[allow(clippy::too_many_lines, reason = "one algorithm, phases commented")]
    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        if self.replicas < 2
            || !(0.0..1.0).contains(&self.initial_share)
            || !(0.0..=1.0).contains(&self.perturbation)
            || !(0.0..=1.0).contains(&self.restart_temperature)
        {
            return Err(SolveError::Config(
                "hybrid needs replicas >= 2, initial_share in [0, 1), perturbation and \
                 restart_temperature in [0, 1]"
                    .into(),
            ));
        }
        let n = qubo.num_vars();
        let mut run = Run::new(qubo, &options.budget, 10_000);
        if n == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let int = IntModel::new(qubo);
        let (hot, cold) = default_beta_range(qubo);
        let restart = hot * (cold / hot).powf(self.restart_temperature);
        let mut r = rng(options.seed, 0);

        // Total sweeps this run may make: the sweep budget, or the rate measured on probe
        // anneals times the time left.
        let Some((total, first)) =
            sweeps_available(qubo, int.as_ref(), &mut run, options, (hot, cold), &mut r)
        else {
            return Ok(run.finish(self.name()));
        };
        // 0. Lattice-like models, given time, go to tempering with cluster moves.
        let tempering = HoudayerTempering::default();
        let rounds = total / (2 * tempering.temperatures as u64);
        if rounds >= self.tempering_min_rounds && lattice_like(qubo, self.tempering_max_degree) {
            let budget = Budget {
                sweeps: run.has_sweep_limit().then(|| run.sweeps_left()),
                time_limit: run.time_left(),
                target_energy: options.budget.target_energy,
            };
            let mut inner = SolveOptions::new(budget, options.seed);
            inner.initial = Some(&first);
            let sol = tempering.solve(qubo, &inner)?;
            run.absorb(&sol);
            return Ok(run.finish(self.name()));
        }
        let read_len =
            ((self.initial_share * total as f64) / self.replicas as f64).max(16.0) as u64;

        // 1. Independent initial reads.
        let mut states: Vec<Vec<bool>> = Vec::with_capacity(self.replicas);
        for k in 0..self.replicas {
            let mut x = if k == 0 {
                first.clone()
            } else {
                random_assignment(n, &mut r)
            };
            let mut rr = rng(options.seed, 1 + k as u64);
            let go = anneal(
                qubo,
                int.as_ref(),
                &mut run,
                &mut x,
                read_len,
                Schedule::Geometric,
                (hot, cold),
                &mut rr,
            );
            states.push(x);
            if !go {
                return Ok(run.finish(self.name()));
            }
        }

        // 2. Rounds of coarsening and re-annealing.
        let mut round = 0_u64;
        let mut moves = ClusterExact::new(n);
        let mut count = self.exact_moves;
        let sa = SimulatedAnnealing {
            reads: Some(1),
            ..SimulatedAnnealing::default()
        };
        while !run.stopped() {
            round += 1;
            let best = run.best.clone();
            let (cluster, k) = consensus_clusters(qubo, &states, &best);
            if k > 1 && k < n {
                let coarse = coarse_model(qubo, &cluster, k, &best);
                // As many variable visits as half a read of the full model.
                let sweeps =
                    ((read_len as f64 * n as f64 / (2.0 * k as f64)) as u64).clamp(100, 200_000);
                let coarse_budget = Budget {
                    sweeps: Some(sweeps),
                    time_limit: run.time_left(),
                    target_energy: None,
                };
                let coarse_options = SolveOptions::new(coarse_budget, r.random());
                // Recursing only on models at most half this size keeps the depth logarithmic.
                let sol = if k >= self.recurse_above && 2 * k <= n {
                    self.solve(&coarse, &coarse_options)?
                } else {
                    sa.solve(&coarse, &coarse_options)?
                };
                let mut o = sol.assignment;
                if self.exact_moves > 0 {
                    let mut moves = ClusterExact::new(k);
                    for _ in 0..self.exact_moves {
                        moves.step(&coarse, &mut o, &mut r);
                    }
                }
                let x: Vec<bool> = (0..n).map(|i| best[i] ^ o[cluster[i] as usize]).collect();
                let mut state = FlipState::new(qubo, x);
                descend(&mut state, &mut run);
                if state.energy() < run.best_energy {
                    run.offer(state.assignment(), state.energy());
                }
                let coarse_sweeps = sol.sweeps + self.exact_moves as u64;
                if run.add_sweeps(coarse_sweeps * k as u64 / n as u64) {
                    break;
                }
            }
            // Fresh replicas around the best.
            for k in 0..self.replicas {
                let mut x = run.best.clone();
                for v in &mut x {
                    if r.random_bool(self.perturbation) {
                        *v = !*v;
                    }
                }
                let mut rr = rng(options.seed, round * 1_000 + k as u64 + 100);
                let go = anneal(
                    qubo,
                    int.as_ref(),
                    &mut run,
                    &mut x,
                    read_len / 2,
                    Schedule::Geometric,
                    (restart, cold),
                    &mut rr,
                );
                let go = go && self.polish(qubo, &mut moves, &mut x, &mut run, &mut rr, &mut count);
                states[k] = x;
                if !go {
                    break;
                }
            }
        }
        Ok(run.finish(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Graph;

    /// A ferromagnet on a `side x side` torus, disguised by a random gauge: the partition
    /// `planted` cuts every edge of weight +1 and no edge of weight -1, so it is a maximum cut.
    /// Annealing leaves large domains behind; only cluster moves remove them quickly.
    fn planted_torus(side: usize, seed: u64) -> (Graph, Vec<bool>) {
        let mut r = rng(seed, 0);
        let planted: Vec<bool> = (0..side * side).map(|_| r.random_bool(0.5)).collect();
        let mut edges = Vec::new();
        for i in 0..side {
            for j in 0..side {
                let v = i * side + j;
                for u in [i * side + (j + 1) % side, ((i + 1) % side) * side + j] {
                    let w = if planted[v] == planted[u] { -1.0 } else { 1.0 };
                    edges.push((v, u, w));
                }
            }
        }
        (Graph::new(side * side, edges).unwrap(), planted)
    }

    #[test]
    fn the_coarse_model_prices_cluster_flips_exactly() {
        let (g, _) = planted_torus(6, 1);
        let q = g.max_cut_qubo();
        let mut r = rng(2, 0);
        let states: Vec<Vec<bool>> = (0..3).map(|_| random_assignment(36, &mut r)).collect();
        let best = random_assignment(36, &mut r);
        let (cluster, k) = consensus_clusters(&q, &states, &best);
        let coarse = coarse_model(&q, &cluster, k, &best);
        for _ in 0..20 {
            let o = random_assignment(k, &mut r);
            let x: Vec<bool> = (0..36).map(|i| best[i] ^ o[cluster[i] as usize]).collect();
            assert!((coarse.energy(&o) - q.energy(&x)).abs() < 1e-9);
        }
    }

    #[test]
    fn recursive_coarsening_finds_a_planted_maximum_cut() {
        let (g, planted) = planted_torus(32, 3);
        let q = g.max_cut_qubo();
        let optimum = g.cut_value(&planted);
        // Recurse on coarse models from 16 variables, so that this small model recurses too.
        let hybrid = HybridAnnealing {
            recurse_above: 16,
            ..HybridAnnealing::default()
        };
        for seed in 0..3 {
            let sol = hybrid
                .solve(&q, &SolveOptions::new(Budget::sweeps(20_000), seed))
                .unwrap();
            assert_eq!(g.cut_value(&sol.assignment), optimum, "seed {seed}");
            let again = hybrid
                .solve(&q, &SolveOptions::new(Budget::sweeps(20_000), seed))
                .unwrap();
            assert_eq!(sol.assignment, again.assignment, "same seed, same result");
        }
    }

    #[test]
    fn polishing_spends_moves_only_while_they_pay() {
        let (g, planted) = planted_torus(12, 4);
        let q = g.max_cut_qubo();
        let hybrid = HybridAnnealing::default();
        let mut run = Run::new(&q, &Budget::sweeps(1_000), 0);
        let mut moves = ClusterExact::new(q.num_vars());
        let mut r = rng(1, 0);
        // From a random state the moves lower the energy: the count stays at its maximum.
        let mut x = random_assignment(q.num_vars(), &mut r);
        let mut count = hybrid.exact_moves;
        let before = q.energy(&x);
        assert!(hybrid.polish(&q, &mut moves, &mut x, &mut run, &mut r, &mut count));
        assert!(q.energy(&x) < before);
        assert_eq!(count, hybrid.exact_moves);
        assert_eq!(run.best_energy, q.energy(&x));
        // At the optimum they cannot: the count halves down to one move.
        let mut x = planted.clone();
        for expected in [7, 3, 1, 1] {
            hybrid.polish(&q, &mut moves, &mut x, &mut run, &mut r, &mut count);
            assert_eq!(count, expected);
            assert_eq!(g.cut_value(&x), g.cut_value(&planted));
        }
        assert_eq!(run.sweeps, 15 + 15 + 7 + 3 + 1);
    }

    #[test]
    fn lattices_go_to_tempering_with_cluster_moves() {
        let (g, planted) = planted_torus(24, 5);
        let q = g.max_cut_qubo();
        let hybrid = HybridAnnealing {
            tempering_min_rounds: 100,
            ..HybridAnnealing::default()
        };
        for seed in 0..3 {
            let opts = SolveOptions::new(Budget::sweeps(12_000), seed);
            let sol = hybrid.solve(&q, &opts).unwrap();
            assert_eq!(g.cut_value(&sol.assignment), g.cut_value(&planted));
            assert_eq!(sol.sweeps, 12_000);
            assert_eq!(sol.solver, "hybrid");
            assert!(sol.trace.windows(2).all(|w| w[1].energy <= w[0].energy));
            assert_eq!(hybrid.solve(&q, &opts).unwrap().assignment, sol.assignment);
            // It is the tempering run, started from the hybrid's first random state.
            let first = random_assignment(q.num_vars(), &mut rng(seed, 0));
            let tempering = HoudayerTempering::default()
                .solve(&q, &opts.clone().with_initial(&first))
                .unwrap();
            assert_eq!(tempering.assignment, sol.assignment);
        }
    }

    #[test]
    fn lattices_are_told_from_other_sparse_graphs() {
        let (torus, _) = planted_torus(8, 1);
        assert!(lattice_like(&torus.max_cut_qubo(), 4.5));
        // A ring has degree 2 but no short cycle; a random 3-regular-ish graph few of them.
        let ring = Graph::new(50, (0..50).map(|i| (i, (i + 1) % 50, 1.0)).collect()).unwrap();
        assert!(!lattice_like(&ring.max_cut_qubo(), 4.5));
        let mut r = rng(9, 0);
        let n = 400;
        let edges = (0..3 * n / 2)
            .map(|_| (r.random_range(0..n), r.random_range(0..n), 1.0))
            .filter(|&(a, b, _)| a != b)
            .collect();
        assert!(!lattice_like(
            &Graph::new(n, edges).unwrap().max_cut_qubo(),
            4.5
        ));
        // A torus with a hub is not lattice-like either, nor a denser graph.
        assert!(!lattice_like(&torus.max_cut_qubo(), 3.0));
    }

    #[test]
    fn bad_settings_are_refused() {
        let q = QuboBuilder::new(3).build().unwrap();
        let bad = HybridAnnealing {
            replicas: 1,
            ..HybridAnnealing::default()
        };
        assert!(matches!(
            bad.solve(&q, &SolveOptions::default()),
            Err(SolveError::Config(_))
        ));
    }
}
