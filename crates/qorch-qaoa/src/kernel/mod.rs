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

#![allow(
    clippy::inline_always,
    reason = "the kernels must inline into their #[target_feature] (AVX2+FMA) callers to be vectorized; measured"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "pairs of mutable slices are passed by value and reborrowed, which keeps call sites short"
)]

mod diag;

use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub(crate) use diag::{Dense, Diag, Levels, PhaseTable};

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

/// Strips per super-block of a pass B (fixed, so that sums do not depend on the threads).
const STRIPS: usize = 64;

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
    fn with_scratch<R>(&self, len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
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

// ---------------------------------------------------------------------------------------------
// Rotations. `F` selects fused multiply-adds (the AVX2+FMA build); without FMA hardware
// `mul_add` would be a slow library call, so the portable build multiplies and adds.

/// `a * b + c`.
#[inline(always)]
fn fma<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

/// `exp(-i beta X)` on one pair `(a0, a1)` of amplitudes, up to a factor common to all pairs:
/// returns `(re a0', im a0', re a1', im a1')` from `(re a0, im a0, re a1, im a1)`.
pub(crate) trait Rot: Copy {
    fn pair(self, a: f64, b: f64, x: f64, y: f64) -> (f64, f64, f64, f64);

    /// The same map seen from one amplitude `(a, b)` with its partner `(x, y)` (the rotation
    /// is symmetric in the pair): the new value of `(a, b)`.
    #[inline(always)]
    fn partner(self, a: f64, b: f64, x: f64, y: f64) -> (f64, f64) {
        let (a2, b2, _, _) = self.pair(a, b, x, y);
        (a2, b2)
    }
}

/// The exact rotation: `a0' = c a0 - i s a1`, `a1' = c a1 - i s a0` (four multiplications and
/// four additions per pair).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exact<const F: bool> {
    pub(crate) c: f64,
    pub(crate) s: f64,
}

impl<const F: bool> Rot for Exact<F> {
    #[inline(always)]
    fn pair(self, a: f64, b: f64, x: f64, y: f64) -> (f64, f64, f64, f64) {
        let (c, s) = (self.c, self.s);
        (
            fma::<F>(c, a, s * y),
            fma::<F>(c, b, -(s * x)),
            fma::<F>(c, x, s * b),
            fma::<F>(c, y, -(s * a)),
        )
    }
}

/// The rotation divided by `cos beta` (for `|cos| >= |sin|`): `a0' = a0 - i t a1`,
/// `a1' = a1 - i t a0` with `t = tan beta`; one fused multiply-add per value. The factor
/// `cos^k beta` of the `k` rotated qubits is applied once per layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tan<const F: bool> {
    pub(crate) t: f64,
}

impl<const F: bool> Rot for Tan<F> {
    #[inline(always)]
    fn pair(self, a: f64, b: f64, x: f64, y: f64) -> (f64, f64, f64, f64) {
        let t = self.t;
        (
            fma::<F>(t, y, a),
            fma::<F>(-t, x, b),
            fma::<F>(t, b, x),
            fma::<F>(-t, a, y),
        )
    }
}

/// The rotation divided by `-i sin beta` (for `|sin| > |cos|`): `a0' = a1 + i u a0`,
/// `a1' = a0 + i u a1` with `u = cot beta`; the factor `(-i sin beta)^k` is applied once per
/// layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cot<const F: bool> {
    pub(crate) u: f64,
}

impl<const F: bool> Rot for Cot<F> {
    #[inline(always)]
    fn pair(self, a: f64, b: f64, x: f64, y: f64) -> (f64, f64, f64, f64) {
        let u = self.u;
        (
            fma::<F>(-u, b, x),
            fma::<F>(u, a, y),
            fma::<F>(-u, y, a),
            fma::<F>(u, x, b),
        )
    }
}

/// How a forward pass rotates: the scaled forms, chosen per layer so that `|t|, |u| <= 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mix {
    /// [`Tan`].
    Tan(f64),
    /// [`Cot`].
    Cot(f64),
}

impl Mix {
    /// The scaled rotation for `beta`, and the factor `g` it leaves out per qubit.
    pub(crate) fn for_beta(beta: f64) -> (Mix, (f64, f64)) {
        let (s, c) = beta.sin_cos();
        if c.abs() >= s.abs() {
            (Mix::Tan(s / c), (c, 0.0))
        } else {
            (Mix::Cot(c / s), (0.0, -s))
        }
    }
}

/// `g^k` for a complex `g`, by squaring.
pub(crate) fn cpow((mut gr, mut gi): (f64, f64), mut k: u32) -> (f64, f64) {
    let (mut rr, mut ri) = (1.0, 0.0);
    while k > 0 {
        if k & 1 == 1 {
            (rr, ri) = (rr * gr - ri * gi, rr * gi + ri * gr);
        }
        (gr, gi) = (gr * gr - gi * gi, 2.0 * gr * gi);
        k >>= 1;
    }
    (rr, ri)
}

