//! A node process (`qorch node --nats URL --join NAME`): announces itself, waits for its
//! clusters, hosts them in a local runtime whose gateway joins the other processes over
//! NATS, and answers the coordinator's calls until told to finish.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use qorch_net::rpc::{self, Request};
use qorch_net::{
    ANNOUNCE_EVERY, Announcer, Connection, Gateway, GatewayConfig, Membership, NatsConfig,
    RouteTable, Subjects,
};
use qorch_protocol::{Address, AgentId, ClusterId, SubClusterId};
use qorch_runtime::{Factory, QuantumOrchestrator, RuntimeHandle};
use tracing::Instrument as _;

use super::protocol::{
    Adoption, Assignment, COORDINATOR, FromNode, HEARTBEAT, NodeStatus, ToNode, node_subject,
};
use crate::agent::{SimAgent, SimMsg};
use crate::error::SimError;
use crate::model::ModelSpec;
use crate::plan::{PlannedNode, create_nodes, plan_hierarchy};
use crate::scenario::Scenario;
use crate::setup::{factory, runtime_config, wait_failed};

/// Silence of the coordinator after which an assigned node gives up and exits.
const ORPHANED: Duration = Duration::from_secs(30);

/// What a node hosts once assigned.
struct World {
    spec: Arc<ModelSpec>,
    rt: QuantumOrchestrator<SimAgent<ModelSpec>>,
    handle: RuntimeHandle<SimAgent<ModelSpec>>,
    gateway: Gateway<SimMsg>,
    plan: Vec<PlannedNode>,
    /// Levels of the node tree (1: clusters only).
    levels: usize,
    tick: u64,
    /// Agents and top-level clusters of the scenario: the bounds of every id a call names.
    agents: usize,
    clusters: usize,
    /// Every leaf: address and top-level cluster.
    leaves: Vec<(Address, u32)>,
}

/// A call whose fields do not fit the run (forged, or from another run): refused before
/// anything is used as an index or a size.
fn refuse(name: &str, what: &str) -> SimError {
    tracing::warn!(node = name, "refused a control call: {what}");
    SimError::Distributed(format!("node {name} refused a control call: {what}"))
}

/// Checks that every cluster index is below `clusters`.
fn check_clusters(name: &str, list: &[u32], clusters: usize) -> Result<(), SimError> {
    match list.iter().find(|&&c| c as usize >= clusters) {
        Some(c) => Err(refuse(
            name,
            &format!("cluster {c} out of range (the run has {clusters})"),
        )),
        None => Ok(()),
    }
}

/// Runs a node until the coordinator says finish (or falls silent for good).
///
/// # Errors
///
/// [`SimError::Net`] if the server cannot be reached or refuses the credentials (the node
/// does not start), or a runtime error.
pub fn run_node(config: &NatsConfig, name: &str) -> Result<(), SimError> {
    if !qorch_net::valid_process_name(name) {
        return Err(SimError::Scenario(format!(
            "node name {name:?}: use letters, digits, '-' and '_' only"
        )));
    }
    let exec = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| SimError::Executor { of: "node", source })?;
    exec.block_on(serve(config, name))
}

async fn serve(config: &NatsConfig, name: &str) -> Result<(), SimError> {
    let subjects = Subjects::new(&config.prefix);
    let control = config.connect(&format!("{name}/control")).await?;
    let data = config.connect(&format!("{name}/data")).await?;
    let mut requests = rpc::serve(&control, &node_subject(&subjects, name)).await?;
    let beat = qorch_net::beacon(&control, &subjects, name, HEARTBEAT);
    let members = Membership::watch(&control, &subjects).await?;
    tracing::info!(node = name, "joined; waiting for work");
    let announcer = Announcer::new(&control, &subjects, name)?;
    let mut announce = tokio::time::interval(ANNOUNCE_EVERY);
    let mut world: Option<World> = None;
    let result = loop {
        tokio::select! {
            req = requests.recv() => {
                let Some(req) = req else { break Ok(()) };
                // A round's calls carry the coordinator's trace context: this node's span
                // for the call names the same trace.
                // Where an exporter is installed, the span is the remote span's child in it.
                let span = req.trace().map_or_else(tracing::Span::none, |t| {
                    let span = tracing::info_span!(
                        "control_call",
                        node = name,
                        trace_id = %t.trace_hex(),
                        parent_span_id = %t.span_hex()
                    );
                    t.adopt(&span);
                    span
                });
                let handled = handle_request(&req, &mut world, &data, &control, &subjects, name)
                    .instrument(span)
                    .await;
                match handled {
                    Ok(Some(answer)) => {
                        let _ = req.answer(&control, &Ok::<_, String>(answer)).await;
                    }
                    Ok(None) => {
                        let _ = req.answer(&control, &Ok::<_, String>(FromNode::Ok)).await;
                        break Ok(());
                    }
                    Err(e) => {
                        let _ = req.answer::<FromNode>(&control, &Err(chain(&e))).await;
                    }
                }
            }
            _ = announce.tick() => {
                if world.is_none() {
                    announcer.announce().await;
                } else if !members.alive(COORDINATOR, ORPHANED) {
                    break Err(SimError::Distributed(format!(
                        "node {name}: the coordinator has been silent for {ORPHANED:?}; leaving"
                    )));
                }
            }
        }
    };
    beat.abort();
    if let Some(w) = world.take() {
        tokio::task::spawn_blocking(move || w.rt.shutdown())
            .await
            .map_err(|source| SimError::NodeShutdown {
                node: name.to_owned(),
                source,
            })?;
    }
    result
}

