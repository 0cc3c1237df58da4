//! Dynamic re-clustering: agents move to the leaves they talk with (a balanced assignment
//! solved as a QUBO by the same solvers as allocation), leaves that grew too large are split
//! in two by a balanced min-cut QUBO, and small siblings are merged.
//!
//! The runtime's `ClusterManager::move_agents` moves an agent with its state, grant and
//! pending messages, so nothing is lost; a merged-away leaf stays as an empty spare and is
//! reused by the next split under the same parent.

use std::collections::{BTreeMap, HashMap};

use qorch_protocol::{Address, AgentId};
use qorch_qubo::{
    Budget, Qubo, QuboBuilder, SimulatedAnnealing, SolveOptions, Solver, SteepestDescent,
};
use qorch_runtime::ClusterManager;

use crate::SimError;
use crate::agent::SimAgent;
use crate::model::ModelSpec;
use crate::report::ReclusterRecord;
use crate::scenario::Clustering;

/// `SplitMix64`'s finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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
    /// `leaves`: (address, cluster index, cluster address) in creation order; agents as the
    /// model spreads them.
    pub(crate) fn new(leaves: Vec<(Address, u32, Address)>, spec: &ModelSpec) -> Layout {
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
        let leaf_of: Vec<u32> = (0..spec.agents()).map(|a| spec.leaf_of(a)).collect();
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

    /// Share of the agents' messages (their expected rates to their peers, from the model)
    /// between agents of different top-level clusters, among live agents.
    pub(crate) fn expected_cross_share(&self, spec: &ModelSpec) -> f64 {
        let (mut cross, mut total) = (0.0, 0.0);
        for a in 0..spec.agents() {
            let la = self.leaf_of[a as usize] as usize;
            if self.leaves[la].dead {
                continue;
            }
            let m = spec.build(a);
            if m.peers.is_empty() {
                continue;
            }
            let w = ModelSpec::send_rate(&m) / m.peers.len() as f64;
            for &p in &m.peers {
                let lp = self.leaf_of[p as usize] as usize;
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
    fn apply_moves(
        &mut self,
        m: &ClusterManager<SimAgent>,
        moves: &[(u32, u32)],
    ) -> Result<u64, SimError> {
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
        let mut moved = 0;
        for (to, ids) in by_dest {
            m.move_agents(&ids, self.leaves[to as usize].address)?;
            moved += ids.len() as u64;
        }
        Ok(moved)
    }

    /// Moves a share of the agents to a random other leaf (the scenario's misplacement).
    pub(crate) fn misplace(
        &mut self,
        m: &ClusterManager<SimAgent>,
        share: f64,
        seed: u64,
    ) -> Result<(), SimError> {
        let n = self.leaves.len() as u64;
        if share <= 0.0 || n < 2 {
            return Ok(());
        }
        let moves: Vec<(u32, u32)> = (0..self.leaf_of.len() as u32)
            .filter_map(|a| {
                let h = mix(seed ^ 0x0015_AC3D ^ mix(u64::from(a)));
                let u = (h >> 11) as f64 / (1_u64 << 53) as f64;
                (u < share).then(|| {
                    let cur = u64::from(self.leaf_of[a as usize]);
                    let off = 1 + mix(h) % (n - 1);
                    (a, ((cur + off) % n) as u32)
                })
            })
            .collect();
        self.apply_moves(m, &moves)?;
        Ok(())
    }

    /// Creates an empty leaf under `parent` (a new top-level cluster when `None`).
    fn new_leaf(
        &mut self,
        m: &ClusterManager<SimAgent>,
        parent: Option<Address>,
        cluster: u32,
    ) -> Result<u32, SimError> {
        let name = format!("split-{}", self.leaves.len());
        let (address, cluster) = if let Some(p) = parent {
            (
                Address::SubCluster(m.create_sub_cluster(p, &name)?),
                cluster,
            )
        } else {
            self.roots += 1;
            (Address::Cluster(m.create_cluster(&name)?), self.roots - 1)
        };
        self.leaves.push(Leaf {
            address,
            cluster,
            parent,
            members: Vec::new(),
            dead: false,
        });
        Ok((self.leaves.len() - 1) as u32)
    }

    fn mean_size(&self) -> f64 {
        let live: Vec<usize> = self
            .leaves
            .iter()
            .filter(|l| !l.dead && !l.members.is_empty())
            .map(|l| l.members.len())
            .collect();
        live.iter().sum::<usize>() as f64 / live.len().max(1) as f64
    }
}

/// The affinity graph as sorted adjacency lists over live agents.
fn adjacency(layout: &Layout, affinity: &HashMap<(AgentId, AgentId), f64>) -> Vec<Vec<(u32, f64)>> {
    let mut edges: Vec<(u32, u32, f64)> = affinity
        .iter()
        .filter(|&(&(a, b), &w)| {
            w > 0.0
                && (a.0 as usize) < layout.leaf_of.len()
                && (b.0 as usize) < layout.leaf_of.len()
                && !layout.leaves[layout.leaf_of[a.0 as usize] as usize].dead
                && !layout.leaves[layout.leaf_of[b.0 as usize] as usize].dead
        })
        .map(|(&(a, b), &w)| (a.0, b.0, w))
        .collect();
    edges.sort_by_key(|e| (e.0, e.1));
    let mut adj = vec![Vec::new(); layout.leaf_of.len()];
    for (a, b, w) in edges {
        adj[a as usize].push((b, w));
        adj[b as usize].push((a, w));
    }
    adj
}

/// Re-assigns agents to the leaves they talk with, as one QUBO: a one-hot choice among each
/// movable agent's current leaf and the two leaves that pull it most, rewarding affinity kept
/// inside a leaf and penalizing leaves that drift from the mean size. Returns the moves.
#[allow(
    clippy::too_many_lines,
    reason = "one model: variables, affinity, one-hot, balance"
)]
fn assignment_moves(
    layout: &Layout,
    adj: &[Vec<(u32, f64)>],
    min_pull: f64,
    seed: u64,
) -> Vec<(u32, u32)> {
    let mean = layout.mean_size().max(1.0);
    // Candidate leaves per movable agent.
    let mut movable: Vec<(u32, Vec<u32>, f64)> = Vec::new();
    let mut pull: BTreeMap<u32, f64> = BTreeMap::new();
    for (a, nbrs) in adj.iter().enumerate() {
        if nbrs.is_empty() {
            continue;
        }
        pull.clear();
        for &(b, w) in nbrs {
            *pull.entry(layout.leaf_of[b as usize]).or_insert(0.0) += w;
        }
        let cur = layout.leaf_of[a];
        let here = pull.get(&cur).copied().unwrap_or(0.0);
        // Sampled traffic is noisy: move only for a clear majority of the observed traffic.
        let total: f64 = nbrs.iter().map(|e| e.1).sum();
        let mut others: Vec<(u32, f64)> = pull
            .iter()
            .filter(|&(&l, &w)| l != cur && w >= min_pull && w > 2.0 * here && w >= 0.5 * total)
            .map(|(&l, &w)| (l, w))
            .collect();
        if others.is_empty() {
            continue;
        }
        others.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        let mut cands = vec![cur];
        cands.extend(others.iter().take(2).map(|o| o.0));
        movable.push((a as u32, cands, total));
    }
    if movable.is_empty() {
        return Vec::new();
    }
    movable.truncate(50_000);
    let index_of: HashMap<u32, usize> = movable.iter().enumerate().map(|(i, m)| (m.0, i)).collect();
    let mut first_var = Vec::with_capacity(movable.len());
    let mut nvars = 0;
    for m in &movable {
        first_var.push(nvars);
        nvars += m.1.len();
    }
    let var = |i: usize, leaf: u32| {
        movable[i]
            .1
            .iter()
            .position(|&l| l == leaf)
            .map(|k| first_var[i] + k)
    };
    let mut q = QuboBuilder::new(nvars);
    let mean_pull = movable.iter().map(|m| m.2).sum::<f64>() / movable.len() as f64;
    let mu = 0.5 * mean_pull / mean;
    // Affinity kept inside a leaf: fixed partners give linear rewards, movable pairs
    // quadratic ones (each pair once).
    for (i, (a, cands, total)) in movable.iter().enumerate() {
        for &(b, w) in &adj[*a as usize] {
            match index_of.get(&b) {
                None => {
                    if let Some(v) = var(i, layout.leaf_of[b as usize]) {
                        q.add_linear(v, -w);
                    }
                }
                Some(&j) if j > i => {
                    for &c in cands {
                        if let (Some(u), Some(v)) = (var(i, c), var(j, c)) {
                            q.add_quadratic(u, v, -w);
                        }
                    }
                }
                Some(_) => {}
            }
        }
        let vars: Vec<usize> = (first_var[i]..first_var[i] + cands.len()).collect();
        q.add_one_hot(&vars, 1.0 + 2.0 * total);
    }
    // Balance: mu * (size_l - mean)^2 for every leaf a movable agent may join or leave.
    let mut vars_of_leaf: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (_, cands, _)) in movable.iter().enumerate() {
        for (k, &c) in cands.iter().enumerate() {
            vars_of_leaf.entry(c).or_default().push(first_var[i] + k);
        }
    }
    for (leaf, vars) in &vars_of_leaf {
        let fixed = layout.leaves[*leaf as usize]
            .members
            .iter()
            .filter(|a| !index_of.contains_key(a))
            .count() as f64;
        let d = fixed - mean;
        for (k, &u) in vars.iter().enumerate() {
            q.add_linear(u, mu * (2.0 * d + 1.0));
            for &v in &vars[k + 1..] {
                q.add_quadratic(u, v, 2.0 * mu);
            }
        }
    }
    let Ok(qubo) = q.build() else {
        return Vec::new();
    };
    let mut start = vec![false; nvars];
    for &f in &first_var {
        start[f] = true; // everyone where they are
    }
    let Some(sol) = anneal(&qubo, &start, seed) else {
        return Vec::new();
    };
    if qubo.energy(&sol) >= qubo.energy(&start) {
        return Vec::new();
    }
    movable
        .iter()
        .enumerate()
        .filter_map(|(i, (a, cands, _))| {
            let chosen: Vec<u32> = cands
                .iter()
                .enumerate()
                .filter(|(k, _)| sol[first_var[i] + k])
                .map(|(_, &c)| c)
                .collect();
            match chosen[..] {
                [c] if c != cands[0] => Some((*a, c)),
                _ => None,
            }
        })
        .collect()
}

