//! The QUBO model: energies, single-flip deltas, and the incremental [`FlipState`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::symmetric_csr;

/// One coupling in a variable's adjacency list: the other variable and the weight.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct Coupling {
    /// The other variable.
    pub var: u32,
    /// The coefficient `b_ij` of `x_i x_j`.
    pub weight: f64,
}

/// A quadratic unconstrained binary optimization problem over `n` binary variables:
///
/// ```text
/// E(x) = offset + sum_i a_i x_i + sum_{i<j} b_ij x_i x_j,    x in {0,1}^n
/// ```
///
/// to be *minimized*. The quadratic terms are stored as a symmetric adjacency (CSR: each pair
/// appears in both variables' lists), so the change of energy from flipping one variable costs
/// O(degree). A `Qubo` is validated once when built (indices in range, coefficients finite,
/// duplicates merged, zeros dropped, no self-couplings) and immutable afterwards: solvers
/// trust it.
///
/// # Examples
///
/// ```
/// use qorch_qubo::QuboBuilder;
///
/// // E = -x0 - x1 + 2 x0 x1: the optimum sets exactly one variable.
/// let mut b = QuboBuilder::new(2);
/// b.add_linear(0, -1.0);
/// b.add_linear(1, -1.0);
/// b.add_quadratic(0, 1, 2.0);
/// let q = b.build().unwrap();
/// assert_eq!(q.energy(&[true, false]), -1.0);
/// assert_eq!(q.energy(&[true, true]), 0.0);
/// assert_eq!(q.flip_delta(&[true, false], 1), 1.0);
/// ```
#[derive(Clone, PartialEq)]
pub struct Qubo {
    pub(crate) linear: Vec<f64>,
    /// `adj[start[i]..start[i + 1]]` are the couplings of variable `i`, sorted by variable.
    pub(crate) start: Vec<usize>,
    pub(crate) adj: Vec<Coupling>,
    pub(crate) offset: f64,
}

impl fmt::Debug for Qubo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qubo")
            .field("num_vars", &self.num_vars())
            .field("num_interactions", &self.num_interactions())
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// Why a model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A term refers to a variable that does not exist.
    #[error("variable {index} out of range: the model has {n} variables")]
    IndexOutOfRange {
        /// The index used.
        index: usize,
        /// Number of variables.
        n: usize,
    },
    /// A coefficient is NaN or infinite.
    #[error("coefficient {value} of {term} is not finite")]
    NonFinite {
        /// Which term.
        term: String,
        /// The value.
        value: f64,
    },
    /// More variables than the engine supports.
    #[error("{n} variables exceed the supported maximum of {max}")]
    TooManyVariables {
        /// Variables asked for.
        n: usize,
        /// The maximum.
        max: usize,
    },
    /// A dense matrix that is not square.
    #[error("matrix row {row} has {len} entries, expected {n}")]
    NotSquare {
        /// The row.
        row: usize,
        /// Its length.
        len: usize,
        /// The expected length.
        n: usize,
    },
    /// A constraint that no assignment can satisfy or that is malformed.
    #[error("invalid constraint: {0}")]
    Constraint(String),
    /// The coefficients are so large that an energy could overflow.
    #[error(
        "the absolute values of the coefficients and the offset sum to {sum:e}, above the \
         bound {max:e} that keeps every energy a solver forms finite"
    )]
    TooLarge {
        /// `|offset| + sum |a_i| + sum |b_ij|` (infinite where it overflows).
        sum: f64,
        /// [`Qubo::MAX_ABS_SUM`].
        max: f64,
    },
}

impl Qubo {
    /// Largest number of variables a model may have (indices are stored as `u32`).
    pub const MAX_VARS: usize = u32::MAX as usize;

