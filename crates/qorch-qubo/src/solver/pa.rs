//! Population annealing: many annealing replicas, resampled by their Boltzmann weights at every
//! temperature step.

use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::sa::{
    AcceptTable, IntModel, Schedule, colored_sweep, fields_of, metropolis_sweep,
    metropolis_sweep_int, sweeps_available,
};
use super::{
    Run, Solution, SolveError, SolveOptions, Solver, check_beta_range, check_initial,
    default_beta_range, random_assignment, rng, unit_f64,
};
use crate::Qubo;

/// Population annealing (Hukushima and Iba 2003, Machta 2010): `R` replicas anneal together
/// along one schedule, one sweep per temperature step, and between steps the population is
/// resampled: a replica of energy `E` is copied in proportion to `exp(-(beta' - beta) E)`, so
/// that replicas in poor valleys die out and those in good ones multiply while the valleys are
/// still being chosen.
///
/// Independent annealing reads pick their valley early and by chance: on the planar G-set
/// graphs (unions of two random stacked triangulations, whose early vertices are hubs of degree
/// up to 300) the cut a read ends with is mostly fixed once the hubs freeze, and a read 16
/// times longer ends no better on average. Resampling keeps selecting among valleys all the
/// way down: on G35, 50 replicas of 10,000 sweeps reached a cut of 7684 where the best of 50
/// independent reads of that length reached 7678 (see `docs/benchmarks.md`).
///
/// The population: `replicas` if set; otherwise one replica per `sweeps_per_replica` sweeps of
/// the budget, between 4 and 256, so that each replica anneals for about that many sweeps.
/// Resampling is systematic (one uniform draw per step), and copies are made in place: a
/// replica is overwritten only by a copy of one that multiplies. The sweep budget counts the
/// sweeps of all replicas. Single-threaded and seeded: the same seed and sweep budget give the
/// same result.
///
/// # Examples
///
/// ```
/// use qorch_qubo::{Budget, Graph, PopulationAnnealing, SolveOptions, Solver};
///
/// // An odd ring cannot be cut everywhere: the best cut leaves one edge uncut.
/// let ring = Graph::new(9, (0..9).map(|i| (i, (i + 1) % 9, 1.0)).collect()).unwrap();
/// let sol = PopulationAnnealing::default()
///     .solve(&ring.max_cut_qubo(), &SolveOptions::new(Budget::sweeps(4_000), 5))
///     .unwrap();
/// assert_eq!(ring.cut_value(&sol.assignment), 8.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopulationAnnealing {
    /// Replicas in the population; `None` sizes it from the budget.
    pub replicas: Option<usize>,
    /// With `replicas` unset, the sweeps each replica should get (at least 1).
    pub sweeps_per_replica: u64,
    /// `(hot, cold)` inverse temperatures; `None` derives them from the model.
    pub beta_range: Option<(f64, f64)>,
}

impl Default for PopulationAnnealing {
    fn default() -> Self {
        PopulationAnnealing {
            replicas: None,
            sweeps_per_replica: 10_000,
            beta_range: None,
        }
    }
}

/// Replicas in an automatically sized population.
const MIN_REPLICAS: u64 = 4;
const MAX_REPLICAS: u64 = 256;

/// The population for a budget of `total` sweeps: `(replicas, sweeps each)`.
fn population_size(total: u64, per_replica: u64) -> (usize, u64) {
    let replicas = (total / per_replica.max(1)).clamp(MIN_REPLICAS, MAX_REPLICAS);
    (replicas as usize, (total / replicas).max(1))
}

/// Number of copies of each replica after a step from `beta` to `beta + step`: systematic
/// resampling with weights `exp(-step (E - E_min))`, from one uniform draw `u` in `[0, 1)`.
/// The counts add up to the population size.
fn resample_counts(energies: &[f64], step: f64, u: f64, counts: &mut Vec<usize>) {
    let emin = energies.iter().copied().fold(f64::INFINITY, f64::min);
    let weights = energies.iter().map(|&e| (-step * (e - emin)).exp());
    let total: f64 = weights.clone().sum();
    let scale = energies.len() as f64 / total;
    counts.clear();
    let mut cum = 0.0;
    let mut taken = 0_usize;
    for w in weights {
        cum += w * scale;
        // Copies of this replica: the grid points u, u + 1, ... that fall below `cum`.
        let upto = ((cum - u).ceil().max(0.0) as usize).min(energies.len());
        counts.push(upto - taken);
        taken = upto;
    }
    // Rounding can leave the last grid point unclaimed: give it to the lowest energy.
    if taken < energies.len() {
        let best = (0..energies.len())
            .min_by(|&a, &b| energies[a].total_cmp(&energies[b]))
            .unwrap_or(0);
        counts[best] += energies.len() - taken;
    }
}

