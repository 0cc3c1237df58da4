//! The cost Hamiltonian's diagonal: the cost of every basis state, computed once.
//!
//! Basis state `x` (an index in `0..2^n`) assigns variable `i` the bit `(x >> i) & 1`
//! (little-endian, as in qulacs and `QOKit`); for Ising models spin `i` is `+1` where that bit
//! is 1 (`s = 2x - 1`, the convention of [`qorch_qubo::Qubo::to_ising`]).
//!
//! # Storage
//!
//! When every cost is an integer and the costs span fewer than 65,536 values (Max-Cut with
//! integer weights, most penalty models with integer coefficients), the diagonal stores one
//! byte (or two) per basis state: the index of the cost in a table of levels. The phase layer
//! then looks up `exp(-i gamma level)` in a table computed once per layer, which is exact and
//! moves an eighth of the bytes that an `f64` diagonal would; otherwise the diagonal holds
//! `f64` costs and the phase layer evaluates `sin` and `cos` per amplitude.
//!
//! # Construction from a QUBO
//!
//! The `2^n` energies are computed in blocks of `2^s` states (`s = min(n, 12)`) that share
//! their high bits `h`: `E(h | l) = E_hi(h) + E_lo(l) + sum_i f_i(h) l_i`, where `E_lo`
//! (a table over the low bits, computed once) holds the terms among low variables, and the
//! fields `f_i(h)` of the low variables due to the high ones are computed per block in
//! O(interactions). Within a block, `sum_i f_i l_i` is filled by doubling (one addition per
//! state), which visits the states in Gray-code fashion: `L[l + 2^i] = L[l] + f_i`. No value
//! is updated more than `s + 2` times, so nothing drifts, and integer costs are exact.

use qorch_qubo::{Graph, Qubo};
use rayon::prelude::*;

use crate::SimError;

/// Low bits of a construction block.
const BUILD_BITS: usize = 12;
/// Build in parallel from this many qubits on.
const PARALLEL_BUILD_QUBITS: usize = 16;

/// The diagonal of a cost Hamiltonian: one real cost per basis state.
#[derive(Debug, Clone, PartialEq)]
pub struct CostDiagonal {
    n: usize,
    storage: Storage,
    min: f64,
    max: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Storage {
    /// `values[idx[x]]` is the cost of `x`.
    Levels8 { idx: Vec<u8>, values: Vec<f64> },
    /// As `Levels8`, with up to 65,536 levels.
    Levels16 { idx: Vec<u16>, values: Vec<f64> },
    /// The costs themselves.
    Dense(Vec<f64>),
}

/// A polynomial cost over binary variables, with terms of any order:
/// `E(x) = offset + sum_T w_T prod_{i in T} x_i`. For custom Hamiltonians that a QUBO cannot
/// express (for example `x_0 x_1 x_2` penalties).
///
/// # Examples
///
/// ```
/// use qorch_qaoa::Polynomial;
///
/// let mut e = Polynomial::new(3);
/// e.add_term(&[0, 1, 2], 5.0).add_term(&[1], -1.0).add_offset(0.5);
/// assert_eq!(e.value(0b111), 4.5);
/// assert_eq!(e.value(0b010), -0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Polynomial {
    n: usize,
    terms: Vec<(u64, f64)>,
    offset: f64,
    error: Option<String>,
}

impl Polynomial {
    /// The zero polynomial over `n` variables.
    pub fn new(n: usize) -> Self {
        Polynomial {
            n,
            ..Polynomial::default()
        }
    }

    /// Number of variables.
    pub fn num_vars(&self) -> usize {
        self.n
    }

    /// Adds `w * prod_{i in vars} x_i` (repeated variables count once, as `x^2 = x`). Errors
    /// (a variable out of range, a non-finite weight) are reported when the polynomial is
    /// used.
    pub fn add_term(&mut self, vars: &[usize], w: f64) -> &mut Self {
        let mut mask = 0_u64;
        for &v in vars {
            if v >= self.n || v >= 64 {
                self.error
                    .get_or_insert(format!("variable {v} out of range 0..{}", self.n));
                return self;
            }
            mask |= 1 << v;
        }
        if !w.is_finite() {
            self.error
                .get_or_insert(format!("weight {w} of term {vars:?} is not finite"));
        } else if w != 0.0 {
            self.terms.push((mask, w));
        }
        self
    }

    /// Adds a constant.
    pub fn add_offset(&mut self, c: f64) -> &mut Self {
        if c.is_finite() {
            self.offset += c;
        } else {
            self.error
                .get_or_insert(format!("offset {c} is not finite"));
        }
        self
    }