    /// The largest `|offset| + sum |a_i| + sum |b_ij|` a model may have (`1e100`). Every
    /// energy, partial sum and flip delta is bounded by it, and so are the models solvers
    /// derive (clamped sub-problems, coarse models, within a small factor), so that what
    /// solvers form from them (sums over replicas, squares for variances, products with
    /// penalty weights and inverse temperatures) stays far from `f64::MAX` (about `1.8e308`).
    pub const MAX_ABS_SUM: f64 = 1e100;

    /// Number of variables.
    #[inline]
    pub fn num_vars(&self) -> usize {
        self.linear.len()
    }

    /// Number of distinct pairs with a non-zero quadratic coefficient.
    pub fn num_interactions(&self) -> usize {
        self.adj.len() / 2
    }

    /// The linear coefficients `a_i`.
    #[inline]
    pub fn linear(&self) -> &[f64] {
        &self.linear
    }

    /// The constant offset.
    #[inline]
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// The couplings of variable `i`, sorted by the other variable.
    ///
    /// # Panics
    ///
    /// If `i >= num_vars()`.
    #[inline]
    pub fn neighbors(&self, i: usize) -> &[Coupling] {
        &self.adj[self.start[i]..self.start[i + 1]]
    }

    /// Degree of variable `i`.
    #[inline]
    pub fn degree(&self, i: usize) -> usize {
        self.start[i + 1] - self.start[i]
    }

    /// Every quadratic term once, as `(i, j, b_ij)` with `i < j`.
    pub fn interactions(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..self.num_vars()).flat_map(move |i| {
            self.neighbors(i)
                .iter()
                .filter(move |c| (c.var as usize) > i)
                .map(move |c| (i, c.var as usize, c.weight))
        })
    }

    /// The energy of an assignment.
    ///
    /// # Panics
    ///
    /// If `x.len() != num_vars()`.
    pub fn energy(&self, x: &[bool]) -> f64 {
        assert_eq!(
            x.len(),
            self.num_vars(),
            "assignment length must equal the variable count"
        );
        let mut e = self.offset;
        for i in 0..self.num_vars() {
            if !x[i] {
                continue;
            }
            e += self.linear[i];
            for c in self.neighbors(i) {
                if (c.var as usize) > i && x[c.var as usize] {
                    e += c.weight;
                }
            }
        }
        e
    }

    /// The local field of variable `i`: `a_i + sum_j b_ij x_j`, the energy `x_i = 1` adds.
    pub fn local_field(&self, x: &[bool], i: usize) -> f64 {
        self.linear[i]
            + self
                .neighbors(i)
                .iter()
                .filter(|c| x[c.var as usize])
                .map(|c| c.weight)
                .sum::<f64>()
    }

    /// The change of energy if variable `i` is flipped, in O(degree).
    pub fn flip_delta(&self, x: &[bool], i: usize) -> f64 {
        let f = self.local_field(x, i);
        if x[i] { -f } else { f }
    }

    /// The largest absolute coefficient (linear or quadratic); 0 for an empty model.
    pub fn max_abs_coefficient(&self) -> f64 {
        let lin = self.linear.iter().fold(0.0_f64, |m, a| m.max(a.abs()));
        self.adj.iter().fold(lin, |m, c| m.max(c.weight.abs()))
    }

    /// For each variable, the largest change of energy one flip of it can cause:
    /// `|a_i| + sum_j |b_ij|`.
    pub fn max_flip_magnitudes(&self) -> Vec<f64> {
        (0..self.num_vars())
            .map(|i| {
                self.linear[i].abs()
                    + self
                        .neighbors(i)
                        .iter()
                        .map(|c| c.weight.abs())
                        .sum::<f64>()
            })
            .collect()
    }

    /// The model restricted to the variables `vars`, every other variable clamped to its value
    /// in `x`. Variable `k` of the result is `vars[k]`; the result's energy of a sub-assignment
    /// equals this model's energy of `x` with `vars` replaced by it.
    ///
    /// Costs O(n + interactions) for the offset; [`FlipState::clamped_subproblem`] does the same
    /// in O(sum of the selected degrees).
    ///
    /// # Panics
    ///
    /// If `x.len() != num_vars()`, or `vars` holds an index out of range or a duplicate.
    #[must_use]
    pub fn clamped_subproblem(&self, vars: &[usize], x: &[bool]) -> Qubo {
        self.clamped_with_energy(vars, x, self.energy(x))
    }

    /// [`clamped_subproblem`](Self::clamped_subproblem) given the energy of `x`.
    pub(crate) fn clamped_with_energy(&self, vars: &[usize], x: &[bool], energy: f64) -> Qubo {
        assert_eq!(x.len(), self.num_vars());
        // Position of each selected variable in the sub-problem.
        let mut pos = std::collections::HashMap::with_capacity(vars.len());
        for (k, &v) in vars.iter().enumerate() {
            assert!(v < self.num_vars(), "variable {v} out of range");
            assert!(pos.insert(v, k).is_none(), "variable {v} listed twice");
        }
        let mut b = QuboBuilder::new(vars.len());
        // Energy of the current sub-assignment under the sub-model, without offset.
        let mut inside = 0.0;
        for (k, &v) in vars.iter().enumerate() {
            let mut a = self.linear[v];
            for c in self.neighbors(v) {
                let u = c.var as usize;
                match pos.get(&u) {
                    Some(&ku) if ku > k => {
                        b.add_quadratic(k, ku, c.weight);
                        if x[v] && x[u] {
                            inside += c.weight;
                        }
                    }
                    None if x[u] => a += c.weight,
                    _ => {}
                }
            }
            b.add_linear(k, a);
            if x[v] {
                inside += a;
            }
        }
        b.add_offset(energy - inside);
        b.build_unbounded()
            .expect("a sub-problem of a valid model is valid")
    }

    /// The equivalent Ising model, with spins `s_i = 2 x_i - 1` (so `x_i = 1` is spin up).
    pub fn to_ising(&self) -> Ising {
        let n = self.num_vars();
        let mut h: Vec<f64> = self.linear.iter().map(|a| a / 2.0).collect();
        let mut offset = self.offset + self.linear.iter().sum::<f64>() / 2.0;
        let mut adj = Vec::with_capacity(self.adj.len());
        for i in 0..n {
            for c in self.neighbors(i) {
                h[i] += c.weight / 4.0;
                if (c.var as usize) > i {
                    offset += c.weight / 4.0;
                }
                adj.push(Coupling {
                    var: c.var,
                    weight: c.weight / 4.0,
                });
            }
        }
        Ising {
            h,
            start: self.start.clone(),
            adj,
            offset,
        }
    }
}

