//! Dynamic re-clustering: agents move to the leaves they talk with (a balanced assignment
//! solved as a QUBO by the same solvers as allocation), leaves that grew too large are split
//! in two by a balanced min-cut QUBO, and small siblings are merged.
//!
//! The runtime's `ClusterManager::move_agents` moves an agent with its state, grant and
//! pending messages, so nothing is lost; a merged-away leaf stays as an empty spare and is
//! reused by the next split under the same parent.

use std::collections::{BTreeMap, HashMap};

use qorch_optimizer::ReclusterPolicy;
use qorch_protocol::{Address, AgentId};
use qorch_runtime::{Agent, ClusterManager};

use crate::error::SimError;
use crate::model::{mix, to_unit};
use crate::report::ReclusterRecord;
use crate::scenario::Scenario;
use crate::workload::AgentWorkload;

#[derive(Debug, Clone)]
struct Leaf {
    address: Address,
    /// Top-level cluster index (creation order of the roots).
    cluster: u32,
    /// The node above it (`None`: the leaf is a top-level cluster).
    parent: Option<Address>,
    members: Vec<u32>,
    dead: bool,
}

/// Where every agent lives, as the driver knows it.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    leaves: Vec<Leaf>,
    leaf_of: Vec<u32>,
    roots: u32,
}

impl Layout {
    /// `leaves`: (address, cluster index, cluster address) in creation order; agents in
    /// their home leaves (`Scenario::home_leaf`).
    pub(crate) fn new(leaves: Vec<(Address, u32, Address)>, scenario: &Scenario) -> Layout {
        let roots = leaves.iter().map(|l| l.1 + 1).max().unwrap_or(0);
        let mut leaves: Vec<Leaf> = leaves
            .into_iter()
            .map(|(address, cluster, root)| Leaf {
                address,
                cluster,
                parent: (address != root).then_some(root),
                members: Vec::new(),
                dead: false,
            })
            .collect();
        let leaf_of: Vec<u32> = (0..scenario.topology.agents as u32)
            .map(|a| scenario.home_leaf(AgentId(a)))
            .collect();
        for (a, &l) in leaf_of.iter().enumerate() {
            leaves[l as usize].members.push(a as u32);
        }
        Layout {
            leaves,
            leaf_of,
            roots,
        }
    }

    /// Members per live leaf, in creation order. (Leaves deeper than one level below their
    /// cluster are grouped by their cluster: merges and splits happen among a cluster's
    /// leaves, and a split creates the new leaf right under the cluster.)
    pub(crate) fn sizes(&self) -> Vec<u32> {
        self.leaves
            .iter()
            .filter(|l| !l.dead)
            .map(|l| l.members.len() as u32)
            .collect()
    }

    pub(crate) fn live_leaves(&self) -> usize {
        self.leaves
            .iter()
            .filter(|l| !l.dead && !l.members.is_empty())
            .count()
    }

    pub(crate) fn leaf_address(&self, leaf: u32) -> Address {
        self.leaves[leaf as usize].address
    }

    /// A deterministic pick of a live, non-empty leaf (never the last one).
    pub(crate) fn pick_live_leaf(&self, seed: u64, key: (u64, usize, usize)) -> Option<u32> {
        let live: Vec<u32> = (0..self.leaves.len() as u32)
            .filter(|&l| {
                !self.leaves[l as usize].dead && !self.leaves[l as usize].members.is_empty()
            })
            .collect();
        if live.len() < 2 {
            return None;
        }
        let h = mix(seed ^ mix(key.0 ^ mix((key.1 as u64) << 32 | key.2 as u64)));
        Some(live[(h % live.len() as u64) as usize])
    }

    /// Marks a leaf dead; returns its agents.
    pub(crate) fn kill_leaf(&mut self, leaf: u32) -> Vec<u32> {
        let l = &mut self.leaves[leaf as usize];
        l.dead = true;
        std::mem::take(&mut l.members)
    }

    /// Thread of each agent: its cluster's worker (clusters are dealt round-robin).
    pub(crate) fn threads_of_agents(&self, workers: usize) -> Vec<u32> {
        self.leaf_of
            .iter()
            .map(|&l| self.leaves[l as usize].cluster % workers.max(1) as u32)
            .collect()
    }

    /// Reads the layout back from the runtime after a re-clustering: new leaves (splits)
    /// join their cluster, and every agent's leaf is its host.
    pub(crate) fn refresh<A: Agent>(&mut self, m: &ClusterManager<A>) {
        let mut index: HashMap<Address, u32> = self
            .leaves
            .iter()
            .enumerate()
            .map(|(i, l)| (l.address, i as u32))
            .collect();
        let nodes = m.nodes();
        let parent_of: HashMap<Address, Option<Address>> =
            nodes.iter().map(|(a, _, p)| (*a, *p)).collect();
        let mut cluster_of_root: HashMap<Address, u32> = HashMap::new();
        for l in &self.leaves {
            let root = l.parent.unwrap_or(l.address);
            cluster_of_root.insert(root, l.cluster);
        }
        for (addr, _, _) in &nodes {
            if index.contains_key(addr)
                || !matches!(addr, Address::SubCluster(_) | Address::Cluster(_))
            {
                continue;
            }
            let mut root = *addr;
            while let Some(Some(p)) = parent_of.get(&root) {
                root = *p;
            }
            let cluster = *cluster_of_root.entry(root).or_insert_with(|| {
                self.roots += 1;
                self.roots - 1
            });
            index.insert(*addr, self.leaves.len() as u32);
            self.leaves.push(Leaf {
                address: *addr,
                cluster,
                parent: (root != *addr).then_some(root),
                members: Vec::new(),
                dead: false,
            });
        }
        for l in &mut self.leaves {
            l.members.clear();
        }
        for a in 0..self.leaf_of.len() as u32 {
            let old = self.leaf_of[a as usize] as usize;
            if self.leaves[old].dead {
                continue;
            }
            if let Some(leaf) = m.host_of(AgentId(a)).and_then(|h| index.get(&h)) {
                self.leaf_of[a as usize] = *leaf;
            }
            let l = self.leaf_of[a as usize] as usize;
            self.leaves[l].members.push(a);
        }
    }

