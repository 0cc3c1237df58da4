//! Seeded synthetic allocation problems, for benchmarks and tests.

use rand::{Rng, RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use qorch_resources::{
    AgentId, ClusterId, Pool, PoolFilter, PoolId, ResourceKinds, ResourceRequest, ResourceVector,
    SubClusterId,
};

use crate::{Affinity, AgentSpec, AllocationProblem, Cluster, CostModel, SubCluster};

/// The shape of a synthetic round.
///
/// * Pools of three types (`cpu`, `memory`, `bandwidth` capacities of 32/128/10, 64/256/25,
///   16/128/10), drawn at random.
/// * Agents with cpu-heavy, memory-heavy or balanced demands, scaled so that the desired
///   total is `load` times the total capacity in every kind; priority weights 1, 2 or 4
///   (60/30/10%); half of them accept half their desired amount as a minimum; 5% exclude one
///   pool.
/// * `clusters` top-level clusters of `subclusters` sub-clusters each (agents split evenly,
///   in order). The previous round is a steady state before a demand drift: each cluster's
///   agents (a fraction `placed` of them) filled "its" region of the pools (the pools split
///   into `clusters` ranges) in order, at their previous demand (the current one divided by
///   a random drift of 0.8-1.25); the rest were unserved. So most affinity partners share a
///   pool, and the drift overloads some pools: the round must move or shrink a few agents
///   and serve the heaviest of the waiting ones.
/// * Each agent talks to `partners` agents of its own sub-cluster with nearby numbers, with
///   a weight equal to its desired size (so a split pair costs `communication` times that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Number of agents.
    pub agents: usize,
    /// Number of top-level clusters.
    pub clusters: usize,
    /// Sub-clusters per cluster (0: agents directly in the clusters).
    pub subclusters: usize,
    /// Number of pools.
    pub pools: usize,
    /// Desired demand over capacity, per kind.
    pub load: f64,
    /// Fraction of agents placed in the previous round.
    pub placed: f64,
    /// Affinity partners per agent.
    pub partners: usize,
    /// Cost coefficients.
    pub costs: CostModel,
    /// Seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            agents: 1_000,
            clusters: 4,
            subclusters: 4,
            pools: 10,
            load: 1.1,
            placed: 0.8,
            partners: 2,
            costs: CostModel {
                migration: 0.2,
                communication: 0.05,
            },
            seed: 1,
        }
    }
}