/// An Ising model `E(s) = offset + sum_i h_i s_i + sum_{i<j} J_ij s_i s_j` over spins
/// `s_i in {-1, +1}`, equivalent to a [`Qubo`] under `s_i = 2 x_i - 1`.
///
/// # Examples
///
/// ```
/// use qorch_qubo::QuboBuilder;
///
/// let mut b = QuboBuilder::new(2);
/// b.add_linear(0, 3.0);
/// b.add_quadratic(0, 1, -2.0);
/// let q = b.build().unwrap();
/// let ising = q.to_ising();
/// for x in [[false, false], [false, true], [true, false], [true, true]] {
///     let s: Vec<i8> = x.iter().map(|&b| if b { 1 } else { -1 }).collect();
///     assert!((q.energy(&x) - ising.energy(&s)).abs() < 1e-12);
/// }
/// assert_eq!(ising.to_qubo(), q);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Ising {
    h: Vec<f64>,
    start: Vec<usize>,
    adj: Vec<Coupling>,
    offset: f64,
}

impl Ising {
    /// An Ising model from fields, couplings `(i, j, J_ij)` and an offset.
    ///
    /// # Errors
    ///
    /// As [`QuboBuilder::build`].
    pub fn new(
        h: Vec<f64>,
        couplings: impl IntoIterator<Item = (usize, usize, f64)>,
        offset: f64,
    ) -> Result<Ising, ModelError> {
        // Reuse the QUBO builder's validation and CSR construction for J.
        let mut b = QuboBuilder::new(h.len());
        for (i, j, w) in couplings {
            if i == j {
                // s_i^2 = 1: a self-coupling is a constant.
                b.check(i)?;
                b.add_offset(w);
            } else {
                b.add_quadratic(i, j, w);
            }
        }
        b.add_offset(offset);
        for (i, v) in h.iter().enumerate() {
            if !v.is_finite() {
                return Err(ModelError::NonFinite {
                    term: format!("h[{i}]"),
                    value: *v,
                });
            }
        }
        let q = b.build()?;
        Ok(Ising {
            h,
            start: q.start,
            adj: q.adj,
            offset: q.offset,
        })
    }