/// Simulated annealing (a few hundred sweeps: these models have a few variables per agent
/// and weak couplings), polished by steepest descent; the better of that and `start`.
fn anneal(qubo: &Qubo, start: &[bool], seed: u64) -> Option<Vec<bool>> {
    let sa = SimulatedAnnealing {
        sweeps_per_read: 300,
        reads: Some(1),
        ..SimulatedAnnealing::default()
    };
    let annealed = sa
        .solve(qubo, &SolveOptions::new(Budget::sweeps(300), seed))
        .ok()?;
    let polished = SteepestDescent
        .solve(
            qubo,
            &SolveOptions::new(Budget::default(), seed).with_initial(&annealed.assignment),
        )
        .ok()?;
    if polished.energy < qubo.energy(start) {
        Some(polished.assignment)
    } else {
        Some(start.to_vec())
    }
}

/// Splits a leaf's members in two halves of balanced size with few affinity edges between
/// them: `min cut(x) + lambda (sum x - n/2)^2`. Returns the half that leaves.
fn bisect(members: &[u32], adj: &[Vec<(u32, f64)>], seed: u64) -> Vec<u32> {
    let n = members.len();
    if n > 4_000 {
        // The balance term is dense; past this size a split by id keeps it cheap.
        return members[n / 2..].to_vec();
    }
    let index: HashMap<u32, usize> = members.iter().enumerate().map(|(i, &a)| (a, i)).collect();
    let mut q = QuboBuilder::new(n);
    let mut total = 0.0;
    for (i, &a) in members.iter().enumerate() {
        for &(b, w) in &adj[a as usize] {
            if let Some(&j) = index.get(&b)
                && j > i
            {
                // Cut of the pair: x_i + x_j - 2 x_i x_j.
                q.add_linear(i, w);
                q.add_linear(j, w);
                q.add_quadratic(i, j, -2.0 * w);
                total += w;
            }
        }
    }
    let lambda = (total / n as f64).max(1e-3);
    let half = n as f64 / 2.0;
    for i in 0..n {
        q.add_linear(i, lambda * (1.0 - 2.0 * half));
        for j in i + 1..n {
            q.add_quadratic(i, j, 2.0 * lambda);
        }
    }
    let start: Vec<bool> = (0..n).map(|i| i >= n / 2).collect();
    let chosen = q
        .build()
        .ok()
        .and_then(|qubo| anneal(&qubo, &start, seed))
        .unwrap_or(start);
    let out: Vec<u32> = members
        .iter()
        .zip(&chosen)
        .filter(|(_, x)| **x)
        .map(|(a, _)| *a)
        .collect();
    if out.is_empty() || out.len() == n {
        members[n / 2..].to_vec()
    } else {
        out
    }
}

