//! Demand forecasts for predictive allocation: exponential smoothing with prediction intervals.
//!
//! Three models of the exponential-smoothing family, each updated in O(1) per observation:
//!
//! | model | forecast `h` steps ahead | for |
//! |---|---|---|
//! | [`ForecastModel::Ewma`] | `l` | level shifts, no trend |
//! | [`ForecastModel::Holt`] | `l + h b` | linear trend |
//! | [`ForecastModel::HoltWinters`] | `l + h b + s[t + h - m]` | trend and additive season of period `m` |
//!
//! **Prediction intervals** come from the distribution of the model's own one-step-ahead
//! residuals (the last `window` of them): their root mean square `sigma`, widened for the
//! horizon by the model's variance factor `v(h)` (for the additive models, `1 + sum_{j<h}
//! c_j^2` with `c_j = alpha (1 + j beta)`, plus `gamma` at multiples of the period), and
//! either a Student-t quantile with `residuals - 1` degrees of freedom
//! ([`IntervalMethod::StudentT`], via `statrs`) or the residuals' empirical quantiles
//! ([`IntervalMethod::Empirical`]).
//!
//! **Safety margins.** [`SafetyPolicy`] turns a forecast into the amount to request: the
//! upper end of the interval at its confidence level, but at least `min_margin` and at most
//! `max_margin` above the point forecast. [`DemandForecaster`] keeps one model per agent and
//! resource kind and rewrites an agent's [`ResourceRequest`] with it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::{AgentId, KindId, ResourceRequest, ResourceVector};

/// A model of the exponential-smoothing family and its smoothing parameters (each in
/// `(0, 1]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "model")]
pub enum ForecastModel {
    /// Simple exponential smoothing: the level follows the data with weight `alpha`.
    Ewma {
        /// Level smoothing.
        alpha: f64,
    },
    /// Holt's linear trend.
    Holt {
        /// Level smoothing.
        alpha: f64,
        /// Trend smoothing.
        beta: f64,
    },
    /// Holt-Winters with an additive season of `period` steps.
    HoltWinters {
        /// Level smoothing.
        alpha: f64,
        /// Trend smoothing.
        beta: f64,
        /// Season smoothing.
        gamma: f64,
        /// Season length in steps (at least 2).
        period: usize,
    },
}

impl ForecastModel {
    /// Observations needed before the first forecast.
    pub fn warm_up(&self) -> usize {
        match self {
            ForecastModel::Ewma { .. } => 1,
            ForecastModel::Holt { .. } => 2,
            ForecastModel::HoltWinters { period, .. } => 2 * period,
        }
    }

    /// Whether the parameters are valid.
    ///
    /// # Errors
    ///
    /// A description of the invalid parameter.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, x: f64| {
            if x > 0.0 && x <= 1.0 {
                Ok(())
            } else {
                Err(format!("{name} must lie in (0, 1], got {x}"))
            }
        };
        match *self {
            ForecastModel::Ewma { alpha } => unit("alpha", alpha),
            ForecastModel::Holt { alpha, beta } => unit("alpha", alpha).and(unit("beta", beta)),
            ForecastModel::HoltWinters {
                alpha,
                beta,
                gamma,
                period,
            } => {
                unit("alpha", alpha)?;
                unit("beta", beta)?;
                unit("gamma", gamma)?;
                if period < 2 {
                    return Err(format!("period must be at least 2, got {period}"));
                }
                Ok(())
            }
        }
    }

    /// The variance factor `v(h)` of the `h`-step forecast error relative to the one-step
    /// error (Hyndman et al., *Forecasting with Exponential Smoothing*, 2008, table 6.1, for
    /// the additive-error models).
    pub fn variance_factor(&self, h: usize) -> f64 {
        let mut v = 1.0;
        for j in 1..h {
            let jf = j as f64;
            let c = match *self {
                ForecastModel::Ewma { alpha } => alpha,
                ForecastModel::Holt { alpha, beta } => alpha * (1.0 + jf * beta),
                ForecastModel::HoltWinters {
                    alpha,
                    beta,
                    gamma,
                    period,
                } => alpha * (1.0 + jf * beta) + if j % period == 0 { gamma } else { 0.0 },
            };
            v += c * c;
        }
        v
    }

    /// Among `candidates`, the model with the smallest mean squared one-step error on
    /// `series` (after each model's warm-up). `None` if no candidate can forecast the series.
    pub fn select(series: &[f64], candidates: &[ForecastModel]) -> Option<ForecastModel> {
        candidates
            .iter()
            .filter(|m| m.validate().is_ok() && series.len() > m.warm_up())
            .map(|m| {
                let mut f = SeriesForecaster::new(*m, series.len());
                for &y in series {
                    f.observe(y);
                }
                let r = f.residuals();
                let mse = r.iter().map(|e| e * e).sum::<f64>() / r.len().max(1) as f64;
                (mse, *m)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, m)| m)
    }
}

