//! The hierarchical allocation problem the runtime hands to the scheduler.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use qorch_resources::{
    AgentId, ClusterId, KindId, Pool, PoolFilter, PoolId, ResourceKinds, ResourceRequest,
    ResourceVector, SubClusterId,
};

use crate::ScheduleError;
use crate::outcome::NodeId;

/// Agent lookups while flattening (millions of them: a fast hash; only looked up, never
/// iterated, so its order cannot leak into results).
type FoldMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An agent to place: its request and where it runs now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// The agent.
    pub id: AgentId,
    /// What it asks for (minimum, desired, weight, allowed pools).
    pub request: ResourceRequest,
    /// The pool it runs on now, if any: leaving it costs the migration cost.
    pub current: Option<PoolId>,
}

/// A top-level cluster: its own agents and its sub-clusters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// The cluster.
    pub id: ClusterId,
    /// Agents directly in the cluster.
    pub agents: Vec<AgentSpec>,
    /// Sub-clusters, to any depth.
    pub subclusters: Vec<SubCluster>,
}

/// A sub-cluster at any depth.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubCluster {
    /// The sub-cluster.
    pub id: SubClusterId,
    /// Agents directly in the sub-cluster.
    pub agents: Vec<AgentSpec>,
    /// Its sub-clusters.
    pub subclusters: Vec<SubCluster>,
}

/// Two agents that talk: splitting them across pools (or leaving one unserved) costs
/// `weight` times [`CostModel::communication`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affinity {
    /// One agent.
    pub a: AgentId,
    /// The other.
    pub b: AgentId,
    /// How much they talk (positive).
    pub weight: f64,
}

/// Cost coefficients of the objective, in units of served value (see
/// [`AllocationProblem`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// Cost of moving an agent off its current pool (or evicting it), per unit of its desired
    /// size: moving a large agent costs more.
    pub migration: f64,
    /// Cost per unit of affinity weight of a split pair.
    pub communication: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            migration: 0.1,
            communication: 0.01,
        }
    }
}

/// A round's allocation problem: pools with capacities, a tree of clusters whose nodes hold
/// agents, affinity edges, and cost coefficients.
///
/// **Objective** (maximized):
///
/// ```text
///   sum over served agents a:  weight_a * size(grant_a)
/// - sum over agents that leave their current pool (moved or evicted):  migration * size(desired_a)
/// - sum over affinity edges (a, b) not served on one pool:  communication * w_ab
/// ```
///
/// where `size(v) = mean over kinds k of v_k / mean pool capacity of k`: one unit is a mean
/// pool. A grant lies between the request's minimum and desired amount (the scheduler places
/// agents at one of the two, then tops up agents placed at their minimum with whatever their
/// pool has left). The affinity and migration terms make this quadratic in the placement
/// variables: that is why it is a QUBO (migration is linear given the current placement;
/// affinity couples pairs of agents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationProblem {
    /// The resource kinds (vectors are indexed by them).
    pub kinds: ResourceKinds,
    /// The pools (ids need not be dense, but must be distinct).
    pub pools: Vec<Pool>,
    /// The top-level clusters.
    pub clusters: Vec<Cluster>,
    /// Who talks to whom.
    pub affinity: Vec<Affinity>,
    /// Cost coefficients.
    pub costs: CostModel,
}

/// A node of the flattened tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) id: NodeId,
    /// Agents directly in the node (indices into `Flat::agents`).
    pub(crate) agents: Vec<usize>,
    /// Child nodes (indices into `Flat::nodes`).
    pub(crate) children: Vec<usize>,
    /// Every agent in the subtree.
    pub(crate) all: Vec<usize>,
}

/// One agent, validated, with pool references as dense indices.
#[derive(Debug, Clone)]
pub(crate) struct FlatAgent {
    pub(crate) id: AgentId,
    pub(crate) weight: f64,
    pub(crate) desired: Vec<f64>,
    /// `None` when the minimum equals the desired amount (one level only) or is zero.
    pub(crate) min: Option<Vec<f64>>,
    /// Dense pool index of the current placement.
    pub(crate) current: Option<u32>,
    /// Allowed pools: `None` = any; otherwise a sorted list (Only) or an exclusion list.
    pub(crate) only: Option<Vec<u32>>,
    pub(crate) except: Vec<u32>,
}