/// Multiplies a block by the complex factor `g`.
#[inline(always)]
fn scale(re: &mut [f64], im: &mut [f64], (gr, gi): (f64, f64)) {
    let im = &mut im[..re.len()];
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        (*r, *i) = (gr * *r - gi * *i, gr * *i + gi * *r);
    }
}

/// Qubits below this are rotated in sub-blocks of `2^L1_BITS` amplitudes (16 KiB of real and
/// imaginary parts, in the L1 cache) before the higher qubits of a block.
const L1_BITS: usize = 10;

/// `exp(-i beta X)` on pairs: `a0' = c a0 - i s a1`, `a1' = c a1 - i s a0`.
#[inline(always)]
fn rot<R: Rot>(r0: &mut [f64], i0: &mut [f64], r1: &mut [f64], i1: &mut [f64], r: R) {
    let len = r0.len();
    let (i0, r1, i1) = (&mut i0[..len], &mut r1[..len], &mut i1[..len]);
    for k in 0..len {
        (r0[k], i0[k], r1[k], i1[k]) = r.pair(r0[k], i0[k], r1[k], i1[k]);
    }
}

/// `Im (conj(l0) p1 + conj(l1) p0)` summed over the pairs (in four lanes, for
/// vectorization), then the rotation of both states.
#[inline(always)]
fn rot_acc<R: Rot>(p: [&mut [f64]; 4], l: [&mut [f64]; 4], r: R) -> f64 {
    let [pr0, pi0, pr1, pi1] = p;
    let [lr0, li0, lr1, li1] = l;
    let len = pr0.len();
    let (pi0, pr1, pi1) = (&mut pi0[..len], &mut pr1[..len], &mut pi1[..len]);
    let (lr0, li0, lr1, li1) = (
        &mut lr0[..len],
        &mut li0[..len],
        &mut lr1[..len],
        &mut li1[..len],
    );
    let mut acc = [0.0_f64; 4];
    for k in 0..len {
        let t = lr0[k] * pi1[k] - li0[k] * pr1[k] + lr1[k] * pi0[k] - li1[k] * pr0[k];
        acc[k % 4] += t;
    }
    rot(pr0, pi0, pr1, pi1, r);
    rot(lr0, li0, lr1, li1, r);
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Rotates qubit `q` of a contiguous block (slow for `q < 2`: see [`rot_low2`]).
#[inline(always)]
fn rot_qubit<R: Rot>(re: &mut [f64], im: &mut [f64], q: usize, r: R) {
    let half = 1 << q;
    for (rc, ic) in re
        .chunks_exact_mut(2 * half)
        .zip(im.chunks_exact_mut(2 * half))
    {
        let (r0, r1) = rc.split_at_mut(half);
        let (i0, i1) = ic.split_at_mut(half);
        rot(r0, i0, r1, i1, r);
    }
}

/// One pair inside a group of four amplitudes.
#[inline(always)]
fn pair4<R: Rot>(a: &mut [f64; 4], b: &mut [f64; 4], u: usize, v: usize, r: R) {
    (a[u], b[u], a[v], b[v]) = r.pair(a[u], b[u], a[v], b[v]);
}

/// Rotates qubits 0 and/or 1 of a contiguous block (their pairs lie within groups of four
/// amplitudes, too short for the generic loop).
#[inline(always)]
fn rot_low2<R: Rot>(re: &mut [f64], im: &mut [f64], q0: bool, q1: bool, r: R) {
    for (rc, ic) in re.chunks_exact_mut(4).zip(im.chunks_exact_mut(4)) {
        let mut a = [rc[0], rc[1], rc[2], rc[3]];
        let mut b = [ic[0], ic[1], ic[2], ic[3]];
        if q0 {
            pair4(&mut a, &mut b, 0, 1, r);
            pair4(&mut a, &mut b, 2, 3, r);
        }
        if q1 {
            pair4(&mut a, &mut b, 0, 2, r);
            pair4(&mut a, &mut b, 1, 3, r);
        }
        rc.copy_from_slice(&a);
        ic.copy_from_slice(&b);
    }
}

/// Rotates qubits `qa < qb` (both `>= 2`) of a contiguous block in one sweep: each group of
/// four amplitudes `x, x+2^qa, x+2^qb, x+2^qa+2^qb` is loaded once, gets both rotations,
/// and is stored once, which halves the stores (the limit in the L1 cache) of two sweeps.
#[inline(always)]
fn rot_two<R: Rot>(re: &mut [f64], im: &mut [f64], qa: usize, qb: usize, r: R) {
    let (ha, hb) = (1 << qa, 1 << qb);
    for (rbig, ibig) in re.chunks_exact_mut(2 * hb).zip(im.chunks_exact_mut(2 * hb)) {
        let (rlo, rhi) = rbig.split_at_mut(hb);
        let (ilo, ihi) = ibig.split_at_mut(hb);
        let rs = rlo
            .chunks_exact_mut(2 * ha)
            .zip(rhi.chunks_exact_mut(2 * ha));
        let is = ilo
            .chunks_exact_mut(2 * ha)
            .zip(ihi.chunks_exact_mut(2 * ha));
        for ((rl, rh), (il, ih)) in rs.zip(is) {
            let (r00, r01) = rl.split_at_mut(ha);
            let (r10, r11) = rh.split_at_mut(ha);
            let (i00, i01) = il.split_at_mut(ha);
            let (i10, i11) = ih.split_at_mut(ha);
            let (r01, r10, r11) = (&mut r01[..ha], &mut r10[..ha], &mut r11[..ha]);
            let (i00, i01, i10, i11) = (
                &mut i00[..ha],
                &mut i01[..ha],
                &mut i10[..ha],
                &mut i11[..ha],
            );
            for k in 0..ha {
                let mut a = [r00[k], r01[k], r10[k], r11[k]];
                let mut b = [i00[k], i01[k], i10[k], i11[k]];
                pair4(&mut a, &mut b, 0, 1, r);
                pair4(&mut a, &mut b, 2, 3, r);
                pair4(&mut a, &mut b, 0, 2, r);
                pair4(&mut a, &mut b, 1, 3, r);
                (r00[k], r01[k], r10[k], r11[k]) = (a[0], a[1], a[2], a[3]);
                (i00[k], i01[k], i10[k], i11[k]) = (b[0], b[1], b[2], b[3]);
            }
        }
    }
}

/// Rotates the qubits of `mask` in `lo..hi` (all `>= 2`), two per sweep.
#[inline(always)]
fn rot_range<R: Rot>(re: &mut [f64], im: &mut [f64], mask: u64, lo: usize, hi: usize, r: R) {
    let mut pending: Option<usize> = None;
    for q in lo..hi {
        if (mask >> q) & 1 == 0 {
            continue;
        }
        match pending.take() {
            Some(qa) => rot_two(re, im, qa, q, r),
            None => pending = Some(q),
        }
    }
    if let Some(q) = pending {
        rot_qubit(re, im, q, r);
    }
}

/// Rotates qubits 0, 1 and 2 of a contiguous block in one sweep: each group of eight
/// amplitudes is two vectors per array, and each amplitude's partner is a lane permutation
/// (qubits 0 and 1) or the other vector (qubit 2), so that no loop runs over fewer than eight
/// values.
#[inline(always)]
fn rot_low3<R: Rot>(re: &mut [f64], im: &mut [f64], r: R) {
    #[inline(always)]
    fn step<R: Rot, const BIT: usize>(a: &mut [f64; 8], b: &mut [f64; 8], r: R) {
        let pa: [f64; 8] = std::array::from_fn(|k| a[k ^ BIT]);
        let pb: [f64; 8] = std::array::from_fn(|k| b[k ^ BIT]);
        for k in 0..8 {
            (a[k], b[k]) = r.partner(a[k], b[k], pa[k], pb[k]);
        }
    }
    for (rc, ic) in re.chunks_exact_mut(8).zip(im.chunks_exact_mut(8)) {
        let mut a: [f64; 8] = std::array::from_fn(|k| rc[k]);
        let mut b: [f64; 8] = std::array::from_fn(|k| ic[k]);
        step::<R, 1>(&mut a, &mut b, r);
        step::<R, 2>(&mut a, &mut b, r);
        step::<R, 4>(&mut a, &mut b, r);
        rc.copy_from_slice(&a);
        ic.copy_from_slice(&b);
    }
}

/// Rotates the qubits of `mask` in a block of at most `2^L1_BITS` amplitudes.
#[inline(always)]
fn rot_small<R: Rot>(re: &mut [f64], im: &mut [f64], mask: u64, r: R) {
    let bits = re.len().trailing_zeros() as usize;
    if bits < 2 {
        // One or two amplitudes: only qubit 0 can exist.
        if bits == 1 && mask & 1 == 1 {
            let (r0, r1) = re.split_at_mut(1);
            let (i0, i1) = im.split_at_mut(1);
            rot(r0, i0, r1, i1, r);
        }
        return;
    }
    if bits >= 3 && mask & 7 == 7 {
        rot_low3(re, im, r);
        rot_range(re, im, mask, 3, bits, r);
        return;
    }
    if mask & 3 != 0 {
        rot_low2(re, im, mask & 1 != 0, mask & 2 != 0, r);
    }
    rot_range(re, im, mask, 2, bits, r);
}

/// Rotates the qubits of `mask` (all below the block's size) in a contiguous block: the low
/// ones per L1-sized sub-block, then the others across the block.
#[inline(always)]
fn rot_block<R: Rot>(re: &mut [f64], im: &mut [f64], mask: u64, r: R) {
    let bits = re.len().trailing_zeros() as usize;
    if bits <= L1_BITS {
        rot_small(re, im, mask, r);
        return;
    }
    let low = mask & ((1 << L1_BITS) - 1);
    if low != 0 {
        let sub = 1 << L1_BITS;
        for (rs, is) in re.chunks_exact_mut(sub).zip(im.chunks_exact_mut(sub)) {
            rot_small(rs, is, low, r);
        }
    }
    rot_range(re, im, mask, L1_BITS, bits, r);
}

/// [`rot_low2`] on `(p, l)`, accumulating `Im <l|X_q|p>` for qubits 0 and 1.
#[inline(always)]
fn rot_low2_acc<R: Rot>(
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
    q0: bool,
    q1: bool,
    r: R,
) -> f64 {
    let mut acc = 0.0;
    let ps = p.0.chunks_exact_mut(4).zip(p.1.chunks_exact_mut(4));
    let ls = l.0.chunks_exact_mut(4).zip(l.1.chunks_exact_mut(4));
    for ((pr, pi), (lr, li)) in ps.zip(ls) {
        let (mut a, mut b) = ([pr[0], pr[1], pr[2], pr[3]], [pi[0], pi[1], pi[2], pi[3]]);
        let (mut u, mut v) = ([lr[0], lr[1], lr[2], lr[3]], [li[0], li[1], li[2], li[3]]);
        let term = |x: usize, y: usize, a: &[f64; 4], b: &[f64; 4], u: &[f64; 4], v: &[f64; 4]| {
            u[x] * b[y] - v[x] * a[y] + u[y] * b[x] - v[y] * a[x]
        };
        if q0 {
            acc += term(0, 1, &a, &b, &u, &v) + term(2, 3, &a, &b, &u, &v);
            pair4(&mut a, &mut b, 0, 1, r);
            pair4(&mut a, &mut b, 2, 3, r);
            pair4(&mut u, &mut v, 0, 1, r);
            pair4(&mut u, &mut v, 2, 3, r);
        }
        if q1 {
            acc += term(0, 2, &a, &b, &u, &v) + term(1, 3, &a, &b, &u, &v);
            pair4(&mut a, &mut b, 0, 2, r);
            pair4(&mut a, &mut b, 1, 3, r);
            pair4(&mut u, &mut v, 0, 2, r);
            pair4(&mut u, &mut v, 1, 3, r);
        }
        pr.copy_from_slice(&a);
        pi.copy_from_slice(&b);
        lr.copy_from_slice(&u);
        li.copy_from_slice(&v);
    }
    acc
}

/// Rotates qubit `q >= 2` of a block in `(p, l)`, accumulating `Im <l|X_q|p>`.
#[inline(always)]
fn rot_qubit_acc<R: Rot>(
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
    q: usize,
    r: R,
) -> f64 {
    let half = 1 << q;
    let mut acc = 0.0;
    let ps =
        p.0.chunks_exact_mut(2 * half)
            .zip(p.1.chunks_exact_mut(2 * half));
    let ls =
        l.0.chunks_exact_mut(2 * half)
            .zip(l.1.chunks_exact_mut(2 * half));
    for ((prc, pic), (lrc, lic)) in ps.zip(ls) {
        let (pr0, pr1) = prc.split_at_mut(half);
        let (pi0, pi1) = pic.split_at_mut(half);
        let (lr0, lr1) = lrc.split_at_mut(half);
        let (li0, li1) = lic.split_at_mut(half);
        acc += rot_acc([pr0, pi0, pr1, pi1], [lr0, li0, lr1, li1], r);
    }
    acc
}

/// [`rot_small`] on `(p, l)` with accumulation.
#[inline(always)]
fn rot_small_acc<R: Rot>(
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
    mask: u64,
    r: R,
) -> f64 {
    let bits = p.0.len().trailing_zeros() as usize;
    let (pr, pi) = p;
    let (lr, li) = l;
    if bits < 2 {
        if bits == 1 && mask & 1 == 1 {
            let (pr0, pr1) = pr.split_at_mut(1);
            let (pi0, pi1) = pi.split_at_mut(1);
            let (lr0, lr1) = lr.split_at_mut(1);
            let (li0, li1) = li.split_at_mut(1);
            return rot_acc([pr0, pi0, pr1, pi1], [lr0, li0, lr1, li1], r);
        }
        return 0.0;
    }
    let mut acc = 0.0;
    if mask & 3 != 0 {
        acc += rot_low2_acc(
            (&mut *pr, &mut *pi),
            (&mut *lr, &mut *li),
            mask & 1 != 0,
            mask & 2 != 0,
            r,
        );
    }
    for q in 2..bits {
        if (mask >> q) & 1 == 1 {
            acc += rot_qubit_acc((&mut *pr, &mut *pi), (&mut *lr, &mut *li), q, r);
        }
    }
    acc
}

/// [`rot_block`] on `(p, l)` with accumulation.
#[inline(always)]
fn rot_block_acc<R: Rot>(
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
    mask: u64,
    r: R,
) -> f64 {
    let bits = p.0.len().trailing_zeros() as usize;
    if bits <= L1_BITS {
        return rot_small_acc(p, l, mask, r);
    }
    let (pr, pi) = p;
    let (lr, li) = l;
    let mut acc = 0.0;
    let low = mask & ((1 << L1_BITS) - 1);
    if low != 0 {
        let sub = 1 << L1_BITS;
        let ps = pr.chunks_exact_mut(sub).zip(pi.chunks_exact_mut(sub));
        let ls = lr.chunks_exact_mut(sub).zip(li.chunks_exact_mut(sub));
        for (ps, ls) in ps.zip(ls) {
            acc += rot_small_acc(ps, ls, low, r);
        }
    }
    for q in L1_BITS..bits {
        if (mask >> q) & 1 == 1 {
            acc += rot_qubit_acc((&mut *pr, &mut *pi), (&mut *lr, &mut *li), q, r);
        }
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Work units: one block of pass A, one strip of pass B; single state or (p, l) pairs.

/// What pass A does to the phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PhaseOp {
    /// Nothing.
    Skip,
    /// Multiply by the phase of the table.
    Apply,
    /// Overwrite with `amp` times the phase (the first layer from `|+>^n`).
    InitPlus(f64),
}

/// One pass A over a single state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassA<'t> {
    pub(crate) phase: PhaseOp,
    pub(crate) table: &'t PhaseTable,
    /// The (scaled) rotations.
    pub(crate) mix: Mix,
    /// Low qubits to rotate.
    pub(crate) mask: u64,
    /// Multiply the result by this factor (the layer's scale, in its last pass).
    pub(crate) fixup: Option<(f64, f64)>,
    /// Return `sum |a|^2 v` of the final amplitudes.
    pub(crate) accumulate: bool,
}

#[inline(always)]
fn a_block<D: Diag, const F: bool>(
    d: &D,
    op: &PassA<'_>,
    start: usize,
    re: &mut [f64],
    im: &mut [f64],
) -> f64 {
    match op.phase {
        PhaseOp::Skip => {}
        PhaseOp::Apply => d.phase::<F>(start, op.table, re, im),
        PhaseOp::InitPlus(amp) => d.init_plus(start, op.table, amp, re, im),
    }
    if op.mask != 0 {
        match op.mix {
            Mix::Tan(t) => rot_block(re, im, op.mask, Tan::<F> { t }),
            Mix::Cot(u) => rot_block(re, im, op.mask, Cot::<F> { u }),
        }
    }
    if let Some(g) = op.fixup {
        scale(re, im, g);
    }
    if op.accumulate {
        d.expect(start, re, im)
    } else {
        0.0
    }
}

/// One backward pass A over `(p, l)`: optionally `l = D p` first, then undo the low rotations
/// (accumulating `Im <l|X_q|p>`), accumulate `Im <l|D|p>`, and optionally undo the phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassAPair<'t> {
    pub(crate) init_lambda: bool,
    pub(crate) rot: (f64, f64),
    pub(crate) mask: u64,
    /// Undo the phase with this table (for `-gamma`), or leave it.
    pub(crate) unphase: Option<&'t PhaseTable>,
}

