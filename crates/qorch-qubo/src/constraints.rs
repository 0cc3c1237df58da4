//! Penalty encodings of constraints, as methods of [`QuboBuilder`].
//!
//! Each method adds a penalty that is zero exactly on the assignments satisfying the
//! constraint (for the unbalanced inequality: small on them, see below) and positive
//! elsewhere. The crate docs explain the trade-offs and how to pick the weights.

use std::ops::Range;

use crate::{ModelError, QuboBuilder};

impl QuboBuilder {
    /// Adds `penalty * (sum_{i in vars} x_i - 1)^2`: exactly one of `vars` is set.
    pub fn add_one_hot(&mut self, vars: &[usize], penalty: f64) -> &mut Self {
        let ones: Vec<(usize, f64)> = vars.iter().map(|&v| (v, 1.0)).collect();
        self.add_equality(&ones, 1.0, penalty)
    }

    /// Adds `penalty * sum_{i<j} x_i x_j` over `vars`: at most one of them is set.
    pub fn add_at_most_one(&mut self, vars: &[usize], penalty: f64) -> &mut Self {
        for (k, &i) in vars.iter().enumerate() {
            for &j in &vars[k + 1..] {
                self.add_quadratic(i, j, penalty);
            }
        }
        self
    }

    /// Adds `penalty * (sum c_i x_i - rhs)^2`: the linear equality `sum c_i x_i = rhs`.
    pub fn add_equality(&mut self, terms: &[(usize, f64)], rhs: f64, penalty: f64) -> &mut Self {
        for (k, &(i, ci)) in terms.iter().enumerate() {
            // x^2 = x: the square's diagonal is linear.
            self.add_linear(i, penalty * (ci * ci - 2.0 * rhs * ci));
            for &(j, cj) in &terms[k + 1..] {
                self.add_quadratic(i, j, 2.0 * penalty * ci * cj);
            }
        }
        self.add_offset(penalty * rhs * rhs)
    }

    /// Encodes `sum c_i x_i <= rhs` with slack bits: adds binary variables `z_k` with weights
    /// `step * w_k` (powers of two, the last one trimmed so that the slack reaches exactly its
    /// maximum) and the equality `sum c_i x_i + step * sum w_k z_k = rhs` as a penalty.
    /// Returns the indices of the slack variables.
    ///
    /// Exact when the coefficients and `rhs` are multiples of `step`; otherwise a satisfied
    /// constraint may keep a residual penalty below `penalty * step^2 / 4`.
    ///
    /// # Errors
    ///
    /// [`ModelError::Constraint`] if no assignment satisfies the inequality, or `step` is not
    /// positive and finite.
    pub fn add_inequality_slack(
        &mut self,
        terms: &[(usize, f64)],
        rhs: f64,
        penalty: f64,
        step: f64,
    ) -> Result<Range<usize>, ModelError> {
        if !(step.is_finite() && step > 0.0) {
            return Err(ModelError::Constraint(format!(
                "slack step must be positive and finite, got {step}"
            )));
        }
        let min_lhs: f64 = terms.iter().map(|t| t.1.min(0.0)).sum();
        if min_lhs > rhs {
            return Err(ModelError::Constraint(format!(
                "sum c_i x_i <= {rhs} cannot hold: the left side is at least {min_lhs}"
            )));
        }
        // Largest slack needed, in units of `step`.
        let max_slack = ((rhs - min_lhs) / step).floor();
        let weights = slack_weights(max_slack as u64);
        let slack = self.add_variables(weights.len());
        let mut all: Vec<(usize, f64)> = terms.to_vec();
        all.extend(slack.clone().zip(weights.iter().map(|&w| step * w as f64)));
        self.add_equality(&all, rhs, penalty);
        Ok(slack)
    }