    /// Number of spins.
    pub fn num_spins(&self) -> usize {
        self.h.len()
    }

    /// The fields `h_i`.
    pub fn fields(&self) -> &[f64] {
        &self.h
    }

    /// The constant offset.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// The couplings of spin `i`.
    pub fn neighbors(&self, i: usize) -> &[Coupling] {
        &self.adj[self.start[i]..self.start[i + 1]]
    }

    /// Every coupling once, as `(i, j, J_ij)` with `i < j`.
    pub fn couplings(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..self.num_spins()).flat_map(move |i| {
            self.neighbors(i)
                .iter()
                .filter(move |c| (c.var as usize) > i)
                .map(move |c| (i, c.var as usize, c.weight))
        })
    }

    /// The energy of a spin configuration (entries `-1` or `+1`).
    ///
    /// # Panics
    ///
    /// If `s.len() != num_spins()`.
    pub fn energy(&self, s: &[i8]) -> f64 {
        assert_eq!(s.len(), self.num_spins());
        let mut e = self.offset;
        for i in 0..self.num_spins() {
            let si = f64::from(s[i]);
            e += self.h[i] * si;
            for c in self.neighbors(i) {
                if (c.var as usize) > i {
                    e += c.weight * si * f64::from(s[c.var as usize]);
                }
            }
        }
        e
    }

    /// The equivalent QUBO, with `x_i = (1 + s_i) / 2`.
    pub fn to_qubo(&self) -> Qubo {
        let n = self.num_spins();
        let mut linear: Vec<f64> = self.h.iter().map(|h| 2.0 * h).collect();
        let mut offset = self.offset - self.h.iter().sum::<f64>();
        let mut adj = Vec::with_capacity(self.adj.len());
        for i in 0..n {
            for c in self.neighbors(i) {
                linear[i] -= 2.0 * c.weight;
                if (c.var as usize) > i {
                    offset += c.weight;
                }
                adj.push(Coupling {
                    var: c.var,
                    weight: 4.0 * c.weight,
                });
            }
        }
        Qubo {
            linear,
            start: self.start.clone(),
            adj,
            offset,
        }
    }
}

/// Builds a [`Qubo`] term by term; duplicate terms add up.
///
/// Besides plain terms it offers penalty encodings of constraints (see the
/// [`constraints`](crate#constraints) section of the crate docs).
#[derive(Debug, Clone, Default)]
pub struct QuboBuilder {
    pub(crate) linear: Vec<f64>,
    pub(crate) quadratic: Vec<(u32, u32, f64)>,
    pub(crate) offset: f64,
    pub(crate) error: Option<ModelError>,
}

impl QuboBuilder {
    /// A builder for `n` variables, all coefficients zero.
    pub fn new(n: usize) -> Self {
        QuboBuilder {
            linear: vec![0.0; n],
            ..Self::default()
        }
    }

    /// Number of variables so far.
    pub fn num_vars(&self) -> usize {
        self.linear.len()
    }

