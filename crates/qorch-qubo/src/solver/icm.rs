//! Parallel tempering with Houdayer's isoenergetic cluster moves.

use rand::RngExt;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::sa::{AcceptTable, IntModel, fields_of, metropolis_sweep, metropolis_sweep_int};
use super::{
    Run, Solution, SolveError, SolveOptions, Solver, check_beta_range, check_initial,
    default_beta_range, random_assignment, rng, unit_f64,
};
use crate::Qubo;

/// Parallel tempering with two replicas per temperature and Houdayer's isoenergetic cluster
/// moves (ICM; Houdayer 2001, Zhu, Ochoa and Katzgraber 2015): the tool of choice for sparse,
/// lattice-like models such as 2D spin glasses (the toroidal G-set graphs).
///
/// Two chains of `temperatures` replicas share one temperature ladder. Each round every
/// replica makes one Metropolis sweep; then, at each temperature, the two replicas there
/// exchange a *cluster*: a connected set (in the coupling graph) of variables on which they
/// disagree, grown from a random such variable. Every coupling leaving the cluster joins two
/// variables on which the replicas agree, so the exchange keeps the sum of their two energies
/// exactly: it is always accepted, and it moves whole domains that single flips would have to
/// cross an energy barrier to move. Last, each chain tries replica exchanges between
/// neighbouring temperatures, as in [`ParallelTempering`](super::ParallelTempering).
///
/// Cluster moves pay off while the disagreement does not percolate: on lattices and other
/// low-degree graphs. On dense or expander-like graphs the cluster is most of the disagreement
/// and the move is little more than a swap (it is skipped when the replicas disagree on more
/// than half the variables). The run is single-threaded; the sweep budget counts the sweeps of
/// all `2 * temperatures` replicas.
///
/// # Examples
///
/// ```
/// use qorch_qubo::{Budget, Graph, HoudayerTempering, SolveOptions, Solver};
///
/// // A 6 x 6 torus with unit weights is bipartite: the best cut takes all 72 edges.
/// let side = 6;
/// let mut edges = Vec::new();
/// for i in 0..side {
///     for j in 0..side {
///         let v = i * side + j;
///         edges.push((v, i * side + (j + 1) % side, 1.0));
///         edges.push((v, ((i + 1) % side) * side + j, 1.0));
///     }
/// }
/// let torus = Graph::new(side * side, edges).unwrap();
/// let sol = HoudayerTempering::default()
///     .solve(&torus.max_cut_qubo(), &SolveOptions::new(Budget::sweeps(20_000), 3))
///     .unwrap();
/// assert_eq!(torus.cut_value(&sol.assignment), 72.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoudayerTempering {
    /// Temperatures on the ladder (at least 2); there are twice as many replicas.
    pub temperatures: usize,
    /// `(hot, cold)` inverse temperatures; `None` derives them from the model (see `hot_end`).
    pub beta_range: Option<(f64, f64)>,
    /// With `beta_range` unset, where the hot end sits: this fraction of the way, on a log
    /// scale, from the hot to the cold end of the default annealing range. Tempering needs no
    /// random-walk temperatures, only ones where domains still move.
    pub hot_end: f64,
}

impl Default for HoudayerTempering {
    fn default() -> Self {
        HoudayerTempering {
            temperatures: 20,
            beta_range: None,
            hot_end: 0.45,
        }
    }
}

/// One replica's state under a sweep kernel.
trait Kernel {
    type State;
    fn state(&self, qubo: &Qubo, x: Vec<bool>) -> Self::State;
    fn sweep(&self, s: &mut Self::State, t: usize, rng: &mut Xoshiro256PlusPlus);
    fn flip(&self, s: &mut Self::State, i: usize);
    fn energy(s: &Self::State) -> f64;
    fn x(s: &Self::State) -> &[bool];
}

/// Integer coefficients: table lookups for acceptance, exact energies.
struct IntKernel {
    model: IntModel,
    tables: Vec<AcceptTable>,
}

struct IntState {
    x: Vec<bool>,
    field: Vec<i32>,
    /// Energy change since `base`, exact.
    delta: i64,
    base: f64,
}

impl Kernel for IntKernel {
    type State = IntState;

    fn state(&self, qubo: &Qubo, x: Vec<bool>) -> IntState {
        IntState {
            field: self.model.fields(&x),
            base: qubo.energy(&x),
            delta: 0,
            x,
        }
    }

    fn sweep(&self, s: &mut IntState, t: usize, rng: &mut Xoshiro256PlusPlus) {
        metropolis_sweep_int(
            &self.model,
            &mut s.x,
            &mut s.field,
            &mut s.delta,
            &self.tables[t],
            rng,
        );
    }

    fn flip(&self, s: &mut IntState, i: usize) {
        let f = s.field[i];
        s.delta += i64::from(if s.x[i] { -f } else { f });
        let on = !s.x[i];
        s.x[i] = on;
        let sign = if on { 1 } else { -1 };
        for &(j, w) in self.model.couplings(i) {
            s.field[j as usize] += sign * w;
        }
    }

    fn energy(s: &IntState) -> f64 {
        s.base + s.delta as f64
    }