#[inline(always)]
fn a_block_pair<D: Diag, const F: bool>(
    d: &D,
    op: &PassAPair<'_>,
    start: usize,
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
) -> (f64, f64) {
    let (pr, pi) = p;
    let (lr, li) = l;
    if op.init_lambda {
        d.mul(start, pr, pi, lr, li);
    }
    let (c, s) = op.rot;
    let r = Exact::<F> { c, s };
    let gb = if op.mask == 0 {
        0.0
    } else {
        rot_block_acc((&mut *pr, &mut *pi), (&mut *lr, &mut *li), op.mask, r)
    };
    let gd = d.imag_inner(start, pr, pi, lr, li);
    if let Some(t) = op.unphase {
        d.phase::<F>(start, t, pr, pi);
        d.phase::<F>(start, t, lr, li);
    }
    (gb, gd)
}

/// A task's share of a pass B: for each array, one contiguous piece per row.
pub(crate) struct Strip<'a, const A: usize> {
    /// Basis index of row 0's first element.
    base: usize,
    rows: [Vec<&'a mut [f64]>; A],
}

/// One pass B over a single state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassB {
    pub(crate) group: Group,
    pub(crate) mix: Mix,
    /// Qubits of the group to rotate (bit `j` is qubit `q0 + j`).
    pub(crate) mask: u64,
    /// Multiply the result by this factor (the layer's scale, in its last pass).
    pub(crate) fixup: Option<(f64, f64)>,
    pub(crate) accumulate: bool,
}