/// How prediction intervals are computed from the residuals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    /// Student-t quantiles scaled by the residuals' root mean square.
    #[default]
    StudentT,
    /// Empirical quantiles of the residuals (needs about 20 residuals to mean much).
    Empirical,
}

/// A forecast with its prediction interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// The point forecast.
    pub point: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end of the interval.
    pub upper: f64,
}

/// One time series and its model state.
///
/// # Examples
///
/// ```
/// use qorch_resources::{ForecastModel, SeriesForecaster};
///
/// let mut f = SeriesForecaster::new(ForecastModel::Holt { alpha: 0.5, beta: 0.3 }, 50);
/// for t in 0..30 {
///     f.observe(10.0 + 2.0 * t as f64);
/// }
/// // A clean trend is followed exactly: the next value is 70.
/// assert!((f.forecast(1).unwrap() - 70.0).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesForecaster {
    model: ForecastModel,
    /// Observations kept until the model is initialized.
    warm: Vec<f64>,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    /// Position of the next observation in the season.
    phase: usize,
    initialized: bool,
    observations: u64,
    residuals: VecDeque<f64>,
    window: usize,
}

impl SeriesForecaster {
    /// A forecaster keeping the last `window` residuals (at least 2).
    ///
    /// # Panics
    ///
    /// If the model's parameters are invalid (see [`ForecastModel::validate`]).
    pub fn new(model: ForecastModel, window: usize) -> Self {
        if let Err(e) = model.validate() {
            panic!("invalid forecast model: {e}");
        }
        SeriesForecaster {
            model,
            warm: Vec::new(),
            level: 0.0,
            trend: 0.0,
            season: Vec::new(),
            phase: 0,
            initialized: false,
            observations: 0,
            residuals: VecDeque::new(),
            window: window.max(2),
        }
    }

    /// The model.
    pub fn model(&self) -> ForecastModel {
        self.model
    }

    /// Observations seen.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// The one-step-ahead residuals kept (observation minus forecast), oldest first.
    pub fn residuals(&self) -> Vec<f64> {
        self.residuals.iter().copied().collect()
    }

    fn initialize(&mut self) {
        let w = &self.warm;
        match self.model {
            ForecastModel::Ewma { .. } => self.level = w[0],
            ForecastModel::Holt { .. } => {
                self.level = w[1];
                self.trend = w[1] - w[0];
            }
            ForecastModel::HoltWinters { period, .. } => {
                let m = period;
                let mean1 = w[..m].iter().sum::<f64>() / m as f64;
                let mean2 = w[m..2 * m].iter().sum::<f64>() / m as f64;
                let trend = (mean2 - mean1) / m as f64;
                // Seasonal indices: deviations from the trend line, averaged over both periods.
                self.season = (0..m)
                    .map(|i| {
                        let d1 = w[i] - (mean1 + (i as f64 - (m as f64 - 1.0) / 2.0) * trend);
                        let d2 = w[m + i] - (mean2 + (i as f64 - (m as f64 - 1.0) / 2.0) * trend);
                        f64::midpoint(d1, d2)
                    })
                    .collect();
                // Level at the last warm-up observation, net of its season.
                self.level = mean2 + (m as f64 - 1.0) / 2.0 * trend;
                self.trend = trend;
                self.phase = 0;
            }
        }
        self.initialized = true;
        self.warm.clear();
    }