/// The validated, flattened problem.
#[derive(Debug, Clone)]
pub(crate) struct Flat {
    pub(crate) kinds: usize,
    /// Dense capacities, `pools * kinds`.
    pub(crate) capacity: Vec<f64>,
    pub(crate) pool_ids: Vec<PoolId>,
    /// Per kind: one over the mean pool capacity (0 where all are 0).
    pub(crate) inv_mean: Vec<f64>,
    /// Kinds with capacity (the size is a mean over them).
    pub(crate) active_kinds: f64,
    pub(crate) agents: Vec<FlatAgent>,
    pub(crate) nodes: Vec<Node>,
    /// The top-level nodes.
    pub(crate) roots: Vec<usize>,
    /// Symmetric adjacency of agent indices with weights (already times `communication`).
    pub(crate) adj: Vec<Vec<(u32, f64)>>,
    pub(crate) migration: f64,
    /// Pools whose capacity no other pool dominates (every pool's capacity is at most one
    /// of theirs in every kind).
    pub(crate) maximal: Vec<u32>,
}

impl Flat {
    /// A lower bound on the communication cost agent `a` causes by staying unserved: half of
    /// its incident affinity (an edge with an unserved endpoint always pays, and each edge has
    /// two endpoints). Charging it to the unserved option keeps a relaxation an upper bound.
    pub(crate) fn unserved_affinity_floor(&self, a: usize) -> f64 {
        0.5 * self.adj[a].iter().map(|&(_, w)| w).sum::<f64>()
    }

    /// The size of a demand vector: mean over kinds of amount / mean capacity.
    pub(crate) fn size(&self, v: &[f64]) -> f64 {
        v.iter()
            .zip(&self.inv_mean)
            .map(|(a, s)| a * s)
            .sum::<f64>()
            / self.active_kinds
    }

    /// Whether agent `a` may use dense pool `p`.
    pub(crate) fn allows(&self, a: usize, p: u32) -> bool {
        let ag = &self.agents[a];
        match &ag.only {
            Some(list) => list.binary_search(&p).is_ok(),
            None => !ag.except.contains(&p),
        }
    }

    /// Whether `v` fits pool `p`'s full capacity.
    pub(crate) fn fits_pool(&self, p: usize, v: &[f64]) -> bool {
        v.iter()
            .zip(&self.capacity[p * self.kinds..(p + 1) * self.kinds])
            .all(|(a, c)| crate::assign::within(*a, *c))
    }

    /// The value of serving agent `a` with amount `v` on pool `p`, migration included.
    pub(crate) fn value(&self, a: usize, v: &[f64], p: Option<u32>) -> f64 {
        let ag = &self.agents[a];
        let served = p.map_or(0.0, |_| ag.weight * self.size(v));
        let moved = ag.current.is_some() && ag.current != p;
        served
            - if moved {
                self.migration * self.size(&ag.desired)
            } else {
                0.0
            }
    }
}

