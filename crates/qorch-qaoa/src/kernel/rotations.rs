//! Rotations: `exp(-i beta X)` on pairs of amplitudes, exact or scaled, applied to one qubit,
//! a few low qubits or a whole cache block, with or without accumulating the adjoint's
//! `Im <l|X_q|p>`. `F` selects fused multiply-adds (the AVX2+FMA build); without FMA
//! hardware `mul_add` would be a slow library call, so the portable build multiplies and adds.

/// `a * b + c`.
#[inline(always)]
pub(crate) fn fma<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
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
pub(crate) fn scale(re: &mut [f64], im: &mut [f64], (gr, gi): (f64, f64)) {
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
pub(crate) fn rot<R: Rot>(r0: &mut [f64], i0: &mut [f64], r1: &mut [f64], i1: &mut [f64], r: R) {
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
pub(crate) fn rot_qubit<R: Rot>(re: &mut [f64], im: &mut [f64], q: usize, r: R) {
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
pub(crate) fn rot_low2<R: Rot>(re: &mut [f64], im: &mut [f64], q0: bool, q1: bool, r: R) {
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
pub(crate) fn rot_block<R: Rot>(re: &mut [f64], im: &mut [f64], mask: u64, r: R) {
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
pub(crate) fn rot_block_acc<R: Rot>(
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
