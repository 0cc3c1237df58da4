//! A round's allocation problem: the runtime's tree with every reporting agent under its
//! host, and the observed affinity, decayed and scaled to the objective's units.

use std::collections::{HashMap, HashSet};

use qorch_protocol::{Address, AgentId, ClusterId, SubClusterId};
use qorch_runtime::{ComponentStatus, RoundReport};
use qorch_scheduler::{Affinity, AgentSpec, AllocationProblem, Cluster, SubCluster};

use crate::OptimizerConfig;

// The observed affinity counts messages, while the objective counts resources in units of a
// mean pool (see `AllocationProblem`): before a round, the edges are scaled so that their
// total weight equals the total desired size of the agents that report. `costs.communication`
// then reads as "splitting every pair that talks costs this share of the demand", whatever
// the message rates.

/// Decays the affinity graph and adds this round's observations; returns the edges among
/// the reporting agents.
pub(crate) fn update_affinity(
    config: &OptimizerConfig,
    graph: &mut HashMap<(AgentId, AgentId), f64>,
    report: &RoundReport,
) -> Vec<Affinity> {
    let keep = config.affinity_memory;
    graph.retain(|_, w| {
        *w *= keep;
        *w >= 0.5
    });
    for &(a, b, w) in &report.affinity {
        if a != b {
            *graph.entry((a.min(b), a.max(b))).or_insert(0.0) += w;
        }
    }
    let present: HashSet<AgentId> = report
        .agents
        .iter()
        .filter(|r| r.request.is_some() && r.status != ComponentStatus::Failed)
        .map(|r| r.agent)
        .collect();
    let mut edges: Vec<Affinity> = graph
        .iter()
        .filter(|((a, b), _)| present.contains(a) && present.contains(b))
        .map(|(&(a, b), &weight)| Affinity { a, b, weight })
        .collect();
    edges.sort_by_key(|e| (e.a, e.b));
    edges
}

/// Scales the edges so that their total weight equals the reporting agents' total
/// desired size (in units of a mean pool, as the objective counts it).
pub(crate) fn normalize_affinity(
    config: &OptimizerConfig,
    edges: &mut [Affinity],
    report: &RoundReport,
) {
    let kinds = config.kinds.len();
    let pools = config.pools.len().max(1) as f64;
    let mean_cap: Vec<f64> = (0..kinds)
        .map(|k| {
            config
                .pools
                .iter()
                .map(|p| p.capacity.amounts().get(k).copied().unwrap_or(0.0))
                .sum::<f64>()
                / pools
        })
        .collect();
    let size: f64 = report
        .agents
        .iter()
        .filter(|r| r.status != ComponentStatus::Failed)
        .filter_map(|r| r.request.as_ref())
        .map(|req| {
            req.desired
                .amounts()
                .iter()
                .zip(&mean_cap)
                .filter(|(_, c)| **c > 0.0)
                .map(|(d, c)| d / c)
                .sum::<f64>()
                / kinds.max(1) as f64
        })
        .sum();
    let total: f64 = edges.iter().map(|e| e.weight).sum();
    if total > 0.0 && size > 0.0 {
        let scale = size / total;
        for e in edges {
            e.weight *= scale;
        }
    }
}

/// The allocation problem of a round: the cluster tree of the runtime, with every
/// reporting agent under its host.
pub(crate) fn problem(
    config: &OptimizerConfig,
    nodes: &[(Address, String, Option<Address>)],
    report: &RoundReport,
    affinity: Vec<Affinity>,
) -> AllocationProblem {
    let mut agents_of: HashMap<Address, Vec<AgentSpec>> = HashMap::new();
    for r in &report.agents {
        if r.status == ComponentStatus::Failed {
            continue;
        }
        if let Some(request) = &r.request {
            agents_of.entry(r.host).or_default().push(AgentSpec {
                id: r.agent,
                request: request.clone(),
                current: r.pool,
            });
        }
    }
    let mut children: HashMap<Option<Address>, Vec<Address>> = HashMap::new();
    for (addr, _, parent) in nodes {
        children.entry(*parent).or_default().push(*addr);
    }
    let clusters = children
        .get(&None)
        .into_iter()
        .flatten()
        .filter_map(|root| {
            let Address::Cluster(id) = *root else {
                return None;
            };
            Some(Cluster {
                id: ClusterId(id.0),
                agents: agents_of.remove(root).unwrap_or_default(),
                subclusters: children
                    .get(&Some(*root))
                    .into_iter()
                    .flatten()
                    .map(|c| sub_tree(*c, &children, &mut agents_of))
                    .collect(),
            })
        })
        .collect();
    AllocationProblem {
        kinds: config.kinds.clone(),
        pools: config.pools.clone(),
        clusters,
        affinity,
        costs: config.costs,
    }
}

pub(crate) fn cluster_agents(c: &Cluster) -> Vec<&AgentSpec> {
    fn sub<'a>(s: &'a SubCluster, out: &mut Vec<&'a AgentSpec>) {
        out.extend(s.agents.iter());
        for c in &s.subclusters {
            sub(c, out);
        }
    }
    let mut v: Vec<&AgentSpec> = c.agents.iter().collect();
    for s in &c.subclusters {
        sub(s, &mut v);
    }
    v
}

/// The sub-cluster at `addr` with its agents and, recursively, its children.
fn sub_tree(
    addr: Address,
    children: &HashMap<Option<Address>, Vec<Address>>,
    agents_of: &mut HashMap<Address, Vec<AgentSpec>>,
) -> SubCluster {
    let id = match addr {
        Address::SubCluster(s) => s,
        _ => SubClusterId(u32::MAX),
    };
    SubCluster {
        id,
        agents: agents_of.remove(&addr).unwrap_or_default(),
        subclusters: children
            .get(&Some(addr))
            .into_iter()
            .flatten()
            .map(|c| sub_tree(*c, children, agents_of))
            .collect(),
    }
}