    /// Adds `k` new variables (for example slack bits) and returns their indices.
    pub fn add_variables(&mut self, k: usize) -> std::ops::Range<usize> {
        let first = self.linear.len();
        self.linear.resize(first + k, 0.0);
        first..first + k
    }

    fn fail(&mut self, e: ModelError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    pub(crate) fn check(&mut self, i: usize) -> Result<(), ModelError> {
        if i >= self.linear.len() {
            return Err(ModelError::IndexOutOfRange {
                index: i,
                n: self.linear.len(),
            });
        }
        Ok(())
    }

    /// Adds `w` to the linear coefficient of `x_i`. Errors (index out of range, non-finite
    /// value) are reported by [`build`](Self::build).
    pub fn add_linear(&mut self, i: usize, w: f64) -> &mut Self {
        if let Err(e) = self.check(i) {
            self.fail(e);
        } else if !w.is_finite() {
            self.fail(ModelError::NonFinite {
                term: format!("x{i}"),
                value: w,
            });
        } else {
            self.linear[i] += w;
        }
        self
    }

    /// Adds `w` to the coefficient of `x_i x_j`. With `i == j` the term is linear (`x^2 = x`).
    pub fn add_quadratic(&mut self, i: usize, j: usize, w: f64) -> &mut Self {
        if i == j {
            return self.add_linear(i, w);
        }
        if let Err(e) = self.check(i).and_then(|()| self.check(j)) {
            self.fail(e);
        } else if !w.is_finite() {
            self.fail(ModelError::NonFinite {
                term: format!("x{i}*x{j}"),
                value: w,
            });
        } else if w != 0.0 {
            let (a, b) = if i < j { (i, j) } else { (j, i) };
            self.quadratic.push((a as u32, b as u32, w));
        }
        self
    }

    /// Adds a constant.
    pub fn add_offset(&mut self, c: f64) -> &mut Self {
        if c.is_finite() {
            self.offset += c;
        } else {
            self.fail(ModelError::NonFinite {
                term: "offset".to_owned(),
                value: c,
            });
        }
        self
    }

    /// Validates and builds the model: merges duplicate terms, drops zeros, builds the CSR.
    ///
    /// # Errors
    ///
    /// The first invalid term added (index out of range, non-finite coefficient), too many
    /// variables, or [`ModelError::TooLarge`] when the absolute values of the coefficients
    /// and the offset sum to more than [`Qubo::MAX_ABS_SUM`].
    pub fn build(self) -> Result<Qubo, ModelError> {
        let q = self.build_unbounded()?;
        let sum = q.offset.abs()
            + q.linear.iter().map(|a| a.abs()).sum::<f64>()
            + q.adj.iter().map(|c| c.weight.abs()).sum::<f64>() / 2.0;
        if sum.is_finite() && sum <= Qubo::MAX_ABS_SUM {
            Ok(q)
        } else {
            Err(ModelError::TooLarge {
                sum,
                max: Qubo::MAX_ABS_SUM,
            })
        }
    }

    /// [`build`](Self::build) without [`Qubo::MAX_ABS_SUM`], for the models solvers derive
    /// from a valid one (a small multiple of its bound, hence finite); every coefficient is
    /// still checked finite.
    pub(crate) fn build_unbounded(self) -> Result<Qubo, ModelError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let n = self.linear.len();
        if n > Qubo::MAX_VARS {
            return Err(ModelError::TooManyVariables {
                n,
                max: Qubo::MAX_VARS,
            });
        }
        let mut quad = self.quadratic;
        quad.sort_unstable_by_key(|&(i, j, _)| (i, j));
        // Merge duplicates.
        let mut merged: Vec<(u32, u32, f64)> = Vec::with_capacity(quad.len());
        for (i, j, w) in quad {
            match merged.last_mut() {
                Some(last) if last.0 == i && last.1 == j => last.2 += w,
                _ => merged.push((i, j, w)),
            }
        }
        merged.retain(|t| t.2 != 0.0);
        // Every term added was finite: a non-finite coefficient is a sum that overflowed.
        let overflowed = !self.offset.is_finite()
            || self.linear.iter().any(|a| !a.is_finite())
            || merged.iter().any(|t| !t.2.is_finite());
        if overflowed {
            return Err(ModelError::TooLarge {
                sum: f64::INFINITY,
                max: Qubo::MAX_ABS_SUM,
            });
        }
        // CSR with both directions; rows come out sorted by the other variable.
        let (start, adj) = symmetric_csr(n, &merged);
        Ok(Qubo {
            linear: self.linear,
            start,
            adj,
            offset: self.offset,
        })
    }
}

