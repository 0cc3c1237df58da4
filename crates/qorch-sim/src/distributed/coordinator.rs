//! The coordinator of a distributed run ([`run_distributed`]): this process, which gathers
//! the node processes, gives them their clusters, drives ticks and rounds through them as
//! the driver's backend, and fails over the clusters of a node that is lost.

use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use qorch_net::rpc::RpcClient;
use qorch_net::{Membership, NatsConfig, NetError, Subjects};
use qorch_optimizer::{Optimizer, ReclusterPolicy};
use qorch_protocol::{Address, AgentId};
use qorch_runtime::NodeStats;

use super::calls::{Calls, Placement, Slot, unexpected};
use super::join::{SpawnNode, gather};
use super::protocol::{
    Adoption, Assignment, COORDINATOR, FromNode, HEARTBEAT, NodeStatus, SILENCE, ToNode,
};
use super::remote::Remote;
use crate::error::SimError;
use crate::events::ProcessLoad;
use crate::model::ModelSpec;
use crate::plan::plan_hierarchy;
use crate::recluster::Layout;
use crate::report::ReclusterRecord;
use crate::scenario::{FaultKind, Scenario};
use crate::setup::{optimizer_parts, pools, runtime_config};
use crate::simulation::{
    Backend, Driver, NodeLoss, NodeLosses, Outcome, Progress, ShutdownFigures, drive,
};

/// How to run a scenario over several processes.
#[derive(Clone)]
pub struct Distributed {
    /// The NATS server and credentials.
    pub nats: NatsConfig,
    /// Node processes to use.
    pub nodes: usize,
    /// Starts the missing nodes when fewer have joined (`None`: wait for them).
    pub spawn: Option<SpawnNode>,
    /// How long to wait for the nodes to join.
    pub join_timeout: Duration,
}

impl Distributed {
    /// `nodes` processes on the server of `nats`, none started here.
    pub fn new(nats: NatsConfig, nodes: usize) -> Distributed {
        Distributed {
            nats,
            nodes,
            spawn: None,
            join_timeout: Duration::from_secs(60),
        }
    }
}

/// Runs `scenario` over `d.nodes` node processes (starting the missing ones with `d.spawn`)
/// and reports as a local run does. The agents follow the built-in model: node processes
/// build them from the scenario alone, so a custom workload
/// ([`run_workload`](crate::run_workload)) runs in one process only.
///
/// # Errors
///
/// [`SimError::Scenario`] for an invalid scenario, [`SimError::Net`] if the server cannot be
/// reached or refuses the credentials, [`SimError::Distributed`] if the nodes do not join or
/// fail beyond recovery.
pub fn run_distributed(
    scenario: &Scenario,
    d: &Distributed,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, SimError> {
    scenario.validate()?;
    if d.nodes == 0 {
        return Err(SimError::Scenario("--nodes must be at least 1".into()));
    }
    let crashes: usize = scenario
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::NodeCrash)
        .map(|f| f.count)
        .sum();
    if crashes >= d.nodes {
        return Err(SimError::Scenario(format!(
            "{crashes} node_crash faults with {} nodes: at least one node must survive",
            d.nodes
        )));
    }
    let started = Instant::now();
    let spec = Arc::new(ModelSpec::new(scenario));
    let (backend, layout, optimizer) = Coordinator::start(scenario, &spec, d)?;
    let driver = Driver::with_backend(scenario, spec, Box::new(backend), layout, optimizer);
    drive(scenario, driver, started, progress)
}

/// The distributed backend.
struct Coordinator {
    exec: tokio::runtime::Runtime,
    calls: Calls,
    children: Vec<Child>,
    tick: u64,
    affinity_sample: u32,
    beat: Option<tokio::task::JoinHandle<()>>,
    /// Top-level cluster of every planned node.
    cluster_of_node: HashMap<Address, u32>,
    /// Nodes lost without a fault saying so (killed from outside).
    unplanned: Unplanned,
}

/// Nodes lost to something other than the scenario's faults.
#[derive(Debug, Clone, Default)]
struct Unplanned {
    nodes: u64,
    agents_restarted: u64,
    in_flight: u64,
    ticks_rerun: Vec<u64>,
}