    /// Adds the next observation (non-finite values are ignored).
    pub fn observe(&mut self, y: f64) {
        if !y.is_finite() {
            return;
        }
        self.observations += 1;
        if !self.initialized {
            self.warm.push(y);
            if self.warm.len() >= self.model.warm_up() {
                self.initialize();
            }
            return;
        }
        let Some(f) = self.forecast(1) else {
            return;
        };
        if self.residuals.len() == self.window {
            self.residuals.pop_front();
        }
        self.residuals.push_back(y - f);
        match self.model {
            ForecastModel::Ewma { alpha } => self.level += alpha * (y - self.level),
            ForecastModel::Holt { alpha, beta } => {
                let prev = self.level;
                self.level = alpha * y + (1.0 - alpha) * (prev + self.trend);
                self.trend = beta * (self.level - prev) + (1.0 - beta) * self.trend;
            }
            ForecastModel::HoltWinters {
                alpha,
                beta,
                gamma,
                period,
            } => {
                let s = self.season[self.phase];
                let prev = self.level;
                self.level = alpha * (y - s) + (1.0 - alpha) * (prev + self.trend);
                self.trend = beta * (self.level - prev) + (1.0 - beta) * self.trend;
                self.season[self.phase] = gamma * (y - prev - self.trend) + (1.0 - gamma) * s;
                self.phase = (self.phase + 1) % period;
            }
        }
    }

    /// The point forecast `h >= 1` steps ahead, once the model has seen its warm-up.
    pub fn forecast(&self, h: usize) -> Option<f64> {
        if !self.initialized || h == 0 {
            return None;
        }
        let hf = h as f64;
        Some(match self.model {
            ForecastModel::Ewma { .. } => self.level,
            ForecastModel::Holt { .. } => self.level + hf * self.trend,
            ForecastModel::HoltWinters { period, .. } => {
                self.level + hf * self.trend + self.season[(self.phase + h - 1) % period]
            }
        })
    }

    /// The forecast `h` steps ahead with a prediction interval at confidence `level`
    /// (for example 0.9). Needs at least 3 residuals.
    ///
    /// # Panics
    ///
    /// If `level` is not in `(0, 1)`.
    pub fn predict(&self, h: usize, level: f64, method: IntervalMethod) -> Option<Forecast> {
        assert!(
            level > 0.0 && level < 1.0,
            "confidence level must lie in (0, 1)"
        );
        let point = self.forecast(h)?;
        let n = self.residuals.len();
        if n < MIN_INTERVAL_RESIDUALS {
            return None;
        }
        let widen = self.model.variance_factor(h).sqrt();
        let (lo, hi) = match method {
            IntervalMethod::StudentT => {
                let sigma = (self.residuals.iter().map(|e| e * e).sum::<f64>() / n as f64).sqrt();
                let t = t_quantile(n - 1, 0.5 + level / 2.0);
                (-t * sigma, t * sigma)
            }
            IntervalMethod::Empirical => {
                let mut r: Vec<f64> = self.residuals.iter().copied().collect();
                r.sort_by(f64::total_cmp);
                let q = |p: f64| {
                    let x = p * (n - 1) as f64;
                    let (i, frac) = (x.floor() as usize, x - x.floor());
                    r[i] + frac * (r[(i + 1).min(n - 1)] - r[i])
                };
                (q(0.5 - level / 2.0), q(0.5 + level / 2.0))
            }
        };
        Some(Forecast {
            point,
            lower: point + widen * lo,
            upper: point + widen * hi,
        })
    }