/// Copies run `r` of every row of the strip's arrays into `buf` (row after row: the group's
/// qubit `j` becomes bit `log2(run) + j` of the buffer index), or back.
#[inline(always)]
fn gather<const A: usize>(strip: &Strip<'_, A>, buf: &mut [f64], r: std::ops::Range<usize>) {
    let run = r.len();
    let rows = strip.rows[0].len();
    for (a, array) in strip.rows.iter().enumerate() {
        let dst = &mut buf[a * rows * run..(a + 1) * rows * run];
        for (row, d) in array.iter().zip(dst.chunks_exact_mut(run)) {
            d.copy_from_slice(&row[r.clone()]);
        }
    }
}

#[inline(always)]
fn scatter<const A: usize>(strip: &mut Strip<'_, A>, buf: &[f64], r: std::ops::Range<usize>) {
    let run = r.len();
    let rows = strip.rows[0].len();
    for (a, array) in strip.rows.iter_mut().enumerate() {
        let src = &buf[a * rows * run..(a + 1) * rows * run];
        for (row, s) in array.iter_mut().zip(src.chunks_exact(run)) {
            row[r.clone()].copy_from_slice(s);
        }
    }
}

#[inline(always)]
fn b_strip<D: Diag, const F: bool>(
    d: &D,
    op: &PassB,
    strip: &mut Strip<'_, 2>,
    buf: &mut [f64],
) -> f64 {
    let Group { q0, k, run_bits } = op.group;
    let rows = 1_usize << k;
    let width = strip.rows[0][0].len();
    let run = (1_usize << run_bits).min(width);
    let shift = run.trailing_zeros();
    let mut acc = 0.0;
    for r0 in (0..width).step_by(run) {
        let r = r0..r0 + run;
        gather(strip, buf, r.clone());
        let (bre, bim) = buf[..2 * rows * run].split_at_mut(rows * run);
        match op.mix {
            Mix::Tan(t) => rot_block(bre, bim, op.mask << shift, Tan::<F> { t }),
            Mix::Cot(u) => rot_block(bre, bim, op.mask << shift, Cot::<F> { u }),
        }
        if let Some(g) = op.fixup {
            scale(bre, bim, g);
        }
        if op.accumulate {
            for (g, (gr, gi)) in bre.chunks_exact(run).zip(bim.chunks_exact(run)).enumerate() {
                acc += d.expect(strip.base + (g << q0) + r0, gr, gi);
            }
        }
        scatter(strip, buf, r);
    }
    acc
}

