//! QAOA as a [`qorch_qubo::Solver`], for sub-problems small enough to simulate.

use std::time::Instant;

use qorch_qubo::{Qubo, Solution, SolveError, SolveOptions, Solver, StopReason, TracePoint};
use serde::{Deserialize, Serialize};

use crate::{InitStrategy, OptimizeStop, OptimizerConfig, QaoaOptimizer, SimConfig, SimError};

/// QAOA on the exact simulator as a QUBO solver: optimize the angles of a depth-`p` circuit
/// for the QUBO's energy, sample `shots` bitstrings from the optimized state, and return the
/// best sample. It refuses models above `max_qubits` variables (or above the memory policy)
/// with [`SolveError::TooLarge`], so a scheduler can try it first and fall back.
///
/// The budget: a time limit bounds the optimization; a sweep budget counts *circuit
/// evaluations* (each expectation or gradient is one "sweep", since QAOA makes no
/// single-variable moves); a target energy only sets the stop reason when the best sample
/// reaches it. The seed seeds the restarts and the sampling.
///
/// # Examples
///
/// ```
/// use qorch_qaoa::QaoaSolver;
/// use qorch_qubo::{Graph, SolveOptions, Solver};
///
/// let ring = Graph::new(8, (0..8).map(|i| (i, (i + 1) % 8, 1.0)).collect()).unwrap();
/// let q = ring.max_cut_qubo();
/// let sol = QaoaSolver::default().solve(&q, &SolveOptions::default()).unwrap();
/// assert_eq!(sol.solver, "qaoa");
/// assert_eq!(ring.cut_value(&sol.assignment), 8.0); // an even ring is bipartite
/// assert_eq!(sol.energy, q.energy(&sol.assignment));
///
/// let big = Graph::new(30, (0..30).map(|i| (i, (i + 1) % 30, 1.0)).collect()).unwrap();
/// assert!(QaoaSolver::default().solve(&big.max_cut_qubo(), &SolveOptions::default()).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaoaSolver {
    /// Circuit depth.
    pub p: usize,
    /// Largest model accepted.
    pub max_qubits: usize,
    /// Bitstrings sampled from the optimized state.
    pub shots: usize,
    /// The simulator's settings (memory policy, mixer for one-hot groups, threads).
    pub sim: SimConfig,
    /// The optimizer's settings (its seed and budget are taken from the solve options).
    pub optimizer: OptimizerConfig,
}

impl Default for QaoaSolver {
    fn default() -> Self {
        QaoaSolver {
            p: 3,
            max_qubits: 20,
            shots: 1000,
            sim: SimConfig::default(),
            optimizer: OptimizerConfig {
                init: InitStrategy::Interp,
                max_iterations: 100,
                ..OptimizerConfig::default()
            },
        }
    }
}

impl Solver for QaoaSolver {
    fn name(&self) -> &str {
        "qaoa"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        let began = Instant::now();
        let n = qubo.num_vars();
        if let Some(x) = options.initial
            && x.len() != n
        {
            return Err(SolveError::InitialLength { len: x.len(), n });
        }
        if n > self.max_qubits {
            return Err(SolveError::TooLarge {
                solver: self.name().to_owned(),
                n,
                max: self.max_qubits,
            });
        }
        if n == 0 {
            let energy = qubo.energy(&[]);
            let seconds = began.elapsed().as_secs_f64();
            return Ok(Solution {
                solver: self.name().to_owned(),
                assignment: Vec::new(),
                energy,
                seconds,
                sweeps: 0,
                stop: StopReason::Completed,
                trace: vec![TracePoint {
                    seconds,
                    sweeps: 0,
                    energy,
                }],
            });
        }
        let budget = options.budget;
        let config = OptimizerConfig {
            seed: options.seed,
            max_evaluations: budget.sweeps.or(self.optimizer.max_evaluations),
            time_limit: budget.time_limit.or(self.optimizer.time_limit),
            ..self.optimizer.clone()
        };
        let to_solve_error = |e: SimError| match e {
            SimError::InsufficientMemory { n, max_qubits, .. }
            | SimError::AboveCap { n, max_qubits, .. } => SolveError::TooLarge {
                solver: "qaoa".to_owned(),
                n,
                max: max_qubits,
            },
            SimError::TooManyQubits { n, max } => SolveError::TooLarge {
                solver: "qaoa".to_owned(),
                n,
                max,
            },
            other => SolveError::Config(other.to_string()),
        };
        let mut opt =
            QaoaOptimizer::for_qubo(qubo, self.sim.clone(), config).map_err(to_solve_error)?;
        let result = opt.optimize(self.p).map_err(to_solve_error)?;
        let best = opt
            .best_sample(&result.params, self.shots.max(1), options.seed)
            .map_err(to_solve_error)?
            .expect("at least one shot");
        let energy = qubo.energy(&best.assignment);
        let seconds = began.elapsed().as_secs_f64();
        let stop = if budget.target_energy.is_some_and(|t| energy <= t) {
            StopReason::TargetReached
        } else {
            match result.stop {
                OptimizeStop::TimeLimit => StopReason::TimeLimit,
                OptimizeStop::EvaluationLimit => StopReason::SweepLimit,
                OptimizeStop::Converged | OptimizeStop::MaxIterations => StopReason::Completed,
            }
        };
        let evaluations = opt.simulator().evaluations();
        Ok(Solution {
            solver: self.name().to_owned(),
            assignment: best.assignment,
            energy,
            seconds,
            sweeps: evaluations,
            stop,
            trace: vec![TracePoint {
                seconds,
                sweeps: evaluations,
                energy,
            }],
        })
    }
}
