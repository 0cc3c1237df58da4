//! Minimizing a Lagrangian dual over `mu >= 0` by a proximal cutting-plane (bundle) method.
//!
//! A Lagrangian dual `L(mu)` is convex and piecewise linear; every evaluation gives its value
//! and a subgradient `g`, hence a cut `L(x) >= L(mu) + g . (x - mu)`. The method keeps the
//! cuts, and at each step minimizes their maximum (the *model*) inside a box around the best
//! point so far (the *center*): a small linear program, solved with `microlp`. If the true
//! value at the model's minimizer falls by at least a tenth of what the model predicted, the
//! center moves there and the box may grow (a *serious step*); otherwise the new cut refines
//! the model and the box shrinks (a *null step*). It stops when the model predicts almost no
//! decrease, or after the evaluation budget.
//!
//! Against the plain subgradient method (Polyak steps towards a target) this converges in far
//! fewer evaluations on the low-dimensional duals of the global bound (a few multipliers per
//! pool class and resource kind), and needs no target value. Every point evaluated is a valid
//! bound; the smallest value seen is returned.

use microlp::{ComparisonOp, OptimizationDirection, Problem};

/// The best point found and its dual value.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the bound reads the value; the tests read all three"
    )
)]
pub(crate) struct DualMin {
    /// The smallest dual value evaluated (a valid upper bound of the primal).
    pub(crate) value: f64,
    /// Where it was reached.
    pub(crate) mu: Vec<f64>,
    /// Evaluations spent.
    pub(crate) evaluations: usize,
}

/// Cuts kept in the model (oldest dropped first beyond this).
const MAX_CUTS: usize = 256;

/// Minimizes `eval` (value and subgradient of a convex function) over `mu >= 0` from `start`,
/// with at most `evaluations` calls. `scale` is the typical size of a multiplier (the first
/// box's half width). `stop_below`: stop as soon as the value is at most this (the bound
/// cannot beat a known primal objective).
pub(crate) fn minimize(
    start: Vec<f64>,
    scale: f64,
    evaluations: usize,
    stop_below: f64,
    mut eval: impl FnMut(&[f64]) -> (f64, Vec<f64>),
) -> DualMin {
    let mut center: Vec<f64> = start.into_iter().map(|x| x.max(0.0)).collect();
    let (mut center_value, g0) = eval(&center);
    let mut spent = 1;
    let mut cuts: Vec<(f64, Vec<f64>, Vec<f64>)> = vec![(center_value, g0, center.clone())];
    let mut radius = scale.max(1e-9);
    let floor = radius * 1e-9;
    while spent < evaluations && center_value > stop_below {
        let Some((model, candidate)) = master(&cuts, &center, radius) else {
            break;
        };
        let predicted = center_value - model;
        if predicted <= 1e-9 * center_value.abs().max(1.0) {
            if radius <= floor {
                break;
            }
            // The model is flat in this box: the center is optimal within the box's cuts, or
            // the box is too small to see the way down. Shrink to confirm.
            radius *= 0.5;
            continue;
        }
        let (value, g) = eval(&candidate);
        spent += 1;
        if center_value - value >= 0.1 * predicted {
            if center_value - value >= 0.5 * predicted {
                radius *= 2.0;
            }
            center.clone_from(&candidate);
            center_value = value;
        } else {
            radius = (radius * 0.5).max(floor);
        }
        if cuts.len() == MAX_CUTS {
            cuts.remove(0);
        }
        cuts.push((value, g, candidate));
    }
    DualMin {
        value: center_value,
        mu: center,
        evaluations: spent,
    }
}

/// The minimum of the cutting-plane model within `radius` of `center` (and `mu >= 0`), and
/// where it is reached; `None` if the LP solver fails (the caller keeps what it has).
fn master(
    cuts: &[(f64, Vec<f64>, Vec<f64>)],
    center: &[f64],
    radius: f64,
) -> Option<(f64, Vec<f64>)> {
    let dim = center.len();
    let mut lp = Problem::new(OptimizationDirection::Minimize);
    let t = lp.add_var(1.0, (f64::NEG_INFINITY, f64::INFINITY));
    let mu: Vec<_> = center
        .iter()
        .map(|&c| lp.add_var(0.0, ((c - radius).max(0.0), c + radius)))
        .collect();
    for (value, g, at) in cuts {
        // t >= value + g . (mu - at)   <=>   t - g . mu >= value - g . at
        let rhs = value - g.iter().zip(at).map(|(a, b)| a * b).sum::<f64>();
        let mut expr: Vec<(microlp::Variable, f64)> = Vec::with_capacity(dim + 1);
        expr.push((t, 1.0));
        for (j, &gj) in g.iter().enumerate() {
            if gj != 0.0 {
                expr.push((mu[j], -gj));
            }
        }
        lp.add_constraint(expr.as_slice(), ComparisonOp::Ge, rhs);
    }
    let solution = lp.solve().ok()?.into_solution().ok()?;
    Some((
        solution.objective(),
        mu.iter().map(|&v| solution.var_value(v).max(0.0)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `L(mu) = sum_i c_i mu_i + sum_a max(0, v_a - mu . d_a)`: the dual of a fractional
    /// knapsack with two capacities, whose LP value is known.
    #[test]
    fn reaches_the_lp_value_of_a_two_constraint_knapsack() {
        // Items (value, demand on resource 0, demand on resource 1).
        let items = [
            (10.0, 5.0, 1.0),
            (8.0, 1.0, 4.0),
            (6.0, 3.0, 3.0),
            (4.0, 1.0, 1.0),
            (3.0, 2.0, 2.0),
        ];
        let cap = [6.0, 6.0];
        let eval = |mu: &[f64]| {
            let mut value = cap[0] * mu[0] + cap[1] * mu[1];
            let mut g = cap.to_vec();
            for &(v, d0, d1) in &items {
                let r = v - mu[0] * d0 - mu[1] * d1;
                if r > 0.0 {
                    value += r;
                    g[0] -= d0;
                    g[1] -= d1;
                }
            }
            (value, g)
        };
        let r = minimize(vec![0.0, 0.0], 1.0, 200, f64::NEG_INFINITY, eval);
        // LP optimum (HiGHS): 20, with the second and fourth items whole and 0.8 of the
        // first. Every mu gives an upper bound; the minimum equals the LP value.
        assert!(r.value >= 20.0 - 1e-6, "below the LP value: {}", r.value);
        assert!(
            r.value <= 20.0 + 1e-6,
            "not converged: {} after {} evaluations",
            r.value,
            r.evaluations
        );
        assert!(r.mu.iter().all(|&m| m >= 0.0));
    }
}