/// Handles one call; `Ok(None)` for Finish (answered, then the node leaves).
async fn handle_request(
    req: &Request,
    world: &mut Option<World>,
    data: &Connection,
    control: &Connection,
    subjects: &Subjects,
    name: &str,
) -> Result<Option<FromNode>, SimError> {
    let msg: ToNode = req.decode()?;
    let (msg, w) = match (msg, world.as_mut()) {
        (ToNode::Assign(a), None) => {
            *world = Some(World::build(&a, data, control, subjects, name).await?);
            return Ok(Some(FromNode::Ok));
        }
        (msg, Some(w)) => (msg, w),
        (_, None) => {
            return Err(SimError::Scenario(format!("node {name} has no work yet")));
        }
    };
    match msg {
        ToNode::Assign(_) => Err(SimError::Scenario(format!(
            "node {name} is already assigned"
        ))),
        ToNode::Tick(t) => {
            if t > w.tick {
                w.handle.tick(t).await?;
                w.handle.quiesce(t, Duration::from_secs(600)).await?;
                w.tick = t;
            }
            Ok(Some(FromNode::Ok))
        }
        ToNode::Status => Ok(Some(FromNode::Status(Box::new(w.status().await?)))),
        ToNode::Collect(round) => Ok(Some(FromNode::Report(Box::new(
            w.handle.round(round).await?,
        )))),
        ToNode::Allocate(batch) => {
            if let Some((a, _)) = batch.grants.iter().find(|(a, _)| a.0 as usize >= w.agents) {
                return Err(refuse(
                    name,
                    &format!("a grant for agent {a}, out of range"),
                ));
            }
            w.handle.allocate(batch).await?;
            // Grants travel one level per hop: one settle pass per level, and one for the
            // orchestrator.
            for _ in 0..=w.levels {
                w.handle.settle().await?;
            }
            Ok(Some(FromNode::Ok))
        }
        ToNode::Panic(id) => {
            if id.0 as usize >= w.agents {
                return Err(refuse(name, &format!("agent {id} out of range")));
            }
            let fuse = Arc::new(AtomicBool::new(true));
            w.handle
                .send_to(id, SimMsg::Panic(fuse))
                .await
                .map_err(|e| SimError::FaultInjection {
                    agent: id,
                    source: e.into(),
                })?;
            Ok(Some(FromNode::Ok))
        }
        ToNode::LoseLeaf(addr) => {
            w.rt.manager().kill(addr)?;
            wait_failed(&w.handle, addr).await?;
            Ok(Some(FromNode::Ok))
        }
        ToNode::Crash => {
            tracing::warn!(node = name, "injected fault: the node process dies now");
            std::process::abort();
        }
        ToNode::Adopt(a) => {
            w.check_adoption(&a, name)?;
            w.adopt(&a)?;
            Ok(Some(FromNode::Ok))
        }
        ToNode::Finish => Ok(None),
    }
}

