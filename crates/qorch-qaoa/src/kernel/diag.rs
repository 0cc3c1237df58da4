//! The diagonal as the kernels see it: block-wise phase, expectation and products.

#![allow(
    clippy::inline_always,
    reason = "the kernels must inline into their #[target_feature] (AVX2+FMA) callers to be vectorized; measured"
)]

/// `cos(gamma v)` and `sin(gamma v)` for every level `v` of a level-stored diagonal, computed
/// once per layer. Empty for a dense diagonal, whose kernels evaluate the phase per
/// amplitude.
#[derive(Debug, Clone, Default)]
pub(crate) struct PhaseTable {
    pub(crate) gamma: f64,
    pub(crate) cos: Vec<f64>,
    pub(crate) sin: Vec<f64>,
}

impl PhaseTable {
    /// Fills the table for `gamma` and the levels `values`, padded with zeros to `len` entries
    /// (256 or 65,536: the range of the level index type, so that lookups need no bounds
    /// check). Allocates only when the table first grows.
    pub(crate) fn set(&mut self, gamma: f64, values: &[f64], len: usize) {
        self.gamma = gamma;
        self.cos.resize(len, 0.0);
        self.sin.resize(len, 0.0);
        for ((c, s), &v) in self.cos.iter_mut().zip(self.sin.iter_mut()).zip(values) {
            (*s, *c) = (gamma * v).sin_cos();
        }
    }
}

/// Block operations on a diagonal. `start` is the basis index of the block's first entry.
///
/// The phase is `exp(-i gamma v) = cos(gamma v) - i sin(gamma v)`, so
/// `(re + i im) * phase = (re cos + im sin) + i (im cos - re sin)`.
pub(crate) trait Diag: Sync {
    /// Multiplies the block by the phase.
    fn phase<const F: bool>(&self, start: usize, t: &PhaseTable, re: &mut [f64], im: &mut [f64]);
    /// Writes `amp * phase` (the phase layer applied to the uniform state `amp |+...+>`).
    fn init_plus(&self, start: usize, t: &PhaseTable, amp: f64, re: &mut [f64], im: &mut [f64]);
    /// `sum_x |a_x|^2 v_x` over the block.
    fn expect(&self, start: usize, re: &[f64], im: &[f64]) -> f64;
    /// `out = v * in` elementwise.
    fn mul(&self, start: usize, re: &[f64], im: &[f64], out_re: &mut [f64], out_im: &mut [f64]);
    /// `Im sum_x conj(l_x) v_x p_x = sum_x v_x (lr pi - li pr)`.
    fn imag_inner(&self, start: usize, pr: &[f64], pi: &[f64], lr: &[f64], li: &[f64]) -> f64;
}

/// A level-stored diagonal: `values[idx[x]]`, the values padded to `N` entries, the range of
/// the index type `T` (so that no lookup needs a bounds check).
pub(crate) struct Levels<'a, T, const N: usize> {
    pub(crate) idx: &'a [T],
    pub(crate) values: &'a [f64; N],
}

/// The first `N` entries of a table as an array (one check per block, none per lookup).
#[inline(always)]
fn table<const N: usize>(v: &[f64]) -> &[f64; N] {
    v[..N]
        .try_into()
        .expect("phase tables are padded to the index range")
}

/// A dense diagonal.
pub(crate) struct Dense<'a> {
    pub(crate) d: &'a [f64],
}

