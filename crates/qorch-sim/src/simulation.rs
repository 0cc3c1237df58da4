//! The driver of a run, whatever runs the agents: ticks and rounds, faults, re-clustering,
//! the forecasts and the measures, each tick run again in the plain-loop baseline, and the
//! report. What it needs of a backend is the [`Backend`] trait (one local runtime in
//! `local.rs`, node processes in `distributed/`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use qorch_optimizer::{Optimizer, ReclusterPolicy, RoundSummary};
use qorch_protocol::{Address, AgentId};
use qorch_resources::{ForecastModel, SeriesForecaster, mape};
use qorch_runtime::NodeStats;

use crate::baseline::Baseline;
use crate::error::SimError;
use crate::model::mix;
use crate::recluster::Layout;
use crate::report::{
    ClusterSizes, CrossTraffic, FaultReport, Messages, ReclusterRecord, Report, RoundRecord,
    Timings,
};
use crate::scenario::{FaultKind, Scenario};
use crate::workload::AgentWorkload;

/// What a run reports as it goes, for progress bars.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The hierarchy is built and the agents spawned.
    Ready {
        /// Agents spawned.
        agents: usize,
        /// Rounds to run.
        rounds: u64,
    },
    /// A round finished.
    Round(Box<RoundSummary>),
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The report (`report.json`).
    pub report: Report,
    /// What was measured in time (`timings.json`).
    pub timings: Timings,
}

/// What the driver needs of whatever runs the agents: one local runtime (`local.rs`) or
/// node processes over NATS (`distributed/`).
pub(crate) trait Backend {
    /// Runs tick `t` everywhere and returns once every message it caused is handled.
    fn tick(&mut self, t: u64, layout: &Layout) -> Result<(), SimError>;
    /// Counts so far, summed over the whole hierarchy.
    fn stats(&mut self) -> Result<NodeStats, SimError>;
    /// Fault injection: agent `id` panics on its next message.
    fn panic_agent(&mut self, id: AgentId) -> Result<(), SimError>;
    /// Fault injection: the leaf at `addr` stops at once; returns once it is seen failed.
    fn lose_leaf(&mut self, addr: Address) -> Result<(), SimError>;
    /// Fault injection: a whole node process dies (distributed runs only). Returns the
    /// agents restarted elsewhere, or an error where there are no processes to kill.
    fn lose_node(&mut self, layout: &Layout, pick: u64) -> Result<NodeLoss, SimError> {
        let _ = (layout, pick);
        Err(SimError::Scenario(
            "node_crash faults need a distributed run (qorch simulate --nats URL --nodes K)".into(),
        ))
    }
    /// Processes hosting agents.
    fn processes(&self) -> usize {
        1
    }
    /// Messages that crossed between processes so far (0 in one process).
    fn cross_process_messages(&mut self) -> u64 {
        0
    }
    /// Nodes lost without a fault saying so (killed from outside).
    fn unplanned_losses(&self) -> NodeLosses {
        NodeLosses::default()
    }
    /// Observed messages per counted one (affinity sampling).
    fn affinity_sample(&self) -> u32;
    /// One re-clustering pass; `None` where the backend does not re-cluster. `cross` is the
    /// expected share of cross-cluster messages of a layout.
    fn recluster(
        &mut self,
        layout: &mut Layout,
        cross: &dyn Fn(&Layout) -> f64,
        affinity: &HashMap<(AgentId, AgentId), f64>,
        policy: &ReclusterPolicy,
    ) -> Result<Option<ReclusterRecord>, SimError>;
    /// Stops everything.
    fn shutdown(self: Box<Self>) -> ShutdownFigures;
}

/// A node process lost to a fault.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NodeLoss {
    /// Agents restarted on the remaining nodes.
    pub(crate) agents_restarted: u64,
    /// Messages the lost node had accepted but not acknowledged, handled again elsewhere.
    pub(crate) in_flight: u64,
}