/// One backward pass B over `(p, l)`: optionally `l = D p` first, then undo the group's
/// rotations, accumulating `Im <l|X_q|p>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassBPair {
    pub(crate) group: Group,
    pub(crate) rot: (f64, f64),
    pub(crate) mask: u64,
    pub(crate) init_lambda: bool,
}

#[inline(always)]
fn b_strip_pair<D: Diag, const F: bool>(
    d: &D,
    op: &PassBPair,
    strip: &mut Strip<'_, 4>,
    buf: &mut [f64],
) -> f64 {
    let Group { q0, k, run_bits } = op.group;
    let rows = 1_usize << k;
    let width = strip.rows[0][0].len();
    let run = (1_usize << run_bits).min(width);
    let shift = run.trailing_zeros();
    let (c, s) = op.rot;
    let len = rows * run;
    let mut acc = 0.0;
    for r0 in (0..width).step_by(run) {
        let r = r0..r0 + run;
        gather(strip, buf, r.clone());
        let (p, l) = buf[..4 * len].split_at_mut(2 * len);
        let (pr, pi) = p.split_at_mut(len);
        let (lr, li) = l.split_at_mut(len);
        if op.init_lambda {
            let ps = pr.chunks_exact(run).zip(pi.chunks_exact(run));
            let ls = lr.chunks_exact_mut(run).zip(li.chunks_exact_mut(run));
            for (g, ((gr, gi), (hr, hi))) in ps.zip(ls).enumerate() {
                d.mul(strip.base + (g << q0) + r0, gr, gi, hr, hi);
            }
        }
        acc += rot_block_acc((pr, pi), (lr, li), op.mask << shift, Exact::<F> { c, s });
        scatter(strip, buf, r);
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Dispatch to the AVX2+FMA builds of the work units.

#[allow(
    unsafe_code,
    reason = "calls of #[target_feature] functions, guarded by CPU detection"
)]
mod simd {
    use super::{Diag, PassA, PassAPair, PassB, PassBPair, Strip};

