//! Local runs ([`run`], [`run_workload`]): every agent in one runtime of this process, the
//! local backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use qorch_optimizer::{Optimizer, ReclusterPolicy};
use qorch_protocol::{Address, AgentId};
use qorch_runtime::{NodeStats, QuantumOrchestrator, RuntimeHandle};

use crate::agent::{SimAgent, SimMsg};
use crate::error::SimError;
use crate::model::ModelSpec;
use crate::plan::{create_nodes, plan_hierarchy};
use crate::recluster::{self, Layout};
use crate::report::ReclusterRecord;
use crate::scenario::{FaultKind, Scenario};
use crate::setup::{factory, optimizer_parts, pools, runtime_config, wait_failed};
use crate::simulation::{Backend, Driver, Outcome, Progress, ShutdownFigures, drive};
use crate::workload::AgentWorkload;

/// Runs a scenario in this process: its agents follow the built-in model (the scenario's
/// `[behaviour]` and `[workload]` sections).
///
/// # Errors
///
/// [`SimError::Scenario`] for an invalid scenario, [`SimError::Runtime`],
/// [`SimError::OptimizerStart`] or [`SimError::Round`] if the runtime or a round fails.
pub fn run(scenario: &Scenario, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, SimError> {
    scenario.validate()?;
    if has_node_crashes(scenario) {
        return Err(SimError::Scenario(
            "node_crash faults need a distributed run (qorch simulate --nats URL --nodes K)".into(),
        ));
    }
    run_local(scenario, ModelSpec::new(scenario), progress)
}

/// Runs a scenario in this process with agents that do what `workload` says: the same
/// hierarchy, pools, rounds, faults, re-clustering, plain-loop baseline and [`Report`] as
/// [`run`], whose agents follow the built-in model instead.
///
/// With one worker (`scenario.workers = 1`) and a workload that is a function of its
/// arguments (see [`AgentWorkload`]), the same scenario gives the same report byte for
/// byte. A custom workload runs in one process: distributed runs (`run_distributed`, with
/// the `distributed` feature) and their `node_crash` faults simulate the built-in model only,
/// since their node processes build the agents from the scenario alone.
///
/// [`Report`]: crate::Report
///
/// # Errors
///
/// [`SimError::Scenario`] for an invalid scenario, or a demand without one amount per kind
/// of the scenario's pools; [`SimError::LocalOnly`] for `node_crash` faults;
/// [`SimError::Runtime`], [`SimError::OptimizerStart`] or [`SimError::Round`] if the
/// runtime or a round fails.
pub fn run_workload<W: AgentWorkload>(
    scenario: &Scenario,
    workload: W,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, SimError> {
    scenario.validate()?;
    if has_node_crashes(scenario) {
        return Err(SimError::LocalOnly {
            what: "node_crash faults",
        });
    }
    run_local(scenario, workload, progress)
}

fn has_node_crashes(scenario: &Scenario) -> bool {
    scenario
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::NodeCrash)
}

/// Runs a valid scenario of `workload` on the local backend.
fn run_local<W: AgentWorkload>(
    scenario: &Scenario,
    workload: W,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, SimError> {
    scenario.check_memory(qorch_qubo::available_memory_bytes())?;
    let started = Instant::now();
    let workload = Arc::new(workload);
    let (backend, layout, optimizer) = LocalBackend::start(scenario, &workload)?;
    let d = Driver::with_backend(scenario, workload, Box::new(backend), layout, optimizer);
    drive(scenario, d, started, progress)
}

/// One runtime, driven from a current-thread executor of the driver's.
pub(crate) struct LocalBackend<W: AgentWorkload> {
    exec: tokio::runtime::Runtime,
    rt: QuantumOrchestrator<SimAgent<W>>,
    handle: RuntimeHandle<SimAgent<W>>,
}

impl<W: AgentWorkload> LocalBackend<W> {
    /// Builds the hierarchy, spawns the agents, misplaces some, starts the optimizer.
    pub(crate) fn start(
        scenario: &Scenario,
        workload: &Arc<W>,
    ) -> Result<(LocalBackend<W>, Layout, Optimizer), SimError> {
        let exec = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| SimError::Executor {
                of: "driver",
                source,
            })?;
        // The pools first: they check that the workload's demand fits the pools' kinds.
        let pools = pools(scenario, &**workload)?;
        let rt = QuantumOrchestrator::<SimAgent<W>>::builder()
            .config(runtime_config(scenario))
            .build()?;
        let handle = rt.handle();
        let layout = build_hierarchy(&rt, scenario, workload)?;
        settle_moves(&exec, &handle)?;
        let (config, scheduler) = optimizer_parts(scenario, pools)?;
        let optimizer = Optimizer::start_with(handle.clone(), config, scheduler)
            .map_err(SimError::OptimizerStart)?;
        Ok((LocalBackend { exec, rt, handle }, layout, optimizer))
    }
}

impl<W: AgentWorkload> Backend for LocalBackend<W> {
    fn tick(&mut self, t: u64, _layout: &Layout) -> Result<(), SimError> {
        self.exec.block_on(self.handle.tick(t))?;
        self.exec
            .block_on(self.handle.quiesce(t, Duration::from_secs(600)))?;
        Ok(())
    }

    fn stats(&mut self) -> Result<NodeStats, SimError> {
        Ok(self.exec.block_on(self.handle.stats())?)
    }

    fn panic_agent(&mut self, id: AgentId) -> Result<(), SimError> {
        let fuse = Arc::new(AtomicBool::new(true));
        self.exec
            .block_on(self.handle.send_to(id, SimMsg::Panic(fuse)))
            .map_err(|e| SimError::FaultInjection {
                agent: id,
                source: e.into(),
            })
    }

    fn lose_leaf(&mut self, addr: Address) -> Result<(), SimError> {
        self.rt.manager().kill(addr)?;
        self.exec.block_on(wait_failed(&self.handle, addr))
    }

    fn affinity_sample(&self) -> u32 {
        self.rt.config().affinity_sample
    }

    fn observer(&self) -> Option<qorch_runtime::Observer> {
        Some(self.handle.observer())
    }

    fn recluster(
        &mut self,
        layout: &mut Layout,
        cross: &dyn Fn(&Layout) -> f64,
        affinity: &HashMap<(AgentId, AgentId), f64>,
        policy: &ReclusterPolicy,
    ) -> Result<Option<ReclusterRecord>, SimError> {
        let (exec, handle) = (&self.exec, &self.handle);
        recluster::recluster(
            &self.rt.manager(),
            &|| settle_moves(exec, handle),
            layout,
            cross,
            affinity,
            policy,
        )
        .map(Some)
    }

    fn shutdown(self: Box<Self>) -> ShutdownFigures {
        let s = self.rt.shutdown();
        ShutdownFigures {
            letters_left: s.left_in_mailboxes.iter().sum::<u64>()
                + s.left_in_outboxes
                + s.unacknowledged,
            nodes_missing: s.nodes_missing,
        }
    }
}

/// Waits until every agent move has landed: a first settle pass lets the source nodes hand
/// the agents over, a second lets the destinations adopt them. (An agent in transit when a
/// tick passes would miss that tick.)
fn settle_moves<W: AgentWorkload>(
    exec: &tokio::runtime::Runtime,
    handle: &RuntimeHandle<SimAgent<W>>,
) -> Result<(), SimError> {
    exec.block_on(handle.settle())?;
    exec.block_on(handle.settle())?;
    Ok(())
}

/// Creates the clusters and sub-clusters and spawns every agent into its leaf, then moves the
/// misplaced ones.
fn build_hierarchy<W: AgentWorkload>(
    rt: &QuantumOrchestrator<SimAgent<W>>,
    s: &Scenario,
    workload: &Arc<W>,
) -> Result<Layout, SimError> {
    let m = rt.manager();
    let (plan, leaves) = plan_hierarchy(s);
    create_nodes(&m, &plan, &|_| true)?;
    let factory = factory(workload);
    for (l, (addr, _, _)) in leaves.iter().enumerate() {
        let home = s.home_agents(l as u32);
        let ids = m.spawn_agents_with(*addr, home.len(), &factory)?;
        debug_assert_eq!(ids.first().map(|a| a.0), Some(home.start));
    }
    let mut layout = Layout::new(leaves, s);
    layout.misplace(&m, s.topology.misplaced, s.seed)?;
    Ok(layout)
}
