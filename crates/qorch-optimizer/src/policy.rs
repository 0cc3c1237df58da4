//! What a round allocates for: the demand the agents report now (reactive), or the demand
//! forecast for the next round (predictive); and how well the allocation in force served
//! the demand that came.
//!
//! A round's grants hold until the next round, so what matters is whether they cover the
//! demand the agents report *then*. Every round therefore first measures the allocation in
//! force (the previous round's grants) against the demand just reported
//! ([`Served`]): the share left unmet, the agents it fell short of (SLA violations), and,
//! under the predictive policy, the share of demand that fell inside the previous round's
//! prediction intervals.
//!
//! Under [`AllocationPolicy::Predictive`], each agent's reported demand is observed by a
//! [`DemandForecaster`], and the agent's request is replaced by the upper end of the
//! one-round-ahead prediction interval at the configured level, clamped to
//! `[point (1 + min_margin), point (1 + max_margin)]` ([`SafetyPolicy::amount`]) and never
//! below the agent's minimum. An agent whose history is still shorter than the model's
//! warm-up keeps its reported request (reactive). An agent past the warm-up whose own
//! residuals are still too few for an interval (fewer than 3) borrows the residual spread
//! of all agents, relative to their levels ([`qorch_resources::PooledSpread`]), once 30
//! residuals are pooled: in a run where every agent starts together, intervals begin at the
//! third report instead of the fifth.

use std::collections::HashMap;

use qorch_protocol::AgentId;
use qorch_resources::{
    Allocation, DemandForecaster, Forecast, ForecastModel, Grant, IntervalMethod, Pool, PoolId,
    SafetyPolicy,
};
use qorch_runtime::{ComponentStatus, RoundReport};
use serde::{Deserialize, Serialize};

/// Relative tolerance under which a grant counts as covering a demand.
const COVER_TOLERANCE: f64 = 1e-9;

/// What a round allocates for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum AllocationPolicy {
    /// The demand each agent reports at the round (the baseline).
    #[default]
    Reactive,
    /// The forecast of each agent's demand at the next round.
    Predictive(Predictive),
}

impl AllocationPolicy {
    /// `"reactive"` or `"predictive"`.
    pub fn name(&self) -> &'static str {
        match self {
            AllocationPolicy::Reactive => "reactive",
            AllocationPolicy::Predictive(_) => "predictive",
        }
    }

    /// Whether the settings are usable.
    ///
    /// # Errors
    ///
    /// A description of the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            AllocationPolicy::Reactive => Ok(()),
            AllocationPolicy::Predictive(p) => p.validate(),
        }
    }
}

/// Settings of the predictive policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictive {
    /// The forecast model of every agent's demand, per kind.
    pub model: ForecastModel,
    /// One-step residuals kept per agent and kind (for the intervals).
    pub window: usize,
    /// The interval's level, the margins and the interval method.
    pub safety: SafetyPolicy,
    /// Share of the pools' total capacity, per kind, that the requests may fill with
    /// head-room above the reported demand, in (0, 1]. Below 1 the solver keeps room to
    /// pack (at 1 the requests fill the pools exactly, and the packing costs efficiency and
    /// churn).
    pub fill: f64,
    /// Share of each pool's capacity, per kind, that the grants may fill once the round is
    /// solved, topped up toward the head-room each agent would plan for, in [0, 1] (0: no
    /// top-up). The top-up moves nobody: it uses only the room the placement left.
    pub top_up: f64,
}

impl Default for Predictive {
    fn default() -> Self {
        Predictive {
            model: ForecastModel::Holt {
                alpha: 0.5,
                beta: 0.3,
            },
            window: 16,
            safety: SafetyPolicy {
                level: 0.9,
                horizon: 1,
                min_margin: 0.0,
                max_margin: 0.5,
                method: IntervalMethod::StudentT,
            },
            fill: 0.92,
            top_up: 1.0,
        }
    }
}

impl Predictive {
    /// The default settings with the interval at `level`.
    pub fn with_level(level: f64) -> Self {
        let mut p = Predictive::default();
        p.safety.level = level;
        p
    }

