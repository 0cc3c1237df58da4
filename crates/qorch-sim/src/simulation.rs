//! The run: build the hierarchy, spawn the agents, drive ticks and rounds, inject faults,
//! re-cluster, measure, and run the plain-loop baseline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use qorch_protocol::{Address, AgentId};
use qorch_qaoa::QaoaSolver;
use qorch_resources::{
    ForecastModel, Pool, PoolId, ResourceKinds, ResourceVector, SeriesForecaster, mape,
};
use qorch_runtime::{
    ComponentStatus, Factory, NodeStats, Optimizer, OptimizerConfig, QuantumOrchestrator,
    RoundSummary, RuntimeHandle,
};
use qorch_scheduler::{CostModel, EnhancedQuboScheduler, SchedulerConfig, SolverPolicy};

use crate::agent::{SimAgent, SimMsg};
use crate::model::ModelSpec;
use crate::recluster::{self, Layout};
use crate::report::{
    ClusterSizes, CrossTraffic, FaultReport, Messages, Report, RoundRecord, Timings,
};
use crate::scenario::{FaultKind, Scenario, SolverChoice};
use crate::{SimError, baseline};

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
    /// The baseline loop started.
    Baseline,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The report (`report.json`).
    pub report: Report,
    /// What was measured in time (`timings.json`).
    pub timings: Timings,
}

/// Agents in the forecast-error sample.
const FORECAST_SAMPLE: u32 = 512;