impl AllocationProblem {
    /// Validates and flattens the problem.
    pub(crate) fn flatten(
        &self,
        previous_pool: &dyn Fn(AgentId) -> Option<PoolId>,
    ) -> Result<Flat, ScheduleError> {
        if self.pools.is_empty() {
            return Err(ScheduleError::NoPools);
        }
        for (name, value) in [
            ("migration", self.costs.migration),
            ("communication", self.costs.communication),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ScheduleError::InvalidCost { name, value });
            }
        }
        let kinds = self.kinds.len().max(1);
        let mut index: HashMap<PoolId, u32> = HashMap::with_capacity(self.pools.len());
        let mut capacity = Vec::with_capacity(self.pools.len() * kinds);
        for (k, pool) in self.pools.iter().enumerate() {
            if index.insert(pool.id, k as u32).is_some() {
                return Err(ScheduleError::DuplicatePool(pool.id));
            }
            if pool.capacity.len() > kinds || !pool.capacity.is_valid() {
                return Err(ScheduleError::InvalidCapacity {
                    pool: pool.id,
                    capacity: pool.capacity.amounts().to_vec(),
                });
            }
            capacity.extend((0..kinds).map(|r| pool.capacity.get(KindId(r as u16))));
        }
        let np = self.pools.len();
        let inv_mean: Vec<f64> = (0..kinds)
            .map(|r| {
                let mean = (0..np).map(|p| capacity[p * kinds + r]).sum::<f64>() / np as f64;
                if mean > 0.0 { 1.0 / mean } else { 0.0 }
            })
            .collect();
        let active_kinds = inv_mean.iter().filter(|x| **x > 0.0).count().max(1) as f64;
        let mut flat = Flat {
            kinds,
            capacity,
            pool_ids: self.pools.iter().map(|p| p.id).collect(),
            inv_mean,
            active_kinds,
            agents: Vec::new(),
            nodes: Vec::new(),
            roots: Vec::new(),
            adj: Vec::new(),
            migration: self.costs.migration,
            maximal: Vec::new(),
        };
        flat.maximal = maximal_pools(&flat.capacity, kinds, np);
        let total = agent_count(&self.clusters);
        flat.agents.reserve(total);
        let mut seen_agents: FoldMap<AgentId, usize> =
            FoldMap::with_capacity_and_hasher(total, foldhash::fast::RandomState::default());
        let mut seen_nodes: HashSet<NodeId> = HashSet::new();
        for c in &self.clusters {
            let id = NodeId::Cluster(c.id);
            let root = add_node(
                &mut flat,
                &mut seen_agents,
                &mut seen_nodes,
                &index,
                id,
                &c.agents,
                &c.subclusters,
                previous_pool,
            )?;
            flat.roots.push(root);
        }
        flat.adj = vec![Vec::new(); flat.agents.len()];
        let resolve = |e: &Affinity| {
            let bad = |why| ScheduleError::InvalidAffinity {
                a: e.a,
                b: e.b,
                weight: e.weight,
                why,
            };
            if !(e.weight.is_finite() && e.weight >= 0.0) {
                return Err(bad("the weight must be finite and non-negative"));
            }
            if e.a == e.b {
                return Err(bad("an agent cannot have affinity with itself"));
            }
            let (Some(&a), Some(&b)) = (seen_agents.get(&e.a), seen_agents.get(&e.b)) else {
                return Err(bad("both agents must be in the cluster tree"));
            };
            Ok((a as u32, b as u32))
        };
        // The lookups (a cache miss each, millions at scale) on rayon's threads; the edges
        // are then added in their given order, and the first bad one is the error.
        let ends: Vec<Option<(u32, u32)>> =
            self.affinity.par_iter().map(|e| resolve(e).ok()).collect();
        for (e, end) in self.affinity.iter().zip(ends) {
            let Some((a, b)) = end else {
                return Err(resolve(e).expect_err("an edge that did not resolve"));
            };
            let w = e.weight * self.costs.communication;
            if w > 0.0 {
                flat.adj[a as usize].push((b, w));
                flat.adj[b as usize].push((a, w));
            }
        }
        Ok(flat)
    }
}

/// Agents in the cluster trees (a capacity hint; counted without recursion).
fn agent_count(clusters: &[Cluster]) -> usize {
    let mut total = 0;
    let mut stack: Vec<&SubCluster> = Vec::new();
    for c in clusters {
        total += c.agents.len();
        stack.extend(&c.subclusters);
    }
    while let Some(s) = stack.pop() {
        total += s.agents.len();
        stack.extend(&s.subclusters);
    }
    total
}