    /// Whether the settings are usable.
    ///
    /// # Errors
    ///
    /// A description of the first invalid setting.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        let s = &self.safety;
        if !(s.level > 0.0 && s.level < 1.0) {
            return Err(format!("level must lie in (0, 1), got {}", s.level));
        }
        if !(2..=4096).contains(&self.window) {
            return Err(format!("window must lie in [2, 4096], got {}", self.window));
        }
        if !(s.min_margin >= 0.0 && s.max_margin >= s.min_margin && s.max_margin <= 100.0) {
            return Err(format!(
                "margins must satisfy 0 <= min_margin <= max_margin <= 100, got {} and {}",
                s.min_margin, s.max_margin
            ));
        }
        if !(self.fill > 0.0 && self.fill <= 1.0) {
            return Err(format!("fill must lie in (0, 1], got {}", self.fill));
        }
        if !(0.0..=1.0).contains(&self.top_up) {
            return Err(format!("top_up must lie in [0, 1], got {}", self.top_up));
        }
        if s.horizon == 0 || s.horizon > 64 {
            return Err(format!("horizon must lie in [1, 64], got {}", s.horizon));
        }
        Ok(())
    }
}

/// How the allocation in force served the demand reported at a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// Share of the reported demand (summed over agents and kinds) that the grants in force
    /// did not cover.
    pub unmet: f64,
    /// Agents whose grant in force fell short of their reported demand in some kind.
    pub sla_violations: u64,
    /// Share of (agent, kind) demands inside the previous round's prediction interval;
    /// `None` without forecasts.
    pub forecast_coverage: Option<f64>,
}

/// The predictive policy's memory: every agent's forecaster and its last intervals.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    forecaster: Option<DemandForecaster>,
    /// The last round's intervals: per agent, where its kinds start in `bounds`.
    intervals: HashMap<AgentId, usize>,
    /// `(lower, upper)` per agent and kind, agent after agent.
    bounds: Vec<(f64, f64)>,
    /// `(point, want)` per agent and kind, beside `bounds`: the point forecast and the
    /// amount the agent would plan for with room to spare.
    targets: Vec<(f64, f64)>,
    /// Agents whose request was replaced by a forecast in the last round.
    pub predicted_agents: usize,
}

/// The agents of a report that take part in a round: not failed, with a request.
fn reporting(report: &RoundReport) -> impl Iterator<Item = &qorch_runtime::AgentReport> {
    report
        .agents
        .iter()
        .filter(|r| r.status != ComponentStatus::Failed && r.request.is_some())
}

/// Measures the allocation in force against the demand in `report`.
pub(crate) fn served(allocation: &Allocation, state: &PolicyState, report: &RoundReport) -> Served {
    let (mut demand, mut unmet, mut violations) = (0.0, 0.0, 0_u64);
    let (mut inside, mut judged) = (0_u64, 0_u64);
    for r in reporting(report) {
        let Some(req) = &r.request else { continue };
        let grant = allocation.get(r.agent);
        let mut short = false;
        for (k, &d) in req.desired.amounts().iter().enumerate() {
            let g = grant.map_or(0.0, |g| g.amount.amounts().get(k).copied().unwrap_or(0.0));
            demand += d;
            if g < d * (1.0 - COVER_TOLERANCE) {
                unmet += d - g;
                short = true;
            }
        }
        violations += u64::from(short);
        if let Some(&at) = state.intervals.get(&r.agent) {
            for (k, &d) in req.desired.amounts().iter().enumerate() {
                if let Some(&(lo, hi)) = state.bounds.get(at + k) {
                    judged += 1;
                    inside += u64::from(d >= lo && d <= hi);
                }
            }
        }
    }
    Served {
        unmet: if demand > 0.0 { unmet / demand } else { 0.0 },
        sla_violations: violations,
        forecast_coverage: (judged > 0).then(|| inside as f64 / judged as f64),
    }
}

