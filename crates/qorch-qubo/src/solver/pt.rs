//! Parallel tempering (replica exchange Monte Carlo).

use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::sa::{fields_of, metropolis_sweep};
use super::{
    Run, Solution, SolveError, SolveOptions, Solver, check_initial, default_beta_range,
    random_assignment, rng, unit_f64,
};
use crate::Qubo;

/// Parallel tempering: `replicas` copies of the system at inverse temperatures spaced
/// geometrically over `beta_range`, each making Metropolis sweeps; after every
/// `sweeps_per_exchange` sweeps, neighbouring temperatures try to swap their replicas with
/// probability `min(1, exp((beta_i - beta_j)(E_i - E_j)))`, so good states found hot can cool
/// and cold states can escape through heat.
///
/// The replicas' sweeps run on rayon's threads when the model is large enough to pay for it;
/// every replica has its own random stream and exchanges are decided in order by the run's own
/// stream, so the result does not depend on the number of threads. The sweep budget counts the
/// sweeps of all replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelTempering {
    /// Number of replicas (temperatures), at least 2.
    pub replicas: usize,
    /// `(hot, cold)` inverse temperatures; `None` derives them from the model.
    pub beta_range: Option<(f64, f64)>,
    /// Sweeps each replica makes between two exchange rounds.
    pub sweeps_per_exchange: u64,
    /// Run replicas on several threads (for models with at least 256 variables).
    pub parallel: bool,
}

impl Default for ParallelTempering {
    fn default() -> Self {
        ParallelTempering {
            replicas: 16,
            beta_range: None,
            sweeps_per_exchange: 1,
            parallel: true,
        }
    }
}

struct Replica {
    x: Vec<bool>,
    field: Vec<f64>,
    energy: f64,
    rng: Xoshiro256PlusPlus,
}

impl Solver for ParallelTempering {
    fn name(&self) -> &str {
        "pt"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        if self.replicas < 2 || self.sweeps_per_exchange == 0 {
            return Err(SolveError::Config(
                "parallel tempering needs at least 2 replicas and 1 sweep per exchange".into(),
            ));
        }
        let n = qubo.num_vars();
        let r_count = self.replicas;
        let mut run = Run::new(qubo, &options.budget, 1000 * r_count as u64);
        if n == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let (hot, cold) = self.beta_range.unwrap_or_else(|| default_beta_range(qubo));
        let betas: Vec<f64> = (0..r_count)
            .map(|t| hot * (cold / hot).powf(t as f64 / (r_count - 1) as f64))
            .collect();
        let mut replicas: Vec<Replica> = (0..r_count)
            .map(|k| {
                let mut r = rng(options.seed, 1 + k as u64);
                let x = match (k, options.initial) {
                    (0, Some(init)) => init.to_vec(),
                    _ => random_assignment(n, &mut r),
                };
                let field = fields_of(qubo, &x);
                let energy = qubo.energy(&x);
                Replica {
                    x,
                    field,
                    energy,
                    rng: r,
                }
            })
            .collect();
        // `at[t]` is the replica currently at temperature `t`.
        let mut at: Vec<usize> = (0..r_count).collect();
        let mut master = rng(options.seed, 0);
        let parallel = self.parallel && n >= 256 && rayon::current_num_threads() > 1;
        let mut round = 0_u64;
        loop {
            let mut beta_of = vec![0.0; r_count];
            for (t, &k) in at.iter().enumerate() {
                beta_of[k] = betas[t];
            }
            let sweeps = self.sweeps_per_exchange;
            let step = |(k, rep): (usize, &mut Replica)| {
                for _ in 0..sweeps {
                    metropolis_sweep(
                        qubo,
                        &mut rep.x,
                        &mut rep.field,
                        &mut rep.energy,
                        beta_of[k],
                        &mut rep.rng,
                    );
                }
            };
            if parallel {
                replicas.par_iter_mut().enumerate().for_each(step);
            } else {
                replicas.iter_mut().enumerate().for_each(step);
            }
            for rep in &replicas {
                if rep.energy < run.best_energy {
                    run.offer(&rep.x, rep.energy);
                }
            }
            if run.add_sweeps(sweeps * r_count as u64) {
                break;
            }
            // Exchanges between neighbouring temperatures, even and odd pairs alternately.
            let parity = (round % 2) as usize;
            for t in (parity..r_count - 1).step_by(2) {
                let (a, b) = (at[t], at[t + 1]);
                let log_p = (betas[t] - betas[t + 1]) * (replicas[a].energy - replicas[b].energy);
                if log_p >= 0.0 || unit_f64(&mut master) < log_p.exp() {
                    at.swap(t, t + 1);
                }
            }
            round += 1;
        }
        Ok(run.finish(self.name()))
    }
}
