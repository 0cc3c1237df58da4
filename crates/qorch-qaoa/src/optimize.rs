//! The QAOA optimizer: initial strategies, classical optimizers, restarts, and the history.

use std::path::Path;
use std::time::{Duration, Instant};

use qorch_qubo::{Graph, Qubo};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::{QaoaParams, QaoaSimulator, Sample, Sense, SimConfig, SimError};

/// The classical optimizer of the angles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Limited-memory BFGS (10 pairs) with a Wolfe line search, on the adjoint gradient.
    /// Every accepted step lowers the objective, so the result is never worse than the start.
    #[default]
    Lbfgs,
    /// Adam (Kingma & Ba 2015) on the adjoint gradient; returns the best point visited.
    Adam,
    /// Nelder-Mead simplex (adaptive coefficients of Gao & Han 2012), without gradients;
    /// returns the best vertex.
    NelderMead,
}

/// Where the optimizer starts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitStrategy {
    /// [`QaoaParams::linear_ramp`] with [`OptimizerConfig::ramp_delta`], scaled by the cost's
    /// [`energy_scale`](crate::CostDiagonal::energy_scale).
    LinearRamp,
    /// INTERP (Zhou et al. 2020): optimize depth 1 from the ramp, then each depth `q + 1` from
    /// [`QaoaParams::interp`] of the optimum at depth `q`, up to `p`.
    #[default]
    Interp,
    /// The fixed angles for 3-regular Max-Cut ([`QaoaParams::fixed_angles_3_regular`]); an
    /// error for depths without a table entry. Meant for Max-Cut with unit weights.
    FixedAngles,
    /// Given angles (their depth is the depth optimized).
    Given(QaoaParams),
}

/// Settings of a [`QaoaOptimizer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The optimizer.
    pub method: Method,
    /// The starting point.
    pub init: InitStrategy,
    /// Total time of the linear ramp (`delta`).
    pub ramp_delta: f64,
    /// Iterations of one optimization run (one start, one depth).
    pub max_iterations: usize,
    /// Stop when the largest gradient component falls below this (L-BFGS, Adam), or the
    /// simplex's spread of values below this (Nelder-Mead).
    pub tolerance: f64,
    /// Extra starts besides the strategy's point: each perturbs it with Gaussian noise of
    /// standard deviation `restart_sigma` (radians, `gamma`s divided by the energy scale).
    pub restarts: usize,
    /// Noise of the restarts.
    pub restart_sigma: f64,
    /// Adam's step size.
    pub learning_rate: f64,
    /// Seed of the restarts' noise.
    pub seed: u64,
    /// Stop after this many circuit evaluations in all (each expectation or gradient).
    pub max_evaluations: Option<u64>,
    /// Stop after this much time.
    pub time_limit: Option<Duration>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            method: Method::Lbfgs,
            init: InitStrategy::Interp,
            ramp_delta: 0.75,
            max_iterations: 200,
            tolerance: 1e-6,
            restarts: 0,
            restart_sigma: 0.1,
            learning_rate: 0.02,
            seed: 0,
            max_evaluations: None,
            time_limit: None,
        }
    }
}

/// One iteration of one optimization run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Which call of [`QaoaOptimizer::optimize`] (0, 1, ...).
    pub run: usize,
    /// Which start within the run (0 = the strategy's point, then the restarts).
    pub start: usize,
    /// The depth optimized.
    pub p: usize,
    /// The iteration (0 = the starting point).
    pub iteration: usize,
    /// The parameters.
    pub params: QaoaParams,
    /// Their expectation `<D>`.
    pub expectation: f64,
    /// The largest gradient component, where the method computes gradients.
    pub gradient_norm: Option<f64>,
}

/// The optimization history: every iteration's parameters and expectation, in order.
///
/// # Examples
///
/// ```
/// use qorch_qaoa::{OptimizerConfig, QaoaOptimizer, SimConfig, History};
/// use qorch_qubo::Graph;
///
/// let ring = Graph::new(6, (0..6).map(|i| (i, (i + 1) % 6, 1.0)).collect()).unwrap();
/// let mut opt = QaoaOptimizer::for_max_cut(&ring, SimConfig::default(), OptimizerConfig::default()).unwrap();
/// let result = opt.optimize(2).unwrap();
/// let json = opt.history().to_json();
/// let back: History = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.records.len(), opt.history().records.len());
/// assert!(back.records.iter().all(|r| r.expectation <= result.expectation + 1e-12));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The records, in the order they were made.
    pub records: Vec<HistoryRecord>,
}