    fn x(s: &IntState) -> &[bool] {
        &s.x
    }
}

/// Any coefficients.
struct FloatKernel<'q> {
    qubo: &'q Qubo,
    betas: Vec<f64>,
}

struct FloatState {
    x: Vec<bool>,
    field: Vec<f64>,
    energy: f64,
}

impl Kernel for FloatKernel<'_> {
    type State = FloatState;

    fn state(&self, qubo: &Qubo, x: Vec<bool>) -> FloatState {
        FloatState {
            field: fields_of(qubo, &x),
            energy: qubo.energy(&x),
            x,
        }
    }

    fn sweep(&self, s: &mut FloatState, t: usize, rng: &mut Xoshiro256PlusPlus) {
        metropolis_sweep(
            self.qubo,
            &mut s.x,
            &mut s.field,
            &mut s.energy,
            self.betas[t],
            rng,
        );
    }

    fn flip(&self, s: &mut FloatState, i: usize) {
        let f = s.field[i];
        s.energy += if s.x[i] { -f } else { f };
        let on = !s.x[i];
        s.x[i] = on;
        let sign = if on { 1.0 } else { -1.0 };
        for c in self.qubo.neighbors(i) {
            s.field[c.var as usize] += sign * c.weight;
        }
    }

    fn energy(s: &FloatState) -> f64 {
        s.energy
    }

    fn x(s: &FloatState) -> &[bool] {
        &s.x
    }
}

/// Scratch space of the cluster moves.
struct Clusters {
    stamp: Vec<u32>,
    current: u32,
    disagree: Vec<u32>,
    stack: Vec<u32>,
    members: Vec<u32>,
}

impl Clusters {
    fn new(n: usize) -> Self {
        Clusters {
            stamp: vec![0; n],
            current: 0,
            disagree: Vec::with_capacity(n),
            stack: Vec::new(),
            members: Vec::new(),
        }
    }

    /// Grows the cluster of a random variable on which `a` and `b` disagree into `members`;
    /// leaves `members` empty when there is none, or when they disagree on more than half.
    fn grow(&mut self, qubo: &Qubo, a: &[bool], b: &[bool], r: &mut Xoshiro256PlusPlus) {
        self.members.clear();
        self.disagree.clear();
        self.disagree
            .extend((0..a.len()).filter(|&i| a[i] != b[i]).map(|i| i as u32));
        if self.disagree.is_empty() || 2 * self.disagree.len() > a.len() {
            return;
        }
        let seed = self.disagree[r.random_range(0..self.disagree.len())];
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamp.fill(0);
            self.current = 1;
        }
        self.stamp[seed as usize] = self.current;
        self.stack.clear();
        self.stack.push(seed);
        while let Some(v) = self.stack.pop() {
            self.members.push(v);
            for c in qubo.neighbors(v as usize) {
                let j = c.var as usize;
                if self.stamp[j] != self.current && a[j] != b[j] {
                    self.stamp[j] = self.current;
                    self.stack.push(c.var);
                }
            }
        }
    }
}

impl HoudayerTempering {
    fn betas(&self, qubo: &Qubo) -> Vec<f64> {
        let (hot, cold) = self.beta_range.unwrap_or_else(|| {
            let (hot, cold) = default_beta_range(qubo);
            (hot * (cold / hot).powf(self.hot_end), cold)
        });
        let last = (self.temperatures - 1) as f64;
        (0..self.temperatures)
            .map(|t| hot * (cold / hot).powf(t as f64 / last))
            .collect()
    }

    fn run<K: Kernel>(
        &self,
        kernel: &K,
        betas: &[f64],
        qubo: &Qubo,
        options: &SolveOptions<'_>,
        run: &mut Run<'_>,
    ) {
        let n = qubo.num_vars();
        let nt = self.temperatures;
        let mut master = rng(options.seed, 0);
        let mut rngs: Vec<Xoshiro256PlusPlus> = (0..2 * nt)
            .map(|k| rng(options.seed, 1 + k as u64))
            .collect();
        let mut reps: Vec<K::State> = (0..2 * nt)
            .map(|k| {
                let x = match (k, options.initial) {
                    (0, Some(init)) => init.to_vec(),
                    _ => random_assignment(n, &mut rngs[k]),
                };
                kernel.state(qubo, x)
            })
            .collect();
        for s in &reps {
            run.offer(K::x(s), K::energy(s));
        }
        // `at[c][t]`: the replica of chain `c` at temperature `t`.
        let mut at: [Vec<usize>; 2] = [(0..nt).collect(), (nt..2 * nt).collect()];
        let mut clusters = Clusters::new(n);
        let mut round = 0_u64;
        loop {
            for chain in &at {
                for (t, &k) in chain.iter().enumerate() {
                    kernel.sweep(&mut reps[k], t, &mut rngs[k]);
                }
            }
            for t in 0..nt {
                let (a, b) = (at[0][t], at[1][t]);
                clusters.grow(qubo, K::x(&reps[a]), K::x(&reps[b]), &mut master);
                for &v in &clusters.members {
                    kernel.flip(&mut reps[a], v as usize);
                    kernel.flip(&mut reps[b], v as usize);
                }
            }
            for s in &reps {
                if K::energy(s) < run.best_energy {
                    run.offer(K::x(s), K::energy(s));
                }
            }
            if run.add_sweeps(2 * nt as u64) {
                return;
            }
            // Exchanges between neighbouring temperatures, even and odd pairs alternately.
            let parity = (round % 2) as usize;
            for chain in &mut at {
                for t in (parity..nt - 1).step_by(2) {
                    let (a, b) = (chain[t], chain[t + 1]);
                    let log_p =
                        (betas[t] - betas[t + 1]) * (K::energy(&reps[a]) - K::energy(&reps[b]));
                    if log_p >= 0.0 || unit_f64(&mut master) < log_p.exp() {
                        chain.swap(t, t + 1);
                    }
                }
            }
            round += 1;
        }
    }
}