/// Rewrites the population in place after resampling: every replica with no copies is
/// overwritten by a copy of one that has several.
fn redistribute<T>(reps: &mut [T], counts: &[usize], copy: impl Fn(&mut T, &T)) {
    let mut free: Vec<usize> = (0..reps.len()).filter(|&r| counts[r] == 0).collect();
    for (src, &c) in counts.iter().enumerate() {
        for _ in 1..c.max(1) {
            let dst = free.pop().expect("counts add up to the population size");
            let (a, b) = if dst < src {
                let (lo, hi) = reps.split_at_mut(src);
                (&mut lo[dst], &hi[0])
            } else {
                let (lo, hi) = reps.split_at_mut(dst);
                (&mut hi[0], &lo[src])
            };
            copy(a, b);
        }
    }
}

/// One replica of an integer model: its state (in the coloured layout, or by variable once
/// the population has switched to the sequential kernel), fields and exact energy change
/// from the common base.
struct IntReplica {
    y: Vec<bool>,
    field: Vec<i32>,
    delta: i64,
}

/// One replica of a real-valued model.
struct RealReplica {
    x: Vec<bool>,
    field: Vec<f64>,
    energy: f64,
}

/// The temperature steps of a population anneal, and the resampling between them.
struct Steps {
    betas: (f64, f64),
    sweeps: u64,
    previous: f64,
    counts: Vec<usize>,
    energies: Vec<f64>,
}

impl Steps {
    fn new(betas: (f64, f64), sweeps: u64) -> Self {
        Steps {
            betas,
            sweeps,
            previous: Schedule::Geometric.beta(betas, 0, sweeps),
            counts: Vec::new(),
            energies: Vec::new(),
        }
    }

    /// The inverse temperature of step `k`. From the second step on, first resamples `reps`
    /// (energies by `energy`, copies by `copy`) for the change of temperature.
    fn advance<T>(
        &mut self,
        k: u64,
        reps: &mut [T],
        energy: impl Fn(&T) -> f64,
        copy: impl Fn(&mut T, &T),
        r: &mut Xoshiro256PlusPlus,
    ) -> f64 {
        let beta = Schedule::Geometric.beta(self.betas, k, self.sweeps);
        if k > 0 && beta > self.previous {
            self.energies.clear();
            self.energies.extend(reps.iter().map(energy));
            resample_counts(
                &self.energies,
                beta - self.previous,
                unit_f64(r),
                &mut self.counts,
            );
            redistribute(reps, &self.counts, copy);
        }
        self.previous = beta;
        beta
    }
}

/// Anneals `replicas` replicas for `sweeps` temperature steps of one sweep each, resampling
/// between steps, and offers every improvement of the run's best to `run`. The first replica
/// starts from `initial` if given. Returns whether the run may go on.
#[allow(
    clippy::too_many_arguments,
    reason = "the state of one population anneal; internal"
)]
fn population_anneal(
    qubo: &Qubo,
    int: Option<&IntModel>,
    run: &mut Run<'_>,
    replicas: usize,
    sweeps: u64,
    betas: (f64, f64),
    initial: Option<&[bool]>,
    r: &mut Xoshiro256PlusPlus,
) -> bool {
    let n = qubo.num_vars();
    let starts: Vec<Vec<bool>> = (0..replicas)
        .map(|k| match (k, initial) {
            (0, Some(x)) => x.to_vec(),
            _ => random_assignment(n, r),
        })
        .collect();
    let steps = Steps::new(betas, sweeps);
    match int {
        Some(m) => anneal_int(qubo, m, run, &starts, steps, r),
        None => anneal_real(qubo, run, starts, steps, r),
    }
}

