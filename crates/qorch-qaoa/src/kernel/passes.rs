//! Drivers: pass A over cache blocks and pass B over strips, single state or `(p, l)` pairs,
//! in parallel or not, with partial sums added in a fixed order.

use rayon::prelude::*;

use super::diag::Diag;
use super::layout::{Group, Layout};
use super::simd;
use super::work_units::{PassA, PassAPair, PassB, PassBPair, Strip};

/// Strips per super-block of a pass B (fixed, so that sums do not depend on the threads).
const STRIPS: usize = 64;

/// Adds partial sums in their order (the same with one thread or many).
pub(crate) fn ordered_sum(parts: impl Iterator<Item = f64>) -> f64 {
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
pub(crate) fn strips<const A: usize>(
    arrays: [&mut [f64]; A],
    n: usize,
    group: Group,
) -> Vec<Strip<'_, A>> {
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
