//! Steepest descent: flip the most improving variable until none improves.

use priority_queue::PriorityQueue;

use super::{
    Run, Solution, SolveError, SolveOptions, Solver, check_initial, random_assignment, rng,
};
use crate::{FlipState, Qubo, TotalF64};

/// Steepest (best-improvement) one-flip descent to a local minimum, for polishing.
///
/// Starts from the initial assignment (or a random one) and repeatedly flips the variable
/// whose flip lowers the energy most, until no flip lowers it. Deltas are kept in a priority
/// queue, so each move costs O(degree * log n).
///
/// # Examples
///
/// ```
/// use qorch_qubo::{QuboBuilder, SolveOptions, Solver, SteepestDescent};
///
/// let mut b = QuboBuilder::new(3);
/// b.add_linear(0, -1.0).add_linear(1, -1.0).add_linear(2, 1.0);
/// let q = b.build().unwrap();
/// let start = [false, false, true];
/// let sol = SteepestDescent.solve(&q, &SolveOptions::default().with_initial(&start)).unwrap();
/// assert_eq!(sol.assignment, [true, true, false]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteepestDescent;

/// Descends from `state` to a local minimum, recording work in `run`. Returns whether the
/// local minimum was reached (false if the budget stopped it first).
pub(crate) fn descend(state: &mut FlipState<'_>, run: &mut Run<'_>) -> bool {
    let q = state.qubo();
    let n = q.num_vars();
    let eps = 1e-12 * q.max_abs_coefficient().max(1.0);
    let mut pq: PriorityQueue<usize, TotalF64> =
        (0..n).map(|i| (i, TotalF64(-state.delta(i)))).collect();
    let mut moves = 0_usize;
    loop {
        let Some((&i, &TotalF64(gain))) = pq.peek() else {
            return true;
        };
        if gain <= eps {
            return true;
        }
        state.flip(i);
        pq.change_priority(&i, TotalF64(-state.delta(i)));
        for c in q.neighbors(i) {
            let j = c.var as usize;
            pq.change_priority(&j, TotalF64(-state.delta(j)));
        }
        moves += 1;
        if moves == n {
            moves = 0;
            if run.add_sweeps(1) {
                return false;
            }
        }
    }
}

impl Solver for SteepestDescent {
    fn name(&self) -> &str {
        "descent"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        let n = qubo.num_vars();
        let mut run = Run::new(qubo, &options.budget, u64::MAX);
        let x = options.initial.map_or_else(
            || random_assignment(n, &mut rng(options.seed, 0)),
            <[bool]>::to_vec,
        );
        let mut state = FlipState::new(qubo, x);
        descend(&mut state, &mut run);
        run.offer(state.assignment(), state.energy());
        Ok(run.finish(self.name()))
    }
}