impl Coordinator {
    fn start(
        scenario: &Scenario,
        spec: &Arc<ModelSpec>,
        d: &Distributed,
    ) -> Result<(Coordinator, Layout, Optimizer), SimError> {
        let exec = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| SimError::Executor {
                of: "coordinator",
                source,
            })?;
        let subjects = Subjects::new(&d.nats.prefix);
        let control = exec.block_on(d.nats.connect("coordinator/control"))?;
        let (members, rpc, beat) = exec.block_on(async {
            let members = Membership::watch(&control, &subjects).await?;
            let rpc = RpcClient::new(&control).await?;
            let beat = qorch_net::beacon(&control, &subjects, COORDINATOR, HEARTBEAT);
            Ok::<_, NetError>((members, rpc, beat))
        })?;
        let mut children = Vec::new();
        let names = exec.block_on(gather(
            &control,
            &subjects,
            d.nodes,
            d.spawn.as_ref(),
            d.join_timeout,
            &mut children,
        ))?;
        let layout = initial_layout(scenario);
        let clusters = scenario.topology.clusters;
        let host: Vec<usize> = (0..clusters).map(|c| c % d.nodes).collect();
        let (_, leaves) = plan_hierarchy(scenario);
        let cluster_of: Vec<u32> = layout
            .leaf_of()
            .iter()
            .map(|&l| leaves[l as usize].1)
            .collect();
        let slots = names
            .iter()
            .enumerate()
            .map(|(i, n)| Slot {
                name: n.clone(),
                alive: true,
                clusters: (0..clusters as u32)
                    .filter(|&c| host[c as usize] == i)
                    .collect(),
                last: NodeStatus::default(),
            })
            .collect();
        let calls = Calls {
            rpc,
            subjects,
            members,
            placement: Arc::new(Mutex::new(Placement {
                slots,
                host,
                cluster_of,
            })),
        };
        let mut me = Coordinator {
            exec,
            calls,
            children,
            tick: 0,
            affinity_sample: runtime_config(scenario).affinity_sample,
            beat: Some(beat),
            cluster_of_node: plan_hierarchy(scenario)
                .0
                .into_iter()
                .map(|n| (n.address, n.cluster))
                .collect(),
            unplanned: Unplanned::default(),
        };
        me.assign(scenario, &layout)?;
        let (config, scheduler) = optimizer_parts(scenario, pools(scenario, &**spec)?)?;
        let hierarchy = Remote {
            calls: me.calls.clone(),
            exec: me.exec.handle().clone(),
            nodes: plan_hierarchy(scenario)
                .0
                .into_iter()
                .map(|n| (n.address, n.name, n.parent))
                .collect(),
            round_trace: None,
        };
        let optimizer =
            Optimizer::start_on(hierarchy, config, scheduler).map_err(SimError::OptimizerStart)?;
        Ok((me, layout, optimizer))
    }

    /// Gives every node its clusters, all at once.
    fn assign(&mut self, scenario: &Scenario, layout: &Layout) -> Result<(), SimError> {
        let toml = scenario.to_toml();
        let leaf_of = layout.leaf_of().to_vec();
        let work: Vec<(String, ToNode)> = self
            .calls
            .placement()
            .slots
            .iter()
            .map(|s| {
                let a = Assignment {
                    scenario: toml.clone(),
                    clusters: s.clusters.clone(),
                    leaf_of: leaf_of.clone(),
                };
                (s.name.clone(), ToNode::Assign(Box::new(a)))
            })
            .collect();
        let calls = &self.calls;
        let results = self.exec.block_on(join_all(
            work.iter().map(|(name, msg)| calls.call(name, msg)),
        ));
        for r in results {
            r?;
        }
        Ok(())
    }

    /// Fails node `slot` (it is silent) and moves its clusters to the remaining nodes:
    /// their agents restart there at the current tick.
    fn fail_over(&mut self, slot: usize, layout: &Layout) -> Result<NodeLoss, SimError> {
        let (clusters, name, alive) = {
            let mut p = self.calls.placement();
            p.slots[slot].alive = false;
            let clusters = std::mem::take(&mut p.slots[slot].clusters);
            (clusters, p.slots[slot].name.clone(), p.alive())
        };
        if alive.is_empty() {
            return Err(SimError::Distributed(format!(
                "node {name} was lost and no node is left"
            )));
        }
        tracing::warn!(
            node = %name,
            clusters = clusters.len(),
            "node lost: its clusters are failed and move to the remaining nodes"
        );
        let mut by_slot: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for (k, &c) in clusters.iter().enumerate() {
            by_slot.entry(alive[k % alive.len()].0).or_default().push(c);
        }
        let mut restarted = 0;
        for (s, cs) in by_slot {
            let agents: Vec<(Address, Vec<AgentId>)> =
                cs.iter().flat_map(|&c| layout.live_members(c)).collect();
            restarted += agents.iter().map(|(_, a)| a.len() as u64).sum::<u64>();
            let adoption = Adoption {
                clusters: cs.clone(),
                agents,
                tick: self.tick,
            };
            let target = {
                let mut p = self.calls.placement();
                for &c in &cs {
                    p.host[c as usize] = s;
                }
                p.slots[s].clusters.extend(&cs);
                p.slots[s].name.clone()
            };
            self.exec
                .block_on(self.calls.call(&target, &ToNode::Adopt(Box::new(adoption))))?;
        }
        let last = self.calls.placement().slots[slot].last;
        Ok(NodeLoss {
            agents_restarted: restarted,
            in_flight: last
                .in_flight
                .saturating_add(last.gateway.frames_awaiting_ack),
        })
    }

    /// Waits (up to the silence limit and a margin) for `name`'s heartbeats to stop.
    fn wait_silent(&self, name: &str) -> bool {
        let deadline = Instant::now() + SILENCE * 3;
        while Instant::now() < deadline {
            if !self.calls.members.alive(name, SILENCE) {
                return true;
            }
            std::thread::sleep(HEARTBEAT / 2);
        }
        false
    }

    /// Live nodes whose heartbeats stopped.
    fn silent_nodes(&self) -> Vec<usize> {
        self.calls
            .placement()
            .alive()
            .into_iter()
            .filter(|(_, n)| !self.calls.members.alive(n, SILENCE))
            .map(|(i, _)| i)
            .collect()
    }

    /// Runs tick `t` on every live node, then the termination waves.
    fn tick_inner(&mut self, t: u64) -> Result<(), SimError> {
        let calls = self.calls.clone();
        self.exec.block_on(async {
            for (_, r) in calls.call_all(&ToNode::Tick(t)).await {
                r?;
            }
            tracing::debug!(tick = t, "ticked; termination waves");
            // Termination waves: two equal waves in a row, every node idle.
            let mut previous: Option<Vec<(usize, [u64; 8])>> = None;
            let mut pause = Duration::from_micros(200);
            loop {
                let wave = calls.statuses().await?;
                let idle = wave.iter().all(|(_, s)| s.idle());
                let activity: Vec<(usize, [u64; 8])> =
                    wave.iter().map(|(i, s)| (*i, s.activity())).collect();
                tracing::trace!(tick = t, idle, ?activity, "wave");
                if idle && previous.as_ref() == Some(&activity) {
                    return Ok(());
                }
                previous = Some(activity);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        })
    }
}