/// Applies the policy to a round's report: under the predictive policy, observes every
/// reporting agent's demand and replaces its request with the forecast (once warmed up).
///
/// The head-room above the reported demand is taken from spare capacity only: per kind, the
/// requests sum to at most `fill` times `capacity` (the pools' total), or to the reported
/// demand where that alone exceeds it. A forecast below the reported demand is requested as
/// is. So in a shortage the predictive requests are the reactive ones (or less), and the
/// solver never has to drop an agent because others asked for head-room.
///
/// Where the spare capacity cannot hold every interval's upper end, the head-room is shared
/// at one common point of the intervals ([`share_head_room`]): every agent plans for
/// `point + lambda (upper - point)` with the same `lambda < 1`, so each is covered with about
/// the same probability. That minimizes the expected shortfall summed over agents (the
/// shortfall's marginal gain is the chance of exceeding the grant, equal for all at the
/// optimum); scaling every increase by one factor instead would favour agents whose
/// forecast already lies above their report.
pub(crate) fn apply(
    policy: &AllocationPolicy,
    state: &mut PolicyState,
    report: &mut RoundReport,
    capacity: &[f64],
) {
    let AllocationPolicy::Predictive(p) = policy else {
        state.predicted_agents = 0;
        return;
    };
    let forecaster = state
        .forecaster
        .get_or_insert_with(|| DemandForecaster::new(p.model, p.window));
    state.intervals.clear();
    state.bounds.clear();
    state.targets.clear();
    let s = &p.safety;
    for r in &report.agents {
        if r.status == ComponentStatus::Failed {
            continue;
        }
        match &r.request {
            Some(req) => forecaster.observe(r.agent, &req.desired),
            // Nothing asked: its history ends here.
            None => forecaster.remove(r.agent),
        }
    }
    // What agents with too short a history for their own interval borrow.
    let pooled = forecaster.pooled_spread();
    let kinds = capacity.len();
    // Per kind: the floor every request keeps (the reported demand, or the forecast where
    // that is lower), and each predicted agent's planned interval. The wanted amounts of
    // every predicted agent lie in `wants`, agent after agent (no allocation per agent).
    let mut floor = vec![0.0; kinds];
    let mut plans: Vec<Vec<HeadRoom>> = vec![Vec::new(); kinds];
    let mut predicted: Vec<(usize, usize)> = Vec::new();
    let mut wants: Vec<f64> = Vec::new();
    let mut fs: Vec<Forecast> = Vec::new();
    for (i, r) in report.agents.iter().enumerate() {
        if r.status == ComponentStatus::Failed {
            continue;
        }
        let Some(req) = &r.request else {
            continue;
        };
        let now = req.desired.amounts();
        if !forecaster.forecast_pooled_into(r.agent, s.horizon, s.level, s.method, &pooled, &mut fs)
        {
            for (fl, &d) in floor.iter_mut().zip(now) {
                *fl += d;
            }
            continue;
        }
        let at = wants.len();
        state.intervals.insert(r.agent, state.bounds.len());
        for (k, (f, &d)) in fs.iter().zip(now).enumerate() {
            state.bounds.push((f.lower, f.upper));
            let w = s
                .amount(f)
                .max(req.min.amounts().get(k).copied().unwrap_or(0.0));
            state.targets.push((f.point, w));
            wants.push(w);
            if let Some(fl) = floor.get_mut(k) {
                *fl += w.min(d);
            }
            if w > d
                && let Some(plan) = plans.get_mut(k)
            {
                plan.push(HeadRoom {
                    at: at + k,
                    now: d,
                    point: f.point,
                    upper: f.upper,
                    want: w,
                });
            }
        }
        predicted.push((i, at));
    }
    state.predicted_agents = predicted.len();
    for (k, plan) in plans.iter().enumerate() {
        let budget = (p.fill * capacity[k] - floor[k]).max(0.0);
        share_head_room(plan, budget, &mut wants);
    }
    for (i, at) in predicted {
        if let Some(req) = &mut report.agents[i].request {
            let min = req.min.amounts();
            for (k, d) in req.desired.amounts_mut().iter_mut().enumerate() {
                let w = wants.get(at + k).copied().unwrap_or(*d);
                *d = w.max(min.get(k).copied().unwrap_or(0.0));
            }
        }
    }
}