impl Solver for HoudayerTempering {
    fn name(&self) -> &str {
        "icm"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        if self.temperatures < 2 || !(0.0..=1.0).contains(&self.hot_end) {
            return Err(SolveError::Config(
                "icm needs at least 2 temperatures and hot_end in [0, 1]".into(),
            ));
        }
        check_beta_range(self.beta_range)?;
        let mut run = Run::new(qubo, &options.budget, 2000 * self.temperatures as u64);
        if qubo.num_vars() == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let betas = self.betas(qubo);
        if let Some(model) = IntModel::new(qubo) {
            let tables = betas
                .iter()
                .map(|&b| {
                    let mut t = AcceptTable::new();
                    t.set_beta(b);
                    t
                })
                .collect();
            let kernel = IntKernel { model, tables };
            self.run(&kernel, &betas, qubo, options, &mut run);
        } else {
            let kernel = FloatKernel {
                qubo,
                betas: betas.clone(),
            };
            self.run(&kernel, &betas, qubo, options, &mut run);
        }
        Ok(run.finish(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Budget, ExactSolver, QuboBuilder};

    /// A cluster exchange keeps the sum of the two replicas' energies, with linear terms too.
    #[test]
    fn cluster_exchanges_keep_the_total_energy() {
        let mut r = rng(5, 0);
        let n = 40;
        let mut b = QuboBuilder::new(n);
        for i in 0..n {
            b.add_linear(i, f64::from(r.random_range(-3..=3_i32)));
            b.add_quadratic(i, (i + 1) % n, f64::from(r.random_range(-4..=4_i32)));
            b.add_quadratic(i, (i + 7) % n, f64::from(r.random_range(-4..=4_i32)));
        }
        let q = b.build().unwrap();
        let kernel = FloatKernel {
            qubo: &q,
            betas: vec![1.0],
        };
        let mut clusters = Clusters::new(n);
        for _ in 0..50 {
            let mut a = kernel.state(&q, random_assignment(n, &mut r));
            let mut c = kernel.state(&q, random_assignment(n, &mut r));
            // Make them agree on most variables so that clusters stay small.
            for i in 0..n {
                if r.random_bool(0.7) {
                    c.x[i] = a.x[i];
                }
            }
            c = kernel.state(&q, c.x);
            let total = a.energy + c.energy;
            clusters.grow(&q, &a.x, &c.x, &mut r);
            for &v in &clusters.members {
                kernel.flip(&mut a, v as usize);
                kernel.flip(&mut c, v as usize);
            }
            assert!((a.energy + c.energy - total).abs() < 1e-9);
            assert!((a.energy - q.energy(&a.x)).abs() < 1e-9);
        }
    }

    #[test]
    fn finds_the_exact_optimum_with_either_kernel() {
        let mut r = rng(11, 0);
        for trial in 0..6 {
            let n = 16;
            let mut b = QuboBuilder::new(n);
            let scale = if trial % 2 == 0 { 1.0 } else { 0.37 }; // integer or not
            for i in 0..n {
                b.add_linear(i, scale * f64::from(r.random_range(-4..=4_i32)));
                for j in [(i + 1) % n, (i + 5) % n] {
                    b.add_quadratic(i, j, scale * f64::from(r.random_range(-4..=4_i32)));
                }
            }
            let q = b.build().unwrap();
            let exact = ExactSolver::default()
                .solve(&q, &SolveOptions::default())
                .unwrap();
            let opts = SolveOptions::new(Budget::sweeps(4_000), trial);
            let sol = HoudayerTempering::default().solve(&q, &opts).unwrap();
            assert!((sol.energy - exact.energy).abs() < 1e-9, "trial {trial}");
            let again = HoudayerTempering::default().solve(&q, &opts).unwrap();
            assert_eq!(sol.assignment, again.assignment, "same seed, same result");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let q = QuboBuilder::new(3).build().unwrap();
        for bad in [
            HoudayerTempering {
                temperatures: 1,
                ..HoudayerTempering::default()
            },
            HoudayerTempering {
                beta_range: Some((2.0, 1.0)),
                ..HoudayerTempering::default()
            },
        ] {
            assert!(matches!(
                bad.solve(&q, &SolveOptions::default()),
                Err(SolveError::Config(_))
            ));
        }
    }
}
