//! Exact minimization by Gray-code enumeration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use super::{Run, Solution, SolveError, SolveOptions, Solver, StopReason, check_initial};
use crate::{FlipState, Qubo};

/// Exhaustive enumeration of all `2^n` assignments in Gray-code order (one flip, O(degree),
/// per assignment), split across threads by fixing the top bits. Proves optimality; used by
/// the tests as ground truth and by the scheduler for tiny sub-problems.
///
/// Among assignments of equal energy, the one with the smallest index
/// `sum_i x_i 2^i` wins, so the result does not depend on the thread count.
///
/// # Examples
///
/// ```
/// use qorch_qubo::{ExactSolver, QuboBuilder, SolveOptions, Solver};
///
/// let mut b = QuboBuilder::new(3);
/// b.add_linear(0, -1.0).add_linear(2, -1.0).add_quadratic(0, 2, 3.0);
/// let q = b.build().unwrap();
/// let sol = ExactSolver::default().solve(&q, &SolveOptions::default()).unwrap();
/// assert_eq!(sol.energy, -1.0);
/// assert_eq!(sol.assignment, [true, false, false]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExactSolver {
    /// Largest model accepted (`2^max_vars` assignments are visited).
    pub max_vars: usize,
    /// Split the enumeration across rayon's threads.
    pub parallel: bool,
}

impl Default for ExactSolver {
    fn default() -> Self {
        ExactSolver {
            max_vars: 30,
            parallel: true,
        }
    }
}

/// Steps between exact recomputations of the energy (removes floating-point drift).
const RESYNC: u64 = 1 << 16;

/// The best (energy, index) over all assignments whose top `n - m` bits are `prefix`.
/// Returns `None` if `stop` was raised before the chunk finished.
fn enumerate_chunk(
    qubo: &Qubo,
    m: usize,
    prefix: u64,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Option<(f64, u64)> {
    let n = qubo.num_vars();
    let x: Vec<bool> = (0..n)
        .map(|i| i >= m && (prefix >> (i - m)) & 1 == 1)
        .collect();
    let mut state = FlipState::new(qubo, x);
    let mut gray = 0_u64;
    let base = prefix << m;
    let mut best = (state.energy(), base);
    for step in 1..(1_u64 << m) {
        let bit = step.trailing_zeros() as usize;
        state.flip(bit);
        gray ^= 1 << bit;
        if step % RESYNC == 0 {
            state.resync();
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                stop.store(true, Ordering::Relaxed);
                return None;
            }
        }
        let e = state.energy();
        if e < best.0 || (e == best.0 && (base | gray) < best.1) {
            best = (e, base | gray);
        }
    }
    // Re-evaluate the winner exactly.
    let x: Vec<bool> = (0..n).map(|i| (best.1 >> i) & 1 == 1).collect();
    Some((qubo.energy(&x), best.1))
}

impl Solver for ExactSolver {
    fn name(&self) -> &str {
        "exact"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        let n = qubo.num_vars();
        if n > self.max_vars.min(62) {
            return Err(SolveError::TooLarge {
                solver: self.name().to_owned(),
                n,
                max: self.max_vars.min(62),
            });
        }
        let mut run = Run::new(qubo, &options.budget, u64::MAX);
        // Fix the top `k` bits per chunk: enough chunks to balance the threads.
        let k = if self.parallel && n >= 16 {
            let threads = rayon::current_num_threads().max(1);
            ((threads * 4).next_power_of_two().trailing_zeros() as usize).min(n - 8)
        } else {
            0
        };
        let m = n - k;
        let deadline = options
            .budget
            .time_limit
            .and_then(|d| Instant::now().checked_add(d));
        let stop = AtomicBool::new(false);
        let chunk = |prefix: u64| enumerate_chunk(qubo, m, prefix, deadline, &stop);
        let results: Vec<Option<(f64, u64)>> = if k > 0 {
            (0..1_u64 << k).into_par_iter().map(chunk).collect()
        } else {
            vec![chunk(0)]
        };
        let finished: Vec<(f64, u64)> = results.iter().flatten().copied().collect();
        let complete = finished.len() == results.len();
        let best = finished
            .into_iter()
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if let Some((e, idx)) = best {
            let x: Vec<bool> = (0..n).map(|i| (idx >> i) & 1 == 1).collect();
            run.offer(&x, e);
        }
        let visited: u64 = results.iter().flatten().count() as u64 * (1_u64 << m);
        run.sweeps = visited / n.max(1) as u64;
        let mut sol = run.finish(self.name());
        if !complete {
            sol.stop = StopReason::TimeLimit;
        }
        Ok(sol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QuboBuilder;

    fn brute_force(q: &Qubo) -> f64 {
        let n = q.num_vars();
        (0..1_u64 << n)
            .map(|m| q.energy(&(0..n).map(|i| (m >> i) & 1 == 1).collect::<Vec<_>>()))
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn matches_brute_force_with_and_without_threads() {
        let mut b = QuboBuilder::new(18);
        for i in 0..18 {
            b.add_linear(i, ((i * 37) % 11) as f64 - 5.0);
            for j in (i + 1)..18 {
                if (i * 7 + j * 13) % 5 == 0 {
                    b.add_quadratic(i, j, ((i + 2 * j) % 9) as f64 - 4.0);
                }
            }
        }
        let q = b.build().unwrap();
        let want = brute_force(&q);
        for parallel in [false, true] {
            let sol = ExactSolver {
                max_vars: 30,
                parallel,
            }
            .solve(&q, &SolveOptions::default())
            .unwrap();
            assert_eq!(sol.energy, want);
            assert_eq!(sol.stop, StopReason::Completed);
        }
        let a = ExactSolver {
            max_vars: 30,
            parallel: false,
        }
        .solve(&q, &SolveOptions::default())
        .unwrap();
        let b = ExactSolver::default()
            .solve(&q, &SolveOptions::default())
            .unwrap();
        assert_eq!(a.assignment, b.assignment, "ties resolved the same way");
    }

    #[test]
    fn too_large_is_an_error() {
        let q = QuboBuilder::new(40).build().unwrap();
        let err = ExactSolver::default()
            .solve(&q, &SolveOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("at most 30 variables"), "{err}");
    }
}
