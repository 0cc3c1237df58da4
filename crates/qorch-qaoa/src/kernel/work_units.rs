//! Work units: one block of pass A, one strip of pass B; single state or `(p, l)` pairs (the
//! adjoint's backward passes). Generic over FMA so that [`super::simd`] can build them twice.

use super::diag::{Diag, PhaseTable};
use super::layout::Group;
use super::rotations::{Cot, Exact, Mix, Tan, rot_block, rot_block_acc, scale};

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
pub(crate) fn a_block<D: Diag, const F: bool>(
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
pub(crate) fn a_block_pair<D: Diag, const F: bool>(
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
    pub(crate) base: usize,
    pub(crate) rows: [Vec<&'a mut [f64]>; A],
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
pub(crate) fn b_strip<D: Diag, const F: bool>(
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
pub(crate) fn b_strip_pair<D: Diag, const F: bool>(
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