/// Tops up the grants of predicted agents toward the amounts they would plan for, from what
/// their pools have left once the round is solved: up to `top_up` of each pool's capacity,
/// per kind, and where a pool's leftover cannot hold every wish, at one common point of the
/// intervals ([`share_head_room`]). Nothing moves: the head-room requested before the solve
/// ([`apply`], up to `fill`) shapes the placement, and this part only uses the room the
/// placement left, so it costs no move, no split pair and no agent.
pub(crate) fn top_up(
    policy: &AllocationPolicy,
    state: &PolicyState,
    grants: &mut [(AgentId, Option<Grant>)],
    pools: &[Pool],
) {
    let AllocationPolicy::Predictive(p) = policy else {
        return;
    };
    let kinds = pools.iter().map(|p| p.capacity.len()).max().unwrap_or(0);
    if kinds == 0 || p.top_up <= 0.0 || state.intervals.is_empty() {
        return;
    }
    let index: HashMap<PoolId, usize> = pools.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let mut used = vec![0.0; pools.len() * kinds];
    let mut amounts = vec![0.0; grants.len() * kinds];
    let mut plans: Vec<Vec<HeadRoom>> = vec![Vec::new(); pools.len() * kinds];
    for (gi, (agent, grant)) in grants.iter().enumerate() {
        let Some(g) = grant else { continue };
        let Some(&pi) = index.get(&g.pool) else {
            continue;
        };
        let at = state.intervals.get(agent).copied();
        for (k, &a) in g.amount.amounts().iter().enumerate().take(kinds) {
            used[pi * kinds + k] += a;
            amounts[gi * kinds + k] = a;
            let Some(at) = at else { continue };
            let (Some(&(point, want)), Some(&(_, upper))) =
                (state.targets.get(at + k), state.bounds.get(at + k))
            else {
                continue;
            };
            if want > a {
                // What it wants, unless its pool's leftover falls short (see
                // `share_head_room`).
                amounts[gi * kinds + k] = want;
                plans[pi * kinds + k].push(HeadRoom {
                    at: gi * kinds + k,
                    now: a,
                    point,
                    upper,
                    want,
                });
            }
        }
    }
    for (j, plan) in plans.iter().enumerate() {
        if plan.is_empty() {
            continue;
        }
        // A capacity vector shorter than the longest holds none of the missing kinds.
        let cap = pools[j / kinds]
            .capacity
            .amounts()
            .get(j % kinds)
            .copied()
            .unwrap_or(0.0);
        let budget = (p.top_up * cap - used[j]).max(0.0);
        share_head_room(plan, budget, &mut amounts);
    }
    for (gi, (_, grant)) in grants.iter_mut().enumerate() {
        let Some(g) = grant else { continue };
        for (k, a) in g.amount.amounts_mut().iter_mut().enumerate().take(kinds) {
            *a = a.max(amounts[gi * kinds + k]);
        }
    }
}

/// One agent's wish for head-room in one kind: its reported demand `now`, its interval
/// (`point`, `upper`) and the request it would make with room to spare (`want > now`); `at`
/// is where its request goes in the wanted amounts.
#[derive(Debug, Clone, Copy)]
struct HeadRoom {
    at: usize,
    now: f64,
    point: f64,
    upper: f64,
    want: f64,
}

impl HeadRoom {
    /// The increase over `now` when planning for `point + lambda (upper - point)`.
    fn increase(&self, lambda: f64) -> f64 {
        (self.point + lambda * (self.upper - self.point)).clamp(self.now, self.want) - self.now
    }
}

