//! QUBO windows: a few pools and some of their items, everything else clamped, encoded as a
//! QUBO, solved by the solver the policy picks for its size, decoded, repaired, and kept if the
//! true objective improves. This is how decomposition samplers (qbsolv, dwave-hybrid) attack
//! large models: sub-problems of tens of variables.
//!
//! The encoding of a window with items `I` and pools `W`:
//!
//! * a variable `x_o` per option `o` of an item in `I` on a pool in `W`;
//! * objective `sum_o (u_i - v_o) x_o` (value `v_o`, unserved value `u_i`), and for every
//!   affinity edge of weight `w`: `-w x_oi x_oj` for option pairs of two window items on the
//!   same pool, `-w x_o` for an option on the pool of a clamped partner;
//! * one-hot (`P (sum x - 1)^2`) for items that must be served, at-most-one
//!   (`P sum x_a x_b`) for the others;
//! * per pool and kind whose window options could exceed the capacity left by the clamped
//!   items (the others are skipped: they cannot bind), either slack bits
//!   ([`CapacityEncoding::Slack`], exact for integer data) or the unbalanced penalty
//!   ([`CapacityEncoding::Unbalanced`], no extra variables).
//!
//! Penalty weights come from the objective's scale: the capacity penalty makes exceeding a
//! capacity by one step (the slack resolution) cost 1.5 times the largest objective change of
//! one flip; the one-hot penalty is [`QuboBuilder::suggested_penalty`] of everything added
//! before it, so no single flip out of a group can pay.

use std::time::Instant;

use qorch_qubo::{Budget, Qubo, QuboBuilder, SolveOptions, Solver, slack_weights};

use super::state::State;
use super::{NONE, within};
use crate::config::CapacityEncoding;

/// What one window solve did.
#[derive(Debug, Clone)]
pub(crate) struct WindowReport {
    pub(crate) variables: usize,
    pub(crate) solver: String,
    pub(crate) energy: f64,
    pub(crate) seconds: f64,
    pub(crate) improved: bool,
    /// The objective change kept (0 if rejected).
    pub(crate) gain: f64,
}

/// A window's QUBO and how to read it back.
pub(crate) struct WindowModel {
    pub(crate) qubo: Qubo,
    /// Per window item: (item, its variables as (var, option)).
    pub(crate) items: Vec<(usize, Vec<(usize, u32)>)>,
    /// The current assignment, encoded (slack bits set to match), as a warm start.
    pub(crate) initial: Vec<bool>,
}

