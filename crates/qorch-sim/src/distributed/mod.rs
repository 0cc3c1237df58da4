//! Distributed runs: the scenario's clusters over K node processes joined by NATS, the
//! orchestrator (this process) driving ticks and rounds.
//!
//! * **Placement.** Cluster `c` goes to node `c mod K`; every node learns every agent's
//!   cluster and leaf (its gateway's route table), builds its clusters with the ids a local
//!   run would give, and spawns their agents. Messages between agents of different nodes
//!   climb to the node's orchestrator and cross through the gateways (`qorch_net`).
//! * **Ticks.** Each node runs the tick in its runtime until it is locally quiet; then
//!   termination waves ask every node for its counters until two waves in a row are equal
//!   and every node is idle (nothing in flight, every frame acknowledged both ways). A frame
//!   is acknowledged only once handled, so that is global quiescence.
//! * **Rounds.** The optimizer runs here, on a [`Hierarchy`] whose reports and grants are
//!   the nodes' (`Collect`, `Allocate` calls): the same rounds, ledger and summaries as a
//!   local run, so the report has the same keys.
//! * **Faults.** A node that falls silent (missing heartbeats) is failed; its clusters are
//!   created again on the remaining nodes (round-robin), its agents restarted there from
//!   their last state (their model is a function of their id, their tick is the run's), and
//!   frames its senders had not seen acknowledged reach the new host on the same subjects.
//!   A `node_crash` fault kills a node at a quiet point (between rounds), so the message
//!   accounting stays exact; a node killed from outside mid-tick is recovered the same way,
//!   but what it handled after its last report is then unknown.

mod node;
mod protocol;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use qorch_net::rpc::RpcClient;
use qorch_net::{Membership, NatsConfig, NetError, Subjects};
use qorch_optimizer::{Hierarchy, Optimizer, OptimizerError, ReclusterPolicy};
use qorch_protocol::{Address, AgentId, WireCodec};
use qorch_resources::Grant;
use qorch_runtime::{AllocationBatch, NodeStats, RoundReport};

pub use node::run_node;
use node::{HEARTBEAT, SILENCE, initial_layout};
use protocol::{Adoption, Assignment, COORDINATOR, FromNode, JOIN, Join, NodeStatus, ToNode};

use crate::SimError;
use crate::local::plan_hierarchy;
use crate::model::ModelSpec;
use crate::recluster::Layout;
use crate::report::ReclusterRecord;
use crate::scenario::{FaultKind, Scenario};
use crate::simulation::{
    Backend, Driver, NodeLoss, NodeLosses, Outcome, Progress, ShutdownFigures, drive,
    optimizer_parts, pools,
};

/// Starts a node process with the given name (the CLI runs its own binary as
/// `qorch node --nats URL --join NAME`).
pub type SpawnNode = Arc<dyn Fn(&str) -> std::io::Result<Child> + Send + Sync>;

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

/// The answer timeout of control calls (building a node's share of a million agents takes
/// seconds; a tick of heavy work can take long).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) fn net_error(e: NetError) -> SimError {
    SimError::Net(e)
}

pub(crate) fn node_subject(subjects: &Subjects, name: &str) -> String {
    subjects.control(&format!("node.{name}"))
}

/// Runs `scenario` over `d.nodes` node processes (starting the missing ones with `d.spawn`)
/// and reports as a local run does.
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

/// One node process as the coordinator knows it.
struct Slot {
    name: String,
    alive: bool,
    clusters: Vec<u32>,
    /// Its last reported counts (a lost node's are its final ones: exact when it was lost
    /// at a quiet point, a lower bound when it died mid-tick).
    last: NodeStatus,
}

/// Which node hosts each cluster: shared by the driver's backend and the optimizer's
/// hierarchy.
struct Placement {
    slots: Vec<Slot>,
    /// Cluster index -> slot.
    host: Vec<usize>,
    /// Agent -> cluster index (agents do not move between clusters in distributed runs).
    cluster_of: Vec<u32>,
}

impl Placement {
    fn alive(&self) -> Vec<(usize, String)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.alive)
            .map(|(i, s)| (i, s.name.clone()))
            .collect()
    }
}

/// Talks to the nodes.
#[derive(Clone)]
struct Calls {
    rpc: RpcClient,
    subjects: Subjects,
    members: Membership,
    placement: Arc<Mutex<Placement>>,
}

