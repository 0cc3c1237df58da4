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

mod diag;

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
        KernelConfig { block_bits: 13, min_run_bits: 5, simd: true }
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// Strips per super-block of a pass B (fixed, so that sums do not depend on the threads).
const STRIPS: usize = 64;

impl Layout {
    pub(crate) fn new(n: usize, config: &KernelConfig, parallel: bool) -> Layout {
        let b = n.min(config.block_bits.max(config.min_run_bits + 1).max(2));
        let high = n - b;
        let kmax = b.saturating_sub(config.min_run_bits).max(1);
        let count = high.div_ceil(kmax);
        let mut groups = Vec::with_capacity(count);
        let mut q0 = b;
        for g in 0..count {
            // Split the high qubits as evenly as possible.
            let k = high / count + usize::from(g < high % count);
            groups.push(Group { q0, k, run_bits: b - k });
            q0 += k;
        }
        Layout { n, block_bits: b, groups, parallel, simd: config.simd && simd_available() }
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
// Rotations.

/// `exp(-i beta X)` on pairs: `a0' = c a0 - i s a1`, `a1' = c a1 - i s a0`.
#[inline(always)]
fn rot(r0: &mut [f64], i0: &mut [f64], r1: &mut [f64], i1: &mut [f64], c: f64, s: f64) {
    let len = r0.len();
    let (i0, r1, i1) = (&mut i0[..len], &mut r1[..len], &mut i1[..len]);
    for k in 0..len {
        let (a, b, x, y) = (r0[k], i0[k], r1[k], i1[k]);
        r0[k] = c * a + s * y;
        i0[k] = c * b - s * x;
        r1[k] = c * x + s * b;
        i1[k] = c * y - s * a;
    }
}

/// `Im (conj(l0) p1 + conj(l1) p0)` summed over the pairs, then the rotation on both states.
#[inline(always)]
#[allow(clippy::too_many_arguments, reason = "four pairs of slices and the angle")]
fn rot_acc(
    (pr0, pi0, pr1, pi1): (&mut [f64], &mut [f64], &mut [f64], &mut [f64]),
    (lr0, li0, lr1, li1): (&mut [f64], &mut [f64], &mut [f64], &mut [f64]),
    c: f64,
    s: f64,
) -> f64 {
    let len = pr0.len();
    let (pi0, pr1, pi1) = (&mut pi0[..len], &mut pr1[..len], &mut pi1[..len]);
    let (lr0, li0, lr1, li1) = (&mut lr0[..len], &mut li0[..len], &mut lr1[..len], &mut li1[..len]);
    let mut acc = 0.0;
    for k in 0..len {
        acc += lr0[k] * pi1[k] - li0[k] * pr1[k] + lr1[k] * pi0[k] - li1[k] * pr0[k];
    }
    rot(pr0, pi0, pr1, pi1, c, s);
    rot(lr0, li0, lr1, li1, c, s);
    acc
}

/// Rotates qubit `q` of a contiguous block.
#[inline(always)]
fn rot_qubit(re: &mut [f64], im: &mut [f64], q: usize, c: f64, s: f64) {
    let half = 1 << q;
    for (rc, ic) in re.chunks_exact_mut(2 * half).zip(im.chunks_exact_mut(2 * half)) {
        let (r0, r1) = rc.split_at_mut(half);
        let (i0, i1) = ic.split_at_mut(half);
        rot(r0, i0, r1, i1, c, s);
    }
}

/// Rotates qubits 0 and 1 of a contiguous block together (their pairs are within groups of
/// four amplitudes, too short for the generic loop).
#[inline(always)]
fn rot_low2(re: &mut [f64], im: &mut [f64], q0: bool, q1: bool, c: f64, s: f64) {
    for (r, i) in re.chunks_exact_mut(4).zip(im.chunks_exact_mut(4)) {
        let mut a = [r[0], r[1], r[2], r[3]];
        let mut b = [i[0], i[1], i[2], i[3]];
        let pair = |a: &mut [f64; 4], b: &mut [f64; 4], u: usize, v: usize| {
            let (x0, y0, x1, y1) = (a[u], b[u], a[v], b[v]);
            a[u] = c * x0 + s * y1;
            b[u] = c * y0 - s * x1;
            a[v] = c * x1 + s * y0;
            b[v] = c * y1 - s * x0;
        };
        if q0 {
            pair(&mut a, &mut b, 0, 1);
            pair(&mut a, &mut b, 2, 3);
        }
        if q1 {
            pair(&mut a, &mut b, 0, 2);
            pair(&mut a, &mut b, 1, 3);
        }
        r.copy_from_slice(&a);
        i.copy_from_slice(&b);
    }
}

/// Rotates the qubits of `mask` (all below the block's size) in a contiguous block.
#[inline(always)]
fn rot_block(re: &mut [f64], im: &mut [f64], mask: u64, c: f64, s: f64) {
    let bits = re.len().trailing_zeros() as usize;
    if bits >= 2 && mask & 3 != 0 {
        rot_low2(re, im, mask & 1 != 0, mask & 2 != 0, c, s);
    }
    let first = if bits >= 2 { 2 } else { 0 };
    for q in first..bits {
        if (mask >> q) & 1 == 1 {
            rot_qubit(re, im, q, c, s);
        }
    }
}

/// Rotates qubit `q` of a block in two states, accumulating `Im <l|X_q|p>`.
#[inline(always)]
fn rot_qubit_acc(p: (&mut [f64], &mut [f64]), l: (&mut [f64], &mut [f64]), q: usize, c: f64, s: f64) -> f64 {
    let half = 1 << q;
    let mut acc = 0.0;
    let chunks = p.0.chunks_exact_mut(2 * half).zip(p.1.chunks_exact_mut(2 * half));
    for ((prc, pic), (lrc, lic)) in chunks.zip(l.0.chunks_exact_mut(2 * half).zip(l.1.chunks_exact_mut(2 * half))) {
        let (pr0, pr1) = prc.split_at_mut(half);
        let (pi0, pi1) = pic.split_at_mut(half);
        let (lr0, lr1) = lrc.split_at_mut(half);
        let (li0, li1) = lic.split_at_mut(half);
        acc += rot_acc((pr0, pi0, pr1, pi1), (lr0, li0, lr1, li1), c, s);
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
    /// `(cos beta, sin beta)` of the rotations.
    pub(crate) rot: (f64, f64),
    /// Low qubits to rotate.
    pub(crate) mask: u64,
    /// Return `sum |a|^2 v` of the final amplitudes.
    pub(crate) accumulate: bool,
}

#[inline(always)]
fn a_block<D: Diag>(d: &D, op: &PassA<'_>, start: usize, re: &mut [f64], im: &mut [f64]) -> f64 {
    match op.phase {
        PhaseOp::Skip => {}
        PhaseOp::Apply => d.phase(start, op.table, re, im),
        PhaseOp::InitPlus(amp) => d.init_plus(start, op.table, amp, re, im),
    }
    if op.mask != 0 {
        rot_block(re, im, op.mask, op.rot.0, op.rot.1);
    }
    if op.accumulate { d.expect(start, re, im) } else { 0.0 }
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
fn a_block_pair<D: Diag>(d: &D, op: &PassAPair<'_>, start: usize, p: (&mut [f64], &mut [f64]), l: (&mut [f64], &mut [f64])) -> (f64, f64) {
    let (pr, pi) = p;
    let (lr, li) = l;
    if op.init_lambda {
        d.mul(start, pr, pi, lr, li);
    }
    let mut gb = 0.0;
    let bits = pr.len().trailing_zeros() as usize;
    let (c, s) = op.rot;
    for q in 0..bits {
        if (op.mask >> q) & 1 == 1 {
            gb += rot_qubit_acc((&mut *pr, &mut *pi), (&mut *lr, &mut *li), q, c, s);
        }
    }
    let gd = d.imag_inner(start, pr, pi, lr, li);
    if let Some(t) = op.unphase {
        d.phase(start, t, pr, pi);
        d.phase(start, t, lr, li);
    }
    (gb, gd)
}

/// A task's share of a pass B: for each array, one contiguous piece per row.
pub(crate) struct Strip<'a, const A: usize> {
    /// Basis index of row 0's first element.
    base: usize,
    rows: [Vec<&'a mut [f64]>; A],
}

/// Two distinct rows, mutably.
#[inline(always)]
fn two<'b>(rows: &'b mut [&mut [f64]], g: usize, h: usize, r: std::ops::Range<usize>) -> (&'b mut [f64], &'b mut [f64]) {
    debug_assert!(g < h);
    let (lo, hi) = rows.split_at_mut(h);
    (&mut lo[g][r.clone()], &mut hi[0][r])
}

/// One pass B over a single state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassB {
    pub(crate) group: Group,
    pub(crate) rot: (f64, f64),
    /// Qubits of the group to rotate (bit `j` is qubit `q0 + j`).
    pub(crate) mask: u64,
    pub(crate) accumulate: bool,
}

#[inline(always)]
fn b_strip<D: Diag>(d: &D, op: &PassB, strip: &mut Strip<'_, 2>) -> f64 {
    let Group { q0, k, run_bits } = op.group;
    let rows = 1_usize << k;
    let width = strip.rows[0][0].len();
    let run = (1_usize << run_bits).min(width);
    let (c, s) = op.rot;
    let [re, im] = &mut strip.rows;
    let mut acc = 0.0;
    let mut r0 = 0;
    while r0 < width {
        let r = r0..(r0 + run).min(width);
        for j in 0..k {
            if (op.mask >> j) & 1 == 0 {
                continue;
            }
            let bit = 1 << j;
            for g in (0..rows).filter(|g| g & bit == 0) {
                let (a_re, b_re) = two(re, g, g | bit, r.clone());
                let (a_im, b_im) = two(im, g, g | bit, r.clone());
                rot(a_re, a_im, b_re, b_im, c, s);
            }
        }
        if op.accumulate {
            for g in 0..rows {
                acc += d.expect(strip.base + (g << q0) + r.start, &re[g][r.clone()], &im[g][r.clone()]);
            }
        }
        r0 += run;
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
fn b_strip_pair<D: Diag>(d: &D, op: &PassBPair, strip: &mut Strip<'_, 4>) -> f64 {
    let Group { q0, k, run_bits } = op.group;
    let rows = 1_usize << k;
    let width = strip.rows[0][0].len();
    let run = (1_usize << run_bits).min(width);
    let (c, s) = op.rot;
    let [pr, pi, lr, li] = &mut strip.rows;
    let mut acc = 0.0;
    let mut r0 = 0;
    while r0 < width {
        let r = r0..(r0 + run).min(width);
        if op.init_lambda {
            for g in 0..rows {
                let start = strip.base + (g << q0) + r.start;
                d.mul(start, &pr[g][r.clone()], &pi[g][r.clone()], &mut lr[g][r.clone()], &mut li[g][r.clone()]);
            }
        }
        for j in 0..k {
            if (op.mask >> j) & 1 == 0 {
                continue;
            }
            let bit = 1 << j;
            for g in (0..rows).filter(|g| g & bit == 0) {
                let h = g | bit;
                let (pr0, pr1) = two(pr, g, h, r.clone());
                let (pi0, pi1) = two(pi, g, h, r.clone());
                let (lr0, lr1) = two(lr, g, h, r.clone());
                let (li0, li1) = two(li, g, h, r.clone());
                acc += rot_acc((pr0, pi0, pr1, pi1), (lr0, li0, lr1, li1), c, s);
            }
        }
        r0 += run;
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Dispatch to the AVX2+FMA builds of the work units.

#[allow(unsafe_code, reason = "calls of #[target_feature] functions, guarded by CPU detection")]
mod simd {
    use super::{Diag, PassA, PassAPair, PassB, PassBPair, Strip};

    macro_rules! units {
        ($( $name:ident, $avx:ident => $generic:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {$(
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn $avx<D: Diag>($($arg: $ty),*) -> $ret {
                super::$generic($($arg),*)
            }

            /// The work unit, in its AVX2+FMA build when `simd` is set.
            #[inline]
            pub(super) fn $name<D: Diag>(simd: bool, $($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: `simd` is only set by `Layout::new` when
                    // `simd_available()` detected AVX2 and FMA on this CPU, which is all
                    // the target-feature function requires.
                    return unsafe { $avx::<D>($($arg),*) };
                }
                let _ = simd;
                super::$generic($($arg),*)
            }
        )*};
    }

    units! {
        a_block, a_block_avx2 => a_block(d: &D, op: &PassA<'_>, start: usize, re: &mut [f64], im: &mut [f64]) -> f64;
        a_block_pair, a_block_pair_avx2 => a_block_pair(d: &D, op: &PassAPair<'_>, start: usize, p: (&mut [f64], &mut [f64]), l: (&mut [f64], &mut [f64])) -> (f64, f64);
        b_strip, b_strip_avx2 => b_strip(d: &D, op: &PassB, strip: &mut Strip<'_, 2>) -> f64;
        b_strip_pair, b_strip_pair_avx2 => b_strip_pair(d: &D, op: &PassBPair, strip: &mut Strip<'_, 4>) -> f64;
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.

/// Adds partial sums in their order (the same with one thread or many).
fn ordered_sum(parts: impl Iterator<Item = f64>) -> f64 {
    parts.fold(0.0, |a, x| a + x)
}

/// Runs pass A; returns the accumulated expectation (0 unless `op.accumulate`).
pub(crate) fn pass_a<D: Diag>(layout: &Layout, d: &D, op: &PassA<'_>, re: &mut [f64], im: &mut [f64]) -> f64 {
    let bl = 1 << layout.block_bits;
    let simd = layout.simd;
    let work = |(b, (re, im)): (usize, (&mut [f64], &mut [f64]))| simd::a_block(simd, d, op, b * bl, re, im);
    if layout.parallel && re.len() > bl {
        let parts: Vec<f64> = re.par_chunks_mut(bl).zip(im.par_chunks_mut(bl)).enumerate().map(work).collect();
        ordered_sum(parts.into_iter())
    } else {
        ordered_sum(re.chunks_mut(bl).zip(im.chunks_mut(bl)).enumerate().map(work))
    }
}

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
    let work = |(b, ((pr, pi), (lr, li))): (usize, ((&mut [f64], &mut [f64]), (&mut [f64], &mut [f64])))| {
        simd::a_block_pair(simd, d, op, b * bl, (pr, pi), (lr, li))
    };
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

/// Runs pass B for `op.group`; returns the accumulated expectation.
pub(crate) fn pass_b<D: Diag>(layout: &Layout, d: &D, op: &PassB, re: &mut [f64], im: &mut [f64]) -> f64 {
    let simd = layout.simd;
    let mut tasks = strips([re, im], layout.n, op.group);
    let work = |s: &mut Strip<'_, 2>| simd::b_strip(simd, d, op, s);
    if layout.parallel {
        let parts: Vec<f64> = tasks.par_iter_mut().map(work).collect();
        ordered_sum(parts.into_iter())
    } else {
        ordered_sum(tasks.iter_mut().map(work))
    }
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
    let work = |s: &mut Strip<'_, 4>| simd::b_strip_pair(simd, d, op, s);
    if layout.parallel {
        let parts: Vec<f64> = tasks.par_iter_mut().map(work).collect();
        ordered_sum(parts.into_iter())
    } else {
        ordered_sum(tasks.iter_mut().map(work))
    }
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
            let parts: Vec<f64> = p.0.par_chunks_mut(chunk).zip(p.1.par_chunks_mut(chunk)).map(|x| work(x, None)).collect();
            ordered_sum(parts.into_iter())
        }
        None => ordered_sum(p.0.chunks_mut(chunk).zip(p.1.chunks_mut(chunk)).map(|x| work(x, None))),
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
pub(crate) fn fill_real(parallel: bool, re: &mut [f64], im: &mut [f64], f: impl Fn(usize) -> f64 + Sync) {
    const CHUNK: usize = 1 << 14;
    let work = |(c, (r, i)): (usize, (&mut [f64], &mut [f64]))| {
        for (k, (r, i)) in r.iter_mut().zip(i.iter_mut()).enumerate() {
            *r = f(c * CHUNK + k);
            *i = 0.0;
        }
    };
    if parallel {
        re.par_chunks_mut(CHUNK).zip(im.par_chunks_mut(CHUNK)).enumerate().for_each(work);
    } else {
        re.chunks_mut(CHUNK).zip(im.chunks_mut(CHUNK)).enumerate().for_each(work);
    }
}

#[cfg(test)]
mod tests;
