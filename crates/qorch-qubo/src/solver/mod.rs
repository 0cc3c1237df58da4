//! Solvers: one trait, several algorithms.
//!
//! Every solver takes a [`Qubo`], a [`Budget`] (sweeps, time, target energy: whichever comes
//! first), a seed and an optional starting assignment, and returns a [`Solution`]: the best
//! assignment found, its energy (recomputed exactly), the time and work spent, and a trace of
//! the best energy over time for plots.
//!
//! A *sweep* is `n` single-variable moves (proposed or made): the unit of work that makes
//! budgets comparable across solvers and with other tools.
//!
//! # Determinism
//!
//! The same model, seed and budget give the same solution when the budget is counted in
//! sweeps (or by target energy). A time limit stops the search wherever it is, so a run that is
//! cut by time depends on the machine's speed; it equals the sweep-budgeted run of the same
//! length.

mod cea;
mod decompose;
mod descent;
mod exact;
mod hybrid;
mod icm;
mod pa;
mod pt;
mod sa;
mod tabu;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::Qubo;

pub use decompose::Decomposition;
pub use descent::SteepestDescent;
pub use exact::ExactSolver;
pub use hybrid::HybridAnnealing;
pub use icm::HoudayerTempering;
pub use pa::PopulationAnnealing;
pub use pt::ParallelTempering;
pub use sa::{Schedule, SimulatedAnnealing};
pub use tabu::TabuSearch;

/// When a solver must stop: at the first limit reached. With no limit set, each solver uses
/// its own default amount of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Total sweeps (n moves each) over all reads, replicas and restarts.
    pub sweeps: Option<u64>,
    /// Wall-clock limit.
    pub time_limit: Option<Duration>,
    /// Stop as soon as an assignment with energy at or below this is found.
    pub target_energy: Option<f64>,
}

impl Budget {
    /// A budget of `sweeps` sweeps.
    pub fn sweeps(sweeps: u64) -> Self {
        Budget {
            sweeps: Some(sweeps),
            ..Budget::default()
        }
    }

    /// A budget of wall-clock time.
    pub fn time(limit: Duration) -> Self {
        Budget {
            time_limit: Some(limit),
            ..Budget::default()
        }
    }

    /// Adds a target energy.
    #[must_use]
    pub fn with_target(mut self, energy: f64) -> Self {
        self.target_energy = Some(energy);
        self
    }

    /// Adds a time limit.
    #[must_use]
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.sweeps.is_some() || self.time_limit.is_some() || self.target_energy.is_some()
    }
}

/// What a solver is asked to do besides the model.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions<'a> {
    /// When to stop.
    pub budget: Budget,
    /// Seed of every random choice.
    pub seed: u64,
    /// Where to start, for solvers that improve an assignment (ignored by the others).
    pub initial: Option<&'a [bool]>,
}

impl<'a> SolveOptions<'a> {
    /// Options with a budget and a seed.
    pub fn new(budget: Budget, seed: u64) -> Self {
        SolveOptions {
            budget,
            seed,
            initial: None,
        }
    }

    /// Starts from `x`.
    #[must_use]
    pub fn with_initial(mut self, x: &'a [bool]) -> Self {
        self.initial = Some(x);
        self
    }
}

/// One point of a solver's trace: the best energy known at a moment of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Seconds since the solver started.
    pub seconds: f64,
    /// Sweeps done so far.
    pub sweeps: u64,
    /// Best energy found so far.
    pub energy: f64,
}

/// Why a solver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its own schedule (or proved optimality).
    Completed,
    /// The sweep budget ran out.
    SweepLimit,
    /// The time limit passed.
    TimeLimit,
    /// The target energy was reached.
    TargetReached,
}

/// The result of a solve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Name of the solver.
    pub solver: String,
    /// The best assignment found.
    pub assignment: Vec<bool>,
    /// Its energy, recomputed from the model.
    pub energy: f64,
    /// Wall-clock seconds spent.
    pub seconds: f64,
    /// Sweeps done.
    pub sweeps: u64,
    /// Why the solver stopped.
    pub stop: StopReason,
    /// The best energy over time (one point per improvement, and one at the end).
    pub trace: Vec<TracePoint>,
}

/// Why a solve could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SolveError {
    /// The model is too large for this solver.
    #[error("{solver} handles at most {max} variables; this model has {n} (use another solver)")]
    TooLarge {
        /// The solver.
        solver: String,
        /// Variables in the model.
        n: usize,
        /// The solver's limit.
        max: usize,
    },
    /// The starting assignment does not fit the model.
    #[error("initial assignment has {len} values, the model has {n} variables")]
    InitialLength {
        /// Its length.
        len: usize,
        /// Variables in the model.
        n: usize,
    },
    /// The solver's settings are invalid.
    #[error("invalid solver settings: {0}")]
    Config(String),
}