    macro_rules! units {
        ($( $name:ident, $avx:ident => $generic:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {$(
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn $avx<D: Diag>($($arg: $ty),*) -> $ret {
                super::$generic::<D, true>($($arg),*)
            }

            /// The work unit, in its AVX2+FMA build when `simd` is set.
            #[inline]
            pub(super) fn $name<D: Diag>(simd: bool, $($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: `simd` is only set by `Layout::new` when `simd_available()`
                    // detected AVX2 and FMA on this CPU, which is all the target-feature
                    // function requires; it has no other preconditions.
                    return unsafe { $avx::<D>($($arg),*) };
                }
                let _ = simd;
                super::$generic::<D, false>($($arg),*)
            }
        )*};
    }

    units! {
        a_block, a_block_avx2 => a_block(d: &D, op: &PassA<'_>, start: usize, re: &mut [f64], im: &mut [f64]) -> f64;
        a_block_pair, a_block_pair_avx2 => a_block_pair(d: &D, op: &PassAPair<'_>, start: usize, p: (&mut [f64], &mut [f64]), l: (&mut [f64], &mut [f64])) -> (f64, f64);
        b_strip, b_strip_avx2 => b_strip(d: &D, op: &PassB, strip: &mut Strip<'_, 2>, buf: &mut [f64]) -> f64;
        b_strip_pair, b_strip_pair_avx2 => b_strip_pair(d: &D, op: &PassBPair, strip: &mut Strip<'_, 4>, buf: &mut [f64]) -> f64;
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.

/// Adds partial sums in their order (the same with one thread or many).
fn ordered_sum(parts: impl Iterator<Item = f64>) -> f64 {
    parts.fold(0.0, |a, x| a + x)
}

/// Runs pass A; returns the accumulated expectation (0 unless `op.accumulate`).
pub(crate) fn pass_a<D: Diag>(
    layout: &Layout,
    d: &D,
    op: &PassA<'_>,
    re: &mut [f64],
    im: &mut [f64],
) -> f64 {
    let bl = 1 << layout.block_bits;
    let simd = layout.simd;
    let work = |(b, (re, im)): (usize, (&mut [f64], &mut [f64]))| {
        simd::a_block(simd, d, op, b * bl, re, im)
    };
    if layout.parallel && re.len() > bl {
        let parts: Vec<f64> = re
            .par_chunks_mut(bl)
            .zip(im.par_chunks_mut(bl))
            .enumerate()
            .map(work)
            .collect();
        ordered_sum(parts.into_iter())
    } else {
        ordered_sum(
            re.chunks_mut(bl)
                .zip(im.chunks_mut(bl))
                .enumerate()
                .map(work),
        )
    }
}

/// Two blocks `(re, im)` of `p` and `l`.
type Four<'x> = (
    (&'x mut [f64], &'x mut [f64]),
    (&'x mut [f64], &'x mut [f64]),
);

/// Runs a backward pass A on `(p, l)`; returns `(sum Im <l|X_q|p>, Im <l|D|p>)`.
pub(crate) fn pass_a_pair<D: Diag>(
    layout: &Layout,
    d: &D,
    op: &PassAPair<'_>,
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
) -> (f64, f64) {
    let bl = 1 << layout.block_bits;
    let simd = layout.simd;
    let work = |(b, (p, l)): (usize, Four<'_>)| simd::a_block_pair(simd, d, op, b * bl, p, l);
    let add = |a: (f64, f64), x: (f64, f64)| (a.0 + x.0, a.1 + x.1);
    if layout.parallel && p.0.len() > bl {
        let ps = p.0.par_chunks_mut(bl).zip(p.1.par_chunks_mut(bl));
        let ls = l.0.par_chunks_mut(bl).zip(l.1.par_chunks_mut(bl));
        let parts: Vec<(f64, f64)> = ps.zip(ls).enumerate().map(work).collect();
        parts.into_iter().fold((0.0, 0.0), add)
    } else {
        let ps = p.0.chunks_mut(bl).zip(p.1.chunks_mut(bl));
        let ls = l.0.chunks_mut(bl).zip(l.1.chunks_mut(bl));
        ps.zip(ls).enumerate().map(work).fold((0.0, 0.0), add)
    }
}

/// Cuts `A` arrays of `2^n` amplitudes into the strips of `group`.
fn strips<const A: usize>(arrays: [&mut [f64]; A], n: usize, group: Group) -> Vec<Strip<'_, A>> {
    let row_len = 1_usize << group.q0;
    let sb_len = row_len << group.k;
    let sb_count = (1_usize << n) / sb_len;
    let run = 1_usize << group.run_bits;
    let pieces = (STRIPS / sb_count).clamp(1, (row_len / run).max(1));
    let width = row_len / pieces;
    let mut out: Vec<Strip<'_, A>> = (0..sb_count * pieces)
        .map(|t| Strip {
            base: (t / pieces) * sb_len + (t % pieces) * width,
            rows: std::array::from_fn(|_| Vec::with_capacity(1 << group.k)),
        })
        .collect();
    for (a, array) in arrays.into_iter().enumerate() {
        for (sb, block) in array.chunks_mut(sb_len).enumerate() {
            for row in block.chunks_mut(row_len) {
                for (piece, part) in row.chunks_mut(width).enumerate() {
                    out[sb * pieces + piece].rows[a].push(part);
                }
            }
        }
    }
    out
}

/// Runs the strips of a pass B, each with a scratch buffer of `A` cache blocks.
fn run_strips<const A: usize>(
    layout: &Layout,
    tasks: &mut [Strip<'_, A>],
    group: Group,
    work: impl Fn(&mut Strip<'_, A>, &mut [f64]) -> f64 + Sync,
) -> f64 {
    let len = A << (group.k + group.run_bits);
    let task = |s: &mut Strip<'_, A>| layout.with_scratch(len, |buf| work(s, buf));
    if layout.parallel {
        let parts: Vec<f64> = tasks.par_iter_mut().map(task).collect();
        ordered_sum(parts.into_iter())
    } else {
        ordered_sum(tasks.iter_mut().map(task))
    }
}

/// Runs pass B for `op.group`; returns the accumulated expectation.
pub(crate) fn pass_b<D: Diag>(
    layout: &Layout,
    d: &D,
    op: &PassB,
    re: &mut [f64],
    im: &mut [f64],
) -> f64 {
    let simd = layout.simd;
    let mut tasks = strips([re, im], layout.n, op.group);
    run_strips(layout, &mut tasks, op.group, |s, buf| {
        simd::b_strip(simd, d, op, s, buf)
    })
}

/// Runs a backward pass B on `(p, l)`; returns `sum Im <l|X_q|p>` over the group.
pub(crate) fn pass_b_pair<D: Diag>(
    layout: &Layout,
    d: &D,
    op: &PassBPair,
    p: (&mut [f64], &mut [f64]),
    l: (&mut [f64], &mut [f64]),
) -> f64 {
    let simd = layout.simd;
    let mut tasks = strips([p.0, p.1, l.0, l.1], layout.n, op.group);
    run_strips(layout, &mut tasks, op.group, |s, buf| {
        simd::b_strip_pair(simd, d, op, s, buf)
    })
}

// ---------------------------------------------------------------------------------------------
// Unfused operations (XY mixer, initial states).

/// `exp(-i beta (X_i X_j + Y_i Y_j) / 2)` on one pair of qubits: mixes the amplitudes of
/// states that differ by swapping a 1 on qubit `i` and a 0 on qubit `j` (Hamming weight
/// preserved). With `acc`, first accumulates `Im <l|h|p>` on the pair `(p, l)` and rotates
/// both.
pub(crate) fn xy_gate(
    parallel: bool,
    p: (&mut [f64], &mut [f64]),
    l: Option<(&mut [f64], &mut [f64])>,
    i: usize,
    j: usize,
    (c, s): (f64, f64),
) -> f64 {
    let hi = i.max(j);
    let chunk = 2_usize << hi;
    let m = (1_usize << i) | (1_usize << j);
    let pair_op = |re: &mut [f64], im: &mut [f64], x: usize, y: usize| {
        let (a, b, u, v) = (re[x], im[x], re[y], im[y]);
        re[x] = c * a + s * v;
        im[x] = c * b - s * u;
        re[y] = c * u + s * b;
        im[y] = c * v - s * a;
    };
    let work = |(pr, pi): (&mut [f64], &mut [f64]), lam: Option<(&mut [f64], &mut [f64])>| -> f64 {
        let mut acc = 0.0;
        let mut lam = lam;
        for x in 0..pr.len() {
            if (x >> i) & 1 == 1 && (x >> j) & 1 == 0 {
                let y = x ^ m;
                if let Some((lr, li)) = lam.as_mut() {
                    acc += lr[x] * pi[y] - li[x] * pr[y] + lr[y] * pi[x] - li[y] * pr[x];
                    pair_op(lr, li, x, y);
                }
                pair_op(pr, pi, x, y);
            }
        }
        acc
    };
    match l {
        None if parallel && p.0.len() > chunk => {
            let parts: Vec<f64> =
                p.0.par_chunks_mut(chunk)
                    .zip(p.1.par_chunks_mut(chunk))
                    .map(|x| work(x, None))
                    .collect();
            ordered_sum(parts.into_iter())
        }
        None => ordered_sum(
            p.0.chunks_mut(chunk)
                .zip(p.1.chunks_mut(chunk))
                .map(|x| work(x, None)),
        ),
        Some((lr, li)) if parallel && p.0.len() > chunk => {
            let ps = p.0.par_chunks_mut(chunk).zip(p.1.par_chunks_mut(chunk));
            let ls = lr.par_chunks_mut(chunk).zip(li.par_chunks_mut(chunk));
            let parts: Vec<f64> = ps.zip(ls).map(|(x, y)| work(x, Some(y))).collect();
            ordered_sum(parts.into_iter())
        }
        Some((lr, li)) => {
            let ps = p.0.chunks_mut(chunk).zip(p.1.chunks_mut(chunk));
            let ls = lr.chunks_mut(chunk).zip(li.chunks_mut(chunk));
            ordered_sum(ps.zip(ls).map(|(x, y)| work(x, Some(y))))
        }
    }
}

/// Writes `f(x)` (a real amplitude) into every basis state.
pub(crate) fn fill_real(
    parallel: bool,
    re: &mut [f64],
    im: &mut [f64],
    f: impl Fn(usize) -> f64 + Sync,
) {
    const CHUNK: usize = 1 << 14;
    let work = |(c, (r, i)): (usize, (&mut [f64], &mut [f64]))| {
        for (k, (r, i)) in r.iter_mut().zip(i.iter_mut()).enumerate() {
            *r = f(c * CHUNK + k);
            *i = 0.0;
        }
    };
    if parallel {
        re.par_chunks_mut(CHUNK)
            .zip(im.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(work);
    } else {
        re.chunks_mut(CHUNK)
            .zip(im.chunks_mut(CHUNK))
            .enumerate()
            .for_each(work);
    }
}

#[cfg(test)]
mod tests;