/// Node processes lost without a fault saying so.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeLosses {
    /// Nodes lost.
    pub(crate) nodes: u64,
    /// Agents restarted on the remaining nodes.
    pub(crate) agents_restarted: u64,
    /// Messages they had accepted and not finished (per their last report).
    pub(crate) in_flight: u64,
    /// Ticks run again after a loss during them.
    pub(crate) ticks_rerun: Vec<u64>,
}

/// What a backend leaves behind when it stops.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ShutdownFigures {
    /// Protocol letters left and reliable messages unacknowledged.
    pub(crate) letters_left: u64,
    /// Parts that did not report.
    pub(crate) nodes_missing: usize,
}

/// Agents in the forecast-error sample.
const FORECAST_SAMPLE: u32 = 512;

/// Runs a started driver to its report.
pub(crate) fn drive<W: AgentWorkload>(
    scenario: &Scenario,
    mut d: Driver<'_, W>,
    started: Instant,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, SimError> {
    d.setup_seconds = started.elapsed().as_secs_f64();
    progress(Progress::Ready {
        agents: scenario.topology.agents,
        rounds: scenario.total_rounds(),
    });
    let rounds = scenario.total_rounds();
    for r in 1..=rounds {
        d.inject_faults(r)?;
        d.ticks(r)?;
        let summary = d.round(r)?;
        progress(Progress::Round(Box::new(summary)));
        let every = scenario.clustering.every;
        if every > 0 && r % every == 0 && r < rounds {
            d.recluster(r)?;
        }
    }
    Ok(d.finish(started))
}

/// The state of a run between its steps.
pub(crate) struct Driver<'s, W: AgentWorkload> {
    scenario: &'s Scenario,
    workers: usize,
    workload: Arc<W>,
    /// What runs the agents.
    backend: Box<dyn Backend>,
    optimizer: Optimizer,
    layout: Layout,
    /// The plain loop, run tick by tick right after the runtime's tick.
    baseline: Baseline<W>,
    initial_sizes: Vec<u32>,
    setup_seconds: f64,
    /// Forecasters of the sampled agents, and the forecasts made and what came.
    sampled: Vec<(AgentId, W::Profile, SeriesForecaster)>,
    actual: Vec<f64>,
    predicted: Vec<f64>,
    faults: FaultReport,
    /// The tick from which each agent is lost (`u64::MAX`: never).
    dead_from: Vec<u64>,
    tick_seconds: f64,
    ticks_run: Vec<u64>,
    rounds: Vec<RoundSummary>,
    per_round_priority: Vec<[u64; 4]>,
    last_stats: NodeStats,
    reclustering: Vec<ReclusterRecord>,
    cross: CrossTraffic,
}

