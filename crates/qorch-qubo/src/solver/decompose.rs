//! Hierarchical decomposition in the spirit of qbsolv: improve a large model by repeatedly
//! solving small clamped sub-problems.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use priority_queue::PriorityQueue;
use rand::RngExt;

use super::descent::descend;
use super::{
    Budget, ExactSolver, Run, SimulatedAnnealing, Solution, SolveError, SolveOptions, Solver,
    TabuSearch, check_initial, rng,
};
use crate::{FlipState, Qubo, TotalF64};

/// Decomposition for models too large to search well as a whole.
///
/// 1. Start from the initial assignment, or from one short annealing read, and descend to a
///    local minimum.
/// 2. Rank the variables by energy impact (the change of energy their flip would cause,
///    smallest first) in a priority queue.
/// 3. Take the highest-ranked variable not yet covered in this pass and grow a sub-problem of
///    up to `sub_size` variables around it, breadth-first along the strongest couplings (a
///    sub-problem of unconnected variables would be trivial: each would simply follow its
///    local field). Clamp every other variable, solve the sub-problem with `inner` (warm
///    started from the current values), or exactly if it has at most `exact_up_to`
///    variables, and accept the result if it lowers the energy. A model that small is one
///    exact sub-problem: its optimum, found at once.
/// 4. After a pass over all variables, descend on the whole model. Stop when `max_stall`
///    passes in a row bring no improvement, or when the budget ends.
///
/// The sweep budget counts variable visits of the inner solves and descents, divided by `n`.
#[derive(Clone)]
pub struct Decomposition {
    /// Variables per sub-problem.
    pub sub_size: usize,
    /// The solver of the sub-problems.
    pub inner: Arc<dyn Solver>,
    /// Sweep budget of each sub-problem solve (in the sub-problem's own sweeps).
    pub inner_sweeps: u64,
    /// Passes without improvement before stopping.
    pub max_stall: usize,
    /// Sub-problems of at most this many variables are solved exactly (Gray-code
    /// enumeration, `2^k` assignments: a few milliseconds at 20), not by `inner`.
    pub exact_up_to: usize,
}

impl Default for Decomposition {
    fn default() -> Self {
        Decomposition {
            sub_size: 40,
            inner: Arc::new(TabuSearch {
                stall: Some(2_000),
                ..TabuSearch::default()
            }),
            inner_sweeps: 30,
            max_stall: 3,
            exact_up_to: 20,
        }
    }
}

impl fmt::Debug for Decomposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decomposition")
            .field("sub_size", &self.sub_size)
            .field("inner", &self.inner.name())
            .field("inner_sweeps", &self.inner_sweeps)
            .field("max_stall", &self.max_stall)
            .field("exact_up_to", &self.exact_up_to)
            .finish()
    }
}

/// Grows a connected set of up to `size` variables from `seed`, breadth-first, visiting each
/// variable's couplings strongest first and skipping `taken` ones.
fn grow(q: &Qubo, seed: usize, size: usize, taken: &mut [bool]) -> Vec<usize> {
    let mut out = vec![seed];
    taken[seed] = true;
    let mut queue = VecDeque::from([seed]);
    let mut nbrs = Vec::new();
    while let Some(v) = queue.pop_front() {
        if out.len() >= size {
            break;
        }
        nbrs.clear();
        nbrs.extend(q.neighbors(v).iter().filter(|c| !taken[c.var as usize]));
        nbrs.sort_by(|a: &&crate::Coupling, b: &&crate::Coupling| {
            b.weight.abs().total_cmp(&a.weight.abs())
        });
        for c in &nbrs {
            let u = c.var as usize;
            if taken[u] {
                continue;
            }
            taken[u] = true;
            out.push(u);
            queue.push_back(u);
            if out.len() >= size {
                break;
            }
        }
    }
    out
}

impl Solver for Decomposition {
    fn name(&self) -> &str {
        "decompose"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        if self.sub_size < 2 || self.inner_sweeps == 0 {
            return Err(SolveError::Config(
                "decomposition needs sub_size >= 2 and inner_sweeps >= 1".into(),
            ));
        }
        let n = qubo.num_vars();
        let mut run = Run::new(qubo, &options.budget, 500);
        if n == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let mut r = rng(options.seed, 0);
        // 1. Starting point.
        let start = if let Some(x) = options.initial {
            x.to_vec()
        } else {
            let sa = SimulatedAnnealing {
                reads: Some(1),
                sweeps_per_read: 100,
                ..Default::default()
            };
            let s = sa.solve(qubo, &SolveOptions::new(Budget::sweeps(100), r.random()))?;
            run.sweeps += s.sweeps;
            s.assignment
        };
        let mut state = FlipState::new(qubo, start);
        descend(&mut state, &mut run);
        run.offer(state.assignment(), state.energy());
        let eps = 1e-9 * qubo.max_abs_coefficient().max(1.0);
        let mut stall = 0;
        let mut visits = 0_u64;
        let mut taken = vec![false; n];
        'passes: while !run.should_stop() && stall < self.max_stall {
            let before = state.energy();
            // 2. Rank by impact.
            let mut ranking: PriorityQueue<usize, TotalF64> =
                (0..n).map(|i| (i, TotalF64(-state.delta(i)))).collect();
            taken.fill(false);
            // 3. Sub-problems around the highest-ranked uncovered variables.
            while let Some((seed, _)) = ranking.pop() {
                if taken[seed] {
                    continue;
                }
                let vars = grow(qubo, seed, self.sub_size.min(n), &mut taken);
                let sub = state.clamped_subproblem(&vars);
                let current: Vec<bool> = vars.iter().map(|&v| state.assignment()[v]).collect();
                let opts = SolveOptions::new(Budget::sweeps(self.inner_sweeps), r.random())
                    .with_initial(&current);
                let exact = vars.len() <= self.exact_up_to.min(ExactSolver::default().max_vars);
                let sol = if exact {
                    ExactSolver::default().solve(&sub, &opts)?
                } else {
                    self.inner.solve(&sub, &opts)?
                };
                visits += sol.sweeps * vars.len() as u64;
                if sol.energy < state.energy() - eps {
                    for (k, &v) in vars.iter().enumerate() {
                        state.set(v, sol.assignment[k]);
                    }
                    if state.energy() < run.best_energy {
                        run.offer(state.assignment(), state.energy());
                    }
                }
                if exact && vars.len() == n {
                    // The whole model, solved exactly: nothing left to find.
                    break 'passes;
                }
                if visits >= n as u64 {
                    let k = visits / n as u64;
                    visits -= k * n as u64;
                    if run.add_sweeps(k) {
                        break 'passes;
                    }
                }
            }
            // 4. Polish the whole.
            state.resync();
            if !descend(&mut state, &mut run) {
                run.offer(state.assignment(), state.energy());
                break;
            }
            run.offer(state.assignment(), state.energy());
            if state.energy() < before - eps {
                stall = 0;
            } else {
                stall += 1;
            }
        }
        Ok(run.finish(self.name()))
    }
}