/// Writes into `wants` (at each entry's `at`) the requests of `plan` whose increases over
/// the reported demand sum to at most `budget`: what each wants where everything fits; else
/// every agent at one common `lambda` of its interval, found by bisection (the sum is
/// monotone in `lambda`) to a billionth of the budget. Increases that do not shrink with
/// `lambda` (an interval of zero width above the report) are scaled down together if they
/// alone exceed the budget.
fn share_head_room(plan: &[HeadRoom], budget: f64, wants: &mut [f64]) {
    let total = |lambda: f64| plan.iter().map(|h| h.increase(lambda)).sum::<f64>();
    let mut write = |lambda: f64, scale: f64| {
        for h in plan {
            if let Some(w) = wants.get_mut(h.at) {
                *w = h.now + scale * h.increase(lambda);
            }
        }
    };
    if plan.iter().map(|h| h.want - h.now).sum::<f64>() <= budget {
        // Everything fits: `wants` already holds what each wants.
        return;
    }
    // At `hi` every request is what it wants (over the budget); at `lo` it fits.
    let mut hi: f64 = plan
        .iter()
        .filter(|h| h.upper > h.point)
        .map(|h| (h.want - h.point) / (h.upper - h.point))
        .fold(1.0, f64::max);
    let mut lo = -1.0;
    let mut at_lo = total(lo);
    while at_lo > budget && lo > -1e12 {
        lo *= 2.0;
        at_lo = total(lo);
    }
    if at_lo > budget {
        // What remains cannot shrink with lambda: scale it.
        write(lo, if at_lo > 0.0 { budget / at_lo } else { 0.0 });
        return;
    }
    for _ in 0..100 {
        if budget - at_lo <= 1e-9 * budget {
            break;
        }
        let mid = 0.5 * (lo + hi);
        let at_mid = total(mid);
        if at_mid <= budget {
            (lo, at_lo) = (mid, at_mid);
        } else {
            hi = mid;
        }
    }
    write(lo, 1.0);
}

#[cfg(test)]
mod tests {
    use qorch_protocol::Address;
    use qorch_resources::{Grant, PoolFilter, PoolId, ResourceRequest, ResourceVector};
    use qorch_runtime::AgentReport;

    use super::*;

    fn report(demands: &[(u32, f64)]) -> RoundReport {
        RoundReport {
            round: 1,
            agents: demands
                .iter()
                .map(|&(a, d)| AgentReport {
                    agent: AgentId(a),
                    host: Address::Orchestrator,
                    request: Some(ResourceRequest {
                        min: ResourceVector::from(vec![0.0]),
                        desired: ResourceVector::from(vec![d]),
                        weight: 1.0,
                        pools: PoolFilter::Any,
                    }),
                    pool: None,
                    status: ComponentStatus::Healthy,
                })
                .collect(),
            affinity: Vec::new(),
        }
    }

    #[test]
    fn served_counts_shortfalls_and_violations() {
        let mut alloc = Allocation::new();
        alloc.insert(
            AgentId(1),
            Grant::new(PoolId(0), ResourceVector::from(vec![10.0])),
        );
        alloc.insert(
            AgentId(2),
            Grant::new(PoolId(0), ResourceVector::from(vec![4.0])),
        );
        // Agent 3 has no grant at all.
        let s = served(
            &alloc,
            &PolicyState::default(),
            &report(&[(1, 8.0), (2, 6.0), (3, 6.0)]),
        );
        assert_eq!(s.sla_violations, 2);
        assert!((s.unmet - 8.0 / 20.0).abs() < 1e-12);
        assert_eq!(s.forecast_coverage, None);
    }

    #[test]
    fn predictive_requests_follow_a_trend_after_warm_up() {
        let policy = AllocationPolicy::Predictive(Predictive::default());
        let mut state = PolicyState::default();
        let mut last = 0.0;
        for t in 0..12 {
            let d = 10.0 + 2.0 * f64::from(t);
            let mut r = report(&[(1, d)]);
            apply(&policy, &mut state, &mut r, &[1e9]);
            last = r.agents[0].request.as_ref().unwrap().desired.amounts()[0];
            if t == 0 {
                // Not warmed up: the reported demand.
                assert_eq!(last, d);
                assert_eq!(state.predicted_agents, 0);
            }
        }
        // The next demand is 34: the request plans for it, not for the 32 reported.
        assert!((34.0..=34.0 * 1.5).contains(&last), "{last}");
        assert_eq!(state.predicted_agents, 1);
    }