    /// Encodes `sum c_i x_i <= rhs` without slack bits by *unbalanced penalization*
    /// (Montanez-Barrera et al., 2022): with `h(x) = rhs - sum c_i x_i`, adds
    /// `-lambda1 * h + lambda2 * h^2`.
    ///
    /// The penalty grows quickly when the constraint is violated (`h < 0`) and is small (it
    /// may even be slightly negative, rewarding slack up to `h = lambda1 / (2 lambda2)`) when it
    /// holds. Every assignment must still be checked (and repaired) afterwards: this encoding
    /// guides the solver, it does not guarantee feasibility.
    pub fn add_inequality_unbalanced(
        &mut self,
        terms: &[(usize, f64)],
        rhs: f64,
        lambda1: f64,
        lambda2: f64,
    ) -> &mut Self {
        // -lambda1 * h = -lambda1 * rhs + lambda1 * sum c_i x_i
        for &(i, c) in terms {
            self.add_linear(i, lambda1 * c);
        }
        self.add_offset(-lambda1 * rhs);
        // lambda2 * h^2 = lambda2 * (sum c_i x_i - rhs)^2
        self.add_equality(terms, rhs, lambda2)
    }

    /// An upper bound on how much one flip of any of `vars` can lower the energy of the terms
    /// added so far: `max_i (|a_i| + sum_j |b_ij|)` over `vars`. A one-hot or at-most-one
    /// penalty larger than this makes every single-flip exit from the feasible set cost more
    /// than it can gain (the rule used throughout qorch: `penalty = 1.5 * bound`, at least 1).
    pub fn flip_gain_bound(&self, vars: &[usize]) -> f64 {
        let mut mag: Vec<f64> = vars
            .iter()
            .map(|&v| self.linear.get(v).map_or(0.0, |a| a.abs()))
            .collect();
        let index: std::collections::HashMap<usize, usize> =
            vars.iter().enumerate().map(|(k, &v)| (v, k)).collect();
        for &(i, j, w) in &self.quadratic {
            if let Some(&k) = index.get(&(i as usize)) {
                mag[k] += w.abs();
            }
            if let Some(&k) = index.get(&(j as usize)) {
                mag[k] += w.abs();
            }
        }
        mag.into_iter().fold(0.0, f64::max)
    }

    /// The penalty weight qorch uses for a one-hot group over `vars` added after the objective:
    /// `max(1, 1.5 * flip_gain_bound(vars))`.
    pub fn suggested_penalty(&self, vars: &[usize]) -> f64 {
        (1.5 * self.flip_gain_bound(vars)).max(1.0)
    }
}