    /// The value at basis state `x` (bit `i` is variable `i`).
    pub fn value(&self, x: u64) -> f64 {
        self.offset
            + self
                .terms
                .iter()
                .filter(|(m, _)| x & m == *m)
                .map(|(_, w)| w)
                .sum::<f64>()
    }

    pub(crate) fn check(&self) -> Result<(), SimError> {
        match &self.error {
            Some(e) => Err(SimError::Circuit(format!("invalid polynomial: {e}"))),
            None => Ok(()),
        }
    }

    /// Fills `out` with the values of the states `start..start + out.len()`.
    fn fill(&self, start: u64, out: &mut [f64]) {
        out.fill(self.offset);
        for &(mask, w) in &self.terms {
            for (k, o) in out.iter_mut().enumerate() {
                let x = start + k as u64;
                if x & mask == mask {
                    *o += w;
                }
            }
        }
    }
}

/// How the diagonal will be stored, decided before the big allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Levels8 { min: f64 },
    Levels16 { min: f64 },
    Dense,
}

impl Kind {
    pub(crate) fn bytes_per_amplitude(self) -> u64 {
        match self {
            Kind::Levels8 { .. } => 1,
            Kind::Levels16 { .. } => 2,
            Kind::Dense => 8,
        }
    }

    /// The storage for integer costs in `[min, max]`, or `Dense`.
    fn for_range(integral: bool, min: f64, max: f64) -> Kind {
        if !integral {
            return Kind::Dense;
        }
        let span = max - min;
        if span < 256.0 {
            Kind::Levels8 { min }
        } else if span < 65_536.0 {
            Kind::Levels16 { min }
        } else {
            Kind::Dense
        }
    }
}

/// A source of costs that can be computed block by block, twice if need be.
pub(crate) trait Source: Sync {
    fn num_qubits(&self) -> usize;
    /// Writes the costs of states `start..start + out.len()`; `scratch` has the same length.
    fn fill(&self, start: u64, out: &mut [f64], scratch: &mut [f64]);
}

/// A QUBO's energies, times `sign` (`-1` turns the Max-Cut QUBO's `-cut` into the cut).
pub(crate) struct QuboSource<'q> {
    qubo: &'q Qubo,
    sign: f64,
    s: usize,
    /// `E_lo(l)`: linear and quadratic terms among the low `s` variables.
    low: Vec<f64>,
}

impl<'q> QuboSource<'q> {
    pub(crate) fn new(qubo: &'q Qubo, sign: f64) -> Self {
        let n = qubo.num_vars();
        let s = n.min(BUILD_BITS);
        // E_lo by doubling over the low variables: adding variable j to an assignment l of
        // the lower ones adds a_j + sum_{i < j} b_ij l_i.
        let mut low = vec![0.0; 1 << s];
        for j in 0..s {
            let a = qubo.linear()[j];
            let lower: Vec<(usize, f64)> = qubo
                .neighbors(j)
                .iter()
                .filter(|c| (c.var as usize) < j)
                .map(|c| (c.var as usize, c.weight))
                .collect();
            let (done, todo) = low.split_at_mut(1 << j);
            for (l, (dst, src)) in todo.iter_mut().zip(done.iter()).enumerate() {
                let field: f64 = lower
                    .iter()
                    .filter(|(i, _)| (l >> i) & 1 == 1)
                    .map(|t| t.1)
                    .sum();
                *dst = src + a + field;
            }
        }
        QuboSource { qubo, sign, s, low }
    }

    /// Whether every energy is an integer small enough for exact `f64` arithmetic.
    pub(crate) fn integral(&self) -> bool {
        let q = self.qubo;
        let is_int = |v: f64| v.fract() == 0.0;
        let mut total = q.offset().abs();
        for &a in q.linear() {
            total += a.abs();
            if !is_int(a) {
                return false;
            }
        }
        for (_, _, b) in q.interactions() {
            total += b.abs();
            if !is_int(b) {
                return false;
            }
        }
        is_int(q.offset()) && total < 2_f64.powi(50)
    }
}

