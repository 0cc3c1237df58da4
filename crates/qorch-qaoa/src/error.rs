//! The crate's error type.

use crate::memory::gib;

/// Why a simulation or an optimization could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// More qubits than the simulator supports at all.
    #[error("{n} qubits exceed the simulator's maximum of {max}")]
    TooManyQubits {
        /// Qubits asked for.
        n: usize,
        /// The maximum ([`crate::MAX_QUBITS`]).
        max: usize,
    },
    /// The buffers would need more memory than is available now.
    #[error(
        "a {n}-qubit simulation needs {needed_bytes} bytes ({}) but only {available_bytes} bytes \
         ({}) are available; at most {max_qubits} qubits fit",
        gib(*needed_bytes),
        gib(*available_bytes)
    )]
    InsufficientMemory {
        /// Qubits asked for.
        n: usize,
        /// Bytes the request needs (all of the simulation's `2^n`-sized buffers).
        needed_bytes: u64,
        /// Bytes the operating system reports as available.
        available_bytes: u64,
        /// The largest register that would fit.
        max_qubits: usize,
    },
    /// The buffers would need more memory than the configured cap.
    #[error(
        "a {n}-qubit simulation needs {needed_bytes} bytes ({}), above the configured cap of \
         {cap_bytes} bytes ({}); at most {max_qubits} qubits fit",
        gib(*needed_bytes),
        gib(*cap_bytes)
    )]
    AboveCap {
        /// Qubits asked for.
        n: usize,
        /// Bytes the request needs.
        needed_bytes: u64,
        /// The cap ([`crate::MemoryPolicy::cap_bytes`]).
        cap_bytes: u64,
        /// The largest register that would fit.
        max_qubits: usize,
    },
    /// Circuit parameters that cannot be used (lengths differ, a value is not finite).
    #[error("invalid QAOA parameters: {0}")]
    Params(String),
    /// A mixer or initial state that does not fit the register.
    #[error("invalid circuit: {0}")]
    Circuit(String),
    /// A cost function returned NaN or an infinity.
    #[error("the cost of basis state {index} is {value}, not a finite number")]
    NonFiniteCost {
        /// The basis state (bit `i` is variable `i`).
        index: u64,
        /// What the cost function returned.
        value: f64,
    },
    /// Optimizer settings that cannot be used.
    #[error("invalid optimizer settings: {0}")]
    Config(String),
}