/// Binary weights `1, 2, 4, ..., 2^(K-2), r` summing to `max` (each value `0..=max` is
/// representable); empty for `max == 0`. These are the slack bits' weights of
/// [`QuboBuilder::add_inequality_slack`]; encoders that build their own slack terms use them
/// too.
///
/// ```
/// assert_eq!(qorch_qubo::slack_weights(10), vec![1, 2, 4, 3]);
/// assert!(qorch_qubo::slack_weights(0).is_empty());
/// ```
pub fn slack_weights(max: u64) -> Vec<u64> {
    let mut weights = Vec::new();
    let mut total = 0_u64;
    let mut next = 1_u64;
    while total < max {
        let w = next.min(max - total);
        weights.push(w);
        total += w;
        next = next.saturating_mul(2);
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Qubo;

    fn all_assignments(n: usize) -> impl Iterator<Item = Vec<bool>> {
        (0..1_u32 << n).map(move |m| (0..n).map(|i| m >> i & 1 == 1).collect())
    }

    #[test]
    fn slack_weights_cover_every_value_exactly_once_at_the_top() {
        for max in 0..100_u64 {
            let w = slack_weights(max);
            assert_eq!(w.iter().sum::<u64>(), max);
            // Every value 0..=max representable.
            let k = w.len();
            let mut reach = vec![false; max as usize + 1];
            for m in 0..1_u32 << k {
                let s: u64 = (0..k).filter(|b| m >> b & 1 == 1).map(|b| w[b]).sum();
                reach[s as usize] = true;
            }
            assert!(reach.iter().all(|r| *r), "max {max}");
        }
    }

    #[test]
    fn one_hot_penalty_is_zero_exactly_on_one_hot_assignments() {
        let mut b = QuboBuilder::new(4);
        b.add_one_hot(&[0, 1, 3], 2.0);
        let q = b.build().unwrap();
        for x in all_assignments(4) {
            let ones = [0, 1, 3].iter().filter(|&&i| x[i]).count();
            let e = q.energy(&x);
            if ones == 1 {
                assert!(e.abs() < 1e-12);
            } else {
                assert!(e >= 2.0 - 1e-12);
            }
        }
    }

    #[test]
    fn at_most_one_and_equality() {
        let mut b = QuboBuilder::new(3);
        b.add_at_most_one(&[0, 1, 2], 1.0);
        let q = b.build().unwrap();
        for x in all_assignments(3) {
            let ones = x.iter().filter(|b| **b).count();
            assert_eq!(q.energy(&x) == 0.0, ones <= 1);
        }
        let mut b = QuboBuilder::new(3);
        b.add_equality(&[(0, 2.0), (1, 3.0), (2, 5.0)], 5.0, 1.0);
        let q = b.build().unwrap();
        for x in all_assignments(3) {
            let lhs = 2.0 * f64::from(u8::from(x[0]))
                + 3.0 * f64::from(u8::from(x[1]))
                + 5.0 * f64::from(u8::from(x[2]));
            assert!((q.energy(&x) - (lhs - 5.0).powi(2)).abs() < 1e-9);
        }
    }

    #[test]
    fn slack_inequality_min_over_slack_is_zero_iff_feasible() {
        let terms = [(0, 3.0), (1, 4.0), (2, 2.0)];
        let mut b = QuboBuilder::new(3);
        let slack = b.add_inequality_slack(&terms, 6.0, 1.0, 1.0).unwrap();
        let q = b.build().unwrap();
        let n = q.num_vars();
        for x in all_assignments(3) {
            let lhs: f64 = terms.iter().filter(|t| x[t.0]).map(|t| t.1).sum();
            // Minimize over the slack bits.
            let best = all_assignments(slack.len())
                .map(|z| {
                    let mut full = x.clone();
                    full.extend(z);
                    assert_eq!(full.len(), n);
                    q.energy(&full)
                })
                .fold(f64::INFINITY, f64::min);
            if lhs <= 6.0 {
                assert!(best.abs() < 1e-9, "x {x:?}");
            } else {
                assert!(best >= 1.0 - 1e-9, "x {x:?}");
            }
        }
    }

    #[test]
    fn unsatisfiable_inequality_is_refused() {
        let mut b = QuboBuilder::new(2);
        let err = b
            .add_inequality_slack(&[(0, 1.0), (1, -1.0)], -2.0, 1.0, 1.0)
            .unwrap_err();
        assert!(err.to_string().contains("cannot hold"), "{err}");
    }

    #[test]
    fn unbalanced_penalty_grows_with_the_violation() {
        let terms = [(0, 3.0), (1, 4.0), (2, 2.0)];
        let (l1, l2) = (1.0, 0.25);
        let mut b = QuboBuilder::new(3);
        b.add_inequality_unbalanced(&terms, 6.0, l1, l2);
        let q: Qubo = b.build().unwrap();
        let h = |x: &[bool]| 6.0 - terms.iter().filter(|t| x[t.0]).map(|t| t.1).sum::<f64>();
        let best_feasible = all_assignments(3)
            .filter(|x| h(x) >= 0.0)
            .map(|x| q.energy(&x))
            .fold(f64::INFINITY, f64::min);
        let mut infeasible: Vec<(f64, f64)> = all_assignments(3)
            .filter(|x| h(x) < 0.0)
            .map(|x| (h(&x), q.energy(&x)))
            .collect();
        assert!(!infeasible.is_empty());
        for &(hx, e) in &infeasible {
            assert!((e - (-l1 * hx + l2 * hx * hx)).abs() < 1e-9);
            assert!(e > best_feasible);
        }
        // Larger violations cost more.
        infeasible.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert!(infeasible.windows(2).all(|w| w[1].1 > w[0].1));
    }

    #[test]
    fn suggested_penalty_exceeds_every_single_flip_gain() {
        let mut b = QuboBuilder::new(3);
        b.add_linear(0, -4.0)
            .add_quadratic(0, 1, -2.0)
            .add_linear(2, 1.0);
        assert_eq!(b.flip_gain_bound(&[0, 1, 2]), 6.0);
        assert_eq!(b.suggested_penalty(&[0, 1, 2]), 9.0);
        assert_eq!(b.suggested_penalty(&[2]), 1.5);
    }
}