    #[test]
    fn a_short_history_borrows_the_spread_of_many_agents() {
        let policy = AllocationPolicy::Predictive(Predictive::default());
        // 40 agents with 5% alternating noise around a level each: after three reports every
        // agent has one residual, 40 in all, enough to pool.
        let demand = |a: u32, t: u32| {
            f64::from(10 + a)
                * if (a + t).is_multiple_of(2) {
                    1.05
                } else {
                    0.95
                }
        };
        let mut state = PolicyState::default();
        let round = |state: &mut PolicyState, t: u32| {
            let mut r = report(&(0..40).map(|a| (a, demand(a, t))).collect::<Vec<_>>());
            apply(&policy, state, &mut r, &[1e9]);
            r
        };
        round(&mut state, 0);
        round(&mut state, 1);
        // Two reports: a point forecast, but no residual anywhere yet: reactive.
        assert_eq!(state.predicted_agents, 0);
        let r = round(&mut state, 2);
        assert_eq!(
            state.predicted_agents, 40,
            "the third report pools 40 residuals"
        );
        // Each interval is as wide, relative to its point, as the pooled noise says.
        let (lo, hi) = state.bounds[state.intervals[&AgentId(7)]];
        let p = f64::midpoint(lo, hi);
        assert!(hi > p * 1.05, "{p} {hi}");
        assert!(r.agents[7].request.as_ref().unwrap().desired.amounts()[0] > p);
        // A lone agent has nothing to borrow from: reactive until its own interval.
        let mut lone = PolicyState::default();
        for t in 0..4 {
            let mut r = report(&[(1, demand(1, t))]);
            apply(&policy, &mut lone, &mut r, &[1e9]);
            assert_eq!(lone.predicted_agents, 0, "report {t}");
        }
    }

    #[test]
    fn reactive_leaves_requests_alone() {
        let mut state = PolicyState::default();
        let mut r = report(&[(1, 5.0)]);
        apply(&AllocationPolicy::Reactive, &mut state, &mut r, &[1e9]);
        assert_eq!(r, report(&[(1, 5.0)]));
    }

    #[test]
    fn head_room_comes_from_spare_capacity_only() {
        let policy = AllocationPolicy::Predictive(Predictive {
            fill: 1.0,
            ..Predictive::default()
        });
        let run = |capacity: f64| {
            let mut state = PolicyState::default();
            let mut r = report(&[]);
            for t in 0..10 {
                r = report(&[(1, 10.0 + f64::from(t)), (2, 10.0 + f64::from(t))]);
                apply(&policy, &mut state, &mut r, &[capacity]);
            }
            r.agents
                .iter()
                .map(|a| a.request.as_ref().unwrap().desired.amounts()[0])
                .collect::<Vec<f64>>()
        };
        // Room for both forecasts (about 20 each): both ask for them.
        assert!(run(100.0).iter().all(|&d| d > 19.5), "{:?}", run(100.0));
        // Room for 40 in all: the 19 reported each, plus half of the wanted increase.
        let tight = run(40.0);
        assert!((tight.iter().sum::<f64>() - 40.0).abs() < 1e-9, "{tight:?}");
        // Not even room for the reported demand: the reported demand, no head-room.
        assert_eq!(run(30.0), vec![19.0, 19.0]);
    }