impl Backend for Coordinator {
    fn tick(&mut self, t: u64, layout: &Layout) -> Result<(), SimError> {
        self.tick = t;
        loop {
            let Err(e) = self.tick_inner(t) else {
                return Ok(());
            };
            // A node killed mid-tick: wait until its silence is certain, fail it over and
            // run the tick again (nodes that ran it already skip it; the restarted agents
            // resume with the next tick).
            std::thread::sleep(SILENCE);
            let silent = self.silent_nodes();
            if silent.is_empty() {
                return Err(e);
            }
            for slot in silent {
                let loss = self.fail_over(slot, layout)?;
                tracing::warn!(
                    tick = t,
                    agents_restarted = loss.agents_restarted,
                    "a node was killed mid-tick: the tick runs again; what it did after its \
                     last report is unknown"
                );
                self.unplanned.agents_restarted += loss.agents_restarted;
                self.unplanned.in_flight = self.unplanned.in_flight.saturating_add(loss.in_flight);
                self.unplanned.nodes += 1;
            }
            if self.unplanned.ticks_rerun.last() != Some(&t) {
                self.unplanned.ticks_rerun.push(t);
            }
        }
    }

    fn stats(&mut self) -> Result<NodeStats, SimError> {
        let wave = self.exec.block_on(self.calls.statuses())?;
        let p = self.calls.placement();
        let mut total = NodeStats::default();
        let lost = p.slots.iter().filter(|s| !s.alive).map(|s| s.last);
        for s in wave.iter().map(|(_, s)| *s).chain(lost) {
            total.merge(&s.stats);
            total.dead_letters += s.gateway.dead_letters + s.gateway.undeliverable;
        }
        Ok(total)
    }

    fn panic_agent(&mut self, id: AgentId) -> Result<(), SimError> {
        let host = self
            .calls
            .host_of_agent(id)
            .ok_or_else(|| SimError::Distributed(format!("agent {id} has no live host")))?;
        self.exec
            .block_on(self.calls.call(&host, &ToNode::Panic(id)))
            .map(|_| ())
    }

    fn lose_leaf(&mut self, addr: Address) -> Result<(), SimError> {
        let host = self.host_of_address(addr)?;
        self.exec
            .block_on(self.calls.call(&host, &ToNode::LoseLeaf(addr)))
            .map(|_| ())
    }