/// A QUBO solver. Implementations are `Send + Sync` so that sub-problems can be solved in
/// parallel with one solver value.
pub trait Solver: Send + Sync {
    /// A short name, as accepted by `qorch qubo solve --solver`.
    fn name(&self) -> &str;

    /// Minimizes `qubo`.
    ///
    /// # Errors
    ///
    /// A [`SolveError`] if the model or options do not suit this solver.
    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError>;
}

/// The built-in solvers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SolverKind {
    /// [`SimulatedAnnealing`].
    Sa,
    /// [`ParallelTempering`].
    Pt,
    /// [`TabuSearch`].
    Tabu,
    /// [`SteepestDescent`].
    Descent,
    /// [`ExactSolver`].
    Exact,
    /// [`Decomposition`].
    Decompose,
    /// [`HybridAnnealing`]: annealing with consensus coarsening (the default).
    Hybrid,
    /// [`HoudayerTempering`]: tempering with cluster moves, for lattice-like models.
    Icm,
    /// [`PopulationAnnealing`]: annealing replicas resampled by their Boltzmann weights.
    Pa,
}

impl SolverKind {
    /// Every kind, in the order of the command line's list.
    pub const ALL: [SolverKind; 9] = [
        SolverKind::Sa,
        SolverKind::Pt,
        SolverKind::Tabu,
        SolverKind::Descent,
        SolverKind::Exact,
        SolverKind::Decompose,
        SolverKind::Hybrid,
        SolverKind::Icm,
        SolverKind::Pa,
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SolverKind::Sa => "sa",
            SolverKind::Pt => "pt",
            SolverKind::Tabu => "tabu",
            SolverKind::Descent => "descent",
            SolverKind::Exact => "exact",
            SolverKind::Decompose => "decompose",
            SolverKind::Hybrid => "hybrid",
            SolverKind::Icm => "icm",
            SolverKind::Pa => "pa",
        }
    }

    /// The solver with its default settings.
    pub fn build(self) -> Box<dyn Solver> {
        match self {
            SolverKind::Sa => Box::new(SimulatedAnnealing::default()),
            SolverKind::Pt => Box::new(ParallelTempering::default()),
            SolverKind::Tabu => Box::new(TabuSearch::default()),
            SolverKind::Descent => Box::new(SteepestDescent),
            SolverKind::Exact => Box::new(ExactSolver::default()),
            SolverKind::Decompose => Box::new(Decomposition::default()),
            SolverKind::Hybrid => Box::new(HybridAnnealing::default()),
            SolverKind::Icm => Box::new(HoudayerTempering::default()),
            SolverKind::Pa => Box::new(PopulationAnnealing::default()),
        }
    }
}

impl fmt::Display for SolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of parsing a solver name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown solver `{0}`: expected one of sa, pt, tabu, descent, exact, decompose, hybrid, icm, pa"
)]
pub struct ParseSolverError(String);

impl FromStr for SolverKind {
    type Err = ParseSolverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SolverKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseSolverError(s.to_owned()))
    }
}

/// The random stream `stream` of a solver run seeded with `seed`: a xoshiro256++ generator
/// (fast enough for inner loops) seeded from `ChaCha8`'s stream `stream` of `seed`, so that the
/// streams of one run (reads, replicas, sub-problems) are independent and every stream is
/// portable across platforms.
pub(crate) fn rng(seed: u64, stream: u64) -> Xoshiro256PlusPlus {
    let mut chacha = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    chacha.set_stream(stream);
    Xoshiro256PlusPlus::from_rng(&mut chacha)
}

