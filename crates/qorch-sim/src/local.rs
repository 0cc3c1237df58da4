//! The local backend: every agent in one runtime of this process.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use qorch_optimizer::{Optimizer, ReclusterPolicy};
use qorch_protocol::{Address, AgentId};
use qorch_runtime::{
    ComponentStatus, Factory, NodeStats, QuantumOrchestrator, RuntimeConfig, RuntimeHandle,
};

use crate::SimError;
use crate::agent::{SimAgent, SimMsg};
use crate::model::ModelSpec;
use crate::recluster::{self, Layout};
use crate::report::ReclusterRecord;
use crate::scenario::Scenario;
use crate::simulation::{Backend, ShutdownFigures, optimizer_parts, pools};

/// One runtime, driven from a current-thread executor of the driver's.
pub(crate) struct LocalBackend {
    exec: tokio::runtime::Runtime,
    rt: QuantumOrchestrator<SimAgent>,
    handle: RuntimeHandle<SimAgent>,
}

impl LocalBackend {
    /// Builds the hierarchy, spawns the agents, misplaces some, starts the optimizer.
    pub(crate) fn start(
        scenario: &Scenario,
        spec: &Arc<ModelSpec>,
    ) -> Result<(LocalBackend, Layout, Optimizer), SimError> {
        let exec = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SimError::Optimizer(format!("cannot start the driver's executor: {e}")))?;
        let rt = QuantumOrchestrator::<SimAgent>::builder()
            .config(runtime_config(scenario))
            .build()?;
        let handle = rt.handle();
        let layout = build_hierarchy(&rt, scenario, spec)?;
        settle_moves(&exec, &handle)?;
        let (config, scheduler) = optimizer_parts(scenario, pools(scenario, spec))?;
        let optimizer = Optimizer::start_with(handle.clone(), config, scheduler)
            .map_err(|e| SimError::Optimizer(e.to_string()))?;
        Ok((LocalBackend { exec, rt, handle }, layout, optimizer))
    }
}

/// The runtime settings of a scenario. One message in 8 is observed (the runtime's default
/// is 16): re-clustering needs a few samples per agent and round to tell its peers' leaves
/// apart.
pub(crate) fn runtime_config(scenario: &Scenario) -> RuntimeConfig {
    RuntimeConfig {
        workers: scenario.worker_threads(),
        seed: scenario.seed,
        affinity_sample: 8,
        ..RuntimeConfig::default()
    }
}

/// The factory of the simulated agents.
pub(crate) fn factory(spec: &Arc<ModelSpec>) -> Factory<SimAgent> {
    let spec = Arc::clone(spec);
    Arc::new(move |id| SimAgent::new(Arc::clone(&spec), id))
}

impl Backend for LocalBackend {
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
            .block_on(self.handle.send(id, SimMsg::Panic(fuse)))
            .map_err(|e| SimError::Optimizer(format!("fault injection: {e}")))
    }

    fn lose_leaf(&mut self, addr: Address) -> Result<(), SimError> {
        self.rt.manager().kill(addr)?;
        self.exec.block_on(wait_failed(&self.handle, addr))
    }

    fn affinity_sample(&self) -> u32 {
        self.rt.config().affinity_sample
    }

    fn recluster(
        &mut self,
        layout: &mut Layout,
        spec: &ModelSpec,
        affinity: &HashMap<(AgentId, AgentId), f64>,
        policy: &ReclusterPolicy,
    ) -> Result<Option<ReclusterRecord>, SimError> {
        let (exec, handle) = (&self.exec, &self.handle);
        recluster::recluster(
            &self.rt.manager(),
            &|| settle_moves(exec, handle),
            layout,
            spec,
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
fn settle_moves(
    exec: &tokio::runtime::Runtime,
    handle: &RuntimeHandle<SimAgent>,
) -> Result<(), SimError> {
    exec.block_on(handle.settle())?;
    exec.block_on(handle.settle())?;
    Ok(())
}

/// Waits until the orchestrator's status tree shows `addr` failed.
pub(crate) async fn wait_failed(
    handle: &RuntimeHandle<SimAgent>,
    addr: Address,
) -> Result<(), SimError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tree = handle.status().await?;
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node of the planned hierarchy, in creation order (parents first).
#[derive(Debug, Clone)]
pub(crate) struct PlannedNode {
    pub(crate) address: Address,
    pub(crate) name: String,
    pub(crate) parent: Option<Address>,
    /// Its top-level cluster's index.
    pub(crate) cluster: u32,
}

/// The scenario's hierarchy with the ids the runtime gives (clusters `0..`, sub-clusters
/// numbered in creation order), and its leaves: (address, cluster index, cluster address).
pub(crate) fn plan_hierarchy(s: &Scenario) -> (Vec<PlannedNode>, Vec<(Address, u32, Address)>) {
    let t = &s.topology;
    let mut nodes = Vec::new();
    let mut leaves = Vec::new();
    let mut next_sub = 0_u32;
    for c in 0..t.clusters as u32 {
        let cluster = Address::Cluster(qorch_protocol::ClusterId(c));
        nodes.push(PlannedNode {
            address: cluster,
            name: format!("c{c}"),
            parent: None,
            cluster: c,
        });
        let mut frontier = vec![(cluster, format!("c{c}"))];
        for _ in 0..t.depth {
            let mut next = Vec::new();
            for (parent, name) in &frontier {
                for f in 0..t.fanout {
                    let name = format!("{name}/s{f}");
                    let sub = Address::SubCluster(qorch_protocol::SubClusterId(next_sub));
                    next_sub += 1;
                    nodes.push(PlannedNode {
                        address: sub,
                        name: name.clone(),
                        parent: Some(*parent),
                        cluster: c,
                    });
                    next.push((sub, name));
                }
            }
            frontier = next;
        }
        leaves.extend(frontier.into_iter().map(|(a, _)| (a, c, cluster)));
    }
    (nodes, leaves)
}

/// Creates the planned nodes of the clusters `keep` accepts in a runtime.
pub(crate) fn create_nodes(
    m: &qorch_runtime::ClusterManager<SimAgent>,
    plan: &[PlannedNode],
    keep: &dyn Fn(u32) -> bool,
) -> Result<(), SimError> {
    for n in plan.iter().filter(|n| keep(n.cluster)) {
        match (n.address, n.parent) {
            (Address::Cluster(c), None) => m.create_cluster_with_id(c, &n.name)?,
            (Address::SubCluster(id), Some(parent)) => {
                m.create_sub_cluster_with_id(parent, id, &n.name)?;
            }
            _ => {
                return Err(SimError::Scenario(format!(
                    "planned node {} is neither a cluster nor a sub-cluster",
                    n.name
                )));
            }
        }
    }
    Ok(())
}

/// Creates the clusters and sub-clusters and spawns every agent into its leaf, then moves the
/// misplaced ones.
fn build_hierarchy(
    rt: &QuantumOrchestrator<SimAgent>,
    s: &Scenario,
    spec: &Arc<ModelSpec>,
) -> Result<Layout, SimError> {
    let m = rt.manager();
    let (plan, leaves) = plan_hierarchy(s);
    create_nodes(&m, &plan, &|_| true)?;
    let factory = factory(spec);
    for (l, (addr, _, _)) in leaves.iter().enumerate() {
        let (first, len) = spec.leaf_range(l as u32);
        let ids = m.spawn_agents_with(*addr, len as usize, &factory)?;
        debug_assert_eq!(ids.first().map(|a| a.0), Some(first));
    }
    let mut layout = Layout::new(leaves, spec);
    layout.misplace(&m, s.topology.misplaced, s.seed)?;
    Ok(layout)
}
