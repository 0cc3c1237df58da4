//! QAOA on an exact statevector simulator, for any diagonal cost: QUBO and Ising models from
//! [`qorch_qubo`], polynomials with terms of any order, or a closure. It is a plain library:
//! no actors, no async. Everything runs on classical hardware; nothing here is, or claims
//! to be, a quantum computer.
//!
//! ```
//! use qorch_qaoa::{QaoaParams, QaoaSimulator, Sense, SimConfig};
//! use qorch_qubo::Graph;
//!
//! // Max-Cut of the 3-dimensional cube (3-regular, girth 4 > 2p+1 for p = 1): at the fixed
//! // angles the expected cut fraction is the published 0.6924500474 (to 1e-6).
//! let cube = Graph::new(8, vec![
//!     (0, 1, 1.0), (1, 3, 1.0), (3, 2, 1.0), (2, 0, 1.0), (4, 5, 1.0), (5, 7, 1.0),
//!     (7, 6, 1.0), (6, 4, 1.0), (0, 4, 1.0), (1, 5, 1.0), (2, 6, 1.0), (3, 7, 1.0),
//! ]).unwrap();
//! let mut sim = QaoaSimulator::for_max_cut(&cube, SimConfig::default()).unwrap();
//! let params = QaoaParams::fixed_angles_3_regular(1).unwrap();
//! let cut = sim.expectation(&params).unwrap();
//! assert!((cut / 12.0 - 0.6924500474).abs() < 1e-6);
//!
//! // Sample the state; the best of 100 shots is a maximum cut (the cube is bipartite).
//! let best = sim.best_sample(100, 7, Sense::Maximize).unwrap();
//! assert_eq!(best.cost, 12.0);
//! assert_eq!(cube.cut_value(&best.assignment), 12.0);
//! ```
//!
//! # Conventions
//!
//! Basis state `x` in `0..2^n` sets variable (qubit) `i` to bit `(x >> i) & 1`, as in qulacs
//! and `QOKit`; an Ising spin is `s_i = 2 x_i - 1`. The simulator holds one real cost `D(x)` per
//! basis state, and layer `l` of a circuit applies `exp(-i gamma_l D)` and then the mixer
//! `exp(-i beta_l B)` (by default `B = sum_j X_j` from `|+>^n`). The phase operator uses `D` as
//! given, whatever the sense of the problem:
//!
//! * [`QaoaSimulator::from_qubo`] sets `D = E(x)`, the QUBO energy, to be minimized
//!   ([`Sense::Minimize`]); good angles then have `gamma < 0` when `beta > 0` (a ramp from the
//!   mixer's ground state), see [`QaoaParams::linear_ramp`].
//! * [`QaoaSimulator::for_max_cut`] sets `D = C(x)`, the weight of the cut edges, to be
//!   maximized ([`Sense::Maximize`]), the convention of the fixed-angle tables
//!   ([`QaoaParams::fixed_angles_3_regular`]) and of `qorch qaoa maxcut`. Since the Max-Cut
//!   QUBO's energy is `-C`, the same circuit on that QUBO needs `-gamma`.
//!
//! # The simulator
//!
//! [`QaoaSimulator`] stores the state as two `f64` arrays (real and imaginary parts: 16 bytes
//! per amplitude) and the cost diagonal ([`CostDiagonal`]) computed once, in one or two bytes
//! per basis state when the costs are integers spanning fewer than 65,536 values (a table of
//! levels; exact), else in eight. Memory is checked before anything `2^n`-sized is allocated:
//! a request above the memory available now (`MemAvailable`) or above a configured cap is
//! refused with a [`SimError`] that says how many bytes it needs and how many qubits would
//! fit ([`MemoryPolicy`]). At `n = 26` the state takes 1 GiB and a Max-Cut diagonal 64 MiB.
//!
//! A layer moves the whole state through the memory system, and for large `n` its speed is
//! set by the memory bandwidth. The kernels make few passes: the phase and the rotations of
//! the low qubits in one pass over cache-sized blocks, the high qubits in groups per pass
//! (see the `kernel` module's docs), the expectation fused into the last pass; rotations of two
//! qubits are applied per sweep over a block, divided by `cos beta` (or `sin beta`) so that
//! each value costs one fused multiply-add, the factor being restored once per layer. Below
//! [`SimConfig::parallel_min_qubits`] (14) everything runs on the calling thread and a layer
//! allocates nothing; above, blocks are spread over rayon's threads. The AVX2+FMA builds of
//! the kernels are chosen at run time; results do not depend on the number of threads.
//! Measured figures are in `docs/benchmarks.md`.
//!
//! # Gradients: the adjoint method
//!
//! [`QaoaSimulator::expectation_and_gradient`] returns `<D>` and its derivatives with respect
//! to all `2p` angles from one forward run and one backward sweep: with `|l> = D |psi>` carried
//! backwards alongside `|psi>` (each layer undone on both), `dE/dbeta_l = 2 Im <l|B|psi>` and
//! `dE/dgamma_l = 2 Im <l|D|psi>`, accumulated while the layer is undone, in the same fused
//! passes. The cost is about three forward runs and one extra state, whatever `p`. The
//! parameter-shift rule would need two runs per angle (`4p` runs), and for `gamma` it is exact
//! only when `D` has integer spectrum (a general QUBO needs a many-term shift rule), so the
//! adjoint method is both cheaper from `p = 1` on and exact for every cost. The tests check
//! it against central finite differences for every kernel layout and mixer.
//!
//! # The optimizer
//!
//! [`QaoaOptimizer`] owns a simulator and a [`Sense`], starts from an [`InitStrategy`]
//! (fixed angles, linear ramp, or INTERP from depth 1 up to `p`), runs a [`Method`] (L-BFGS or
//! Adam on the adjoint gradient, Nelder-Mead without), adds seeded random restarts, and records
//! every iteration's angles and expectation in a [`History`] that saves as JSON.
//! [`QaoaSolver`] wraps it as a [`qorch_qubo::Solver`] for sub-problems small enough to
//! simulate (20 variables by default), so that a scheduler can choose it like any other
//! solver and fall back on [`qorch_qubo::SolveError::TooLarge`].
//!
//! # Mixers and custom costs
//!
//! [`Mixer::XyRings`] keeps one-hot groups one-hot (a parity-ordered XY ring per group,
//! started from W states); [`QaoaSimulator::from_polynomial`] and [`QaoaSimulator::from_fn`]
//! take costs with terms of any order; [`QaoaSimulator::observable_expectation`] measures any
//! other diagonal observable in the current state.
//!
//! # Safety
//!
//! The crate denies `unsafe` except in one place: the calls of the `#[target_feature]`
//! (AVX2+FMA) builds of the kernels, each guarded by run-time CPU detection.

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod bandwidth;
mod diagonal;
mod error;
mod graphs;
mod kernel;
mod memory;
mod optimize;
mod params;
mod simulator;
mod solver;

pub use bandwidth::{Bandwidth, measure_memory_bandwidth};
pub use diagonal::{CostDiagonal, Polynomial};
pub use error::SimError;
pub use graphs::{
    girth, is_simple_unweighted, max_cut_p1_expectation, random_regular_graph, regular_degree,
    write_rudy,
};
pub use kernel::KernelConfig;
pub use memory::{MAX_QUBITS, MemoryPolicy, available_memory_bytes};
pub use optimize::{
    History, HistoryRecord, InitStrategy, Method, OptimizeResult, OptimizeStop, OptimizerConfig,
    QaoaOptimizer,
};
pub use params::{QaoaParams, Sense};
pub use simulator::{InitialState, Mixer, QaoaSimulator, Sample, SimConfig};
pub use solver::QaoaSolver;