impl Qubo {
    /// A model from linear terms `(i, a_i)`, quadratic terms `(i, j, b_ij)` and an offset.
    /// Repeated terms add up; `i == j` in a quadratic term counts as linear.
    ///
    /// # Errors
    ///
    /// As [`QuboBuilder::build`].
    pub fn from_triplets(
        n: usize,
        linear: impl IntoIterator<Item = (usize, f64)>,
        quadratic: impl IntoIterator<Item = (usize, usize, f64)>,
        offset: f64,
    ) -> Result<Qubo, ModelError> {
        let mut b = QuboBuilder::new(n);
        for (i, w) in linear {
            b.add_linear(i, w);
        }
        for (i, j, w) in quadratic {
            b.add_quadratic(i, j, w);
        }
        b.add_offset(offset);
        b.build()
    }

    /// A model from a dense square matrix `Q` with `E(x) = x^T Q x`: diagonal entries are
    /// linear terms, `Q_ij + Q_ji` the coefficient of `x_i x_j`.
    ///
    /// # Errors
    ///
    /// A non-square matrix or a non-finite entry.
    pub fn from_dense(matrix: &[Vec<f64>]) -> Result<Qubo, ModelError> {
        let n = matrix.len();
        let mut b = QuboBuilder::new(n);
        for (i, row) in matrix.iter().enumerate() {
            if row.len() != n {
                return Err(ModelError::NotSquare {
                    row: i,
                    len: row.len(),
                    n,
                });
            }
            for (j, &w) in row.iter().enumerate() {
                if w != 0.0 || !w.is_finite() {
                    b.add_quadratic(i, j, w);
                }
            }
        }
        b.build()
    }

    /// The dense upper-triangular matrix of this model (`Q_ii = a_i`, `Q_ij = b_ij` for
    /// `i < j`), for small models and tests.
    pub fn to_dense_upper(&self) -> Vec<Vec<f64>> {
        let n = self.num_vars();
        let mut m = vec![vec![0.0; n]; n];
        for i in 0..n {
            m[i][i] = self.linear[i];
        }
        for (i, j, w) in self.interactions() {
            m[i][j] = w;
        }
        m
    }
}

/// A serializable form of a [`Qubo`] (the JSON format read by [`crate::read_json`]).
///
/// ```json
/// {"num_vars": 3, "linear": [[0, -1.0]], "quadratic": [[0, 1, 2.0]], "offset": 0.0}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuboTerms {
    /// Number of variables.
    pub num_vars: usize,
    /// Linear terms `[i, a_i]`.
    #[serde(default)]
    pub linear: Vec<(usize, f64)>,
    /// Quadratic terms `[i, j, b_ij]`.
    #[serde(default)]
    pub quadratic: Vec<(usize, usize, f64)>,
    /// Constant offset.
    #[serde(default)]
    pub offset: f64,
}

impl From<&Qubo> for QuboTerms {
    fn from(q: &Qubo) -> Self {
        QuboTerms {
            num_vars: q.num_vars(),
            linear: q
                .linear
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, a)| *a != 0.0)
                .collect(),
            quadratic: q.interactions().collect(),
            offset: q.offset,
        }
    }
}

impl TryFrom<QuboTerms> for Qubo {
    type Error = ModelError;

