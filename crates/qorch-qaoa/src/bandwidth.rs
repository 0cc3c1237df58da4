//! A STREAM-like measurement of the machine's memory bandwidth, the limit of a layer.

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Memory bandwidth measured on a buffer much larger than the caches, with all of rayon's
/// threads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Bytes of the buffer.
    pub bytes: u64,
    /// In-place read-modify-write (`a[i] *= c`), the access pattern of a layer's passes:
    /// bytes read plus bytes written per second, in GB/s (10^9 bytes), best of the repetitions.
    pub read_write_gbps: f64,
    /// Read only (a sum), in GB/s, best of the repetitions.
    pub read_gbps: f64,
}

/// Measures [`Bandwidth`] on a buffer of `bytes` (rounded down to whole `f64`s), `reps` times
/// each, after one untimed pass that faults the pages in.
///
/// # Panics
///
/// If `bytes` is smaller than 8 or `reps` is 0.
pub fn measure_memory_bandwidth(bytes: usize, reps: usize) -> Bandwidth {
    const CHUNK: usize = 1 << 16;
    assert!(
        bytes >= 8 && reps > 0,
        "need a buffer and at least one repetition"
    );
    let len = bytes / 8;
    let mut a = vec![1.0_f64; len];
    let scale = |a: &mut [f64]| {
        a.par_chunks_mut(CHUNK).for_each(|c| {
            for x in c {
                *x *= 1.000_000_1;
            }
        });
    };
    let sum = |a: &[f64]| -> f64 {
        a.par_chunks(CHUNK)
            .map(|c| {
                // Eight independent lanes, so that the additions do not limit the reads.
                let mut acc = [0.0_f64; 8];
                for block in c.chunks_exact(8) {
                    for (s, x) in acc.iter_mut().zip(block) {
                        *s += x;
                    }
                }
                acc.iter().sum::<f64>()
            })
            .sum()
    };
    scale(&mut a);
    let mut best_rw = f64::INFINITY;
    let mut best_r = f64::INFINITY;
    let mut sink = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        scale(&mut a);
        best_rw = best_rw.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        sink += sum(&a);
        best_r = best_r.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    let moved = (len * 8) as f64;
    Bandwidth {
        bytes: (len * 8) as u64,
        read_write_gbps: 2.0 * moved / best_rw / 1e9,
        read_gbps: moved / best_r / 1e9,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bandwidth_is_positive() {
        let b = super::measure_memory_bandwidth(1 << 20, 1);
        assert!(b.read_write_gbps > 0.0 && b.read_gbps > 0.0);
        assert_eq!(b.bytes, 1 << 20);
    }
}