/// One re-clustering pass: affinity moves, then merges, then splits. An agent moves only
/// for at least `min_pull` of observed traffic towards its new leaf (a few samples' worth:
/// a single sampled message is no evidence).
pub(crate) fn recluster(
    m: &ClusterManager<SimAgent>,
    layout: &mut Layout,
    spec: &ModelSpec,
    affinity: &HashMap<(AgentId, AgentId), f64>,
    policy: &Clustering,
    min_pull: f64,
    seed: u64,
) -> Result<ReclusterRecord, SimError> {
    let cross_before = layout.expected_cross_share(spec);
    let adj = adjacency(layout, affinity);
    let moves = assignment_moves(layout, &adj, min_pull, seed);
    let mut moved = layout.apply_moves(m, &moves)?;

    // Merges: the two smallest live siblings while both are small.
    let mean = layout.mean_size();
    let mut merges = 0;
    let mut by_parent: BTreeMap<Option<Address>, Vec<u32>> = BTreeMap::new();
    for (i, l) in layout.leaves.iter().enumerate() {
        if !l.dead && !l.members.is_empty() {
            by_parent.entry(l.parent).or_default().push(i as u32);
        }
    }
    for (_, mut sibs) in by_parent {
        loop {
            sibs.retain(|&l| !layout.leaves[l as usize].members.is_empty());
            if sibs.len() < 2 {
                break;
            }
            sibs.sort_by_key(|&l| (layout.leaves[l as usize].members.len(), l));
            let (a, b) = (sibs[0], sibs[1]);
            let small = policy.merge_below * mean;
            if layout.leaves[a as usize].members.len() as f64 >= small
                || layout.leaves[b as usize].members.len() as f64 >= small
            {
                break;
            }
            let moves: Vec<(u32, u32)> = layout.leaves[a as usize]
                .members
                .iter()
                .map(|&x| (x, b))
                .collect();
            moved += layout.apply_moves(m, &moves)?;
            merges += 1;
        }
    }

    // Splits: into a spare sibling, or a new one.
    let mut splits = 0;
    let big: Vec<u32> = (0..layout.leaves.len() as u32)
        .filter(|&l| {
            let leaf = &layout.leaves[l as usize];
            !leaf.dead && leaf.members.len() as f64 > policy.split_above * mean
        })
        .collect();
    for l in big {
        let half = bisect(
            &layout.leaves[l as usize].members,
            &adj,
            seed ^ u64::from(l),
        );
        let parent = layout.leaves[l as usize].parent;
        let spare = (0..layout.leaves.len() as u32).find(|&s| {
            let leaf = &layout.leaves[s as usize];
            s != l && !leaf.dead && leaf.members.is_empty() && leaf.parent == parent
        });
        let to = if let Some(s) = spare {
            s
        } else {
            layout.new_leaf(m, parent, layout.leaves[l as usize].cluster)?
        };
        let moves: Vec<(u32, u32)> = half.iter().map(|&a| (a, to)).collect();
        moved += layout.apply_moves(m, &moves)?;
        splits += 1;
    }
    Ok(ReclusterRecord {
        round: 0,
        moved,
        splits,
        merges,
        cross_before,
        cross_after: layout.expected_cross_share(spec),
    })
}