    fn try_from(t: QuboTerms) -> Result<Self, ModelError> {
        Qubo::from_triplets(t.num_vars, t.linear, t.quadratic, t.offset)
    }
}

/// An assignment with incrementally maintained local fields: O(1) flip deltas and O(degree)
/// flips. The workhorse of every local-search solver.
///
/// # Examples
///
/// ```
/// use qorch_qubo::{FlipState, QuboBuilder};
///
/// let mut b = QuboBuilder::new(3);
/// b.add_linear(0, -2.0).add_quadratic(0, 1, 3.0).add_quadratic(1, 2, -1.0);
/// let q = b.build().unwrap();
/// let mut s = FlipState::new(&q, vec![false; 3]);
/// let d = s.delta(0);
/// s.flip(0);
/// assert_eq!(s.energy(), d);
/// assert_eq!(s.energy(), q.energy(s.assignment()));
/// ```
#[derive(Debug, Clone)]
pub struct FlipState<'q> {
    qubo: &'q Qubo,
    x: Vec<bool>,
    field: Vec<f64>,
    energy: f64,
}

impl<'q> FlipState<'q> {
    /// The state of assignment `x`.
    ///
    /// # Panics
    ///
    /// If `x.len() != qubo.num_vars()`.
    pub fn new(qubo: &'q Qubo, x: Vec<bool>) -> Self {
        assert_eq!(x.len(), qubo.num_vars());
        let mut field = qubo.linear.clone();
        for (i, &xi) in x.iter().enumerate() {
            if xi {
                for c in qubo.neighbors(i) {
                    field[c.var as usize] += c.weight;
                }
            }
        }
        let energy = qubo.energy(&x);
        FlipState {
            qubo,
            x,
            field,
            energy,
        }
    }

    /// The model.
    pub fn qubo(&self) -> &'q Qubo {
        self.qubo
    }

    /// The current assignment.
    #[inline]
    pub fn assignment(&self) -> &[bool] {
        &self.x
    }

    /// Consumes the state, returning the assignment.
    pub fn into_assignment(self) -> Vec<bool> {
        self.x
    }

    /// The current energy (maintained incrementally; see [`resync`](Self::resync)).
    #[inline]
    pub fn energy(&self) -> f64 {
        self.energy
    }

    /// The local field of variable `i`.
    #[inline]
    pub fn field(&self, i: usize) -> f64 {
        self.field[i]
    }

    /// The change of energy if variable `i` were flipped.
    #[inline]
    pub fn delta(&self, i: usize) -> f64 {
        if self.x[i] {
            -self.field[i]
        } else {
            self.field[i]
        }
    }

    /// Flips variable `i`, updating the energy and its neighbours' fields.
    #[inline]
    pub fn flip(&mut self, i: usize) {
        self.energy += self.delta(i);
        self.x[i] = !self.x[i];
        let sign = if self.x[i] { 1.0 } else { -1.0 };
        for c in self.qubo.neighbors(i) {
            self.field[c.var as usize] += sign * c.weight;
        }
    }

    /// Sets variable `i` to `v` (flipping it if needed).
    pub fn set(&mut self, i: usize, v: bool) {
        if self.x[i] != v {
            self.flip(i);
        }
    }

    /// The model restricted to `vars` with every other variable clamped to its current value
    /// (see [`Qubo::clamped_subproblem`]), in O(sum of the selected degrees).
    ///
    /// # Panics
    ///
    /// If `vars` holds an index out of range or a duplicate.
    pub fn clamped_subproblem(&self, vars: &[usize]) -> Qubo {
        self.qubo.clamped_with_energy(vars, &self.x, self.energy)
    }

    /// Recomputes the energy and fields from scratch, removing accumulated rounding error.
    pub fn resync(&mut self) {
        let x = std::mem::take(&mut self.x);
        *self = FlipState::new(self.qubo, x);
    }
}