    #[test]
    fn the_top_up_uses_only_the_room_the_placement_left() {
        // Two growing agents warmed up with a capacity too small for any head-room in the
        // requests: they ask for their reports, and the top-up alone gives head-room.
        let policy = |share| {
            AllocationPolicy::Predictive(Predictive {
                top_up: share,
                ..Predictive::default()
            })
        };
        let pools = [
            Pool::node(PoolId(0), "a", ResourceVector::from(vec![25.0])),
            Pool::node(PoolId(1), "b", ResourceVector::from(vec![100.0])),
        ];
        let run = |share| {
            let p = policy(share);
            let mut state = PolicyState::default();
            let mut r = report(&[]);
            for t in 0..10 {
                r = report(&[(1, 10.0 + f64::from(t)), (2, 10.0 + f64::from(t))]);
                apply(&p, &mut state, &mut r, &[38.0]);
            }
            assert_eq!(state.predicted_agents, 2);
            for a in &r.agents {
                assert_eq!(a.request.as_ref().unwrap().desired.amounts(), &[19.0]);
            }
            // Agent 1 on the small pool, with 6 left; agent 2 alone on the large one.
            let g = |pool, x: f64| Some(Grant::new(PoolId(pool), ResourceVector::from(vec![x])));
            let mut grants = vec![
                (AgentId(1), g(0, 19.0)),
                (AgentId(2), g(1, 19.0)),
                (AgentId(3), None),
            ];
            top_up(&p, &state, &mut grants, &pools);
            grants
                .iter()
                .map(|(_, g)| g.as_ref().map(|g| (g.pool, g.amount.amounts()[0])))
                .collect::<Vec<_>>()
        };
        let got = run(1.0);
        // The small pool gives what it has left, and never more.
        assert_eq!(got[0].map(|(p, _)| p), Some(PoolId(0)));
        let first = got[0].unwrap().1;
        assert!(first > 19.0 && first <= 25.0 + 1e-9, "{got:?}");
        // The large pool has room for the whole wish: about the next demand (20) or more,
        // at most the point plus the largest margin.
        let second = got[1].unwrap().1;
        assert!((19.5..=20.0 * 1.5).contains(&second), "{got:?}");
        assert_eq!(got[2], None);
        // Up to `top_up` of each pool only; at 0, no top-up at all.
        let capped = run(0.7);
        assert!((capped[0].unwrap().1 - 19.0).abs() < 1e-12, "{capped:?}");
        assert_eq!(run(0.0)[1].unwrap().1, 19.0);
        // The reactive policy tops up nothing.
        let mut grants = vec![(
            AgentId(1),
            Some(Grant::new(PoolId(1), ResourceVector::from(vec![1.0]))),
        )];
        top_up(
            &AllocationPolicy::Reactive,
            &PolicyState::default(),
            &mut grants,
            &pools,
        );
        assert_eq!(grants[0].1.as_ref().unwrap().amount.amounts(), &[1.0]);
    }

    #[test]
    fn scarce_head_room_is_shared_at_one_point_of_the_intervals() {
        let h = |at, now, point, upper| HeadRoom {
            at,
            now,
            point,
            upper,
            want: upper,
        };
        let share = |plan: &[HeadRoom], budget| {
            let mut wants: Vec<f64> = plan.iter().map(|h| h.want).collect();
            share_head_room(plan, budget, &mut wants);
            wants
        };
        // A growing agent (forecast above its report) and a shrinking one (below it), with
        // intervals of width 4 above their points.
        let plan = [h(0, 10.0, 11.0, 15.0), h(1, 10.0, 9.0, 13.0)];
        // Room for everything: what each wants.
        assert_eq!(share(&plan, 100.0), vec![15.0, 13.0]);
        // Room for 4: both plan for the same point of their intervals, lambda = 0.5
        // (13 and 11), not the same share of their wishes (which gives 12.5 and 11.5).
        let got = share(&plan, 4.0);
        assert!(
            (got[0] - 13.0).abs() < 1e-6 && (got[1] - 11.0).abs() < 1e-6,
            "{got:?}"
        );
        assert!(got[0] + got[1] - 20.0 <= 4.0, "{got:?}");
        // No room: the reports.
        let got = share(&plan, 0.0);
        assert!(got.iter().all(|&a| (a - 10.0).abs() < 1e-9), "{got:?}");
        // Zero-width intervals above the report cannot shrink with lambda: scaled together.
        let flat = [h(0, 10.0, 12.0, 12.0), h(1, 10.0, 14.0, 14.0)];
        let got = share(&flat, 3.0);
        assert!(
            (got[0] - 11.0).abs() < 1e-9 && (got[1] - 12.0).abs() < 1e-9,
            "{got:?}"
        );
    }

    #[test]
    fn invalid_settings_are_named() {
        let mut p = Predictive::with_level(1.5);
        assert!(p.validate().unwrap_err().contains("level"));
        p = Predictive::default();
        p.top_up = 1.5;
        assert!(p.validate().unwrap_err().contains("top_up"));
        p = Predictive::default();
        p.window = 0;
        assert!(p.validate().unwrap_err().contains("window"));
    }
}
