//! How much memory a simulation needs, and whether it may have it.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The largest register the simulator accepts at all, whatever the memory (a state of
/// `2^40` amplitudes would need 16 TiB).
pub const MAX_QUBITS: usize = 40;

/// Bytes of one amplitude of a state: two `f64`, real and imaginary parts.
pub(crate) const STATE_BYTES_PER_AMPLITUDE: u64 = 16;

/// When a simulation may allocate: below an optional cap, and below the memory the operating
/// system reports as available.
///
/// Every allocation of `2^n`-sized buffers (the cost diagonal, the state, the adjoint state of
/// the gradient) is checked against this policy first, and refused with
/// [`SimError::InsufficientMemory`] or [`SimError::AboveCap`], which say how many bytes the
/// request needs, instead of failing inside the allocator.
///
/// # Examples
///
/// ```
/// use qorch_qaoa::{MemoryPolicy, QaoaSimulator, SimConfig, SimError};
///
/// let config = SimConfig { memory: MemoryPolicy::capped(1 << 20), ..SimConfig::default() };
/// let cut = |x: u64| f64::from(x.count_ones());
/// // 2^20 amplitudes need 16 MiB for the state alone: refused before anything is allocated.
/// let err = QaoaSimulator::from_fn(20, cut, config).unwrap_err();
/// match err {
///     SimError::AboveCap { needed_bytes, cap_bytes, .. } => {
///         assert!(needed_bytes > 16 << 20);
///         assert_eq!(cap_bytes, 1 << 20);
///     }
///     other => panic!("unexpected {other}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPolicy {
    /// Refuse requests above this many bytes (all buffers of the simulation together).
    pub cap_bytes: Option<u64>,
    /// Refuse requests above the memory available now (`MemAvailable` in `/proc/meminfo`;
    /// where that cannot be read, only the cap applies).
    pub respect_available: bool,
}

impl Default for MemoryPolicy {
    fn default() -> Self {
        MemoryPolicy {
            cap_bytes: None,
            respect_available: true,
        }
    }
}

impl MemoryPolicy {
    /// A policy with a cap, that also respects the available memory.
    pub fn capped(cap_bytes: u64) -> Self {
        MemoryPolicy {
            cap_bytes: Some(cap_bytes),
            respect_available: true,
        }
    }

    /// No checks besides [`MAX_QUBITS`] (for tests of what the allocator does).
    pub fn unchecked() -> Self {
        MemoryPolicy {
            cap_bytes: None,
            respect_available: false,
        }
    }

    /// Checks a request of `needed` bytes for an `n`-qubit simulation whose buffers take
    /// `per_amplitude` bytes per basis state.
    pub(crate) fn check(&self, n: usize, per_amplitude: u64) -> Result<(), SimError> {
        if n > MAX_QUBITS {
            return Err(SimError::TooManyQubits { n, max: MAX_QUBITS });
        }
        let needed = per_amplitude.saturating_mul(1_u64 << n);
        let fits = |limit: u64| largest_fitting(limit, per_amplitude);
        if let Some(cap) = self.cap_bytes
            && needed > cap
        {
            return Err(SimError::AboveCap {
                n,
                needed_bytes: needed,
                cap_bytes: cap,
                max_qubits: fits(cap),
            });
        }
        if self.respect_available
            && let Some(available) = available_memory_bytes()
            && needed > available
        {
            return Err(SimError::InsufficientMemory {
                n,
                needed_bytes: needed,
                available_bytes: available,
                max_qubits: fits(available),
            });
        }
        Ok(())
    }
}

/// The largest `n` with `per_amplitude * 2^n <= limit`.
fn largest_fitting(limit: u64, per_amplitude: u64) -> usize {
    let mut n = 0;
    while n < MAX_QUBITS && per_amplitude.saturating_mul(1_u64 << (n + 1)) <= limit {
        n += 1;
    }
    n
}

/// The memory the operating system reports as available (`MemAvailable`), shared with the
/// QUBO readers' checks.
pub use qorch_qubo::available_memory_bytes;

/// `bytes` in GiB with two decimals, for messages.
pub(crate) fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1_u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_refusal_says_the_bytes_needed() {
        let err = MemoryPolicy::capped(1 << 30).check(26, 17).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&(17_u64 << 26).to_string()), "{msg}");
        assert!(
            matches!(err, SimError::AboveCap { max_qubits: 25, .. }),
            "{err:?}"
        );
        assert!(MemoryPolicy::capped(1 << 30).check(20, 17).is_ok());
    }

    #[test]
    fn too_many_qubits_is_refused_whatever_the_policy() {
        let err = MemoryPolicy::unchecked()
            .check(MAX_QUBITS + 1, 16)
            .unwrap_err();
        assert!(matches!(err, SimError::TooManyQubits { .. }));
    }

    #[test]
    fn largest_fitting_is_exact() {
        assert_eq!(largest_fitting(16 << 10, 16), 10);
        assert_eq!(largest_fitting((16 << 10) - 1, 16), 9);
        assert_eq!(largest_fitting(0, 16), 0);
    }
}