    fn lose_node(&mut self, layout: &Layout, pick: u64) -> Result<NodeLoss, SimError> {
        let alive = self.calls.placement().alive();
        if alive.len() < 2 {
            return Err(SimError::Distributed(
                "no node can be lost: one is left".into(),
            ));
        }
        let (slot, name) = alive[(pick % alive.len() as u64) as usize].clone();
        // The run is quiet here (between rounds): its counts now are its final counts.
        let last = match self
            .exec
            .block_on(self.calls.call(&name, &ToNode::Status))?
        {
            FromNode::Status(s) => *s,
            other => return Err(unexpected(&other)),
        };
        self.calls.placement().slots[slot].last = last;
        // No answer comes: the process aborts on receipt.
        let calls = self.calls.clone();
        let n = name.clone();
        self.exec.spawn(async move {
            let _ = calls.call(&n, &ToNode::Crash).await;
        });
        if !self.wait_silent(&name) {
            return Err(SimError::Distributed(format!(
                "node {name} was told to crash but its heartbeats go on"
            )));
        }
        self.fail_over(slot, layout)
    }

    fn affinity_sample(&self) -> u32 {
        self.affinity_sample
    }

    fn process_loads(&self) -> Vec<ProcessLoad> {
        let p = self.calls.placement();
        let mut agents = vec![0_u64; p.host.len()];
        for &c in &p.cluster_of {
            if let Some(n) = agents.get_mut(c as usize) {
                *n += 1;
            }
        }
        p.slots
            .iter()
            .map(|s| ProcessLoad {
                name: s.name.clone(),
                alive: s.alive,
                clusters: s
                    .clusters
                    .iter()
                    .map(|&c| {
                        (
                            format!("c{c}"),
                            agents.get(c as usize).copied().unwrap_or(0),
                        )
                    })
                    .collect(),
                handled: s.last.stats.handled,
                restarts: s.last.stats.restarts,
                dead_letters: s.last.stats.dead_letters + s.last.gateway.dead_letters,
                in_flight: s.last.in_flight,
            })
            .collect()
    }

    fn processes(&self) -> usize {
        self.calls.placement().slots.len()
    }

    fn unplanned_losses(&self) -> NodeLosses {
        NodeLosses {
            nodes: self.unplanned.nodes,
            agents_restarted: self.unplanned.agents_restarted,
            in_flight: self.unplanned.in_flight,
            ticks_rerun: self.unplanned.ticks_rerun.clone(),
        }
    }

    fn recluster(
        &mut self,
        _layout: &mut Layout,
        _cross: &dyn Fn(&Layout) -> f64,
        _affinity: &HashMap<(AgentId, AgentId), f64>,
        _policy: &ReclusterPolicy,
    ) -> Result<Option<ReclusterRecord>, SimError> {
        // Agents do not move between processes (yet): distributed runs keep their layout.
        Ok(None)
    }

    fn cross_process_messages(&mut self) -> u64 {
        let wave = self
            .exec
            .block_on(self.calls.statuses())
            .unwrap_or_default();
        let p = self.calls.placement();
        let lost = p.slots.iter().filter(|s| !s.alive).map(|s| s.last);
        wave.iter()
            .map(|(_, s)| *s)
            .chain(lost)
            .map(|s| s.gateway.envelopes_out)
            .sum()
    }

    fn shutdown(mut self: Box<Self>) -> ShutdownFigures {
        let results = self.exec.block_on(self.calls.call_all(&ToNode::Finish));
        let missing = results.iter().filter(|(_, r)| r.is_err()).count();
        self.reap();
        ShutdownFigures {
            letters_left: 0,
            nodes_missing: missing,
        }
    }
}

impl Coordinator {
    fn host_of_address(&self, addr: Address) -> Result<String, SimError> {
        let p = self.calls.placement();
        self.cluster_of_node
            .get(&addr)
            .map(|&c| &p.slots[p.host[c as usize]])
            .filter(|s| s.alive)
            .map(|s| s.name.clone())
            .ok_or_else(|| SimError::Distributed(format!("{addr:?} has no live host")))
    }

    /// Waits for the child processes to exit (they leave after Finish), killing stragglers.
    fn reap(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for c in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
        if let Some(b) = self.beat.take() {
            b.abort();
        }
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        // On an error path: no node process outlives the run.
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The initial layout of a distributed run: as a local run's, misplacement included.
fn initial_layout(scenario: &Scenario) -> Layout {
    let (_, leaves) = plan_hierarchy(scenario);
    let mut layout = Layout::new(leaves, scenario);
    layout.misplace_layout(scenario.topology.misplaced, scenario.seed);
    layout
}