    /// Share of the agents' messages (their expected rates to their peers, from the
    /// workload) between agents of different top-level clusters, among live agents.
    pub(crate) fn expected_cross_share<W: AgentWorkload>(&self, workload: &W) -> f64 {
        let (mut cross, mut total) = (0.0, 0.0);
        for a in 0..self.leaf_of.len() as u32 {
            let la = self.leaf_of[a as usize] as usize;
            if self.leaves[la].dead {
                continue;
            }
            for (p, w) in workload.peers(&workload.profile(AgentId(a))) {
                let Some(&lp) = self.leaf_of.get(p.0 as usize) else {
                    continue;
                };
                let lp = lp as usize;
                if self.leaves[lp].dead {
                    continue;
                }
                total += w;
                if self.leaves[la].cluster != self.leaves[lp].cluster {
                    cross += w;
                }
            }
        }
        if total > 0.0 { cross / total } else { 0.0 }
    }

    /// Moves agents between leaves in the runtime and here.
    fn apply_moves<A: Agent>(
        &mut self,
        m: &ClusterManager<A>,
        moves: &[(u32, u32)],
    ) -> Result<u64, SimError> {
        let mut moved = 0;
        for (to, ids) in self.assign(moves) {
            m.move_agents(&ids, self.leaves[to as usize].address)?;
            moved += ids.len() as u64;
        }
        Ok(moved)
    }

    /// Moves agents between leaves here only; returns them by destination leaf.
    fn assign(&mut self, moves: &[(u32, u32)]) -> BTreeMap<u32, Vec<AgentId>> {
        let mut by_dest: BTreeMap<u32, Vec<AgentId>> = BTreeMap::new();
        for &(a, to) in moves {
            let from = self.leaf_of[a as usize];
            if from == to || self.leaves[to as usize].dead || self.leaves[from as usize].dead {
                continue;
            }
            by_dest.entry(to).or_default().push(AgentId(a));
            let members = &mut self.leaves[from as usize].members;
            if let Some(i) = members.iter().position(|&x| x == a) {
                members.swap_remove(i);
            }
            self.leaves[to as usize].members.push(a);
            self.leaf_of[a as usize] = to;
        }
        by_dest
    }

    /// Moves a share of the agents to a random other leaf (the scenario's misplacement), in
    /// the runtime and here.
    pub(crate) fn misplace<A: Agent>(
        &mut self,
        m: &ClusterManager<A>,
        share: f64,
        seed: u64,
    ) -> Result<(), SimError> {
        let moves = self.misplacement(share, seed);
        self.apply_moves(m, &moves)?;
        Ok(())
    }

    #[cfg(feature = "distributed")]
    /// The scenario's misplacement applied here only (a distributed run spawns the agents
    /// where they are misplaced to).
    pub(crate) fn misplace_layout(&mut self, share: f64, seed: u64) {
        let moves = self.misplacement(share, seed);
        self.assign(&moves);
    }

    #[cfg(feature = "distributed")]
    /// The live leaves of top-level cluster `cluster` and their members.
    pub(crate) fn live_members(&self, cluster: u32) -> Vec<(Address, Vec<AgentId>)> {
        self.leaves
            .iter()
            .filter(|l| l.cluster == cluster && !l.dead)
            .map(|l| (l.address, l.members.iter().map(|&a| AgentId(a)).collect()))
            .collect()
    }

    #[cfg(feature = "distributed")]
    /// The leaf of every agent.
    pub(crate) fn leaf_of(&self) -> &[u32] {
        &self.leaf_of
    }

    /// Moves of a share of the agents to a random other leaf.
    fn misplacement(&self, share: f64, seed: u64) -> Vec<(u32, u32)> {
        let n = self.leaves.len() as u64;
        if share <= 0.0 || n < 2 {
            return Vec::new();
        }
        (0..self.leaf_of.len() as u32)
            .filter_map(|a| {
                let h = mix(seed ^ 0x0015_AC3D ^ mix(u64::from(a)));
                let u = to_unit(h);
                (u < share).then(|| {
                    let cur = u64::from(self.leaf_of[a as usize]);
                    let off = 1 + mix(h) % (n - 1);
                    (a, ((cur + off) % n) as u32)
                })
            })
            .collect()
    }
}

/// One re-clustering pass through `qorch_optimizer::recluster` (affinity
/// moves, merges, splits, planned as QUBO problems by `qorch_scheduler::plan_reclustering`);
/// then waits for the moves to land and reads the new layout back.
pub(crate) fn recluster<A: Agent>(
    m: &ClusterManager<A>,
    settle: &dyn Fn() -> Result<(), SimError>,
    layout: &mut Layout,
    cross: &dyn Fn(&Layout) -> f64,
    affinity: &HashMap<(AgentId, AgentId), f64>,
    policy: &ReclusterPolicy,
) -> Result<ReclusterRecord, SimError> {
    let cross_before = cross(layout);
    let plan = qorch_optimizer::recluster(m, affinity, policy)?;
    settle()?;
    layout.refresh(m);
    Ok(ReclusterRecord {
        round: 0,
        moved: plan.moved as u64,
        splits: plan.splits as u64,
        merges: plan.merges as u64,
        cross_before,
        cross_after: cross(layout),
    })
}