impl History {
    /// The history as pretty-printed JSON.
    ///
    /// # Panics
    ///
    /// Never: the history is plain data (numbers, lists), which always serializes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serializes")
    }

    /// Writes [`to_json`](Self::to_json) to a file.
    ///
    /// # Errors
    ///
    /// Any error creating or writing the file.
    pub fn save_json(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_json() + "\n")
    }
}

/// Why an optimization stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizeStop {
    /// The tolerance was met (or no step could improve further).
    Converged,
    /// The iteration limit of a run was reached.
    MaxIterations,
    /// The evaluation budget ran out.
    EvaluationLimit,
    /// The time limit passed.
    TimeLimit,
}

/// The outcome of [`QaoaOptimizer::optimize`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizeResult {
    /// The best parameters found.
    pub params: QaoaParams,
    /// Their expectation `<D>`.
    pub expectation: f64,
    /// Circuit evaluations spent (expectations and gradients).
    pub evaluations: u64,
    /// Why the last run stopped.
    pub stop: OptimizeStop,
    /// Seconds spent.
    pub seconds: f64,
}

/// The QAOA optimizer: owns a [`QaoaSimulator`] for one cost, chooses and optimizes the
/// angles, keeps the history, and samples solutions.
///
/// # Examples
///
/// ```
/// use qorch_qaoa::{OptimizerConfig, QaoaOptimizer, QaoaParams, Sense, SimConfig};
/// use qorch_qubo::QuboBuilder;
///
/// // Minimize E = -x0 - x1 + 2 x0 x1 + 0.5 x2: optimum E = -1 (one of x0, x1 set, x2 clear).
/// let mut b = QuboBuilder::new(3);
/// b.add_linear(0, -1.0).add_linear(1, -1.0).add_quadratic(0, 1, 2.0).add_linear(2, 0.5);
/// let q = b.build().unwrap();
/// let mut opt = QaoaOptimizer::for_qubo(&q, SimConfig::default(), OptimizerConfig::default()).unwrap();
/// let start = opt.evaluate(&QaoaParams::linear_ramp(3, 0.75, Sense::Minimize, 1.0)).unwrap();
/// let result = opt.optimize(3).unwrap();
/// assert!(result.expectation < start);
/// let best = opt.best_sample(&result.params, 100, 7).unwrap().unwrap();
/// assert_eq!(best.cost, -1.0);
/// assert_eq!(q.energy(&best.assignment), -1.0);
/// ```
#[derive(Debug)]
pub struct QaoaOptimizer {
    sim: QaoaSimulator,
    sense: Sense,
    config: OptimizerConfig,
    history: History,
    runs: usize,
}

/// The objective as the optimizers see it: `sign * <D>`, minimized, with the budget.
struct Objective<'a> {
    sim: &'a mut QaoaSimulator,
    sign: f64,
    deadline: Option<Instant>,
    max_evaluations: Option<u64>,
    start_evaluations: u64,
    stop: Option<OptimizeStop>,
}

impl Objective<'_> {
    fn exhausted(&mut self) -> bool {
        if self.stop.is_some() {
            return true;
        }
        if self
            .max_evaluations
            .is_some_and(|m| self.sim.evaluations() - self.start_evaluations >= m)
        {
            self.stop = Some(OptimizeStop::EvaluationLimit);
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop = Some(OptimizeStop::TimeLimit);
        }
        self.stop.is_some()
    }

    fn value(&mut self, theta: &[f64]) -> Result<f64, SimError> {
        Ok(self.sign * self.sim.expectation(&QaoaParams::from_slice(theta))?)
    }

    fn value_and_gradient(&mut self, theta: &[f64]) -> Result<(f64, Vec<f64>), SimError> {
        let (e, g) = self
            .sim
            .expectation_and_gradient(&QaoaParams::from_slice(theta))?;
        Ok((
            self.sign * e,
            g.to_vec().into_iter().map(|x| self.sign * x).collect(),
        ))
    }
}