impl<'s, W: AgentWorkload> Driver<'s, W> {
    /// A run of `workload` on `backend`, with the hierarchy laid out as `layout`.
    pub(crate) fn with_backend(
        scenario: &'s Scenario,
        workload: Arc<W>,
        backend: Box<dyn Backend>,
        layout: Layout,
        optimizer: Optimizer,
    ) -> Driver<'s, W> {
        let workers = scenario.worker_threads();
        let baseline = Baseline::new(&*workload, workers, layout.threads_of_agents(workers));
        let n = scenario.topology.agents as u32;
        let sampled = (0..FORECAST_SAMPLE.min(n))
            .map(|i| {
                let id = (u64::from(i) * u64::from(n) / u64::from(FORECAST_SAMPLE.min(n))) as u32;
                let model = ForecastModel::Holt {
                    alpha: 0.5,
                    beta: 0.2,
                };
                let id = AgentId(id);
                (id, workload.profile(id), SeriesForecaster::new(model, 64))
            })
            .collect();
        Driver {
            scenario,
            workers,
            initial_sizes: layout.sizes(),
            cross: CrossTraffic {
                start: layout.expected_cross_share(&*workload),
                end: 0.0,
            },
            dead_from: vec![u64::MAX; n as usize],
            workload,
            backend,
            optimizer,
            layout,
            baseline,
            setup_seconds: 0.0,
            sampled,
            actual: Vec::new(),
            predicted: Vec::new(),
            faults: FaultReport::default(),
            tick_seconds: 0.0,
            ticks_run: Vec::new(),
            rounds: Vec::new(),
            per_round_priority: Vec::new(),
            last_stats: NodeStats::default(),
            reclustering: Vec::new(),
        }
    }

    /// Faults strike before the round's ticks.
    fn inject_faults(&mut self, r: u64) -> Result<(), SimError> {
        let s = self.scenario;
        for (i, f) in s.faults.iter().enumerate() {
            if f.round != r {
                continue;
            }
            let first_tick = (r - 1) * s.ticks_per_round + 1;
            for k in 0..f.count {
                match f.kind {
                    FaultKind::AgentPanic => {
                        let id = pick_alive(&self.dead_from, s.seed, (r, i, k));
                        self.backend.panic_agent(AgentId(id))?;
                        self.faults.agent_panics += 1;
                    }
                    FaultKind::SubclusterLoss => {
                        let Some(leaf) = self.layout.pick_live_leaf(s.seed, (r, i, k)) else {
                            break;
                        };
                        let addr = self.layout.leaf_address(leaf);
                        for a in self.layout.kill_leaf(leaf) {
                            self.dead_from[a as usize] = first_tick;
                            self.faults.agents_lost += 1;
                        }
                        self.backend.lose_leaf(addr)?;
                        self.faults.subclusters_lost += 1;
                    }
                    FaultKind::NodeCrash => {
                        let pick =
                            mix(s.seed ^ 0x000C_0A5E ^ mix(r << 16 | (i as u64) << 8 | k as u64));
                        let loss = self.backend.lose_node(&self.layout, pick)?;
                        self.faults.nodes_lost += 1;
                        self.faults.agents_restarted += loss.agents_restarted;
                        self.faults.in_flight_at_node_loss += loss.in_flight;
                    }
                }
            }
        }
        Ok(())
    }

    /// The round's ticks: every agent works and sends; each tick runs until the runtime is
    /// quiet.
    fn ticks(&mut self, r: u64) -> Result<(), SimError> {
        let per = self.scenario.ticks_per_round;
        for k in 1..=per {
            let t = (r - 1) * per + k;
            let t0 = Instant::now();
            self.backend.tick(t, &self.layout)?;
            self.tick_seconds += t0.elapsed().as_secs_f64();
            self.ticks_run.push(t);
            // The same tick in the plain loop, right away, while the runtime is quiet: a slow
            // spell of the machine then weighs on both alike.
            let dead_from = &self.dead_from;
            self.baseline
                .tick(&self.workload, t, &|a| dead_from[a as usize] > t);
        }
        let stats = self.backend.stats()?;
        let mut by_priority = [0_u64; 4];
        for (i, b) in by_priority.iter_mut().enumerate() {
            *b =
                stats.handled_by_priority[i].saturating_sub(self.last_stats.handled_by_priority[i]);
        }
        self.per_round_priority.push(by_priority);
        self.last_stats = stats;
        Ok(())
    }

    /// The rebalancing round, and the forecasts of the sampled agents' demand.
    fn round(&mut self, r: u64) -> Result<RoundSummary, SimError> {
        let summary = self
            .optimizer
            .run_round()
            .map_err(|source| SimError::Round { round: r, source })?;
        let tick = r * self.scenario.ticks_per_round;
        for (id, p, f) in &mut self.sampled {
            if self.dead_from[id.0 as usize] <= tick {
                continue;
            }
            let y = self.workload.desired_total(p, tick);
            if let Some(p) = f.forecast(1) {
                self.actual.push(y);
                self.predicted.push(p);
            }
            f.observe(y);
        }
        self.rounds.push(summary.clone());
        Ok(summary)
    }

    /// Re-clustering by the affinity the optimizer observed.
    fn recluster(&mut self, r: u64) -> Result<(), SimError> {
        let affinity = self.optimizer.with_state(|s| s.affinity.clone());
        let c = &self.scenario.clustering;
        let policy = ReclusterPolicy {
            split_above: c.split_above,
            merge_below: c.merge_below,
            min_pull: 3.0 * f64::from(self.backend.affinity_sample().max(1)),
            seed: self.scenario.seed ^ r,
        };
        let workload = &*self.workload;
        let cross = |l: &Layout| l.expected_cross_share(workload);
        let Some(mut rec) = self
            .backend
            .recluster(&mut self.layout, &cross, &affinity, &policy)?
        else {
            return Ok(());
        };
        rec.round = r;
        self.baseline
            .regroup(self.layout.threads_of_agents(self.workers));
        self.reclustering.push(rec);
        Ok(())
    }

    /// Stops the runtime and writes the report.
    #[allow(clippy::too_many_lines, reason = "one struct literal, field by field")]
    fn finish(mut self, started: Instant) -> Outcome {
        let (solver_windows, solver_seconds) = self.optimizer.with_state(|s| {
            (
                s.solvers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.windows))
                    .collect::<BTreeMap<_, _>>(),
                s.solvers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.seconds))
                    .collect::<BTreeMap<_, _>>(),
            )
        });
        self.cross.end = self.layout.expected_cross_share(&*self.workload);
        let cross_process = self.backend.cross_process_messages();
        let processes = self.backend.processes();
        let lost = self.backend.unplanned_losses();
        self.faults.nodes_lost += lost.nodes;
        self.faults.nodes_killed += lost.nodes;
        self.faults.agents_restarted += lost.agents_restarted;
        self.faults.in_flight_at_node_loss += lost.in_flight;
        self.faults.ticks_rerun.clone_from(&lost.ticks_rerun);
        self.optimizer.stop();
        let shutdown = self.backend.shutdown();
        let plain = self.baseline.totals;
        let overhead = self.tick_seconds / plain.seconds.max(1e-9) - 1.0;
        let rounds = &self.rounds;
        let timings = Timings {
            wall_seconds: started.elapsed().as_secs_f64(),
            runtime_tick_seconds: self.tick_seconds,
            baseline_tick_seconds: plain.seconds,
            communication_overhead: overhead,
            round_latency_seconds: rounds.iter().map(|s| s.seconds).collect(),
            round_solve_seconds: rounds.iter().map(|s| s.solve_seconds).collect(),
            round_policy_seconds: rounds.iter().map(|s| s.policy_seconds).collect(),
            solver_seconds,
            setup_seconds: self.setup_seconds,
            letters_left_at_shutdown: shutdown.letters_left,
            nodes_missing_at_shutdown: shutdown.nodes_missing,
        };
        // The counts after the last ticks (the runtime was quiet then, and nothing was sent
        // after): the shutdown report would miss a node that did not report in time.
        let last = self.last_stats;
        let s = self.scenario;
        let timings_omitted = self.workers == 1;
        let unaccounted =
            (plain.sent + self.faults.agent_panics).abs_diff(last.handled + last.dead_letters);
        if lost.nodes > 0 {
            self.faults.messages_unknown = unaccounted;
        }
        let n = rounds.len().max(1) as f64;
        let mean = |f: &dyn Fn(&RoundSummary) -> f64| rounds.iter().map(f).sum::<f64>() / n;
        let mean_kinds = |u: &[f64]| u.iter().sum::<f64>() / u.len().max(1) as f64;
        let names = ["control", "high", "normal", "low"];
        let report = Report {
            scenario: s.name.clone(),
            seed: s.seed,
            workers: self.workers,
            processes,
            timings_omitted,
            agents: s.topology.agents,
            clusters: s.topology.clusters,
            leaves: self.layout.live_leaves(),
            pools: s.pools.count,
            rounds: s.total_rounds(),
            ticks: self.ticks_run.len() as u64,
            wall_seconds: (!timings_omitted).then_some(timings.wall_seconds),
            allocation_efficiency: mean(&|r| r.efficiency),
            utilization: mean(&|r| mean_kinds(&r.utilization)),
            utilization_by_kind: s
                .pools
                .kinds
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let u = mean(&|r| r.utilization.get(i).copied().unwrap_or(0.0));
                    (k.clone(), u)
                })
                .collect(),
            fairness: mean(&|r| r.fairness),
            policy: s.allocation.policy.as_str().to_owned(),
            unmet_demand: {
                let u: Vec<f64> = rounds
                    .iter()
                    .filter_map(|r| r.in_force.map(|f| f.unmet))
                    .collect();
                u.iter().sum::<f64>() / u.len().max(1) as f64
            },
            request_unmet_demand: mean(&|r| r.unmet_demand),
            sla_violations: rounds
                .iter()
                .filter_map(|r| r.in_force.map(|f| f.sla_violations))
                .sum(),
            forecast_coverage: {
                let c: Vec<f64> = rounds
                    .iter()
                    .filter_map(|r| r.in_force.and_then(|f| f.forecast_coverage))
                    .collect();
                (!c.is_empty()).then(|| c.iter().sum::<f64>() / c.len() as f64)
            },
            churn: if rounds.len() > 1 {
                rounds[1..].iter().map(|r| r.churn).sum::<f64>() / (rounds.len() - 1) as f64
            } else {
                0.0
            },
            forecast_error: if self.actual.is_empty() {
                0.0
            } else {
                mape(&self.actual, &self.predicted)
            },
            communication_overhead: (!timings_omitted).then_some(overhead),
            round_latency_seconds: if timings_omitted {
                Vec::new()
            } else {
                timings.round_latency_seconds.clone()
            },
            messages: Messages {
                sent: plain.sent,
                handled: last.handled,
                baseline_handled: plain.handled,
                by_priority: names
                    .iter()
                    .zip(last.handled_by_priority)
                    .map(|(k, v)| ((*k).to_owned(), v))
                    .collect(),
                dead_letters: last.dead_letters,
                restarts: last.restarts,
                unaccounted,
                cross_process,
            },
            cross_cluster_traffic: self.cross.clone(),
            faults: self.faults.clone(),
            cluster_sizes: ClusterSizes {
                initial: self.initial_sizes.clone(),
                last: self.layout.sizes().into_iter().filter(|&x| x > 0).collect(),
            },
            reclustering: self.reclustering.clone(),
            solver_windows,
            per_round: rounds
                .iter()
                .zip(&self.per_round_priority)
                .map(|(r, p)| RoundRecord {
                    round: r.round,
                    agents: r.agents,
                    served: r.served,
                    objective: r.objective,
                    bound: r.bound,
                    efficiency: r.efficiency,
                    utilization: mean_kinds(&r.utilization),
                    unmet_demand: r.in_force.map(|f| f.unmet),
                    request_unmet_demand: r.unmet_demand,
                    sla_violations: r.in_force.map(|f| f.sla_violations),
                    forecast_coverage: r.in_force.and_then(|f| f.forecast_coverage),
                    fairness: r.fairness,
                    churn: r.churn,
                    messages_by_priority: *p,
                    energies: r.energies.clone(),
                    seconds: (!timings_omitted).then_some(r.seconds),
                })
                .collect(),
        };
        Outcome { report, timings }
    }
}

/// A deterministic pick of a live agent.
fn pick_alive(dead_from: &[u64], seed: u64, key: (u64, usize, usize)) -> u32 {
    let n = dead_from.len() as u64;
    let mut h =
        seed ^ key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((key.1 as u64) << 40) ^ (key.2 as u64);
    loop {
        h = mix(h);
        let a = (h % n) as u32;
        if dead_from[a as usize] == u64::MAX {
            return a;
        }
    }
}
