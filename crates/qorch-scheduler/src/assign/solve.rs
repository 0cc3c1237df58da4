//! The solve path of one flat sub-problem: bound, construction, repair, local search and QUBO
//! windows, under a work budget.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use qorch_qubo::{ExactSolver, Solver};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::bound::{Wildcards, lagrangian};
use super::construct::{greedy, repair};
use super::search::{
    Incumbent, TabuParams, Work, descent, initial_alpha, ranked_options, shuffle, tabu,
};
use super::state::State;
use super::window::{WindowReport, encode, solve_window};
use super::{AssignmentProblem, NONE};
use crate::config::{CapacityEncoding, SchedulerConfig, SearchMode, SolverPolicy};

/// The solvers a scheduler hands its windows to.
pub(crate) struct Solvers {
    pub(crate) policy: SolverPolicy,
    exact: ExactSolver,
    medium: Box<dyn Solver>,
    large: Box<dyn Solver>,
    pub(crate) qaoa: Option<Arc<dyn Solver>>,
}

impl Solvers {
    pub(crate) fn new(policy: SolverPolicy, qaoa: Option<Arc<dyn Solver>>) -> Self {
        Solvers {
            policy,
            exact: ExactSolver {
                max_vars: 30,
                parallel: false,
            },
            medium: policy.medium.build(),
            large: policy.large.build(),
            qaoa,
        }
    }

    /// Whether windows should be sized for QAOA.
    pub(crate) fn qaoa_active(&self) -> bool {
        self.policy.qaoa && self.qaoa.is_some()
    }

    /// The solver for a window of `vars` variables.
    pub(crate) fn pick(&self, vars: usize) -> &dyn Solver {
        if vars <= self.policy.exact_max_vars {
            return &self.exact;
        }
        if let Some(q) = &self.qaoa
            && self.policy.qaoa
            && vars <= self.policy.qaoa_max_vars
        {
            return q.as_ref();
        }
        if vars < self.policy.large_from_vars {
            self.medium.as_ref()
        } else {
            self.large.as_ref()
        }
    }
}

/// Aggregate statistics of the QUBO windows of one sub-problem.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WindowStats {
    pub(crate) count: u64,
    pub(crate) improved: u64,
    pub(crate) variables: u64,
    pub(crate) max_variables: usize,
    pub(crate) gain: f64,
    /// Per solver name: (windows, seconds).
    pub(crate) by_solver: BTreeMap<String, (u64, f64)>,
    /// Lowest window energy seen.
    pub(crate) best_energy: f64,
}

impl WindowStats {
    fn add(&mut self, r: &WindowReport) {
        if self.count == 0 {
            self.best_energy = r.energy;
        }
        self.count += 1;
        self.improved += u64::from(r.improved);
        self.variables += r.variables as u64;
        self.max_variables = self.max_variables.max(r.variables);
        self.gain += r.gain;
        let e = self.by_solver.entry(r.solver.clone()).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += r.seconds;
        self.best_energy = self.best_energy.min(r.energy);
    }

    /// The solver that handled most windows.
    pub(crate) fn main_solver(&self) -> Option<&str> {
        self.by_solver
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0))
            .map(|(k, _)| k.as_str())
    }
}

/// What a flat solve needs besides the problem.
pub(crate) struct FlatParams<'a> {
    pub(crate) seed: u64,
    pub(crate) deadline: Option<Instant>,
    /// Move evaluations (the deterministic budget).
    pub(crate) evaluations: u64,
    /// Stop as soon as a feasible objective reaches this.
    pub(crate) target: Option<f64>,
    pub(crate) bound_iterations: usize,
    pub(crate) wildcards: Option<&'a Wildcards>,
    pub(crate) initial: Option<Vec<u32>>,
    pub(crate) solvers: &'a Solvers,
    pub(crate) encoding: CapacityEncoding,
    pub(crate) search: SearchMode,
    pub(crate) tabu_max_options: usize,
    pub(crate) window_vars: usize,
    pub(crate) windows_per_item: f64,
    pub(crate) window_sweeps: u64,
}