/// [`population_anneal`] with the integer kernels: the coloured sweep while many moves are
/// made, then (for the whole population at once) the sequential one, as in `anneal`.
fn anneal_int(
    qubo: &Qubo,
    m: &IntModel,
    run: &mut Run<'_>,
    starts: &[Vec<bool>],
    mut steps: Steps,
    r: &mut Xoshiro256PlusPlus,
) -> bool {
    let n = qubo.num_vars();
    let replicas = starts.len();
    let c = &m.colored;
    let base = qubo.energy(&starts[0]);
    let mut reps: Vec<IntReplica> = starts
        .iter()
        .map(|x| {
            let y = c.gather(x);
            IntReplica {
                field: c.fields(&y),
                // Integer coefficients: energy differences are exact integers.
                delta: (qubo.energy(x) - base).round() as i64,
                y,
            }
        })
        .collect();
    let mut colored = true;
    let mut moves = vec![0_u32; n];
    let mut table = AcceptTable::new();
    let mut x = vec![false; n];
    for k in 0..steps.sweeps {
        let beta = steps.advance(
            k,
            &mut reps,
            |rep| rep.delta as f64,
            |a, b| {
                a.y.copy_from_slice(&b.y);
                a.field.copy_from_slice(&b.field);
                a.delta = b.delta;
            },
            r,
        );
        table.set_beta(beta);
        if colored {
            let mut made = 0;
            for rep in &mut reps {
                made += colored_sweep(
                    c,
                    &mut rep.y,
                    &mut rep.field,
                    &mut rep.delta,
                    &table,
                    r,
                    &mut moves,
                );
            }
            // Few moves: the sequential kernel is faster (see `anneal`).
            if 10 * made < n * replicas {
                for rep in &mut reps {
                    c.scatter(&rep.y, &mut x);
                    rep.y.copy_from_slice(&x);
                    rep.field = m.fields(&rep.y);
                }
                colored = false;
            }
        } else {
            for rep in &mut reps {
                metropolis_sweep_int(m, &mut rep.y, &mut rep.field, &mut rep.delta, &table, r);
            }
        }
        if let Some(best) = reps.iter().min_by_key(|rep| rep.delta)
            && base + (best.delta as f64) < run.best_energy
        {
            if colored {
                c.scatter(&best.y, &mut x);
            } else {
                x.copy_from_slice(&best.y);
            }
            run.offer(&x, base + best.delta as f64);
        }
        if run.add_sweeps(replicas as u64) {
            return false;
        }
    }
    true
}

/// [`population_anneal`] with the `f64` kernel, for models with non-integer coefficients.
fn anneal_real(
    qubo: &Qubo,
    run: &mut Run<'_>,
    starts: Vec<Vec<bool>>,
    mut steps: Steps,
    r: &mut Xoshiro256PlusPlus,
) -> bool {
    let replicas = starts.len();
    let mut reps: Vec<RealReplica> = starts
        .into_iter()
        .map(|x| RealReplica {
            field: fields_of(qubo, &x),
            energy: qubo.energy(&x),
            x,
        })
        .collect();
    for k in 0..steps.sweeps {
        let beta = steps.advance(
            k,
            &mut reps,
            |rep| rep.energy,
            |a, b| {
                a.x.copy_from_slice(&b.x);
                a.field.copy_from_slice(&b.field);
                a.energy = b.energy;
            },
            r,
        );
        for rep in &mut reps {
            metropolis_sweep(qubo, &mut rep.x, &mut rep.field, &mut rep.energy, beta, r);
        }
        if let Some(best) = reps.iter().min_by(|a, b| a.energy.total_cmp(&b.energy))
            && best.energy < run.best_energy
        {
            run.offer(&best.x, best.energy);
        }
        if run.add_sweeps(replicas as u64) {
            return false;
        }
    }
    true
}

