//! The QUBO engine of qorch: a sparse model, readers, penalty encodings of constraints, and
//! classical solvers. Every allocation, clustering and QAOA problem in qorch goes through it.
//! It is a plain library: no actors, no async.
//!
//! ```
//! use qorch_qubo::{Budget, Graph, SolveOptions, Solver, SolverKind};
//!
//! // Max-Cut of a 5-cycle: the best cut has 4 edges.
//! let g = Graph::new(5, (0..5).map(|i| (i, (i + 1) % 5, 1.0)).collect()).unwrap();
//! let q = g.max_cut_qubo();
//! let solver = SolverKind::Tabu.build();
//! let sol = solver.solve(&q, &SolveOptions::new(Budget::sweeps(50), 1)).unwrap();
//! assert_eq!(g.cut_value(&sol.assignment), 4.0);
//! assert_eq!(sol.energy, -4.0);
//! ```
//!
//! # The model
//!
//! A [`Qubo`] minimizes `E(x) = offset + sum_i a_i x_i + sum_{i<j} b_ij x_i x_j` over
//! `x in {0,1}^n`. It is built with a [`QuboBuilder`] (or [`Qubo::from_triplets`],
//! [`Qubo::from_dense`], [`Graph::max_cut_qubo`]), validated once, and then immutable. Its
//! quadratic part is a symmetric adjacency, so [`Qubo::flip_delta`] costs O(degree) and a
//! [`FlipState`] keeps every variable's local field up to date for O(1) deltas.
//! [`Qubo::to_ising`] and [`Ising::to_qubo`] convert under `s = 2x - 1`.
//!
//! # Constraints
//!
//! [`QuboBuilder`] adds constraints as penalties:
//!
//! | method | penalty | extra variables |
//! |---|---|---|
//! | [`add_one_hot`](QuboBuilder::add_one_hot) | `P (sum x - 1)^2` | none |
//! | [`add_at_most_one`](QuboBuilder::add_at_most_one) | `P sum_{i<j} x_i x_j` | none |
//! | [`add_equality`](QuboBuilder::add_equality) | `P (sum c x - b)^2` | none |
//! | [`add_inequality_slack`](QuboBuilder::add_inequality_slack) | `P (sum c x + slack - b)^2` | `~log2(b)` slack bits |
//! | [`add_inequality_unbalanced`](QuboBuilder::add_inequality_unbalanced) | `-l1 h + l2 h^2`, `h = b - sum c x` | none |
//!
//! **Slack bits or no slack.** Slack bits make `sum c x <= b` exact: the penalty is zero on
//! every feasible assignment (once the slack bits take the right values) and at least `P`
//! elsewhere. The price is `log2(b)` extra variables per constraint, and a square that couples
//! every pair of variables in the constraint with the slack bits, so that feasible moves often
//! need several coordinated flips (the slack must follow the load). The unbalanced penalty
//! (Montanez-Barrera et al., 2022) adds no variables and keeps the landscape smoother, but it
//! is not exact: it slightly rewards some slack, and a violation of a unit or two may cost
//! less than the objective gains. qorch uses slack-free penalties for small sub-problems and
//! QAOA (where every qubit counts) and always repairs samples to feasibility afterwards.
//!
//! **Penalty weights.** A penalty must be large enough that leaving the feasible set never
//! pays, and no larger (a huge penalty flattens the objective into noise for annealers). The
//! rule used here: `P = max(1, 1.5 * g)`, where `g` bounds what one flip of a constrained
//! variable can gain in the objective: `g = max_i (|a_i| + sum_j |b_ij|)` over the constraint's
//! variables, computed from the terms added so far ([`QuboBuilder::suggested_penalty`]). For
//! one-hot and at-most-one groups this guarantees that every feasible assignment is stable
//! against single flips out of the feasible set.
//!
//! # Readers
//!
//! [`read_rudy`] (G-set graphs), [`read_qubo_text`] (qbsolv's `p qubo` format, documented on
//! the function) and [`read_json`] ([`QuboTerms`]). Malformed input gives a [`ReadError`]
//! naming the line.
//!
//! # Solvers
//!
//! All implement [`Solver`]: given a [`Budget`] (sweeps, time, target energy) and a seed they
//! return a [`Solution`] with the best assignment, its energy, the time, and an energy trace.
//!
//! | solver | what it is for |
//! |---|---|
//! | [`SimulatedAnnealing`] | the general workhorse; reads grow under a time limit |
//! | [`ParallelTempering`] | rugged landscapes; replicas on several threads |
//! | [`TabuSearch`] | strong local search up to a few thousand variables |
//! | [`SteepestDescent`] | polishing to a local minimum |
//! | [`ExactSolver`] | ground truth up to ~30 variables |
//! | [`Decomposition`] | large models, as clamped sub-problems solved by another solver |
//! | [`HoudayerTempering`] | lattice-like models (2D spin glasses): tempering with cluster moves |
//! | [`PopulationAnnealing`] | many annealing replicas resampled by their Boltzmann weights at every step |
//! | [`HybridAnnealing`] | the default: annealing with consensus coarsening and cluster-exact (minimum-cut) moves; hands lattice-like models to [`HoudayerTempering`] |
//!
//! The annealers' default inverse temperatures come from the model: the hot end accepts a
//! typical single-flip increase with probability 1/2, the cold end accepts an increase of the
//! smallest non-zero coefficient with probability 1/100.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod constraints;
mod csr;
mod io;
mod limits;
mod model;
mod solver;
mod splitmix;
mod total_order;

pub use constraints::slack_weights;
pub use csr::symmetric_csr;
pub use io::{Graph, ReadError, read_json, read_qubo_text, read_rudy, write_json, write_qubo_text};
pub use limits::{
    BYTES_PER_TERM, BYTES_PER_VARIABLE, MAX_INPUT_BYTES, MAX_QUOTE_CHARS, available_memory_bytes,
    model_bytes, quote,
};
pub use model::{Coupling, FlipState, Ising, ModelError, Qubo, QuboBuilder, QuboTerms};
pub use solver::{
    Budget, Decomposition, ExactSolver, HoudayerTempering, HybridAnnealing, ParallelTempering,
    ParseSolverError, PopulationAnnealing, Schedule, SimulatedAnnealing, Solution, SolveError,
    SolveOptions, Solver, SolverKind, SteepestDescent, StopReason, TabuSearch, TracePoint,
};
pub use splitmix::splitmix64;
pub use total_order::TotalF64;