impl<'a> FlatParams<'a> {
    /// Parameters from a scheduler's settings, for a problem with `options` options.
    pub(crate) fn from_config(
        config: &SchedulerConfig,
        solvers: &'a Solvers,
        options: usize,
        seed: u64,
    ) -> Self {
        FlatParams {
            seed,
            deadline: None,
            evaluations: ((config.effort * options as f64) as u64).max(20_000),
            target: None,
            bound_iterations: config.bound_iterations,
            wildcards: None,
            initial: None,
            solvers,
            encoding: config.encoding,
            search: config.search,
            tabu_max_options: config.tabu_max_options,
            window_vars: config.window_vars,
            windows_per_item: config.windows_per_item,
            window_sweeps: config.window_sweeps,
        }
    }
}

/// The result of a flat solve.
#[derive(Debug, Clone)]
pub(crate) struct FlatResult {
    pub(crate) choice: Vec<u32>,
    pub(crate) objective: f64,
    pub(crate) feasible: bool,
    pub(crate) bound: f64,
    pub(crate) trace: Vec<(f64, f64)>,
    pub(crate) seconds: f64,
    pub(crate) windows: WindowStats,
    pub(crate) evaluations: u64,
    pub(crate) search: &'static str,
}

/// Whether every value of the problem is an integer (then so is every objective, and the
/// bound can be rounded down).
fn integral_values(p: &AssignmentProblem) -> bool {
    p.opt_value.iter().all(|v| v.fract() == 0.0)
        && p.skip_value.iter().all(|v| v.fract() == 0.0)
        && p.aff_weight.iter().all(|v| v.fract() == 0.0)
}

/// Options per item kept, best reduced value first, for the swap neighbourhoods.
const RANKED_WIDTH: usize = 8;
/// Above this many (item, pool) pairs the dense kernel scans only each item's ranked pools.
const RESTRICT_ABOVE: usize = 20_000;

