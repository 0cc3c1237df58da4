//! The statevector kernels: fused, cache-blocked passes over a state stored as two `f64`

//! arrays (real and imaginary parts).
//!
//! A QAOA layer is a diagonal phase followed by `exp(-i beta X)` on every qubit. Applied one
//! qubit at a time, a layer reads and writes the whole state `n + 1` times; at `n = 24` that is
//! 25 passes over 256 MiB, and the layer is bound by memory bandwidth. Here a layer takes a
//! few passes:
//!
//! * **pass A** walks the state in contiguous blocks of `2^b` amplitudes (`b` =
//!   [`KernelConfig::block_bits`], a block fits in the L2 cache). For each block it applies
//!   the phase (or, in the first layer, writes `|+>^n` with the phase applied) and then the
//!   rotations of the low qubits `0..b`, whose pairs lie inside the block.
//! * **pass B**, once per group of `k` high qubits `q0..q0+k`, gives each task a *strip*: for
//!   each of the `2^k` rows (the values of the group's bits) a contiguous piece of the row,
//!   walked in runs of `2^(b-k)` amplitudes, so that the `2^k` runs of one step (a cache
//!   block again) get all `k` rotations before the task moves on.
//!
//! The expectation `<D>` is accumulated in the last pass of the last layer, while the
//! amplitudes are in cache. The adjoint gradient runs the same passes backwards on two states
//! at once, accumulating `Im <l|X_q|p>` and `Im <l|D|p>` as it undoes each rotation and phase.
//!
//! Every partition of the work depends only on `n` and the [`KernelConfig`], and partial sums
//! are added in a fixed order, so results do not depend on the number of threads.
//!
//! The layout of the passes is in `layout.rs`, the rotations in `rotations.rs`, one block of
//! pass A or one strip of pass B in `work_units.rs` (built twice, portable and AVX2+FMA, by
//! `simd.rs`), the drivers that run them over the state in `passes.rs`, the diagonal as the
//! kernels see it in `diag.rs`, and the unfused operations (XY mixer, initial states) in
//! `unfused.rs`.

#![allow(
    clippy::inline_always,
    reason = "the kernels must inline into their #[target_feature] (AVX2+FMA) callers to be vectorized; measured"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "pairs of mutable slices are passed by value and reborrowed, which keeps call sites short"
)]

mod diag;
mod layout;
mod passes;
mod rotations;
#[allow(
    unsafe_code,
    reason = "calls of #[target_feature] functions, guarded by CPU detection"
)]
mod simd;
mod unfused;
mod work_units;

pub use layout::KernelConfig;

pub(crate) use diag::{Dense, Diag, Levels, PhaseTable};
pub(crate) use layout::{Group, Layout};
pub(crate) use passes::{pass_a, pass_a_pair, pass_b, pass_b_pair};
pub(crate) use rotations::{Mix, cpow};
pub(crate) use unfused::{fill_real, xy_gate};
pub(crate) use work_units::{PassA, PassAPair, PassB, PassBPair, PhaseOp};

#[cfg(test)]
mod tests;
