//! One-flip tabu search with incremental deltas, aspiration and restarts.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::sa::fields_of;
use super::{
    Run, Solution, SolveError, SolveOptions, Solver, check_initial, random_assignment, rng,
};
use crate::Qubo;

/// Tabu search (Glover's one-flip neighbourhood).
///
/// Each iteration flips the variable whose flip lowers the energy most (or raises it least)
/// among those not tabu; a variable just flipped stays tabu for `tenure` iterations, unless
/// flipping it would reach a new best energy (aspiration). After `stall` iterations without a
/// new best, the search restarts from the best assignment with a fraction `perturbation` of
/// its variables flipped at random. Ties are broken by scanning from a random position.
///
/// One sweep is `n` iterations; each iteration costs O(n) to choose the move plus O(degree) to
/// make it, so tabu search suits models up to a few thousand variables (use annealing or
/// decomposition beyond).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabuSearch {
    /// Iterations a flipped variable stays tabu; `None`: `n / 100 + 10`, plus a random 0..10
    /// per move.
    pub tenure: Option<usize>,
    /// Iterations without a new best before a restart; `None`: `max(10 n, 10_000)`.
    pub stall: Option<u64>,
    /// Fraction of variables flipped at random on a restart.
    pub perturbation: f64,
}

impl Default for TabuSearch {
    fn default() -> Self {
        TabuSearch {
            tenure: None,
            stall: None,
            perturbation: 0.1,
        }
    }
}

impl Solver for TabuSearch {
    fn name(&self) -> &str {
        "tabu"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        if !(0.0..=1.0).contains(&self.perturbation) {
            return Err(SolveError::Config(format!(
                "perturbation must lie in [0, 1], got {}",
                self.perturbation
            )));
        }
        let n = qubo.num_vars();
        let mut run = Run::new(qubo, &options.budget, 100);
        if n == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let mut r = rng(options.seed, 0);
        let base_tenure = self
            .tenure
            .unwrap_or(n / 100 + 10)
            .min(n.saturating_sub(1))
            .max(1);
        let jitter = if self.tenure.is_some() { 1 } else { 10 };
        let stall = self.stall.unwrap_or((10 * n as u64).max(10_000));

        let mut x = options
            .initial
            .map_or_else(|| random_assignment(n, &mut r), <[bool]>::to_vec);
        let mut field = fields_of(qubo, &x);
        let mut energy = qubo.energy(&x);
        run.offer(&x, energy);
        let mut tabu_until = vec![0_u64; n];
        let mut iter = 0_u64;
        let mut since_best = 0_u64;
        let mut in_sweep = 0_usize;
        let eps = 1e-9 * qubo.max_abs_coefficient().max(1.0);

        loop {
            // Choose the move.
            let offset = r.random_range(0..n);
            let mut chosen = usize::MAX;
            let mut chosen_d = f64::INFINITY;
            for k in 0..n {
                let i = if k + offset < n {
                    k + offset
                } else {
                    k + offset - n
                };
                let d = if x[i] { -field[i] } else { field[i] };
                if d < chosen_d && (tabu_until[i] <= iter || energy + d < run.best_energy - eps) {
                    chosen = i;
                    chosen_d = d;
                }
            }
            if chosen == usize::MAX {
                // Everything tabu: take the oldest tabu variable.
                chosen = (0..n).min_by_key(|&i| tabu_until[i]).unwrap_or(0);
                chosen_d = if x[chosen] {
                    -field[chosen]
                } else {
                    field[chosen]
                };
            }
            // Make it.
            energy += chosen_d;
            x[chosen] = !x[chosen];
            let s = if x[chosen] { 1.0 } else { -1.0 };
            for c in qubo.neighbors(chosen) {
                field[c.var as usize] += s * c.weight;
            }
            iter += 1;
            tabu_until[chosen] = iter + (base_tenure + r.random_range(0..jitter)) as u64;
            if energy < run.best_energy - eps {
                run.offer(&x, energy);
                since_best = 0;
            } else {
                since_best += 1;
            }
            in_sweep += 1;
            if in_sweep == n {
                in_sweep = 0;
                if run.add_sweeps(1) {
                    break;
                }
            } else if run.stopped() {
                break;
            }
            if since_best >= stall {
                // Restart from the best, perturbed.
                x.clone_from(&run.best);
                for v in &mut x {
                    if r.random_bool(self.perturbation) {
                        *v = !*v;
                    }
                }
                field = fields_of(qubo, &x);
                energy = qubo.energy(&x);
                tabu_until.fill(0);
                iter = 0;
                since_best = 0;
            }
        }
        Ok(run.finish(self.name()))
    }
}