    /// The one-step residuals' squared sum, their count and the series' current level
    /// (magnitude); `None` without residuals or at a level of 0.
    pub fn residual_spread(&self) -> Option<(f64, usize, f64)> {
        let level = self.level.abs();
        if self.residuals.is_empty() || !self.initialized || level < f64::MIN_POSITIVE {
            return None;
        }
        let sum = self.residuals.iter().map(|e| e * e).sum::<f64>();
        (sum.is_finite() && level.is_finite()).then_some((sum, self.residuals.len(), level))
    }

    /// As [`predict`](Self::predict), but a series whose own residuals are too few for an
    /// interval (fewer than 3) borrows the spread of many others, relative to its point
    /// forecast: `point +- t * sigma * |point|`, with `sigma` from `pooled` (symmetric,
    /// whatever the method). `None` before the model's warm-up, or where neither the series
    /// nor `pooled` has enough residuals.
    ///
    /// # Panics
    ///
    /// If `level` is not in `(0, 1)`.
    pub fn predict_pooled(
        &self,
        h: usize,
        level: f64,
        method: IntervalMethod,
        pooled: &PooledSpread,
    ) -> Option<Forecast> {
        if self.residuals.len() >= MIN_INTERVAL_RESIDUALS {
            return self.predict(h, level, method);
        }
        let point = self.forecast(h)?;
        let (sigma, n) = (pooled.sigma()?, pooled.residuals());
        assert!(
            level > 0.0 && level < 1.0,
            "confidence level must lie in (0, 1)"
        );
        let widen = self.model.variance_factor(h).sqrt();
        // Beyond a few hundred degrees of freedom t is the normal quantile to 3 digits;
        // capping keeps the quantile cache small while the pooled count grows.
        let t = t_quantile((n - 1).min(512), 0.5 + level / 2.0);
        let half = widen * t * sigma * point.abs();
        Some(Forecast {
            point,
            lower: point - half,
            upper: point + half,
        })
    }
}

/// Residuals a series needs for an interval of its own.
const MIN_INTERVAL_RESIDUALS: usize = 3;

/// One-step residual spread pooled over many series, relative to each series' level: what a
/// series whose history is too short for its own interval borrows (a new agent, or every
/// agent in the first rounds). Series of one kind of demand under one workload share their
/// relative noise, so the pooled figure is a fair prior.
///
/// ```
/// use qorch_resources::{ForecastModel, PooledSpread, SeriesForecaster};
///
/// let mut pooled = PooledSpread::default();
/// for a in 0..40 {
///     let mut f = SeriesForecaster::new(ForecastModel::Ewma { alpha: 0.5 }, 8);
///     for t in 0..3 {
///         f.observe(100.0 * f64::from(a + 1) * if (a + t) % 2 == 0 { 1.05 } else { 0.95 });
///     }
///     pooled.add(&f);
/// }
/// assert!(pooled.sigma().unwrap() > 0.05);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PooledSpread {
    /// Squared residuals, summed over the series.
    residuals: f64,
    /// Each series' squared level times its residual count, summed.
    levels: f64,
    n: usize,
}

impl PooledSpread {
    /// Residuals needed before the pooled spread is used.
    pub const MIN_RESIDUALS: usize = 30;

    /// Adds a series' residuals.
    pub fn add(&mut self, series: &SeriesForecaster) {
        if let Some((sum, n, level)) = series.residual_spread() {
            let levels = level * level * n as f64;
            if (self.residuals + sum).is_finite() && (self.levels + levels).is_finite() {
                self.residuals += sum;
                self.levels += levels;
                self.n += n;
            }
        }
    }

    /// Residuals pooled.
    pub fn residuals(&self) -> usize {
        self.n
    }