impl Source for QuboSource<'_> {
    fn num_qubits(&self) -> usize {
        self.qubo.num_vars()
    }

    fn fill(&self, start: u64, out: &mut [f64], scratch: &mut [f64]) {
        let q = self.qubo;
        let s = self.s;
        debug_assert!(out.len() == 1 << s && start.is_multiple_of(1 << s));
        // High part and the low variables' fields for the high bits of this block.
        let mut e_hi = q.offset();
        let mut field = [0.0_f64; BUILD_BITS];
        for j in s..q.num_vars() {
            if (start >> j) & 1 == 0 {
                continue;
            }
            e_hi += q.linear()[j];
            for c in q.neighbors(j) {
                let i = c.var as usize;
                if i < s {
                    field[i] += c.weight;
                } else if i > j && (start >> i) & 1 == 1 {
                    e_hi += c.weight;
                }
            }
        }
        // L[l] = e_hi + sum_i field_i l_i, by doubling.
        let lin = &mut scratch[..1 << s];
        lin[0] = e_hi;
        for (i, &f) in field.iter().enumerate().take(s) {
            let (done, todo) = lin.split_at_mut(1 << i);
            for (dst, src) in todo[..1 << i].iter_mut().zip(done.iter()) {
                *dst = src + f;
            }
        }
        let sign = self.sign;
        for ((o, l), lo) in out.iter_mut().zip(lin.iter()).zip(&self.low) {
            *o = sign * (l + lo);
        }
    }
}

/// Costs from a closure.
pub(crate) struct FnSource<F> {
    pub(crate) n: usize,
    pub(crate) f: F,
}

impl<F: Fn(u64) -> f64 + Sync> Source for FnSource<F> {
    fn num_qubits(&self) -> usize {
        self.n
    }

    fn fill(&self, start: u64, out: &mut [f64], _: &mut [f64]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = (self.f)(start + k as u64);
        }
    }
}

impl Source for Polynomial {
    fn num_qubits(&self) -> usize {
        self.n
    }

    fn fill(&self, start: u64, out: &mut [f64], _: &mut [f64]) {
        Polynomial::fill(self, start, out);
    }
}

/// Block length for building an `n`-qubit diagonal.
fn block_len(n: usize) -> usize {
    1 << n.min(BUILD_BITS)
}

/// Runs `f(block_index, out, scratch)` over the blocks of `out`, in parallel for large `n`.
fn for_blocks<T: Send>(
    n: usize,
    out: &mut [T],
    f: impl Fn(usize, &mut [T], &mut [f64], &mut [f64]) + Sync,
) {
    let len = block_len(n);
    let init = || (vec![0.0; len], vec![0.0; len]);
    if n >= PARALLEL_BUILD_QUBITS {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each_init(init, |(buf, scratch), (b, chunk)| f(b, chunk, buf, scratch));
    } else {
        let (mut buf, mut scratch) = init();
        for (b, chunk) in out.chunks_mut(len).enumerate() {
            f(b, chunk, &mut buf, &mut scratch);
        }
    }
}

/// The range of costs, whether they are all integers, and the first non-finite one.
pub(crate) struct Survey {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) integral: bool,
    pub(crate) non_finite: Option<(u64, f64)>,
}

/// Computes every cost once without storing them.
pub(crate) fn survey(src: &impl Source) -> Survey {
    let n = src.num_qubits();
    let len = block_len(n);
    let blocks = (1_usize << n) / len;
    let one = |b: usize, buf: &mut Vec<f64>, scratch: &mut Vec<f64>| {
        let start = (b * len) as u64;
        src.fill(start, buf, scratch);
        let mut s = Survey {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            integral: true,
            non_finite: None,
        };
        for (k, &v) in buf.iter().enumerate() {
            if !v.is_finite() {
                s.non_finite.get_or_insert((start + k as u64, v));
                continue;
            }
            s.min = s.min.min(v);
            s.max = s.max.max(v);
            s.integral &= v.fract() == 0.0;
        }
        s
    };
    let merge = |a: Survey, b: Survey| Survey {
        min: a.min.min(b.min),
        max: a.max.max(b.max),
        integral: a.integral && b.integral,
        non_finite: a.non_finite.or(b.non_finite),
    };
    let init = || (vec![0.0; len], vec![0.0; len]);
    let empty = || Survey {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        integral: true,
        non_finite: None,
    };
    if n >= PARALLEL_BUILD_QUBITS {
        (0..blocks)
            .into_par_iter()
            .map_init(init, |(buf, scratch), b| one(b, buf, scratch))
            .reduce(empty, merge)
    } else {
        let (mut buf, mut scratch) = init();
        (0..blocks)
            .map(|b| one(b, &mut buf, &mut scratch))
            .fold(empty(), merge)
    }
}