impl SyntheticConfig {
    /// Generates the problem.
    ///
    /// # Panics
    ///
    /// If `pools` or `clusters` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use qorch_scheduler::SyntheticConfig;
    ///
    /// let p = SyntheticConfig { agents: 100, clusters: 2, pools: 4, ..Default::default() }.generate();
    /// assert_eq!(p.pools.len(), 4);
    /// assert_eq!(p.clusters.len(), 2);
    /// ```
    #[allow(clippy::too_many_lines, reason = "one generator, step by step")]
    pub fn generate(&self) -> AllocationProblem {
        assert!(
            self.pools > 0 && self.clusters > 0,
            "need at least one pool and one cluster"
        );
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let types = [
            [32.0, 128.0, 10.0],
            [64.0, 256.0, 25.0],
            [16.0, 128.0, 10.0],
        ];
        let pools: Vec<Pool> = (0..self.pools)
            .map(|p| {
                let t = types[rng.random_range(0..types.len())];
                Pool::node(
                    PoolId(p as u32),
                    format!("node-{p}"),
                    ResourceVector::from(t.to_vec()),
                )
            })
            .collect();
        let total: Vec<f64> = (0..3)
            .map(|k| pools.iter().map(|p| p.capacity.amounts()[k]).sum())
            .collect();
        // Raw demands, then scaled per kind to the target load.
        let mut raw: Vec<[f64; 3]> = (0..self.agents)
            .map(|_| {
                let s = 0.5 + 1.5 * unit(&mut rng);
                match rng.random_range(0..3_u32) {
                    0 => [4.0 * s, 8.0 * s, 1.0 * s],
                    1 => [1.0 * s, 24.0 * s, 1.0 * s],
                    _ => [2.0 * s, 12.0 * s, 2.5 * s],
                }
            })
            .collect();
        for k in 0..3 {
            let sum: f64 = raw.iter().map(|d| d[k]).sum();
            let f = if sum > 0.0 {
                self.load * total[k] / sum
            } else {
                1.0
            };
            for d in &mut raw {
                d[k] *= f;
            }
        }
        let k = self.clusters;
        let per_cluster = self.agents.div_ceil(k);
        let region = |c: usize| {
            let lo = (c * self.pools / k).min(self.pools - 1);
            let hi = ((c + 1) * self.pools / k).clamp(lo + 1, self.pools);
            (lo, hi)
        };
        // The previous round: each cluster's agents filled its region's pools in order, at
        // their previous demand (the current one divided by a drift of 0.8-1.25), until the
        // region was full; the rest stayed unserved.
        let mut current: Vec<Option<PoolId>> = vec![None; self.agents];
        for c in 0..k {
            let (lo, hi) = region(c);
            let mut load = vec![[0.0_f64; 3]; hi - lo];
            let mut q = 0;
            for a in c * per_cluster..((c + 1) * per_cluster).min(self.agents) {
                if unit(&mut rng) >= self.placed {
                    continue;
                }
                let drift = 0.8 + 0.45 * unit(&mut rng);
                let before: Vec<f64> = raw[a].iter().map(|x| x / drift).collect();
                while q < hi - lo {
                    let cap = pools[lo + q].capacity.amounts();
                    if (0..3).all(|x| load[q][x] + before[x] <= cap[x]) {
                        for x in 0..3 {
                            load[q][x] += before[x];
                        }
                        current[a] = Some(PoolId((lo + q) as u32));
                        break;
                    }
                    q += 1;
                }
            }
        }
        let mut specs: Vec<AgentSpec> = Vec::with_capacity(self.agents);
        for (a, d) in raw.iter().enumerate() {
            let desired = ResourceVector::from(d.to_vec());
            let min = if rng.random_range(0..2_u32) == 0 {
                desired.scaled(0.5)
            } else {
                desired.clone()
            };
            let weight = match rng.random_range(0..10_u32) {
                0..=5 => 1.0,
                6..=8 => 2.0,
                _ => 4.0,
            };
            let pools_filter = if rng.random_range(0..20_u32) == 0 {
                PoolFilter::Except(vec![PoolId(rng.random_range(0..self.pools) as u32)])
            } else {
                PoolFilter::Any
            };
            let current = current[a].filter(|p| pools_filter.allows(*p));
            specs.push(AgentSpec {
                id: AgentId(a as u32),
                request: ResourceRequest {
                    min,
                    desired,
                    weight,
                    pools: pools_filter,
                },
                current,
            });
        }
        // Sizes for the affinity weights.
        let mean: Vec<f64> = total.iter().map(|t| t / self.pools as f64).collect();
        let size = |d: &[f64; 3]| (0..3).map(|x| d[x] / mean[x]).sum::<f64>() / 3.0;
        let mut affinity = Vec::new();
        let subs = self.subclusters.max(1);
        let mut clusters: Vec<Cluster> = Vec::with_capacity(k);
        let mut it = specs.into_iter().enumerate().peekable();
        for c in 0..k {
            let end = ((c + 1) * per_cluster).min(self.agents);
            let mut mine: Vec<(usize, AgentSpec)> = Vec::new();
            while let Some((a, _)) = it.peek() {
                if *a >= end {
                    break;
                }
                mine.push(it.next().expect("peeked"));
            }
            let n = mine.len();
            let chunk = n.div_ceil(subs).max(1);
            // Affinity within each sub-cluster, to nearby agents.
            for (s, part) in mine.chunks(chunk).enumerate() {
                let _ = s;
                for (x, (a, _)) in part.iter().enumerate() {
                    for t in 0..self.partners {
                        let off = 1 + t + rng.random_range(0..3_usize);
                        if x + off < part.len() {
                            affinity.push(Affinity {
                                a: AgentId(*a as u32),
                                b: AgentId(part[x + off].0 as u32),
                                weight: size(&raw[*a]),
                            });
                        }
                    }
                }
            }
            let cluster = if self.subclusters == 0 {
                Cluster {
                    id: ClusterId(c as u32),
                    agents: mine.into_iter().map(|x| x.1).collect(),
                    subclusters: Vec::new(),
                }
            } else {
                let mut subclusters = Vec::new();
                let mut rest = mine.into_iter().map(|x| x.1).peekable();
                for s in 0..subs {
                    let agents: Vec<AgentSpec> = rest.by_ref().take(chunk).collect();
                    if agents.is_empty() {
                        break;
                    }
                    subclusters.push(SubCluster {
                        id: SubClusterId((c * subs + s) as u32),
                        agents,
                        subclusters: Vec::new(),
                    });
                }
                Cluster {
                    id: ClusterId(c as u32),
                    agents: Vec::new(),
                    subclusters,
                }
            };
            clusters.push(cluster);
        }
        AllocationProblem {
            kinds: ResourceKinds::standard(),
            pools,
            clusters,
            affinity,
            costs: self.costs,
        }
    }
}

fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
}