    /// The pooled relative standard deviation, `sqrt(sum e^2 / sum (n level^2))`, once
    /// [`MIN_RESIDUALS`](Self::MIN_RESIDUALS) residuals are in. A ratio of sums, not a mean
    /// of ratios: a series whose level is near zero weighs as little as its level, instead
    /// of blowing up everyone's intervals.
    pub fn sigma(&self) -> Option<f64> {
        (self.n >= Self::MIN_RESIDUALS && self.levels > 0.0)
            .then(|| (self.residuals / self.levels).sqrt())
    }
}

/// The `p`-quantile of Student's t with `dof` degrees of freedom (at least 1).
///
/// The inverse CDF is iterative and costs microseconds, while a forecaster asks for the same
/// few quantiles again and again (its window bounds the degrees of freedom, and the level is
/// a setting): the last ones computed on this thread are kept.
fn t_quantile(dof: usize, p: f64) -> f64 {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<Vec<(usize, u64, f64)>> = const { RefCell::new(Vec::new()) };
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(&(_, _, t)) = cache
            .iter()
            .find(|&&(d, q, _)| d == dof && q == p.to_bits())
        {
            return t;
        }
        let t = StudentsT::new(0.0, 1.0, dof.max(1) as f64)
            .expect("positive degrees of freedom")
            .inverse_cdf(p);
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.push((dof, p.to_bits(), t));
        t
    })
}

/// Mean absolute percentage error, in percent, over the pairs whose actual value is not zero
/// (0 if there are none).
///
/// ```
/// let m = qorch_resources::mape(&[100.0, 200.0], &[110.0, 190.0]);
/// assert!((m - 7.5).abs() < 1e-12);
/// ```
pub fn mape(actual: &[f64], forecast: &[f64]) -> f64 {
    let (sum, n) = actual
        .iter()
        .zip(forecast)
        .filter(|(a, _)| **a != 0.0)
        .fold((0.0, 0_usize), |(s, n), (a, f)| {
            (s + ((a - f) / a).abs(), n + 1)
        });
    if n == 0 { 0.0 } else { 100.0 * sum / n as f64 }
}

/// How much head-room to request above a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SafetyPolicy {
    /// Confidence level of the prediction interval whose upper end is requested.
    pub level: f64,
    /// Steps ahead to plan for (the allocation holds until the next round).
    pub horizon: usize,
    /// Least margin above the point forecast, as a fraction of it.
    pub min_margin: f64,
    /// Largest margin above the point forecast, as a fraction of it.
    pub max_margin: f64,
    /// How the interval is computed.
    pub method: IntervalMethod,
}

impl Default for SafetyPolicy {
    fn default() -> Self {
        SafetyPolicy {
            level: 0.9,
            horizon: 1,
            min_margin: 0.05,
            max_margin: 0.5,
            method: IntervalMethod::StudentT,
        }
    }
}

impl SafetyPolicy {
    /// The amount to plan for, given a forecast: the interval's upper end, clamped to
    /// `[point (1 + min_margin), point (1 + max_margin)]`, and never negative.
    pub fn amount(&self, f: &Forecast) -> f64 {
        let point = f.point.max(0.0);
        f.upper
            .clamp(
                point * (1.0 + self.min_margin),
                point * (1.0 + self.max_margin),
            )
            .max(0.0)
    }
}

/// A forecast of an agent's demand vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemandForecast {
    /// Point forecasts, per kind.
    pub point: ResourceVector,
    /// Lower ends of the intervals.
    pub lower: ResourceVector,
    /// Upper ends of the intervals.
    pub upper: ResourceVector,
}