impl CostDiagonal {
    /// Builds the diagonal of `src` with the storage `kind` chosen beforehand (the caller has
    /// checked the memory for it). `min`/`max` are the true extremes.
    pub(crate) fn build(src: &impl Source, kind: Kind, min: f64, max: f64) -> CostDiagonal {
        let n = src.num_qubits();
        let len = 1_usize << n;
        let bl = block_len(n);
        let storage = match kind {
            Kind::Dense => {
                let mut d = vec![0.0; len];
                for_blocks(n, &mut d, |b, chunk, _, scratch| {
                    src.fill((b * bl) as u64, chunk, scratch);
                });
                Storage::Dense(d)
            }
            Kind::Levels8 { min: base } => {
                let mut idx = vec![0_u8; len];
                for_blocks(n, &mut idx, |b, chunk, buf, scratch| {
                    src.fill((b * bl) as u64, buf, scratch);
                    for (i, v) in chunk.iter_mut().zip(buf.iter()) {
                        *i = (v - base) as u8;
                    }
                });
                Storage::Levels8 {
                    idx,
                    values: levels(base, max),
                }
            }
            Kind::Levels16 { min: base } => {
                let mut idx = vec![0_u16; len];
                for_blocks(n, &mut idx, |b, chunk, buf, scratch| {
                    src.fill((b * bl) as u64, buf, scratch);
                    for (i, v) in chunk.iter_mut().zip(buf.iter()) {
                        *i = (v - base) as u16;
                    }
                });
                Storage::Levels16 {
                    idx,
                    values: levels(base, max),
                }
            }
        };
        CostDiagonal {
            n,
            storage,
            min,
            max,
        }
    }

    /// The storage a source will use, after a survey of its costs.
    pub(crate) fn plan(survey: &Survey) -> Kind {
        Kind::for_range(survey.integral, survey.min, survey.max)
    }

    /// Number of qubits `n` (the diagonal has `2^n` entries).
    pub fn num_qubits(&self) -> usize {
        self.n
    }

    /// Number of entries, `2^n`.
    pub fn len(&self) -> usize {
        1 << self.n
    }

    /// Always `false`: a diagonal has at least one entry.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The cost of basis state `x`.
    ///
    /// # Panics
    ///
    /// If `x >= 2^n`.
    #[inline]
    pub fn value(&self, x: u64) -> f64 {
        let x = x as usize;
        match &self.storage {
            Storage::Levels8 { idx, values } => values[usize::from(idx[x])],
            Storage::Levels16 { idx, values } => values[usize::from(idx[x])],
            Storage::Dense(d) => d[x],
        }
    }

    /// The smallest cost.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// The largest cost.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// The number of distinct cost levels when the diagonal is stored as levels (integer
    /// costs spanning fewer than 65,536 values), else `None`.
    pub fn num_levels(&self) -> Option<usize> {
        match &self.storage {
            Storage::Levels8 { values, .. } | Storage::Levels16 { values, .. } => {
                Some(values.len())
            }
            Storage::Dense(_) => None,
        }
    }

    /// Bytes of storage per basis state (1, 2 or 8).
    pub fn bytes_per_amplitude(&self) -> u64 {
        match &self.storage {
            Storage::Levels8 { .. } => 1,
            Storage::Levels16 { .. } => 2,
            Storage::Dense(_) => 8,
        }
    }

    /// All costs, in basis-state order.
    pub fn to_vec(&self) -> Vec<f64> {
        (0..self.len() as u64).map(|x| self.value(x)).collect()
    }

    /// Mean and variance of the cost over the uniform distribution (the state `|+>^n`).
    pub fn mean_and_variance(&self) -> (f64, f64) {
        let len = self.len() as f64;
        let (s, s2) = (0..self.len() as u64)
            .map(|x| self.value(x))
            .fold((0.0, 0.0), |(s, s2), v| (s + v, s2 + v * v));
        let mean = s / len;
        (mean, (s2 / len - mean * mean).max(0.0))
    }

    /// A per-variable energy scale of the cost, `sqrt(2 Var(D) / n)` over the uniform
    /// distribution: for a quadratic model it is about the root mean square of a spin's local
    /// field (`sqrt(h_i^2 + sum_j J_ij^2)`), which sets the useful range of `gamma`. It is
    /// `sqrt(3)/2` for unweighted Max-Cut on a 3-regular graph. A constant cost gives 1.
    pub fn energy_scale(&self) -> f64 {
        let (_, var) = self.mean_and_variance();
        let s = (2.0 * var / self.n.max(1) as f64).sqrt();
        if s > 0.0 && s.is_finite() { s } else { 1.0 }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }
}

fn levels(base: f64, max: f64) -> Vec<f64> {
    let count = (max - base) as usize + 1;
    (0..count).map(|k| base + k as f64).collect()
}

