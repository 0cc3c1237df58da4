//! What both backends build from a scenario: the runtime's settings, the agents' factory,
//! the pools and the optimizer's parts; and the wait for a stopped leaf to be seen failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qorch_optimizer::OptimizerConfig;
use qorch_protocol::{Address, AgentId};
use qorch_qaoa::QaoaSolver;
use qorch_resources::{Pool, PoolId, ResourceKinds, ResourceRequest, ResourceVector};
use qorch_runtime::{
    Agent, ComponentStatus, Factory, RestartIntensity, RuntimeConfig, RuntimeHandle,
};
use qorch_scheduler::{CostModel, EnhancedQuboScheduler, SchedulerConfig, SolverPolicy};

use crate::agent::SimAgent;
use crate::error::SimError;
use crate::model::{mix, to_unit};
use crate::scenario::{Scenario, SolverChoice};
use crate::workload::AgentWorkload;

/// The runtime settings of a scenario. One message in 8 is observed (the runtime's default
/// is 16): re-clustering needs a few samples per agent and round to tell its peers' leaves
/// apart. Restarts are counted over an agent's whole life, not within a period of wall-clock
/// time, so that whether an agent fails for good depends on the seed alone.
pub(crate) fn runtime_config(scenario: &Scenario) -> RuntimeConfig {
    RuntimeConfig {
        workers: scenario.worker_threads(),
        seed: scenario.seed,
        affinity_sample: 8,
        restart: RestartIntensity::lifetime(RestartIntensity::default().max_restarts),
        ..RuntimeConfig::default()
    }
}

/// The factory of the simulated agents.
pub(crate) fn factory<W: AgentWorkload>(workload: &Arc<W>) -> Factory<SimAgent<W>> {
    let workload = Arc::clone(workload);
    Arc::new(move |id| SimAgent::new(Arc::clone(&workload), id))
}

/// Refuses a request without one amount per kind of the scenario's pools.
fn check_kinds(s: &Scenario, agent: AgentId, r: &ResourceRequest) -> Result<(), SimError> {
    let k = s.pools.kinds.len();
    if r.desired.len() == k && r.min.len() == k {
        return Ok(());
    }
    Err(SimError::Scenario(format!(
        "agent {}'s demand has {} amounts (min {}), but the pools have {k} kinds ({:?})",
        agent.0,
        r.desired.len(),
        r.min.len(),
        s.pools.kinds
    )))
}

/// The pools: capacities proportional to the agents' desired demand at tick 1, divided by
/// the load, split over pools by jittered sizes. Every request read must have one amount
/// per kind (the first agent's is checked where capacities are given).
pub(crate) fn pools<W: AgentWorkload>(s: &Scenario, workload: &W) -> Result<Vec<Pool>, SimError> {
    let k = s.pools.kinds.len();
    let mut total = vec![0.0; k];
    if let Some(c) = &s.pools.capacity {
        // The mean pool's capacity times the number of pools, at load 1.
        total = c.iter().map(|x| x * s.pools.count as f64).collect();
        let first = AgentId(0);
        check_kinds(s, first, &workload.demand(&workload.profile(first), 1))?;
    }
    for id in (0..s.topology.agents as u32).take_while(|_| s.pools.capacity.is_none()) {
        let id = AgentId(id);
        let r = workload.demand(&workload.profile(id), 1);
        check_kinds(s, id, &r)?;
        for (t, d) in total.iter_mut().zip(r.desired.amounts()) {
            *t += d;
        }
    }
    let sizes: Vec<f64> = (0..s.pools.count)
        .map(|p| {
            let u = to_unit(mix(s.seed ^ 0xB001 ^ (p as u64) << 8));
            1.0 + s.pools.jitter * (2.0 * u - 1.0)
        })
        .collect();
    let sum: f64 = sizes.iter().sum();
    Ok(sizes
        .iter()
        .enumerate()
        .map(|(p, f)| {
            let load = if s.pools.capacity.is_some() {
                1.0
            } else {
                s.pools.load
            };
            let cap: Vec<f64> = total.iter().map(|t| t / load * f / sum).collect();
            Pool::node(
                PoolId(p as u32),
                format!("pool-{p}"),
                ResourceVector::from(cap),
            )
        })
        .collect())
}

/// The optimizer's settings and scheduler for a scenario: rounds only when the driver asks.
pub(crate) fn optimizer_parts(
    s: &Scenario,
    pools: Vec<Pool>,
) -> Result<(OptimizerConfig, EnhancedQuboScheduler), SimError> {
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
    config.policy = s.allocation.policy();
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
    let mut scheduler = EnhancedQuboScheduler::new(sched).map_err(SimError::Solver)?;
    if choice == SolverChoice::Qaoa {
        let qaoa = QaoaSolver {
            p: 2,
            max_qubits: s.solver.qaoa_max_vars,
            ..QaoaSolver::default()
        };
        scheduler = scheduler.with_qaoa_solver(Arc::new(qaoa));
    }
    Ok((config, scheduler))
}

/// How long a stopped leaf may take to be seen failed.
const DETECTION: Duration = Duration::from_secs(60);

/// Waits until the orchestrator's status tree shows `addr` failed.
pub(crate) async fn wait_failed<A: Agent>(
    handle: &RuntimeHandle<A>,
    addr: Address,
) -> Result<(), SimError> {
    let deadline = Instant::now() + DETECTION;
    loop {
        let tree = handle.status().await?;
        if tree
            .find(addr)
            .is_some_and(|n| n.status == ComponentStatus::Failed)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SimError::FailureUndetected {
                leaf: addr,
                seconds: DETECTION.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