impl Calls {
    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        self.placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Calls a node; gives up early if its heartbeats stop (a dead node never answers).
    async fn call(&self, name: &str, msg: &ToNode) -> Result<FromNode, SimError> {
        let subject = node_subject(&self.subjects, name);
        let answer = self.rpc.call(&subject, msg, CALL_TIMEOUT);
        let silent = async {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if !self.members.alive(name, SILENCE) {
                    return;
                }
            }
        };
        tokio::select! {
            r = answer => r.map_err(|e| SimError::Distributed(format!("node {name}: {e}"))),
            () = silent => Err(SimError::Distributed(format!(
                "node {name} fell silent (no heartbeat for {SILENCE:?})"
            ))),
        }
    }

    /// The same call to every live node at once.
    async fn call_all(&self, msg: &ToNode) -> Vec<(usize, Result<FromNode, SimError>)> {
        let alive = self.placement().alive();
        let calls = alive
            .iter()
            .map(|(i, name)| async move { (*i, self.call(name, msg).await) });
        join_all(calls).await
    }

    async fn statuses(&self) -> Result<Vec<(usize, NodeStatus)>, SimError> {
        let mut out = Vec::new();
        for (i, r) in self.call_all(&ToNode::Status).await {
            match r? {
                FromNode::Status(s) => out.push((i, *s)),
                other => return Err(unexpected(&other)),
            }
        }
        // Kept: if a node dies, its last counts still count.
        let mut p = self.placement();
        for (i, s) in &out {
            p.slots[*i].last = *s;
        }
        Ok(out)
    }

    fn host_of_agent(&self, agent: AgentId) -> Option<String> {
        let p = self.placement();
        let c = *p.cluster_of.get(agent.0 as usize)?;
        let s = &p.slots[p.host[c as usize]];
        s.alive.then(|| s.name.clone())
    }
}