/// Runs a scenario.
///
/// # Errors
///
/// [`SimError::Scenario`] for an invalid scenario, [`SimError::Runtime`] or
/// [`SimError::Optimizer`] if the runtime or a round fails.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, SimError> {
    scenario.validate()?;
    let started = Instant::now();
    let workers = scenario.worker_threads();
    let spec = Arc::new(ModelSpec::new(scenario));
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SimError::Optimizer(format!("cannot start the driver's executor: {e}")))?;

    let rt = QuantumOrchestrator::<SimAgent>::builder()
        .workers(workers)
        .seed(scenario.seed)
        .build()?;
    let handle = rt.handle();
    let mut layout = build_hierarchy(&rt, scenario, &spec)?;
    let initial_sizes = layout.sizes();
    let pools = pools(scenario, &spec);
    let optimizer = start_optimizer(&handle, scenario, pools)?;
    let setup_seconds = started.elapsed().as_secs_f64();
    progress(Progress::Ready {
        agents: scenario.topology.agents,
        rounds: scenario.rounds,
    });

    let mut sampled: Vec<(u32, SeriesForecaster)> = (0..FORECAST_SAMPLE.min(spec.agents()))
        .map(|i| {
            let id = (u64::from(i) * u64::from(spec.agents()) / u64::from(FORECAST_SAMPLE)) as u32;
            let model = ForecastModel::Holt {
                alpha: 0.5,
                beta: 0.2,
            };
            (id, SeriesForecaster::new(model, 64))
        })
        .collect();
    let models_sampled: HashMap<u32, crate::model::AgentModel> = sampled
        .iter()
        .map(|(id, _)| (*id, spec.build(*id)))
        .collect();
    let (mut actual, mut predicted) = (Vec::new(), Vec::new());

    let mut faults = FaultReport::default();
    let mut dead_from: Vec<u64> = vec![u64::MAX; spec.agents() as usize];
    let mut tick_seconds = 0.0;
    let mut ticks_run = Vec::new();
    let mut rounds = Vec::new();
    let mut per_round_priority = Vec::new();
    let mut last_stats = NodeStats::default();
    let mut reclustering = Vec::new();
    let mut cross = CrossTraffic::default();
    for r in 1..=scenario.rounds {
        // Faults strike before the round's ticks.
        for (i, f) in scenario.faults.iter().enumerate() {
            if f.round != r {
                continue;
            }
            let first_tick = (r - 1) * scenario.ticks_per_round + 1;
            match f.kind {
                FaultKind::AgentPanic => {
                    for k in 0..f.count {
                        let id = pick_alive(&dead_from, scenario.seed, (r, i, k));
                        let fuse = Arc::new(AtomicBool::new(true));
                        exec.block_on(handle.send(AgentId(id), SimMsg::Panic(fuse)))
                            .map_err(|e| SimError::Optimizer(format!("fault injection: {e}")))?;
                        faults.agent_panics += 1;
                    }
                }
                FaultKind::SubclusterLoss => {
                    for k in 0..f.count {
                        let Some(leaf) = layout.pick_live_leaf(scenario.seed, (r, i, k)) else {
                            break;
                        };
                        let addr = layout.leaf_address(leaf);
                        for a in layout.kill_leaf(leaf) {
                            dead_from[a as usize] = first_tick;
                            faults.agents_lost += 1;
                        }
                        rt.manager().kill(addr)?;
                        faults.subclusters_lost += 1;
                        wait_failed(&exec, &handle, addr)?;
                    }
                }
            }
        }

        // The ticks: every agent works and sends; each tick runs until the runtime is quiet.
        for k in 1..=scenario.ticks_per_round {
            let t = (r - 1) * scenario.ticks_per_round + k;
            let t0 = Instant::now();
            exec.block_on(handle.tick(t))?;
            exec.block_on(handle.quiesce(t, Duration::from_secs(600)))?;
            tick_seconds += t0.elapsed().as_secs_f64();
            ticks_run.push(t);
        }
        let stats = exec.block_on(handle.stats())?;
        let mut by_priority = [0_u64; 4];
        for (i, b) in by_priority.iter_mut().enumerate() {
            *b = stats.by_priority[i].saturating_sub(last_stats.by_priority[i]);
        }
        per_round_priority.push(by_priority);
        last_stats = stats;

        // The round.
        let summary = optimizer
            .run_round()
            .map_err(|e| SimError::Optimizer(e.to_string()))?;
        let round_tick = r * scenario.ticks_per_round;
        for (id, f) in &mut sampled {
            if dead_from[*id as usize] <= round_tick {
                continue;
            }
            let y = spec.desired_total(&models_sampled[id], round_tick);
            if let Some(p) = f.forecast(1) {
                actual.push(y);
                predicted.push(p);
            }
            f.observe(y);
        }
        if r == 1 {
            cross.first_round = layout.expected_cross_share(&spec);
        }
        progress(Progress::Round(Box::new(summary.clone())));
        rounds.push(summary);

        // Re-clustering by the observed affinity.
        let every = scenario.clustering.every;
        if every > 0 && r % every == 0 && r < scenario.rounds {
            let affinity = optimizer.with_state(|s| s.affinity.clone());
            let rec = recluster::recluster(
                &rt.manager(),
                &mut layout,
                &spec,
                &affinity,
                &scenario.clustering,
                scenario.seed ^ r,
            )?;
            exec.block_on(handle.settle())?;
            let mut rec = rec;
            rec.round = r;
            reclustering.push(rec);
        }
    }
    let (solver_windows, solver_seconds) = optimizer.with_state(|s| {
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
    cross.last_round = layout.expected_cross_share(&spec);
    optimizer.stop();
    let shutdown = rt.shutdown();

    progress(Progress::Baseline);
    let thread_of = layout.threads_of_agents(workers);
    let plain = baseline::run(&spec, workers, &thread_of, &ticks_run, &|a, t| {
        dead_from[a as usize] > t
    });

    let last = shutdown.stats;
    let reproducible = workers == 1;
    let kinds = &scenario.pools.kinds;
    let n = rounds.len().max(1) as f64;
    let mean = |f: &dyn Fn(&RoundSummary) -> f64| rounds.iter().map(f).sum::<f64>() / n;
    let mut utilization_by_kind = BTreeMap::new();
    for (i, k) in kinds.iter().enumerate() {
        utilization_by_kind.insert(
            k.clone(),
            mean(&|s| s.utilization.get(i).copied().unwrap_or(0.0)),
        );
    }
    let utilization =
        mean(&|s| s.utilization.iter().sum::<f64>() / s.utilization.len().max(1) as f64);
    let churn = if rounds.len() > 1 {
        rounds[1..].iter().map(|s| s.churn).sum::<f64>() / (rounds.len() - 1) as f64
    } else {
        0.0
    };
    let latency: Vec<f64> = rounds.iter().map(|s| s.seconds).collect();
    let overhead = tick_seconds / plain.seconds.max(1e-9) - 1.0;
    let names = ["control", "high", "normal", "low"];
    let timings = Timings {
        wall_seconds: started.elapsed().as_secs_f64(),
        runtime_tick_seconds: tick_seconds,
        baseline_tick_seconds: plain.seconds,
        communication_overhead: overhead,
        round_latency_seconds: latency.clone(),
        round_solve_seconds: rounds.iter().map(|s| s.solve_seconds).collect(),
        solver_seconds,
        setup_seconds,
    };
    let report = Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        workers,
        reproducible,
        agents: scenario.topology.agents,
        clusters: scenario.topology.clusters,
        leaves: layout.live_leaves(),
        pools: scenario.pools.count,
        rounds: scenario.rounds,
        ticks: ticks_run.len() as u64,
        wall_seconds: (!reproducible).then_some(timings.wall_seconds),
        allocation_efficiency: mean(&|s| s.efficiency),
        utilization,
        utilization_by_kind,
        fairness: mean(&|s| s.fairness),
        unmet_demand: mean(&|s| s.unmet_demand),
        churn,
        forecast_error: if actual.is_empty() {
            0.0
        } else {
            mape(&actual, &predicted)
        },
        communication_overhead: (!reproducible).then_some(overhead),
        round_latency_seconds: if reproducible { Vec::new() } else { latency },
        messages: Messages {
            sent: plain.sent,
            handled: last.handled,
            baseline_handled: plain.handled,
            by_priority: names
                .iter()
                .zip(last.by_priority)
                .map(|(k, v)| ((*k).to_owned(), v))
                .collect(),
            dead_letters: last.dead_letters,
            restarts: last.restarts,
            left_at_shutdown: shutdown.left_in_mailboxes.iter().sum::<u64>()
                + shutdown.left_in_outboxes
                + shutdown.unacknowledged,
        },
        cross_cluster_traffic: cross,
        faults,
        cluster_sizes: ClusterSizes {
            initial: initial_sizes,
            last: layout.sizes().into_iter().filter(|&s| s > 0).collect(),
        },
        reclustering,
        solver_windows,
        per_round: rounds
            .iter()
            .zip(&per_round_priority)
            .map(|(s, p)| RoundRecord {
                round: s.round,
                agents: s.agents,
                served: s.served,
                objective: s.objective,
                bound: s.bound,
                efficiency: s.efficiency,
                utilization: s.utilization.iter().sum::<f64>() / s.utilization.len().max(1) as f64,
                unmet_demand: s.unmet_demand,
                fairness: s.fairness,
                churn: s.churn,
                messages_by_priority: *p,
                energies: s.energies.clone(),
                seconds: (!reproducible).then_some(s.seconds),
            })
            .collect(),
    };
    Ok(Outcome { report, timings })
}