/// Per-agent, per-kind demand forecasts.
///
/// # Examples
///
/// ```
/// use qorch_resources::{
///     AgentId, DemandForecaster, ForecastModel, PoolFilter, ResourceRequest, ResourceVector,
///     SafetyPolicy,
/// };
///
/// let mut f = DemandForecaster::new(ForecastModel::Holt { alpha: 0.5, beta: 0.2 }, 32);
/// for t in 0..20 {
///     let cpu = 4.0 + 0.5 * t as f64 + if t % 2 == 0 { 0.2 } else { -0.2 };
///     f.observe(AgentId(1), &ResourceVector::from(vec![cpu]));
/// }
/// let base = ResourceRequest::exact(ResourceVector::from(vec![1.0]));
/// let r = f.predicted_request(AgentId(1), &base, &SafetyPolicy::default());
/// // The next demand is about 14; the request plans for it with a margin.
/// assert!(r.desired.amounts()[0] > 14.0 && r.desired.amounts()[0] < 16.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemandForecaster {
    model: ForecastModel,
    window: usize,
    agents: BTreeMap<AgentId, Vec<SeriesForecaster>>,
}

impl DemandForecaster {
    /// Forecasts with `model` for every agent and kind, keeping `window` residuals each.
    ///
    /// # Panics
    ///
    /// If the model's parameters are invalid.
    pub fn new(model: ForecastModel, window: usize) -> Self {
        if let Err(e) = model.validate() {
            panic!("invalid forecast model: {e}");
        }
        DemandForecaster {
            model,
            window,
            agents: BTreeMap::new(),
        }
    }

    /// Records an agent's observed demand.
    pub fn observe(&mut self, agent: AgentId, demand: &ResourceVector) {
        let series = self.agents.entry(agent).or_default();
        while series.len() < demand.len() {
            series.push(SeriesForecaster::new(self.model, self.window));
        }
        for (k, s) in series.iter_mut().enumerate() {
            s.observe(demand.get(KindId(k as u16)));
        }
    }

    /// Forgets an agent.
    pub fn remove(&mut self, agent: AgentId) {
        self.agents.remove(&agent);
    }

    /// The agent's forecast `h` steps ahead with intervals at `level`, once every kind has
    /// enough history.
    pub fn forecast(
        &self,
        agent: AgentId,
        h: usize,
        level: f64,
        method: IntervalMethod,
    ) -> Option<DemandForecast> {
        let series = self.agents.get(&agent)?;
        let fs: Option<Vec<Forecast>> =
            series.iter().map(|s| s.predict(h, level, method)).collect();
        let fs = fs?;
        let pick =
            |g: fn(&Forecast) -> f64| ResourceVector::from(fs.iter().map(g).collect::<Vec<f64>>());
        Some(DemandForecast {
            point: pick(|f| f.point),
            lower: pick(|f| f.lower),
            upper: pick(|f| f.upper),
        })
    }

    /// Per kind, the relative residual spread pooled over every agent.
    pub fn pooled_spread(&self) -> Vec<PooledSpread> {
        let mut pooled: Vec<PooledSpread> = Vec::new();
        for series in self.agents.values() {
            if pooled.len() < series.len() {
                pooled.resize(series.len(), PooledSpread::default());
            }
            for (p, s) in pooled.iter_mut().zip(series) {
                p.add(s);
            }
        }
        pooled
    }

    /// As [`forecast`](Self::forecast), but a kind whose own history is too short for an
    /// interval borrows `pooled[kind]` ([`SeriesForecaster::predict_pooled`]); written into
    /// `out` (cleared first), one [`Forecast`] per kind, without allocating once `out` has
    /// grown. `false` (and `out` cleared) where the agent has no forecast.
    pub fn forecast_pooled_into(
        &self,
        agent: AgentId,
        h: usize,
        level: f64,
        method: IntervalMethod,
        pooled: &[PooledSpread],
        out: &mut Vec<Forecast>,
    ) -> bool {
        out.clear();
        let Some(series) = self.agents.get(&agent) else {
            return false;
        };
        let none = PooledSpread::default();
        for (k, s) in series.iter().enumerate() {
            let Some(f) = s.predict_pooled(h, level, method, pooled.get(k).unwrap_or(&none)) else {
                out.clear();
                return false;
            };
            out.push(f);
        }
        true
    }