/// Solves one flat problem.
#[allow(
    clippy::too_many_lines,
    reason = "the pipeline reads best as one sequence of phases"
)]
pub(crate) fn solve_flat(p: &AssignmentProblem, params: &FlatParams<'_>) -> FlatResult {
    let start = Instant::now();
    let n = p.num_items();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut work = Work::new(params.evaluations, params.deadline, params.target);
    let mut inc = Incumbent::new(start);
    let mut stats = WindowStats::default();
    let integral = integral_values(p);
    // 1. A first bound and its multipliers.
    let first = params.bound_iterations.div_ceil(2);
    let mut bound = lagrangian(p, params.wildcards, first, None, None);
    // 2. A start: the given one, or greedy on the reduced values; repaired; descended.
    let start_choice = match &params.initial {
        Some(c) if c.len() == n => c.clone(),
        _ => greedy(p, &bound.lambda),
    };
    let mut s = State::new(p, start_choice);
    s.track_members();
    repair(&mut s, &mut rng);
    inc.offer(&s);
    if s.is_feasible() {
        descent(&mut s, &mut rng, &mut work);
        inc.offer(&s);
    }
    // 3. The rest of the bound, aimed at the incumbent.
    let rest = params.bound_iterations - first;
    if rest > 0 {
        let target = inc.feasible.then_some(inc.objective);
        let more = lagrangian(p, params.wildcards, rest, target, Some(&bound.lambda));
        if more.value < bound.value {
            bound = more;
        }
    }
    let bound_value = if integral {
        (bound.value + 1e-9).floor()
    } else {
        bound.value
    };
    let proven = |inc: &Incumbent| {
        inc.feasible && inc.objective >= bound_value - 1e-9 * bound_value.abs().max(1.0)
    };
    let use_tabu = match params.search {
        SearchMode::Tabu => true,
        SearchMode::Descent => false,
        SearchMode::Auto => {
            p.may_skip.iter().any(|m| !m) && p.num_options() <= params.tabu_max_options
        }
    };
    let windows_per_phase = ((params.windows_per_item * n as f64).ceil() as u64).max(1);
    let mut window_seed = params.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // 4. Improve until the budget ends.
    if use_tabu {
        let ranked = ranked_options(p, &bound.lambda, RANKED_WIDTH);
        let mut alpha = initial_alpha(p);
        let stall = (20 * n as u64).max(2_000);
        let mut phase = 0_u64;
        let dense = super::dense::applies(p);
        let mut kernel = dense.then(|| super::dense::Dense::new(p, &s.choice));
        let ranked_pools: Vec<Vec<u32>> = ranked
            .iter()
            .map(|r| r.iter().map(|&o| p.opt_pool[o as usize]).collect())
            .collect();
        let dparams = super::dense::DenseParams {
            stall: 20 * n as u64,
            tenure: 2,
            chain_starts: 24,
            restricted: n * p.pools > RESTRICT_ABOVE,
        };
        while let Some(d) = kernel.as_mut() {
            if work.exhausted() || proven(&inc) || inc.reached(params.target) {
                break;
            }
            phase += 1;
            d.run(&mut rng, &mut work, &mut inc, &ranked_pools, dparams);
            if work.exhausted() || proven(&inc) || inc.reached(params.target) {
                break;
            }
            if inc.feasible {
                s = polish_incumbent(
                    p,
                    &mut inc,
                    params,
                    &mut rng,
                    &mut work,
                    &mut stats,
                    windows_per_phase,
                    &mut window_seed,
                );
                d.reset(&inc.choice);
                let k = ((n as f64 * (0.02 + 0.02 * (phase % 4) as f64)).ceil() as usize).max(1);
                d.perturb(k, &mut rng);
            }
        }
        while !dense && !work.exhausted() && !proven(&inc) && !inc.reached(params.target) {
            phase += 1;
            tabu(
                &mut s,
                &mut rng,
                &mut work,
                &mut inc,
                &ranked,
                &mut alpha,
                TabuParams { stall },
            );
            if work.exhausted() || proven(&inc) || inc.reached(params.target) {
                break;
            }
            // QUBO windows around the incumbent, then polish, then a perturbed restart.
            if inc.feasible {
                s = polish_incumbent(
                    p,
                    &mut inc,
                    params,
                    &mut rng,
                    &mut work,
                    &mut stats,
                    windows_per_phase,
                    &mut window_seed,
                );
                perturb(&mut s, &mut rng, phase);
            }
        }
    } else {
        loop {
            if work.exhausted() || proven(&inc) || inc.reached(params.target) {
                break;
            }
            let before = inc.objective;
            run_windows(
                &mut s,
                params,
                &mut rng,
                &mut work,
                &mut stats,
                windows_per_phase,
                &mut window_seed,
            );
            descent(&mut s, &mut rng, &mut work);
            inc.offer(&s);
            if inc.objective <= before + 1e-12 * before.abs().max(1.0) {
                break; // Converged: neither windows nor moves find anything.
            }
        }
    }
    // 5. The incumbent, or the repaired current state if nothing feasible was found.
    let (choice, feasible) = if inc.feasible {
        (inc.choice.clone(), true)
    } else {
        let f = s.is_feasible();
        (s.choice.clone(), f)
    };
    let objective = State::new(p, choice.clone()).objective();
    FlatResult {
        choice,
        objective,
        feasible,
        bound: bound_value.max(if feasible {
            objective
        } else {
            f64::NEG_INFINITY
        }),
        trace: inc.trace,
        seconds: start.elapsed().as_secs_f64(),
        windows: stats,
        evaluations: params.evaluations - work.left,
        search: if use_tabu { "tabu" } else { "descent" },
    }
}

/// Restarts from the incumbent: QUBO windows around it, then descent; offers the result to
/// the incumbent and returns the state, ready for the next phase.
#[allow(
    clippy::too_many_arguments,
    reason = "the solve's running state, passed through"
)]
fn polish_incumbent<'p>(
    p: &'p AssignmentProblem,
    inc: &mut Incumbent,
    params: &FlatParams<'_>,
    rng: &mut Xoshiro256PlusPlus,
    work: &mut Work,
    stats: &mut WindowStats,
    windows: u64,
    seed: &mut u64,
) -> State<'p> {
    let mut s = State::new(p, inc.choice.clone());
    s.track_members();
    run_windows(&mut s, params, rng, work, stats, windows, seed);
    descent(&mut s, rng, work);
    inc.offer(&s);
    s
}

/// Moves a few random items to random options (the penalized search repairs what breaks).
fn perturb(s: &mut State<'_>, rng: &mut Xoshiro256PlusPlus, phase: u64) {
    let p = s.p;
    let n = p.num_items();
    let k = ((n as f64 * (0.02 + 0.02 * (phase % 4) as f64)).ceil() as usize).clamp(1, n);
    for _ in 0..k {
        let i = rng.random_range(0..n);
        let opts = p.options(i);
        if opts.is_empty() {
            continue;
        }
        let o = opts.start + rng.random_range(0..opts.len());
        s.apply(i, o as u32);
    }
}