impl World {
    async fn build(
        a: &Assignment,
        data: &Connection,
        control: &Connection,
        subjects: &Subjects,
        name: &str,
    ) -> Result<World, SimError> {
        let scenario = Scenario::from_toml_str(&a.scenario)?;
        scenario.validate()?;
        let (plan, leaves) = plan_hierarchy(&scenario);
        let agents = scenario.topology.agents;
        check_clusters(name, &a.clusters, scenario.topology.clusters)?;
        if a.leaf_of.len() != agents {
            return Err(refuse(
                name,
                &format!(
                    "{} agents placed for a scenario of {agents}",
                    a.leaf_of.len()
                ),
            ));
        }
        if let Some(l) = a.leaf_of.iter().find(|&&l| l as usize >= leaves.len()) {
            return Err(refuse(
                name,
                &format!("leaf {l} out of range (the run has {})", leaves.len()),
            ));
        }
        let spec = Arc::new(ModelSpec::new(&scenario));
        let routes = Arc::new(RouteTable::new());
        routes.place_agents(route_entries(&leaves, &a.leaf_of));
        let (mut gateway, link) =
            Gateway::<SimMsg>::new(GatewayConfig::new(name), subjects.clone(), routes);
        let rt = QuantumOrchestrator::<SimAgent<ModelSpec>>::builder()
            .config(runtime_config(&scenario))
            .remote(link)
            .build()?;
        let handle = rt.handle();
        let mine: std::collections::BTreeSet<u32> = a.clusters.iter().copied().collect();
        create_nodes(&rt.manager(), &plan, &|c| mine.contains(&c))?;
        let factory = factory(&spec);
        let mut by_leaf: Vec<Vec<AgentId>> = vec![Vec::new(); leaves.len()];
        for (agent, &l) in a.leaf_of.iter().enumerate() {
            by_leaf[l as usize].push(AgentId(agent as u32));
        }
        for (l, (addr, c, _)) in leaves.iter().enumerate() {
            if mine.contains(c) && !by_leaf[l].is_empty() {
                rt.manager().spawn_agents_at(*addr, &by_leaf[l], &factory)?;
            }
        }
        handle.settle().await?;
        let hosted: Vec<ClusterId> = a.clusters.iter().map(|&c| ClusterId(c)).collect();
        gateway
            .start(data, control, handle.clone(), &hosted)
            .await?;
        tracing::info!(node = name, clusters = hosted.len(), "hosting");
        Ok(World {
            spec,
            rt,
            handle,
            gateway,
            plan,
            levels: scenario.topology.depth + 1,
            tick: 0,
            agents,
            clusters: scenario.topology.clusters,
            leaves: leaves.iter().map(|(addr, c, _)| (*addr, *c)).collect(),
        })
    }

    async fn status(&self) -> Result<NodeStatus, SimError> {
        Ok(NodeStatus {
            in_flight: self.handle.in_flight(),
            stats: self.handle.stats().await?,
            gateway: self.gateway.stats(),
            letters_left: 0,
        })
    }

    /// Checks an adoption against the run: clusters in range, agents in range and each at a
    /// leaf of an adopted cluster.
    fn check_adoption(&self, a: &Adoption, name: &str) -> Result<(), SimError> {
        check_clusters(name, &a.clusters, self.clusters)?;
        let adopted: std::collections::BTreeSet<u32> = a.clusters.iter().copied().collect();
        for (leaf, ids) in &a.agents {
            let in_adopted = self
                .leaves
                .iter()
                .any(|(addr, c)| addr == leaf && adopted.contains(c));
            if !in_adopted {
                return Err(refuse(
                    name,
                    &format!("{leaf:?} is not a leaf of an adopted cluster"),
                ));
            }
            if let Some(id) = ids.iter().find(|id| id.0 as usize >= self.agents) {
                return Err(refuse(name, &format!("agent {id} out of range")));
            }
        }
        Ok(())
    }

    /// Creates the adopted clusters' nodes, restarts their agents at the adoption's tick,
    /// and subscribes to their subjects (what was not acknowledged comes here).
    fn adopt(&mut self, a: &Adoption) -> Result<(), SimError> {
        let adopted: std::collections::BTreeSet<u32> = a.clusters.iter().copied().collect();
        create_nodes(&self.rt.manager(), &self.plan, &|c| adopted.contains(&c))?;
        let spec = Arc::clone(&self.spec);
        let tick = a.tick;
        let resumed: Factory<SimAgent<ModelSpec>> =
            Arc::new(move |id| SimAgent::resumed(Arc::clone(&spec), id, tick));
        for (leaf, ids) in &a.agents {
            if !ids.is_empty() {
                self.rt.manager().spawn_agents_at(*leaf, ids, &resumed)?;
            }
        }
        for &c in &a.clusters {
            self.gateway.host(ClusterId(c))?;
        }
        self.tick = self.tick.max(a.tick);
        Ok(())
    }
}

/// The route table's entries: every agent's cluster and leaf.
fn route_entries(
    leaves: &[(Address, u32, Address)],
    leaf_of: &[u32],
) -> Vec<(AgentId, ClusterId, Option<SubClusterId>)> {
    leaf_of
        .iter()
        .enumerate()
        .map(|(a, &l)| {
            let (addr, c, _) = leaves[l as usize];
            let sub = match addr {
                Address::SubCluster(s) => Some(s),
                _ => None,
            };
            (AgentId(a as u32), ClusterId(c), sub)
        })
        .collect()
}

/// An error with its causes, as the coordinator prints it (`error: cause: cause`): the
/// error itself cannot cross to the coordinator, its text does.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