    /// `base` with its desired amount replaced by the forecast under `policy` (never below
    /// the minimum); `base` unchanged while the agent's history is too short.
    pub fn predicted_request(
        &self,
        agent: AgentId,
        base: &ResourceRequest,
        policy: &SafetyPolicy,
    ) -> ResourceRequest {
        let Some(f) = self.forecast(agent, policy.horizon.max(1), policy.level, policy.method)
        else {
            return base.clone();
        };
        let amounts: Vec<f64> = (0..f.point.len())
            .map(|k| {
                let fk = Forecast {
                    point: f.point.amounts()[k],
                    lower: f.lower.amounts()[k],
                    upper: f.upper.amounts()[k],
                };
                policy.amount(&fk)
            })
            .collect();
        let desired = ResourceVector::from(amounts).max(&base.min);
        ResourceRequest {
            desired,
            ..base.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    use super::*;

    #[test]
    fn a_series_near_zero_does_not_widen_the_pooled_spread() {
        let series = |scale: f64| {
            let mut f = SeriesForecaster::new(ForecastModel::Ewma { alpha: 0.5 }, 8);
            for t in 0..6 {
                f.observe(scale * if t % 2 == 0 { 1.05 } else { 0.95 });
            }
            f
        };
        let mut pooled = PooledSpread::default();
        for _ in 0..20 {
            pooled.add(&series(100.0));
        }
        let before = pooled.sigma().unwrap();
        // A series at a level of 1e-9 with noise of 1e-3 relative to nothing: 1e6 times its
        // level. Weighted by its level, it changes nothing.
        let mut tiny = SeriesForecaster::new(ForecastModel::Ewma { alpha: 0.5 }, 8);
        for t in 0..6 {
            tiny.observe(if t % 2 == 0 { 1e-9 + 1e-3 } else { 1e-9 });
        }
        pooled.add(&tiny);
        let after = pooled.sigma().unwrap();
        assert!(
            (after - before).abs() < 0.01 * before,
            "{before} -> {after}"
        );
        assert!(before > 0.05 && before < 0.2, "{before}");
    }

    /// One-step-ahead MAPE of `model` over `series` after `skip` observations, and the
    /// fraction of observations inside the `level` interval.
    fn evaluate(model: ForecastModel, series: &[f64], skip: usize, level: f64) -> (f64, f64) {
        let mut f = SeriesForecaster::new(model, 60);
        let (mut actual, mut predicted, mut inside, mut n) = (Vec::new(), Vec::new(), 0, 0);
        for (t, &y) in series.iter().enumerate() {
            if t >= skip {
                let p = f.predict(1, level, IntervalMethod::StudentT).unwrap();
                actual.push(y);
                predicted.push(p.point);
                n += 1;
                if p.lower <= y && y <= p.upper {
                    inside += 1;
                }
            }
            f.observe(y);
        }
        (mape(&actual, &predicted), f64::from(inside) / f64::from(n))
    }

    fn noisy(n: usize, seed: u64, sd: f64, f: impl Fn(f64) -> f64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, sd).unwrap();
        (0..n)
            .map(|t| f(t as f64) + noise.sample(&mut rng))
            .collect()
    }

    #[test]
    fn holt_tracks_a_trend_that_ewma_lags() {
        for seed in 0..5 {
            let series = noisy(300, seed, 2.0, |t| 100.0 + 2.0 * t);
            let holt = ForecastModel::Holt {
                alpha: 0.3,
                beta: 0.1,
            };
            let (holt_mape, coverage) = evaluate(holt, &series, 40, 0.9);
            let (ewma_mape, _) = evaluate(ForecastModel::Ewma { alpha: 0.3 }, &series, 40, 0.9);
            assert!(holt_mape < 1.5, "seed {seed}: Holt MAPE {holt_mape}");
            assert!(
                ewma_mape > 2.0 * holt_mape,
                "seed {seed}: EWMA {ewma_mape} vs Holt {holt_mape}"
            );
            assert!(
                (0.8..=0.97).contains(&coverage),
                "seed {seed}: coverage {coverage}"
            );
        }
    }

    #[test]
    fn holt_winters_captures_a_season() {
        for seed in 0..5 {
            let series = noisy(360, seed, 3.0, |t| {
                200.0 + 0.5 * t + 30.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin()
            });
            let hw = ForecastModel::HoltWinters {
                alpha: 0.2,
                beta: 0.05,
                gamma: 0.3,
                period: 12,
            };
            let (hw_mape, coverage) = evaluate(hw, &series, 48, 0.9);
            let (holt_mape, _) = evaluate(
                ForecastModel::Holt {
                    alpha: 0.3,
                    beta: 0.1,
                },
                &series,
                48,
                0.9,
            );
            assert!(hw_mape < 1.5, "seed {seed}: Holt-Winters MAPE {hw_mape}");
            assert!(
                holt_mape > 2.0 * hw_mape,
                "seed {seed}: Holt {holt_mape} vs HW {hw_mape}"
            );
            assert!(
                (0.8..=0.97).contains(&coverage),
                "seed {seed}: coverage {coverage}"
            );
        }
    }

    #[test]
    fn selection_prefers_the_model_that_fits() {
        let trend = noisy(200, 9, 1.0, |t| 50.0 + 1.5 * t);
        let candidates = [
            ForecastModel::Ewma { alpha: 0.3 },
            ForecastModel::Holt {
                alpha: 0.3,
                beta: 0.1,
            },
        ];
        assert!(matches!(
            ForecastModel::select(&trend, &candidates),
            Some(ForecastModel::Holt { .. })
        ));
        let flat = noisy(200, 9, 1.0, |_| 50.0);
        assert!(matches!(
            ForecastModel::select(&flat, &candidates),
            Some(ForecastModel::Ewma { .. })
        ));
    }

    #[test]
    fn intervals_widen_with_the_horizon_and_empirical_agrees() {
        let series = noisy(200, 3, 2.0, |t| 10.0 + 0.3 * t);
        let mut f = SeriesForecaster::new(
            ForecastModel::Holt {
                alpha: 0.4,
                beta: 0.1,
            },
            100,
        );
        for &y in &series {
            f.observe(y);
        }
        let w = |h| {
            let p = f.predict(h, 0.9, IntervalMethod::StudentT).unwrap();
            p.upper - p.lower
        };
        assert!(w(1) < w(3) && w(3) < w(10));
        let t = f.predict(1, 0.9, IntervalMethod::StudentT).unwrap();
        let e = f.predict(1, 0.9, IntervalMethod::Empirical).unwrap();
        let (wt, we) = (t.upper - t.lower, e.upper - e.lower);
        assert!((wt - we).abs() < 0.3 * wt, "t {wt} empirical {we}");
    }

    #[test]
    fn safety_margin_is_clamped() {
        let p = SafetyPolicy::default();
        let wide = Forecast {
            point: 10.0,
            lower: 0.0,
            upper: 100.0,
        };
        assert_eq!(p.amount(&wide), 15.0);
        let narrow = Forecast {
            point: 10.0,
            lower: 9.9,
            upper: 10.1,
        };
        assert!((p.amount(&narrow) - 10.5).abs() < 1e-12);
        let inside = Forecast {
            point: 10.0,
            lower: 8.0,
            upper: 12.0,
        };
        assert_eq!(p.amount(&inside), 12.0);
    }

    #[test]
    fn short_history_leaves_the_request_alone() {
        let mut f = DemandForecaster::new(ForecastModel::Ewma { alpha: 0.5 }, 10);
        let base = ResourceRequest::exact(ResourceVector::from(vec![3.0]));
        f.observe(AgentId(1), &ResourceVector::from(vec![5.0]));
        assert_eq!(
            f.predicted_request(AgentId(1), &base, &SafetyPolicy::default()),
            base
        );
        assert_eq!(
            f.predicted_request(AgentId(2), &base, &SafetyPolicy::default()),
            base
        );
    }
}