impl QaoaOptimizer {
    /// An optimizer for the cost of `sim`, in the given sense.
    pub fn new(sim: QaoaSimulator, sense: Sense, config: OptimizerConfig) -> Self {
        QaoaOptimizer {
            sim,
            sense,
            config,
            history: History::default(),
            runs: 0,
        }
    }

    /// An optimizer that minimizes the QUBO's energy.
    ///
    /// # Errors
    ///
    /// As [`QaoaSimulator::from_qubo`].
    pub fn for_qubo(
        qubo: &Qubo,
        sim: SimConfig,
        config: OptimizerConfig,
    ) -> Result<Self, SimError> {
        Ok(Self::new(
            QaoaSimulator::from_qubo(qubo, sim)?,
            Sense::Minimize,
            config,
        ))
    }

    /// An optimizer that maximizes the cut of the graph.
    ///
    /// # Errors
    ///
    /// As [`QaoaSimulator::for_max_cut`].
    pub fn for_max_cut(
        graph: &Graph,
        sim: SimConfig,
        config: OptimizerConfig,
    ) -> Result<Self, SimError> {
        Ok(Self::new(
            QaoaSimulator::for_max_cut(graph, sim)?,
            Sense::Maximize,
            config,
        ))
    }

    /// The simulator.
    pub fn simulator(&mut self) -> &mut QaoaSimulator {
        &mut self.sim
    }

    /// The sense of the cost.
    pub fn sense(&self) -> Sense {
        self.sense
    }

    /// The settings.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Replaces the settings (for the next [`optimize`](Self::optimize)).
    pub fn set_config(&mut self, config: OptimizerConfig) {
        self.config = config;
    }

    /// The history of every optimization so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The expectation of given angles (not recorded in the history).
    ///
    /// # Errors
    ///
    /// As [`QaoaSimulator::expectation`].
    pub fn evaluate(&mut self, params: &QaoaParams) -> Result<f64, SimError> {
        self.sim.expectation(params)
    }

    /// The best of `shots` samples of the circuit with these angles (see
    /// [`QaoaSimulator::best_sample`]).
    ///
    /// # Errors
    ///
    /// As [`QaoaSimulator::prepare`].
    pub fn best_sample(
        &mut self,
        params: &QaoaParams,
        shots: usize,
        seed: u64,
    ) -> Result<Option<Sample>, SimError> {
        if self.sim.prepared() != Some(params) {
            self.sim.prepare(params)?;
        }
        Ok(self.sim.best_sample(shots, seed, self.sense))
    }

    /// The starting point of depth `p` for `init` (INTERP starts from the ramp).
    ///
    /// # Errors
    ///
    /// [`SimError::Config`] for fixed angles at a depth without a table entry, or given
    /// angles of another depth.
    pub fn initial_params(&self, init: &InitStrategy, p: usize) -> Result<QaoaParams, SimError> {
        let config = OptimizerConfig {
            init: init.clone(),
            ..self.config.clone()
        };
        initial_point(&config, self.sense, p, self.scale())
    }

    /// The cost's energy scale relative to unweighted 3-regular Max-Cut.
    fn scale(&self) -> f64 {
        self.sim.diagonal().energy_scale() / (3_f64.sqrt() / 2.0)
    }