/// A uniform `f64` in `[0, 1)` from 53 random bits.
#[inline]
pub(crate) fn unit_f64(r: &mut Xoshiro256PlusPlus) -> f64 {
    use rand::Rng;
    (r.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
}

/// A random assignment.
pub(crate) fn random_assignment(n: usize, r: &mut Xoshiro256PlusPlus) -> Vec<bool> {
    use rand::Rng;
    let mut x = Vec::with_capacity(n);
    while x.len() < n {
        let bits = r.next_u64();
        for b in 0..64.min(n - x.len()) {
            x.push(bits >> b & 1 == 1);
        }
    }
    x
}

/// A random model for tests: `n` variables, `m` couplings drawn at random, small integer
/// coefficients for even seeds (ties), arbitrary reals for odd ones.
#[cfg(test)]
pub(crate) fn random_model(n: usize, m: usize, seed: u64) -> Qubo {
    use rand::RngExt;
    let mut r = rng(seed, 7);
    let mut draw = |k: i32| {
        if seed.is_multiple_of(2) {
            f64::from(r.random_range(-k..=k))
        } else {
            r.random_range(-f64::from(k)..f64::from(k))
        }
    };
    let mut b = crate::QuboBuilder::new(n);
    for i in 0..n {
        b.add_linear(i, draw(3));
    }
    let mut r = rng(seed, 8);
    for _ in 0..m {
        let (i, j) = (r.random_range(0..n), r.random_range(0..n));
        if i != j {
            b.add_quadratic(i, j, draw(4));
        }
    }
    b.build().unwrap()
}

/// Checks the starting assignment's length.
pub(crate) fn check_initial(qubo: &Qubo, options: &SolveOptions<'_>) -> Result<(), SolveError> {
    match options.initial {
        Some(x) if x.len() != qubo.num_vars() => Err(SolveError::InitialLength {
            len: x.len(),
            n: qubo.num_vars(),
        }),
        _ => Ok(()),
    }
}

/// Checks a user-given `(hot, cold)` inverse-temperature range.
pub(crate) fn check_beta_range(range: Option<(f64, f64)>) -> Result<(), SolveError> {
    match range {
        Some((hot, cold)) if !(hot > 0.0 && cold >= hot && cold.is_finite()) => {
            Err(SolveError::Config(format!(
                "beta range ({hot}, {cold}) must satisfy 0 < hot <= cold < infinity"
            )))
        }
        _ => Ok(()),
    }
}

/// Bookkeeping shared by the solvers: the best assignment, the budget, the trace.
pub(crate) struct Run<'q> {
    qubo: &'q Qubo,
    start: Instant,
    deadline: Option<Instant>,
    max_sweeps: Option<u64>,
    target: Option<f64>,
    pub(crate) sweeps: u64,
    pub(crate) best: Vec<bool>,
    pub(crate) best_energy: f64,
    trace: Vec<TracePoint>,
    stop: Option<StopReason>,
}

impl<'q> Run<'q> {
    /// A run with a default sweep budget used when the budget sets no limit at all.
    pub(crate) fn new(qubo: &'q Qubo, budget: &Budget, default_sweeps: u64) -> Self {
        let start = Instant::now();
        let max_sweeps = if budget.is_limited() {
            budget.sweeps
        } else {
            Some(default_sweeps)
        };
        Run {
            qubo,
            start,
            deadline: budget.time_limit.and_then(|d| start.checked_add(d)),
            max_sweeps,
            target: budget.target_energy,
            sweeps: 0,
            best: Vec::new(),
            best_energy: f64::INFINITY,
            trace: Vec::new(),
            stop: None,
        }
    }

    pub(crate) fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Time left before the deadline, if there is one.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Sweeps still allowed (`u64::MAX` without a sweep limit).
    pub(crate) fn sweeps_left(&self) -> u64 {
        self.max_sweeps
            .map_or(u64::MAX, |m| m.saturating_sub(self.sweeps))
    }

    pub(crate) fn has_sweep_limit(&self) -> bool {
        self.max_sweeps.is_some()
    }

    pub(crate) fn has_time_limit(&self) -> bool {
        self.deadline.is_some()
    }

    /// Fraction of the time budget used, if there is one.
    pub(crate) fn time_fraction(&self) -> Option<f64> {
        let deadline = self.deadline?;
        let total = deadline.duration_since(self.start).as_secs_f64();
        Some(if total > 0.0 {
            self.elapsed() / total
        } else {
            1.0
        })
    }

    /// Offers an assignment (given its energy as the solver tracked it). Keeps it if better.
    pub(crate) fn offer(&mut self, x: &[bool], energy: f64) {
        if energy < self.best_energy {
            self.best_energy = energy;
            self.best.clear();
            self.best.extend_from_slice(x);
            let seconds = self.elapsed();
            self.trace.push(TracePoint {
                seconds,
                sweeps: self.sweeps,
                energy,
            });
            if self.target.is_some_and(|t| energy <= t) {
                self.stop = Some(StopReason::TargetReached);
            }
        }
    }