impl Solver for PopulationAnnealing {
    fn name(&self) -> &str {
        "pa"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        check_beta_range(self.beta_range)?;
        if self.replicas == Some(0) || self.sweeps_per_replica == 0 {
            return Err(SolveError::Config(
                "population annealing needs at least one replica and sweeps_per_replica >= 1"
                    .into(),
            ));
        }
        let n = qubo.num_vars();
        let default_replicas = self.replicas.unwrap_or(MIN_REPLICAS as usize) as u64;
        let mut run = Run::new(
            qubo,
            &options.budget,
            default_replicas * self.sweeps_per_replica,
        );
        if n == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let betas = self.beta_range.unwrap_or_else(|| default_beta_range(qubo));
        let int = IntModel::new(qubo);
        let mut r = rng(options.seed, 0);
        // A time budget is turned into sweeps by probe anneals (`sweeps_available`).
        let Some((total, _)) =
            sweeps_available(qubo, int.as_ref(), &mut run, options, betas, &mut r)
        else {
            return Ok(run.finish(self.name()));
        };
        let (replicas, sweeps) = match self.replicas {
            Some(k) => (k, (total / k as u64).max(1)),
            None => population_size(total, self.sweeps_per_replica),
        };
        population_anneal(
            qubo,
            int.as_ref(),
            &mut run,
            replicas,
            sweeps,
            betas,
            options.initial,
            &mut r,
        );
        Ok(run.finish(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Budget, QuboBuilder};
    use rand::RngExt;

    #[test]
    fn resampling_keeps_the_population_size_and_favours_low_energies() {
        let mut counts = Vec::new();
        let energies = [0.0, 1.0, 2.0, 10.0, 0.5];
        for u in [0.0, 0.3, 0.999] {
            for step in [0.0, 0.1, 1.0, 100.0] {
                resample_counts(&energies, step, u, &mut counts);
                assert_eq!(
                    counts.iter().sum::<usize>(),
                    energies.len(),
                    "u {u} step {step}"
                );
            }
        }
        // No temperature change: every replica survives once.
        resample_counts(&energies, 0.0, 0.5, &mut counts);
        assert_eq!(counts, vec![1; 5]);
        // A huge step keeps only the lowest energy.
        resample_counts(&energies, 100.0, 0.5, &mut counts);
        assert_eq!(counts, vec![5, 0, 0, 0, 0]);
        // In between, a high-energy replica dies and a low one multiplies.
        resample_counts(&energies, 1.0, 0.5, &mut counts);
        assert_eq!(counts[3], 0);
        assert!(counts[0] >= 1);
    }

    #[test]
    fn redistribution_copies_multiplied_replicas_into_dead_ones() {
        let mut reps = vec![10, 11, 12, 13, 14];
        redistribute(&mut reps, &[0, 3, 0, 1, 1], |a, b| *a = *b);
        let mut sorted = reps.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![11, 11, 11, 13, 14]);
        assert_eq!(
            (reps[1], reps[3], reps[4]),
            (11, 13, 14),
            "survivors stay in place"
        );
    }

    #[test]
    fn population_sizes_follow_the_budget() {
        assert_eq!(population_size(500_000, 10_000), (50, 10_000));
        assert_eq!(population_size(1_000, 10_000), (4, 250));
        assert_eq!(population_size(u64::MAX / 2, 10_000).0, 256);
    }

    fn frustrated(n: usize, seed: u64, integer: bool) -> crate::Qubo {
        let mut r = rng(seed, 7);
        let mut b = QuboBuilder::new(n);
        for i in 0..n {
            for _ in 0..3 {
                let j = r.random_range(0..n);
                if j != i {
                    let w: f64 = if integer {
                        f64::from(r.random_range(-3..=3))
                    } else {
                        r.random_range(-2.0..2.0)
                    };
                    b.add_quadratic(i, j, w);
                }
            }
            b.add_linear(
                i,
                if integer {
                    -1.0
                } else {
                    r.random_range(-1.0..1.0)
                },
            );
        }
        b.build().unwrap()
    }

    #[test]
    fn finds_exact_optima_with_either_kernel_and_repeats_itself() {
        for integer in [true, false] {
            for seed in 0..4 {
                let q = frustrated(16, seed, integer);
                let exact = super::super::ExactSolver::default()
                    .solve(&q, &SolveOptions::default())
                    .unwrap();
                let opts = SolveOptions::new(Budget::sweeps(20_000), seed);
                let sol = PopulationAnnealing::default().solve(&q, &opts).unwrap();
                assert!(
                    (sol.energy - exact.energy).abs() < 1e-9,
                    "integer {integer} seed {seed}: {} vs {}",
                    sol.energy,
                    exact.energy
                );
                assert_eq!(sol.sweeps, 20_000);
                assert!((sol.energy - q.energy(&sol.assignment)).abs() < 1e-9);
                let again = PopulationAnnealing::default().solve(&q, &opts).unwrap();
                assert_eq!(again.assignment, sol.assignment);
            }
        }
    }

    #[test]
    fn tracked_energies_survive_resampling_and_the_kernel_switch() {
        // The best energy the population tracked (the trace) must be the exact energy of the
        // state it reports, through copies, layouts and both kernels.
        for integer in [true, false] {
            for seed in 0..3 {
                let q = frustrated(200, seed, integer);
                for replicas in [3, 17] {
                    let pa = PopulationAnnealing {
                        replicas: Some(replicas),
                        ..PopulationAnnealing::default()
                    };
                    let sol = pa
                        .solve(&q, &SolveOptions::new(Budget::sweeps(3_000), seed))
                        .unwrap();
                    let tracked = sol
                        .trace
                        .iter()
                        .map(|p| p.energy)
                        .fold(f64::INFINITY, f64::min);
                    assert!(
                        (sol.energy - tracked).abs() < 1e-6,
                        "{} vs {tracked}",
                        sol.energy
                    );
                    assert_eq!(sol.sweeps, 3_000 / replicas as u64 * replicas as u64);
                }
            }
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let q = QuboBuilder::new(3).build().unwrap();
        for bad in [
            PopulationAnnealing {
                replicas: Some(0),
                ..PopulationAnnealing::default()
            },
            PopulationAnnealing {
                sweeps_per_replica: 0,
                ..PopulationAnnealing::default()
            },
            PopulationAnnealing {
                beta_range: Some((2.0, 1.0)),
                ..PopulationAnnealing::default()
            },
        ] {
            assert!(matches!(
                bad.solve(&q, &SolveOptions::default()),
                Err(SolveError::Config(_))
            ));
        }
    }
}