    /// Optimizes the angles of a depth-`p` circuit: from the configured strategy's point and
    /// `restarts` perturbations of it (for INTERP, at every depth on the way to `p`), each
    /// with the configured method; returns the best. Every iteration goes into the history.
    ///
    /// # Errors
    ///
    /// As [`initial_params`](Self::initial_params); [`SimError::Config`] for settings that
    /// cannot work (`p = 0` with INTERP, a non-positive tolerance or step).
    ///
    /// # Panics
    ///
    /// Never: every depth runs at least one start.
    pub fn optimize(&mut self, p: usize) -> Result<OptimizeResult, SimError> {
        let config = self.config.clone();
        if !(config.tolerance > 0.0 && config.learning_rate > 0.0 && config.restart_sigma >= 0.0) {
            return Err(SimError::Config(
                "tolerance and learning rate must be positive".into(),
            ));
        }
        let began = Instant::now();
        let run = self.runs;
        self.runs += 1;
        let first_evaluations = self.sim.evaluations();
        let scale = self.scale();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let depths: Vec<usize> = match config.init {
            InitStrategy::Interp if p == 0 => {
                return Err(SimError::Config(
                    "INTERP needs a depth of at least 1".into(),
                ));
            }
            InitStrategy::Interp => (1..=p).collect(),
            _ => vec![p],
        };
        let mut best: Option<(Vec<f64>, f64)> = None;
        let mut stop = OptimizeStop::Converged;
        let mut objective = Objective {
            sim: &mut self.sim,
            sign: self.sense.sign(),
            deadline: config.time_limit.map(|t| began + t),
            max_evaluations: config.max_evaluations,
            start_evaluations: first_evaluations,
            stop: None,
        };
        for &depth in &depths {
            let center = match (&best, &config.init) {
                (Some((theta, _)), InitStrategy::Interp) => QaoaParams::from_slice(theta).interp(),
                _ => initial_point(&config, self.sense, depth, scale)?,
            };
            let mut depth_best: Option<(Vec<f64>, f64)> = None;
            for start in 0..=config.restarts {
                let mut theta = center.to_vec();
                if start > 0 {
                    for (k, t) in theta.iter_mut().enumerate() {
                        let noise: f64 = StandardNormal.sample(&mut rng);
                        let unit = if k < depth { 1.0 / scale } else { 1.0 };
                        *t += config.restart_sigma * unit * noise;
                    }
                }
                let mut record = |iteration: usize, theta: &[f64], f: f64, g: Option<f64>| {
                    self.history.records.push(HistoryRecord {
                        run,
                        start,
                        p: depth,
                        iteration,
                        params: QaoaParams::from_slice(theta),
                        expectation: self.sense.sign() * f,
                        gradient_norm: g,
                    });
                };
                let (theta, f, why) = match config.method {
                    Method::Lbfgs => lbfgs(&mut objective, theta, &config, &mut record)?,
                    Method::Adam => adam(&mut objective, theta, &config, &mut record)?,
                    Method::NelderMead => {
                        nelder_mead(&mut objective, &theta, &config, scale, &mut record)?
                    }
                };
                stop = why;
                if depth_best.as_ref().is_none_or(|b| f < b.1) {
                    depth_best = Some((theta, f));
                }
                if objective.exhausted() {
                    break;
                }
            }
            best = depth_best;
            if objective.exhausted() {
                stop = objective.stop.unwrap_or(stop);
                // INTERP cut short: the best so far is of a smaller depth; finish at depth p
                // by interpolation so that the result has the depth asked for.
                if let Some((theta, _)) = &best {
                    let mut params = QaoaParams::from_slice(theta);
                    while params.p() < p {
                        params = params.interp();
                    }
                    if params.p() != theta.len() / 2 {
                        let f = objective.sign * objective.sim.expectation(&params)?;
                        best = Some((params.to_vec(), f));
                    }
                }
                break;
            }
        }
        let (theta, f) = best.expect("at least one start ran");
        Ok(OptimizeResult {
            params: QaoaParams::from_slice(&theta),
            expectation: self.sense.sign() * f,
            evaluations: self.sim.evaluations() - first_evaluations,
            stop,
            seconds: began.elapsed().as_secs_f64(),
        })
    }
}