/// The survey and storage kind of a QUBO's energies times `sign`.
pub(crate) fn qubo_plan(src: &QuboSource<'_>) -> (Kind, f64, f64) {
    let s = survey(src);
    let integral = src.integral() && s.integral;
    (Kind::for_range(integral, s.min, s.max), s.min, s.max)
}

/// The Max-Cut QUBO of `g`, whose energies are minus the cut weights.
pub(crate) fn cut_qubo(g: &Graph) -> Qubo {
    g.max_cut_qubo()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qorch_qubo::QuboBuilder;

    fn brute(q: &Qubo, x: u64) -> f64 {
        let bits: Vec<bool> = (0..q.num_vars()).map(|i| (x >> i) & 1 == 1).collect();
        q.energy(&bits)
    }

    fn model(n: usize, frac: bool) -> Qubo {
        let mut b = QuboBuilder::new(n);
        let mut s = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..n {
            let extra = if frac { 0.25 } else { 0.0 };
            b.add_linear(i, (next() % 9) as f64 - 4.0 + extra);
            for j in (i + 1)..n {
                if next() % 3 == 0 {
                    b.add_quadratic(i, j, (next() % 7) as f64 - 3.0);
                }
            }
        }
        b.add_offset(2.0);
        b.build().unwrap()
    }

    fn check_against_brute_force(q: &Qubo) {
        let src = QuboSource::new(q, 1.0);
        let (kind, min, max) = qubo_plan(&src);
        let d = CostDiagonal::build(&src, kind, min, max);
        for x in 0..(1_u64 << q.num_vars()) {
            assert!((d.value(x) - brute(q, x)).abs() < 1e-9, "state {x}");
        }
        let all = d.to_vec();
        assert_eq!(d.min(), all.iter().copied().fold(f64::INFINITY, f64::min));
        assert_eq!(
            d.max(),
            all.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        );
    }

    #[test]
    fn qubo_energies_match_brute_force_in_every_storage() {
        for n in [0, 1, 2, 5, 12, 13, 15] {
            check_against_brute_force(&model(n, false));
        }
        let q = model(14, true);
        let src = QuboSource::new(&q, 1.0);
        assert!(!src.integral());
        assert_eq!(qubo_plan(&src).0, Kind::Dense);
        check_against_brute_force(&q);
        // A wide integer range needs two bytes.
        let mut b = QuboBuilder::new(13);
        for i in 0..13 {
            b.add_linear(i, f64::from(1_u32 << i) * 3.0);
        }
        let q = b.build().unwrap();
        assert!(matches!(
            qubo_plan(&QuboSource::new(&q, 1.0)).0,
            Kind::Levels16 { .. }
        ));
        check_against_brute_force(&q);
    }

    #[test]
    fn parallel_build_matches_sequential_values() {
        let q = model(17, false);
        let src = QuboSource::new(&q, -1.0);
        let (kind, min, max) = qubo_plan(&src);
        let d = CostDiagonal::build(&src, kind, min, max);
        for x in (0..(1_u64 << 17)).step_by(997) {
            assert_eq!(d.value(x), -brute(&q, x));
        }
    }

    #[test]
    fn polynomial_terms_of_any_order() {
        let mut p = Polynomial::new(4);
        p.add_term(&[0, 1, 2, 3], 2.0)
            .add_term(&[1, 3], -1.5)
            .add_term(&[2], 0.5);
        for x in 0..16_u64 {
            let b = |i: u64| (x >> i) & 1;
            let want = 2.0 * (b(0) * b(1) * b(2) * b(3)) as f64 - 1.5 * (b(1) * b(3)) as f64
                + 0.5 * b(2) as f64;
            assert_eq!(p.value(x), want);
            let mut out = [0.0; 1];
            Polynomial::fill(&p, x, &mut out);
            assert_eq!(out[0], want);
        }
        let mut bad = Polynomial::new(2);
        bad.add_term(&[2], 1.0);
        assert!(bad.check().is_err());
    }

    #[test]
    fn energy_scale_of_3_regular_max_cut_is_sqrt3_over_2() {
        // K_{3,3} is 3-regular.
        let edges = (0..3)
            .flat_map(|i| (3..6).map(move |j| (i, j, 1.0)))
            .collect();
        let g = Graph::new(6, edges).unwrap();
        let q = cut_qubo(&g);
        let src = QuboSource::new(&q, -1.0);
        let (kind, min, max) = qubo_plan(&src);
        let d = CostDiagonal::build(&src, kind, min, max);
        assert_eq!(d.max(), 9.0);
        assert_eq!(d.num_levels(), Some(10));
        assert!((d.energy_scale() - 3_f64.sqrt() / 2.0).abs() < 1e-12);
    }
}