    /// Takes over the result of an inner solver run that started now: its trace (shifted to
    /// this run's clock and sweep count), its best assignment, and its sweeps.
    pub(crate) fn absorb(&mut self, sol: &Solution) {
        let (seconds, sweeps) = (self.elapsed() - sol.seconds, self.sweeps);
        let before = self.best_energy;
        if sol.energy < before {
            let shown = sol.trace.iter().filter(|p| p.energy < before);
            self.trace.extend(shown.map(|p| TracePoint {
                seconds: seconds + p.seconds,
                sweeps: sweeps + p.sweeps,
                energy: p.energy,
            }));
            self.best_energy = sol.energy;
            self.best.clone_from(&sol.assignment);
        }
        self.sweeps += sol.sweeps;
        if self.target.is_some_and(|t| self.best_energy <= t) {
            self.stop = Some(StopReason::TargetReached);
        }
        self.should_stop();
    }

    /// Records `k` sweeps of work and checks the limits. Returns `true` when the solver must
    /// stop.
    pub(crate) fn add_sweeps(&mut self, k: u64) -> bool {
        self.sweeps += k;
        self.should_stop()
    }

    /// Whether a limit has been reached (checks the clock).
    pub(crate) fn should_stop(&mut self) -> bool {
        if self.stop.is_some() {
            return true;
        }
        if self.max_sweeps.is_some_and(|m| self.sweeps >= m) {
            self.stop = Some(StopReason::SweepLimit);
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop = Some(StopReason::TimeLimit);
        }
        self.stop.is_some()
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// The solution, its energy recomputed exactly.
    pub(crate) fn finish(mut self, solver: &str) -> Solution {
        if self.best.is_empty() && self.qubo.num_vars() > 0 {
            // Nothing offered (a zero budget): report the all-zero assignment.
            self.best = vec![false; self.qubo.num_vars()];
        }
        let energy = self.qubo.energy(&self.best);
        let seconds = self.elapsed();
        self.trace.push(TracePoint {
            seconds,
            sweeps: self.sweeps,
            energy,
        });
        Solution {
            solver: solver.to_owned(),
            assignment: self.best,
            energy,
            seconds,
            sweeps: self.sweeps,
            stop: self.stop.unwrap_or(StopReason::Completed),
            trace: self.trace,
        }
    }
}

/// The default inverse-temperature range for annealing and tempering, from the model's
/// coefficients in Ising form (`s = 2x - 1`, same energies), where flipping spin `i` changes
/// the energy by twice its effective field `f_i = h_i + sum_j J_ij s_j`:
///
/// * hot: a *typical* uphill move is accepted with probability 1/2. At a random assignment
///   `f_i` has mean `h_i` and variance `sum_j J_ij^2`, so a typical move costs
///   `2 sqrt(h_i^2 + sum_j J_ij^2)`; its mean over the spins sets `beta = ln 2 / that`. (Basing
///   the hot end on the *largest* possible move instead, as D-Wave's samplers do, starts so
///   hot on dense models that the first third of a geometric schedule is a random walk.)
/// * cold: the smallest gap is estimated per spin as twice its smallest non-zero `|h_i|` or
///   `|J_ij|`; with `k` spins sharing the smallest such gap `g`, `beta = ln(k / 0.01) / g`, so
///   that the whole last sweep excites a spin with probability about 1/100 (D-Wave's rule).
///   The cold end thus scales with `ln n`, as it must for the ground state to survive in
///   large models.
pub(crate) fn default_beta_range(qubo: &Qubo) -> (f64, f64) {
    let ising = qubo.to_ising();
    let n = ising.num_spins();
    let mut typical_sum = 0.0;
    let mut typical_count = 0_usize;
    let mut min_gaps: Vec<f64> = Vec::with_capacity(n);
    for i in 0..n {
        let h = ising.fields()[i];
        let mut var = h * h;
        let mut min = if h == 0.0 { f64::INFINITY } else { h.abs() };
        for c in ising.neighbors(i) {
            let j = c.weight.abs();
            var += j * j;
            if j > 0.0 {
                min = min.min(j);
            }
        }
        if var > 0.0 {
            typical_sum += 2.0 * var.sqrt();
            typical_count += 1;
        }
        if min.is_finite() {
            min_gaps.push(min);
        }
    }
    let Some(smallest) = min_gaps.iter().copied().reduce(f64::min) else {
        return (0.1, 1.0);
    };
    let count = min_gaps.iter().filter(|&&g| g == smallest).count();
    let typical = typical_sum / typical_count.max(1) as f64;
    let hot = std::f64::consts::LN_2 / typical;
    let cold = (count as f64 / 0.01).ln() / (2.0 * smallest);
    (hot.min(cold), cold)
}