#[allow(
    clippy::too_many_arguments,
    clippy::too_many_lines,
    reason = "a recursive walk carrying its tables"
)]
fn add_node(
    flat: &mut Flat,
    seen_agents: &mut FoldMap<AgentId, usize>,
    seen_nodes: &mut HashSet<NodeId>,
    index: &HashMap<PoolId, u32>,
    id: NodeId,
    agents: &[AgentSpec],
    subs: &[SubCluster],
    previous_pool: &dyn Fn(AgentId) -> Option<PoolId>,
) -> Result<usize, ScheduleError> {
    if !seen_nodes.insert(id) {
        return Err(ScheduleError::DuplicateCluster(match id {
            NodeId::Cluster(c) => c.to_string(),
            NodeId::SubCluster(s) => s.to_string(),
            NodeId::Root => "root".into(),
        }));
    }
    let me = flat.nodes.len();
    flat.nodes.push(Node {
        id,
        agents: Vec::new(),
        children: Vec::new(),
        all: Vec::new(),
    });
    let kinds = flat.kinds;
    let mut own = Vec::with_capacity(agents.len());
    for a in agents {
        let r = &a.request;
        r.validate()
            .map_err(|source| ScheduleError::InvalidRequest {
                agent: a.id,
                source,
            })?;
        for v in [&r.min, &r.desired] {
            if v.len() > kinds {
                return Err(ScheduleError::KindMismatch {
                    agent: a.id,
                    len: v.len(),
                    kinds,
                });
            }
        }
        let dense = |p: PoolId| {
            index.get(&p).copied().ok_or(ScheduleError::UnknownPool {
                agent: a.id,
                pool: p,
            })
        };
        let (only, except) = match &r.pools {
            PoolFilter::Any => (None, Vec::new()),
            PoolFilter::Only(ps) => {
                let mut v = ps
                    .iter()
                    .map(|&p| dense(p))
                    .collect::<Result<Vec<u32>, _>>()?;
                v.sort_unstable();
                v.dedup();
                (Some(v), Vec::new())
            }
            PoolFilter::Except(ps) => (
                None,
                ps.iter()
                    .map(|&p| dense(p))
                    .collect::<Result<Vec<u32>, _>>()?,
            ),
        };
        let current = match a.current.or_else(|| previous_pool(a.id)) {
            Some(p) => Some(dense(p)?),
            None => None,
        };
        let vec_of = |v: &ResourceVector| -> Vec<f64> {
            (0..kinds).map(|k| v.get(KindId(k as u16))).collect()
        };
        let desired = vec_of(&r.desired);
        let min = vec_of(&r.min);
        let min = (min != desired && min.iter().any(|x| *x > 0.0)).then_some(min);
        let idx = flat.agents.len();
        if seen_agents.insert(a.id, idx).is_some() {
            return Err(ScheduleError::DuplicateAgent(a.id));
        }
        flat.agents.push(FlatAgent {
            id: a.id,
            weight: r.weight,
            desired,
            min,
            current,
            only,
            except,
        });
        // A minimum no allowed pool can hold makes the request unsatisfiable.
        let least = flat.agents[idx]
            .min
            .clone()
            .unwrap_or_else(|| flat.agents[idx].desired.clone());
        let np = flat.pool_ids.len();
        let satisfiable = match &flat.agents[idx].only {
            Some(list) => list.iter().any(|&p| flat.fits_pool(p as usize, &least)),
            None => {
                flat.maximal
                    .iter()
                    .any(|&p| flat.allows(idx, p) && flat.fits_pool(p as usize, &least))
                    || (0..np as u32)
                        .any(|p| flat.allows(idx, p) && flat.fits_pool(p as usize, &least))
            }
        };
        if !satisfiable {
            return Err(ScheduleError::Unsatisfiable {
                agent: a.id,
                min: r.min.amounts().to_vec(),
            });
        }
        own.push(idx);
    }
    flat.nodes[me].agents.clone_from(&own);
    let mut all = own;
    for s in subs {
        let child = add_node(
            flat,
            seen_agents,
            seen_nodes,
            index,
            NodeId::SubCluster(s.id),
            &s.agents,
            &s.subclusters,
            previous_pool,
        )?;
        flat.nodes[me].children.push(child);
        all.extend_from_slice(&flat.nodes[child].all);
    }
    flat.nodes[me].all = all;
    Ok(me)
}

/// The pools not dominated by another pool's capacity (ties keep the lowest index).
fn maximal_pools(capacity: &[f64], kinds: usize, pools: usize) -> Vec<u32> {
    let cap = |p: usize| &capacity[p * kinds..(p + 1) * kinds];
    let mut maximal: Vec<u32> = Vec::new();
    for p in 0..pools {
        let c = cap(p);
        if maximal
            .iter()
            .any(|&q| cap(q as usize).iter().zip(c).all(|(a, b)| a >= b))
        {
            continue;
        }
        maximal.retain(|&q| !c.iter().zip(cap(q as usize)).all(|(a, b)| a >= b));
        maximal.push(p as u32);
    }
    maximal
}