/// The strategy's point at `depth` (INTERP starts from the ramp).
fn initial_point(
    config: &OptimizerConfig,
    sense: Sense,
    depth: usize,
    scale: f64,
) -> Result<QaoaParams, SimError> {
    match &config.init {
        InitStrategy::LinearRamp | InitStrategy::Interp => Ok(QaoaParams::linear_ramp(
            depth,
            config.ramp_delta,
            sense,
            scale,
        )),
        InitStrategy::FixedAngles => QaoaParams::fixed_angles_3_regular(depth).ok_or_else(|| {
            SimError::Config(format!(
                "no fixed angles for p = {depth} (the table covers 1 to 11)"
            ))
        }),
        InitStrategy::Given(params) if params.p() == depth => {
            params.validate()?;
            Ok(params.clone())
        }
        InitStrategy::Given(params) => Err(SimError::Config(format!(
            "the given angles have depth {}, asked to optimize depth {depth}",
            params.p()
        ))),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn inf_norm(g: &[f64]) -> f64 {
    g.iter().fold(0.0_f64, |m, x| m.max(x.abs()))
}

type Outcome = (Vec<f64>, f64, OptimizeStop);

/// L-BFGS with a bracketing line search for the weak Wolfe conditions (Armijo `c1 = 1e-4`,
/// curvature `c2 = 0.9`). Only steps that satisfy the Armijo condition are taken, so the value
/// never rises.
fn lbfgs(
    obj: &mut Objective<'_>,
    mut x: Vec<f64>,
    config: &OptimizerConfig,
    record: &mut impl FnMut(usize, &[f64], f64, Option<f64>),
) -> Result<Outcome, SimError> {
    const MEMORY: usize = 10;
    let (mut f, mut g) = obj.value_and_gradient(&x)?;
    record(0, &x, f, Some(inf_norm(&g)));
    let mut pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::new();
    for iteration in 1..=config.max_iterations {
        if inf_norm(&g) < config.tolerance {
            return Ok((x, f, OptimizeStop::Converged));
        }
        if obj.exhausted() {
            return Ok((x, f, obj.stop.unwrap_or(OptimizeStop::EvaluationLimit)));
        }
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y, rho) in pairs.iter().rev() {
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        let h0 = pairs.back().map_or(1.0, |(s, y, _)| dot(s, y) / dot(y, y));
        for qi in &mut q {
            *qi *= h0;
        }
        for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction: forget the curvature pairs.
            pairs.clear();
            d = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        // First step of a steepest-descent direction: at most 0.1 rad per angle.
        let mut step = if pairs.is_empty() {
            (0.1 / inf_norm(&d)).min(1.0)
        } else {
            1.0
        };
        let (mut lo, mut hi) = (0.0_f64, f64::INFINITY);
        let mut accepted: Option<(Vec<f64>, f64, Vec<f64>)> = None;
        for _ in 0..30 {
            let trial: Vec<f64> = x.iter().zip(&d).map(|(xi, di)| xi + step * di).collect();
            let (ft, gt) = obj.value_and_gradient(&trial)?;
            if ft > f + 1e-4 * step * slope || !ft.is_finite() {
                hi = step;
            } else if dot(&gt, &d) < 0.9 * slope {
                lo = step;
                accepted = Some((trial, ft, gt));
            } else {
                accepted = Some((trial, ft, gt));
                break;
            }
            if obj.exhausted() {
                break;
            }
            step = if hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                2.0 * lo
            };
            if hi.is_finite() && hi - lo < 1e-12 {
                break;
            }
        }
        let Some((xn, fn_, gn)) = accepted else {
            // No decrease along the direction at any step: converged as far as floating
            // point allows.
            return Ok((x, f, OptimizeStop::Converged));
        };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if pairs.len() == MEMORY {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        let improvement = f - fn_;
        (x, f, g) = (xn, fn_, gn);
        record(iteration, &x, f, Some(inf_norm(&g)));
        if improvement <= 1e-15 * f.abs().max(1.0) {
            return Ok((x, f, OptimizeStop::Converged));
        }
    }
    Ok((x, f, OptimizeStop::MaxIterations))
}

/// Adam with the usual moments (0.9, 0.999); returns the best point seen.
fn adam(
    obj: &mut Objective<'_>,
    mut x: Vec<f64>,
    config: &OptimizerConfig,
    record: &mut impl FnMut(usize, &[f64], f64, Option<f64>),
) -> Result<Outcome, SimError> {
    let (b1, b2, eps) = (0.9_f64, 0.999_f64, 1e-8);
    let mut m = vec![0.0; x.len()];
    let mut v = vec![0.0; x.len()];
    let (mut f, mut g) = obj.value_and_gradient(&x)?;
    record(0, &x, f, Some(inf_norm(&g)));
    let mut best = (x.clone(), f);
    for t in 1..=config.max_iterations {
        if inf_norm(&g) < config.tolerance {
            return Ok((best.0, best.1, OptimizeStop::Converged));
        }
        if obj.exhausted() {
            return Ok((
                best.0,
                best.1,
                obj.stop.unwrap_or(OptimizeStop::EvaluationLimit),
            ));
        }
        let t32 = i32::try_from(t).unwrap_or(i32::MAX);
        for k in 0..x.len() {
            m[k] = b1 * m[k] + (1.0 - b1) * g[k];
            v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
            let mh = m[k] / (1.0 - b1.powi(t32));
            let vh = v[k] / (1.0 - b2.powi(t32));
            x[k] -= config.learning_rate * mh / (vh.sqrt() + eps);
        }
        (f, g) = obj.value_and_gradient(&x)?;
        record(t, &x, f, Some(inf_norm(&g)));
        if f < best.1 {
            best = (x.clone(), f);
        }
    }
    Ok((best.0, best.1, OptimizeStop::MaxIterations))
}

/// Nelder-Mead with Gao & Han's dimension-adapted coefficients; the initial simplex steps
/// 0.1 rad along each angle (`gamma`s divided by the energy scale).
fn nelder_mead(
    obj: &mut Objective<'_>,
    x0: &[f64],
    config: &OptimizerConfig,
    scale: f64,
    record: &mut impl FnMut(usize, &[f64], f64, Option<f64>),
) -> Result<Outcome, SimError> {
    let dim = x0.len();
    let p = dim / 2;
    let dim_f = dim.max(1) as f64;
    let (alpha, gamma, rho, sigma) = (
        1.0,
        1.0 + 2.0 / dim_f,
        0.75 - 0.5 / dim_f,
        1.0 - 1.0 / dim_f,
    );
    let f0 = obj.value(x0)?;
    record(0, x0, f0, None);
    let mut simplex = vec![(x0.to_vec(), f0)];
    for k in 0..dim {
        let mut x = x0.to_vec();
        x[k] += if k < p { 0.1 / scale } else { 0.1 };
        let f = obj.value(&x)?;
        simplex.push((x, f));
    }
    let order = |s: &mut Vec<(Vec<f64>, f64)>| s.sort_by(|a, b| a.1.total_cmp(&b.1));
    for iteration in 1..=config.max_iterations {
        order(&mut simplex);
        let spread = simplex[dim].1 - simplex[0].1;
        if spread.abs() < config.tolerance || dim == 0 {
            return Ok((simplex[0].0.clone(), simplex[0].1, OptimizeStop::Converged));
        }
        if obj.exhausted() {
            return Ok((
                simplex[0].0.clone(),
                simplex[0].1,
                obj.stop.unwrap_or(OptimizeStop::EvaluationLimit),
            ));
        }
        let centroid: Vec<f64> = (0..dim)
            .map(|k| simplex[..dim].iter().map(|v| v.0[k]).sum::<f64>() / dim_f)
            .collect();
        let along = |t: f64, worst: &[f64]| -> Vec<f64> {
            centroid
                .iter()
                .zip(worst)
                .map(|(c, w)| c + t * (c - w))
                .collect()
        };
        let worst = simplex[dim].0.clone();
        let xr = along(alpha, &worst);
        let fr = obj.value(&xr)?;
        if fr < simplex[0].1 {
            let xe = along(gamma, &worst);
            let fe = obj.value(&xe)?;
            simplex[dim] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[dim - 1].1 {
            simplex[dim] = (xr, fr);
        } else {
            let (xc, fc) = if fr < simplex[dim].1 {
                let xc = along(rho * alpha, &worst);
                let fc = obj.value(&xc)?;
                (xc, fc)
            } else {
                let xc = along(-rho, &worst);
                let fc = obj.value(&xc)?;
                (xc, fc)
            };
            if fc < simplex[dim].1.min(fr) {
                simplex[dim] = (xc, fc);
            } else {
                let best = simplex[0].0.clone();
                for v in simplex.iter_mut().skip(1) {
                    let x: Vec<f64> = best
                        .iter()
                        .zip(&v.0)
                        .map(|(b, xi)| b + sigma * (xi - b))
                        .collect();
                    let f = obj.value(&x)?;
                    *v = (x, f);
                }
            }
        }
        order(&mut simplex);
        record(iteration, &simplex[0].0, simplex[0].1, None);
    }
    order(&mut simplex);
    Ok((
        simplex[0].0.clone(),
        simplex[0].1,
        OptimizeStop::MaxIterations,
    ))
}