/// A deterministic pick of a live agent.
fn pick_alive(dead_from: &[u64], seed: u64, key: (u64, usize, usize)) -> u32 {
    let n = dead_from.len() as u64;
    let mut h =
        seed ^ key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((key.1 as u64) << 40) ^ (key.2 as u64);
    loop {
        h = recluster::mix(h);
        let a = (h % n) as u32;
        if dead_from[a as usize] == u64::MAX {
            return a;
        }
    }
}

/// Waits until the orchestrator's status tree shows `addr` failed.
fn wait_failed(
    exec: &tokio::runtime::Runtime,
    handle: &RuntimeHandle<SimAgent>,
    addr: Address,
) -> Result<(), SimError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tree = exec.block_on(handle.status())?;
        if tree
            .find(addr)
            .is_some_and(|n| n.status == ComponentStatus::Failed)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SimError::Optimizer(format!(
                "{addr:?} was stopped but not detected as failed within 60 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates the clusters and sub-clusters and spawns every agent into its leaf, then moves the
/// misplaced ones.
fn build_hierarchy(
    rt: &QuantumOrchestrator<SimAgent>,
    s: &Scenario,
    spec: &Arc<ModelSpec>,
) -> Result<Layout, SimError> {
    let m = rt.manager();
    let t = &s.topology;
    let mut leaves: Vec<(Address, u32, Address)> = Vec::new();
    for c in 0..t.clusters {
        let cluster: Address = m.create_cluster(&format!("c{c}"))?.into();
        let mut frontier = vec![(cluster, format!("c{c}"))];
        for _ in 0..t.depth {
            let mut next = Vec::new();
            for (parent, name) in &frontier {
                for f in 0..t.fanout {
                    let name = format!("{name}/s{f}");
                    let sub = m.create_sub_cluster(*parent, &name)?;
                    next.push((sub.into(), name));
                }
            }
            frontier = next;
        }
        leaves.extend(frontier.into_iter().map(|(a, _)| (a, c as u32, cluster)));
    }
    let factory: Factory<SimAgent> = {
        let spec = Arc::clone(spec);
        Arc::new(move |id| SimAgent::new(Arc::clone(&spec), id))
    };
    for (l, (addr, _, _)) in leaves.iter().enumerate() {
        let (first, len) = spec.leaf_range(l as u32);
        let ids = m.spawn_agents_with(*addr, len as usize, &factory)?;
        debug_assert_eq!(ids.first().map(|a| a.0), Some(first));
    }
    let mut layout = Layout::new(leaves, spec);
    layout.misplace(&m, t.misplaced, s.seed)?;
    Ok(layout)
}

/// The pools: capacities proportional to the agents' desired demand at the start, divided
/// by the load, split over pools by jittered sizes.
fn pools(s: &Scenario, spec: &ModelSpec) -> Vec<Pool> {
    let k = s.pools.kinds.len();
    let mut total = vec![0.0; k];
    for id in 0..spec.agents() {
        let m = spec.build(id);
        let r = spec.request(&m, 1);
        for (t, d) in total.iter_mut().zip(r.desired.amounts()) {
            *t += d;
        }
    }
    let sizes: Vec<f64> = (0..s.pools.count)
        .map(|p| {
            let u = (recluster::mix(s.seed ^ 0xB001 ^ (p as u64) << 8) >> 11) as f64
                / (1_u64 << 53) as f64;
            1.0 + s.pools.jitter * (2.0 * u - 1.0)
        })
        .collect();
    let sum: f64 = sizes.iter().sum();
    sizes
        .iter()
        .enumerate()
        .map(|(p, f)| {
            let cap: Vec<f64> = total.iter().map(|t| t / s.pools.load * f / sum).collect();
            Pool::node(
                PoolId(p as u32),
                format!("pool-{p}"),
                ResourceVector::from(cap),
            )
        })
        .collect()
}

fn start_optimizer(
    handle: &RuntimeHandle<SimAgent>,
    s: &Scenario,
    pools: Vec<Pool>,
) -> Result<Optimizer, SimError> {
    let kinds = ResourceKinds::from_names(s.pools.kinds.iter().cloned());
    let mut config = OptimizerConfig::new(kinds, pools);
    config.costs = CostModel {
        migration: s.solver.migration_cost,
        communication: s.solver.communication_cost,
    };
    // Rounds run at fixed points of the simulation (after each round's ticks), never on a
    // timer, so that a run is a function of its scenario.
    config.period = None;
    config.triggers.on_failure = false;
    config.triggers.utilization_skew = None;
    config.triggers.unmet_demand = None;
    let mut sched = SchedulerConfig {
        seed: s.seed,
        effort: s.solver.effort,
        ..SchedulerConfig::default()
    };
    let choice = s.solver.choice()?;
    match choice {
        SolverChoice::Default => {}
        SolverChoice::Qubo(kind) => {
            if kind == qorch_qubo::SolverKind::Exact {
                sched.policy.exact_max_vars = 24;
            } else {
                sched.policy = SolverPolicy {
                    exact_max_vars: 0,
                    medium: kind,
                    large: kind,
                    ..sched.policy
                };
            }
        }
        SolverChoice::Qaoa => {
            sched.policy.qaoa = true;
            sched.policy.qaoa_max_vars = s.solver.qaoa_max_vars;
            sched.policy.exact_max_vars = 0;
        }
    }
    config.scheduler = sched.clone();
    let mut scheduler = EnhancedQuboScheduler::new(sched)
        .map_err(|e| SimError::Scenario(format!("solver: {e}")))?;
    if choice == SolverChoice::Qaoa {
        let qaoa = QaoaSolver {
            p: 2,
            max_qubits: s.solver.qaoa_max_vars,
            ..QaoaSolver::default()
        };
        scheduler = scheduler.with_qaoa_solver(Arc::new(qaoa));
    }
    Optimizer::start_with(handle.clone(), config, scheduler)
        .map_err(|e| SimError::Optimizer(e.to_string()))
}
