//! QAOA on an exact statevector simulator (draft header; full docs below).

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod bandwidth;
mod diagonal;
mod error;
mod graphs;
mod kernel;
mod optimize;
mod solver;
mod memory;
mod params;
mod simulator;

pub use diagonal::{CostDiagonal, Polynomial};
pub use error::SimError;
pub use graphs::{girth, is_simple_unweighted, max_cut_p1_expectation, random_regular_graph, regular_degree, write_rudy};
pub use kernel::KernelConfig;
pub use memory::{MAX_QUBITS, MemoryPolicy, available_memory_bytes};
pub use params::{QaoaParams, Sense};
pub use simulator::{InitialState, Mixer, QaoaSimulator, Sample, SimConfig};
pub use optimize::{History, HistoryRecord, InitStrategy, Method, OptimizeResult, OptimizeStop, OptimizerConfig, QaoaOptimizer};
pub use solver::QaoaSolver;
pub use bandwidth::{Bandwidth, measure_memory_bandwidth};