/// Four partial sums, so that the additions of a long block do not form one dependency chain
/// (and are vectorized); the order of additions is fixed, so results are reproducible.
#[inline(always)]
fn sum4(len: usize, mut term: impl FnMut(usize) -> f64) -> f64 {
    let mut acc = [0.0_f64; 4];
    let main = len / 4 * 4;
    let mut k = 0;
    while k < main {
        acc[0] += term(k);
        acc[1] += term(k + 1);
        acc[2] += term(k + 2);
        acc[3] += term(k + 3);
        k += 4;
    }
    let mut rest = 0.0;
    for k in main..len {
        rest += term(k);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest
}

impl<T: Copy + Into<usize> + Sync, const N: usize> Diag for Levels<'_, T, N> {
    #[inline(always)]
    fn phase<const F: bool>(&self, start: usize, t: &PhaseTable, re: &mut [f64], im: &mut [f64]) {
        let idx = &self.idx[start..start + re.len()];
        let im = &mut im[..re.len()];
        let (cos, sin) = (table::<N>(&t.cos), table::<N>(&t.sin));
        for ((r, i), &k) in re.iter_mut().zip(im.iter_mut()).zip(idx) {
            let k: usize = k.into();
            let (c, s) = (cos[k], sin[k]);
            let (a, b) = (*r, *i);
            *r = super::rotations::fma::<F>(a, c, b * s);
            *i = super::rotations::fma::<F>(b, c, -(a * s));
        }
    }

    #[inline(always)]
    fn init_plus(&self, start: usize, t: &PhaseTable, amp: f64, re: &mut [f64], im: &mut [f64]) {
        let idx = &self.idx[start..start + re.len()];
        let im = &mut im[..re.len()];
        let (cos, sin) = (table::<N>(&t.cos), table::<N>(&t.sin));
        for ((r, i), &k) in re.iter_mut().zip(im.iter_mut()).zip(idx) {
            let k: usize = k.into();
            *r = amp * cos[k];
            *i = -amp * sin[k];
        }
    }

    #[inline(always)]
    fn expect(&self, start: usize, re: &[f64], im: &[f64]) -> f64 {
        let len = re.len();
        let (idx, im) = (&self.idx[start..start + len], &im[..len]);
        sum4(len, |k| {
            (re[k] * re[k] + im[k] * im[k]) * self.values[idx[k].into()]
        })
    }

    #[inline(always)]
    fn mul(&self, start: usize, re: &[f64], im: &[f64], out_re: &mut [f64], out_im: &mut [f64]) {
        let len = re.len();
        let (idx, im) = (&self.idx[start..start + len], &im[..len]);
        let (out_re, out_im) = (&mut out_re[..len], &mut out_im[..len]);
        for k in 0..len {
            let v = self.values[idx[k].into()];
            out_re[k] = v * re[k];
            out_im[k] = v * im[k];
        }
    }

    #[inline(always)]
    fn imag_inner(&self, start: usize, pr: &[f64], pi: &[f64], lr: &[f64], li: &[f64]) -> f64 {
        let len = pr.len();
        let idx = &self.idx[start..start + len];
        let (pi, lr, li) = (&pi[..len], &lr[..len], &li[..len]);
        sum4(len, |k| {
            self.values[idx[k].into()] * (lr[k] * pi[k] - li[k] * pr[k])
        })
    }
}

impl Diag for Dense<'_> {
    #[inline(always)]
    fn phase<const F: bool>(&self, start: usize, t: &PhaseTable, re: &mut [f64], im: &mut [f64]) {
        let d = &self.d[start..start + re.len()];
        let im = &mut im[..re.len()];
        for ((r, i), &v) in re.iter_mut().zip(im.iter_mut()).zip(d) {
            let (s, c) = (t.gamma * v).sin_cos();
            let (a, b) = (*r, *i);
            *r = super::rotations::fma::<F>(a, c, b * s);
            *i = super::rotations::fma::<F>(b, c, -(a * s));
        }
    }

    #[inline(always)]
    fn init_plus(&self, start: usize, t: &PhaseTable, amp: f64, re: &mut [f64], im: &mut [f64]) {
        let d = &self.d[start..start + re.len()];
        let im = &mut im[..re.len()];
        for ((r, i), &v) in re.iter_mut().zip(im.iter_mut()).zip(d) {
            let (s, c) = (t.gamma * v).sin_cos();
            *r = amp * c;
            *i = -amp * s;
        }
    }

    #[inline(always)]
    fn expect(&self, start: usize, re: &[f64], im: &[f64]) -> f64 {
        let len = re.len();
        let (d, im) = (&self.d[start..start + len], &im[..len]);
        sum4(len, |k| (re[k] * re[k] + im[k] * im[k]) * d[k])
    }

    #[inline(always)]
    fn mul(&self, start: usize, re: &[f64], im: &[f64], out_re: &mut [f64], out_im: &mut [f64]) {
        let len = re.len();
        let (d, im) = (&self.d[start..start + len], &im[..len]);
        let (out_re, out_im) = (&mut out_re[..len], &mut out_im[..len]);
        for k in 0..len {
            out_re[k] = d[k] * re[k];
            out_im[k] = d[k] * im[k];
        }
    }

    #[inline(always)]
    fn imag_inner(&self, start: usize, pr: &[f64], pi: &[f64], lr: &[f64], li: &[f64]) -> f64 {
        let len = pr.len();
        let d = &self.d[start..start + len];
        let (pi, lr, li) = (&pi[..len], &lr[..len], &li[..len]);
        sum4(len, |k| d[k] * (lr[k] * pi[k] - li[k] * pr[k]))
    }
}
