//! The layout of a statevector pass: [`KernelConfig`], the cache blocks of pass A and the
//! qubit groups of pass B, the per-thread scratch buffers, and CPU detection.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Tuning of the cache blocking (defaults measured on the development machine; see
/// `docs/benchmarks.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelConfig {
    /// `log2` of the amplitudes in one cache block (16 bytes each).
    pub block_bits: usize,
    /// `log2` of the shortest contiguous run a high-qubit pass reads from each row; fewer
    /// qubits go into one pass when runs would be shorter.
    pub min_run_bits: usize,
    /// Use the AVX2+FMA versions of the kernels where the CPU has them.
    pub simd: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            block_bits: 13,
            min_run_bits: 5,
            simd: true,
        }
    }
}

/// A group of high qubits `q0..q0+k` handled by one pass B, in runs of `2^run_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) q0: usize,
    pub(crate) k: usize,
    pub(crate) run_bits: usize,
}

/// How the passes cut an `n`-qubit state.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) n: usize,
    /// Block bits of pass A: `min(n, config.block_bits)`.
    pub(crate) block_bits: usize,
    /// The high-qubit groups, in order.
    pub(crate) groups: Vec<Group>,
    /// Run tasks on rayon's threads.
    pub(crate) parallel: bool,
    /// Use the AVX2 kernels.
    pub(crate) simd: bool,
    /// Scratch buffers of the high-qubit passes, one per thread, kept between passes (a
    /// fresh 128 KiB buffer per pass would be an mmap and a munmap, with a TLB shootdown).
    scratch: Vec<Mutex<Vec<f64>>>,
}

impl Layout {
    pub(crate) fn new(n: usize, config: &KernelConfig, parallel: bool, threads: usize) -> Layout {
        let b = n.min(config.block_bits.max(config.min_run_bits + 1).max(2));
        let high = n - b;
        let kmax = b.saturating_sub(config.min_run_bits).max(1);
        let count = high.div_ceil(kmax);
        let mut groups = Vec::with_capacity(count);
        let mut q0 = b;
        for g in 0..count {
            // Split the high qubits as evenly as possible.
            let k = high / count + usize::from(g < high % count);
            groups.push(Group {
                q0,
                k,
                run_bits: b - k,
            });
            q0 += k;
        }
        let threads = if parallel { threads } else { 0 };
        let scratch = (0..=threads).map(|_| Mutex::new(Vec::new())).collect();
        Layout {
            n,
            block_bits: b,
            groups,
            parallel,
            simd: config.simd && simd_available(),
            scratch,
        }
    }

    /// Runs `f` with this thread's scratch buffer of at least `len` values.
    pub(crate) fn with_scratch<R>(&self, len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
        let slot = rayon::current_thread_index().map_or(0, |i| i + 1) % self.scratch.len();
        // A poisoned lock only means another task panicked; the buffer is plain data.
        let mut buf = self.scratch[slot]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    }

    /// Passes over the state that one mixer layer makes.
    pub(crate) fn passes(&self) -> usize {
        1 + self.groups.len()
    }

    /// The low qubits' mask.
    pub(crate) fn low_mask(&self) -> u64 {
        (1_u64 << self.block_bits) - 1
    }
}

/// Whether the CPU runs the AVX2+FMA kernels.
pub(crate) fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