/// Builds the QUBO of a window. Items must currently be on a window pool or unserved.
#[allow(clippy::too_many_lines, reason = "one term family per block, in order")]
pub(crate) fn encode(
    s: &State<'_>,
    pools: &[u32],
    items: &[u32],
    encoding: CapacityEncoding,
) -> Option<WindowModel> {
    let p = s.p;
    let k = p.kinds;
    let in_window = |q: u32| pools.contains(&q);
    let mut var_of: Vec<(usize, Vec<(usize, u32)>)> = Vec::with_capacity(items.len());
    let mut nvars = 0;
    let mut pos = std::collections::HashMap::with_capacity(items.len());
    for (t, &i) in items.iter().enumerate() {
        let i = i as usize;
        let vars: Vec<(usize, u32)> = p
            .options(i)
            .filter(|&o| in_window(p.opt_pool[o]))
            .map(|o| {
                nvars += 1;
                (nvars - 1, o as u32)
            })
            .collect();
        pos.insert(i, t);
        var_of.push((i, vars));
    }
    if nvars == 0 {
        return None;
    }
    let mut b = QuboBuilder::new(nvars);
    // Objective (minimized: minus the value, relative to unserved).
    for (i, vars) in &var_of {
        let u = if p.may_skip[*i] {
            p.skip_value[*i]
        } else {
            0.0
        };
        b.add_offset(-u);
        for &(v, o) in vars {
            b.add_linear(v, u - p.opt_value[o as usize]);
        }
    }
    // Affinity.
    for (t, (i, vars)) in var_of.iter().enumerate() {
        for (j, w) in p.neighbours(*i) {
            if let Some(&tj) = pos.get(&j) {
                if tj <= t {
                    continue;
                }
                b.add_offset(w);
                for &(vi, oi) in vars {
                    for &(vj, oj) in &var_of[tj].1 {
                        if p.opt_pool[oi as usize] == p.opt_pool[oj as usize] {
                            b.add_quadratic(vi, vj, -w);
                        }
                    }
                }
            } else {
                b.add_offset(w);
                let q = s.pool(j);
                for &(vi, oi) in vars {
                    if p.opt_pool[oi as usize] == q {
                        b.add_linear(vi, -w);
                    }
                }
            }
        }
    }
    let all: Vec<usize> = (0..nvars).collect();
    let gain = b.flip_gain_bound(&all).max(1e-12);
    // Capacities left by the clamped items.
    let mut initial_slack: Vec<(std::ops::Range<usize>, Vec<u64>, f64)> = Vec::new();
    for &q in pools {
        let q = q as usize;
        for r in 0..k {
            let mut residual = p.capacity[q * k + r] - s.load[q * k + r];
            let mut terms: Vec<(usize, f64)> = Vec::new();
            let mut most = 0.0;
            let mut current = 0.0;
            for (i, vars) in &var_of {
                let cur = s.choice[*i];
                if cur != NONE && p.opt_pool[cur as usize] as usize == q {
                    residual += p.opt_demand[cur as usize * k + r];
                    current += p.opt_demand[cur as usize * k + r];
                }
                let mut top: f64 = 0.0;
                for &(v, o) in vars {
                    if p.opt_pool[o as usize] as usize == q {
                        let d = p.opt_demand[o as usize * k + r];
                        if d > 0.0 {
                            terms.push((v, d));
                            top = top.max(d);
                        }
                    }
                }
                most += top;
            }
            let residual = residual.max(0.0);
            if terms.is_empty() || within(most, residual) {
                continue; // Cannot bind.
            }
            let integral = p.integral;
            let step = if integral {
                terms
                    .iter()
                    .fold(residual.floor() as u64, |g, t| gcd(g, t.1 as u64))
                    .max(1) as f64
            } else {
                (residual / 64.0).max(1e-12)
            };
            let rhs = (residual / step).floor() * step;
            let use_slack = match encoding {
                CapacityEncoding::Slack => true,
                CapacityEncoding::Unbalanced => false,
                CapacityEncoding::Auto => {
                    let bits = (rhs / step + 1.0).log2().ceil();
                    integral && bits <= 10.0
                }
            };
            let penalty = 1.5 * gain / (step * step);
            if use_slack {
                let weights_start = b.num_vars();
                let Ok(range) = b.add_inequality_slack(&terms, rhs, penalty, step) else {
                    continue;
                };
                debug_assert_eq!(range.start, weights_start);
                // Slack value of the current assignment, in steps.
                let free = ((rhs - current) / step).floor().max(0.0);
                initial_slack.push((range, slack_weights((rhs / step).floor() as u64), free));
            } else {
                // -l1 h + l2 h^2 with h = rhs - load: one step over costs 1.5 gain (l1 step + l2
                // step^2), the minimum sits half a step below the capacity.
                let l2 = 0.75 * gain / (step * step);
                let l1 = l2 * step;
                b.add_inequality_unbalanced(&terms, rhs, l1, l2);
            }
        }
    }
    // One-hot / at-most-one, weighted by everything added so far.
    for (i, vars) in &var_of {
        let vs: Vec<usize> = vars.iter().map(|x| x.0).collect();
        if vs.is_empty() {
            continue;
        }
        let pen = b.suggested_penalty(&vs);
        if p.may_skip[*i] {
            b.add_at_most_one(&vs, pen);
        } else {
            b.add_one_hot(&vs, pen);
        }
    }
    let qubo = b.build().ok()?;
    let mut initial = vec![false; qubo.num_vars()];
    for (i, vars) in &var_of {
        for &(v, o) in vars {
            initial[v] = s.choice[*i] == o;
        }
    }
    for (range, weights, free) in initial_slack {
        let mut left = free as u64;
        for (t, w) in weights.iter().enumerate().rev() {
            if *w <= left {
                initial[range.start + t] = true;
                left -= w;
            }
        }
    }
    Some(WindowModel {
        qubo,
        items: var_of,
        initial,
    })
}

/// Solves a window with `solver` and keeps the result if the true objective improves.
pub(crate) fn solve_window(
    s: &mut State<'_>,
    model: &WindowModel,
    solver: &dyn Solver,
    sweeps: u64,
    seed: u64,
) -> Result<WindowReport, String> {
    let t0 = Instant::now();
    let options = SolveOptions::new(Budget::sweeps(sweeps), seed).with_initial(&model.initial);
    let sol = solver
        .solve(&model.qubo, &options)
        .map_err(|e| e.to_string())?;
    let before = s.objective();
    let mut undo: Vec<(usize, u32)> = Vec::with_capacity(model.items.len());
    // Decode: the chosen option of each item (the most valuable if several are set).
    for (i, vars) in &model.items {
        let mut pick: Option<u32> = None;
        for &(v, o) in vars {
            if sol.assignment[v]
                && pick.is_none_or(|c| s.p.opt_value[o as usize] > s.p.opt_value[c as usize])
            {
                pick = Some(o);
            }
        }
        let new = match pick {
            Some(o) => o,
            None if s.p.may_skip[*i] => NONE,
            None => s.choice[*i], // Must stay served: keep it where it is.
        };
        if new != s.choice[*i] {
            undo.push((*i, s.choice[*i]));
            s.apply(*i, new);
        }
    }
    // Repair inside the window: over-full pools lose their least valuable items.
    let mut ok = true;
    for (i, _) in &model.items {
        let q = s.pool(*i);
        if q == NONE || s.pool_ok(q as usize) {
            continue;
        }
        if !s.p.may_skip[*i] {
            continue;
        }
        undo.push((*i, s.choice[*i]));
        s.apply(*i, NONE);
    }
    for (i, _) in &model.items {
        let q = s.pool(*i);
        if q != NONE && !s.pool_ok(q as usize) {
            ok = false;
        }
    }
    let gain = s.objective() - before;
    let improved = ok && gain > 1e-9 * before.abs().max(1.0);
    if !improved {
        for &(i, o) in undo.iter().rev() {
            s.apply(i, o);
        }
    }
    Ok(WindowReport {
        variables: model.qubo.num_vars(),
        solver: sol.solver,
        energy: sol.energy,
        seconds: t0.elapsed().as_secs_f64(),
        improved,
        gain: if improved { gain } else { 0.0 },
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