/// Solves `count` QUBO windows on `s`, keeping those that improve it.
fn run_windows(
    s: &mut State<'_>,
    params: &FlatParams<'_>,
    rng: &mut Xoshiro256PlusPlus,
    work: &mut Work,
    stats: &mut WindowStats,
    count: u64,
    seed: &mut u64,
) {
    let p = s.p;
    if p.num_items() == 0 || p.pools < 1 {
        return;
    }
    let qaoa = params.solvers.qaoa_active();
    let target = if qaoa {
        params.solvers.policy.qaoa_max_vars
    } else {
        params.window_vars
    };
    let encoding = if qaoa {
        CapacityEncoding::Unbalanced
    } else {
        params.encoding
    };
    for _ in 0..count {
        if work.exhausted() {
            return;
        }
        let Some((pools, items)) = pick_window(s, rng, target) else {
            return;
        };
        let Some(model) = encode(s, &pools, &items, encoding) else {
            continue;
        };
        *seed = seed.wrapping_add(1);
        let solver = params.solvers.pick(model.qubo.num_vars());
        work.spend(model.qubo.num_vars() as u64 * params.window_sweeps.max(1));
        if let Ok(r) = solve_window(s, &model, solver, params.window_sweeps, *seed) {
            stats.add(&r);
        }
    }
}

/// Picks the pools and items of a window: the pool of a random item, one or two pools among
/// that item's other options, and items on those pools (or unserved with options there)
/// until the window holds about `target` variables.
fn pick_window(
    s: &State<'_>,
    rng: &mut Xoshiro256PlusPlus,
    target: usize,
) -> Option<(Vec<u32>, Vec<u32>)> {
    let p = s.p;
    let n = p.num_items();
    let i0 = rng.random_range(0..n);
    let mut pools: Vec<u32> = Vec::with_capacity(3);
    let cur = s.pool(i0);
    if cur != NONE {
        pools.push(cur);
    }
    let opts: Vec<u32> = p
        .options(i0)
        .map(|o| p.opt_pool[o])
        .filter(|q| *q != cur)
        .collect();
    let want = if target >= 30 { 3 } else { 2 };
    let mut tries = 0;
    while pools.len() < want && tries < 8 && !opts.is_empty() {
        tries += 1;
        let q = opts[rng.random_range(0..opts.len())];
        if !pools.contains(&q) {
            pools.push(q);
        }
    }
    if pools.is_empty() {
        return None;
    }
    let members = &s.members.as_ref()?.list;
    let total: usize = pools.iter().map(|&q| members[q as usize].len()).sum();
    let mut items = Vec::new();
    let mut vars = 0;
    // Adds item `i` if it has options on the window's pools; false once the window is full.
    let mut take = |i: u32, items: &mut Vec<u32>| -> bool {
        let v = p
            .options(i as usize)
            .filter(|&o| pools.contains(&p.opt_pool[o]))
            .count();
        if v == 0 {
            return true;
        }
        if vars + v > target && !items.is_empty() {
            return false;
        }
        vars += v;
        items.push(i);
        true
    };
    if s.choice[i0] == NONE {
        take(i0 as u32, &mut items);
    }
    if total <= SHUFFLE_UP_TO {
        let mut cands: Vec<u32> = pools
            .iter()
            .flat_map(|&q| members[q as usize].iter().copied())
            .collect();
        shuffle(&mut cands, rng);
        for i in cands {
            if !take(i, &mut items) {
                break;
            }
        }
    } else {
        // Many members: draw them at random (O(window) per window, not O(members), which
        // made large flat solves quadratic), skipping repeats.
        for _ in 0..4 * target.max(8) {
            let mut r = rng.random_range(0..total);
            let mut q = 0;
            while r >= members[pools[q] as usize].len() {
                r -= members[pools[q] as usize].len();
                q += 1;
            }
            let i = members[pools[q] as usize][r];
            if items.contains(&i) {
                continue;
            }
            if !take(i, &mut items) {
                break;
            }
        }
    }
    (!items.is_empty()).then_some((pools, items))
}

/// Up to this many members on a window's pools, candidates are shuffled in full.
const SHUFFLE_UP_TO: usize = 256;