fn unexpected(answer: &FromNode) -> SimError {
    SimError::Distributed(format!("unexpected answer {answer:?}"))
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
#[derive(Debug, Clone, Copy, Default)]
struct Unplanned {
    nodes: u64,
    agents_restarted: u64,
    in_flight: u64,
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
            .map_err(|e| SimError::Distributed(format!("cannot start the executor: {e}")))?;
        let subjects = Subjects::new(&d.nats.prefix);
        let control = exec
            .block_on(d.nats.connect("coordinator/control"))
            .map_err(net_error)?;
        let (members, rpc, beat) = exec
            .block_on(async {
                let members = Membership::watch(&control, &subjects).await?;
                let rpc = RpcClient::new(control.clone()).await?;
                let beat = qorch_net::beacon(control.clone(), &subjects, COORDINATOR, HEARTBEAT);
                Ok::<_, NetError>((members, rpc, beat))
            })
            .map_err(net_error)?;
        let mut children = Vec::new();
        let names = exec.block_on(gather(&control, &subjects, d, &mut children))?;
        let layout = initial_layout(scenario, spec);
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
            affinity_sample: crate::local::runtime_config(scenario).affinity_sample,
            beat: Some(beat),
            cluster_of_node: plan_hierarchy(scenario)
                .0
                .into_iter()
                .map(|n| (n.address, n.cluster))
                .collect(),
            unplanned: Unplanned::default(),
        };
        me.assign(scenario, &layout)?;
        let (config, scheduler) = optimizer_parts(scenario, pools(scenario, spec))?;
        let hierarchy = Remote {
            calls: me.calls.clone(),
            exec: me.exec.handle().clone(),
            nodes: plan_hierarchy(scenario)
                .0
                .into_iter()
                .map(|n| (n.address, n.name, n.parent))
                .collect(),
        };
        let optimizer = Optimizer::start_on(hierarchy, config, scheduler)
            .map_err(|e| SimError::Optimizer(e.to_string()))?;
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
            in_flight: last.in_flight + last.gateway.frames_awaiting_ack,
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

/// Waits for `d.nodes` nodes to announce themselves, starting the missing ones.
async fn gather(
    control: &qorch_net::Client,
    subjects: &Subjects,
    d: &Distributed,
    children: &mut Vec<Child>,
) -> Result<Vec<String>, SimError> {
    let mut joins = control
        .subscribe(subjects.control(JOIN))
        .await
        .map_err(|e| SimError::Distributed(format!("cannot subscribe: {e}")))?;
    let mut names: BTreeSet<String> = BTreeSet::new();
    let listen = |names: &mut BTreeSet<String>, m: qorch_net::Message| {
        if let Ok(j) = WireCodec::default().decode::<Join>(&m.payload) {
            names.insert(j.name);
        }
    };
    // Nodes already running announce every 250 ms.
    let first = Instant::now() + Duration::from_millis(600);
    while let Ok(Some(m)) = tokio::time::timeout_at(first.into(), joins.next()).await {
        listen(&mut names, m);
    }
    let mut names: Vec<String> = names.into_iter().collect();
    names.truncate(d.nodes);
    if names.len() < d.nodes {
        let Some(spawn) = &d.spawn else {
            return wait_for_more(&mut joins, names, d).await;
        };
        let run = std::process::id();
        let mut k = 0;
        while names.len() + children.len() < d.nodes {
            let name = format!("node-{run}-{k}");
            k += 1;
            let child = spawn(&name).map_err(|e| {
                SimError::Distributed(format!("cannot start node process {name}: {e}"))
            })?;
            tracing::info!(node = %name, pid = child.id(), "started a local node process");
            children.push(child);
        }
    }
    wait_for_more(&mut joins, names, d).await
}

/// Collects announcements until `d.nodes` distinct nodes have joined.
async fn wait_for_more(
    joins: &mut qorch_net::Subscriber,
    names: Vec<String>,
    d: &Distributed,
) -> Result<Vec<String>, SimError> {
    let mut set: BTreeSet<String> = names.into_iter().collect();
    let deadline = Instant::now() + d.join_timeout;
    while set.len() < d.nodes {
        match tokio::time::timeout_at(deadline.into(), joins.next()).await {
            Ok(Some(m)) => {
                if let Ok(j) = WireCodec::default().decode::<Join>(&m.payload) {
                    set.insert(j.name);
                }
            }
            _ => {
                return Err(SimError::Distributed(format!(
                    "{} of {} nodes joined within {:?} ({}); start more with \
                     `qorch node --nats URL --join NAME`",
                    set.len(),
                    d.nodes,
                    d.join_timeout,
                    set.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    Ok(set.into_iter().take(d.nodes).collect())
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
                self.unplanned.agents_restarted += loss.agents_restarted;
                self.unplanned.in_flight += loss.in_flight;
                self.unplanned.nodes += 1;
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

    fn processes(&self) -> usize {
        self.calls.placement().slots.len()
    }

    fn unplanned_losses(&self) -> NodeLosses {
        NodeLosses {
            nodes: self.unplanned.nodes,
            agents_restarted: self.unplanned.agents_restarted,
            in_flight: self.unplanned.in_flight,
        }
    }

    fn recluster(
        &mut self,
        _layout: &mut Layout,
        _spec: &ModelSpec,
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

/// The nodes as the optimizer's hierarchy.
struct Remote {
    calls: Calls,
    exec: tokio::runtime::Handle,
    nodes: Vec<(Address, String, Option<Address>)>,
}

impl Hierarchy for Remote {
    fn collect(&mut self, round: u64) -> Result<RoundReport, OptimizerError> {
        let results = self
            .exec
            .block_on(self.calls.call_all(&ToNode::Collect(round)));
        let mut all = RoundReport {
            round,
            ..RoundReport::default()
        };
        for (_, r) in results {
            match r.map_err(|e| OptimizerError::Hierarchy(e.into()))? {
                FromNode::Report(rep) => {
                    all.agents.extend(rep.agents);
                    all.affinity.extend(rep.affinity);
                }
                other => return Err(OptimizerError::Hierarchy(unexpected(&other).into())),
            }
        }
        all.agents.sort_by_key(|a| a.agent);
        all.affinity
            .sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        Ok(all)
    }

    /// Clusters whose node is lost and that no other node has adopted yet.
    fn failed_components(&mut self) -> usize {
        self.calls
            .placement()
            .slots
            .iter()
            .filter(|s| !s.alive)
            .map(|s| s.clusters.len())
            .sum()
    }

    fn nodes(&mut self) -> Vec<(Address, String, Option<Address>)> {
        self.nodes.clone()
    }

    fn deliver(&mut self, batch: AllocationBatch) -> Result<(), OptimizerError> {
        let mut by_node: BTreeMap<String, Vec<(AgentId, Option<Grant>)>> = BTreeMap::new();
        for (a, g) in batch.grants {
            if let Some(host) = self.calls.host_of_agent(a) {
                by_node.entry(host).or_default().push((a, g));
            }
        }
        let calls = &self.calls;
        let results = self.exec.block_on(join_all(by_node.into_iter().map(
            |(name, grants)| async move {
                let b = AllocationBatch {
                    round: batch.round,
                    grants,
                };
                calls.call(&name, &ToNode::Allocate(b)).await
            },
        )));
        for r in results {
            r.map_err(|e| OptimizerError::Hierarchy(e.into()))?;
        }
        Ok(())
    }
}
