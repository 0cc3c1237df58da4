//! Allocation metrics: utilization, unmet demand, fairness and churn.

use serde::{Deserialize, Serialize};

use crate::{AgentId, Allocation, KindId, Pool, PoolId, ResourceRequest, ResourceVector};

/// How full one pool is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolUtilization {
    /// The pool.
    pub pool: PoolId,
    /// Amounts granted on it.
    pub used: ResourceVector,
    /// `used / capacity` per kind (0 where the capacity is 0).
    pub fraction: Vec<f64>,
}

/// Utilization of every pool under `allocation`, in the order of `pools`.
pub fn utilization(pools: &[Pool], allocation: &Allocation) -> Vec<PoolUtilization> {
    let kinds = pools.iter().map(|p| p.capacity.len()).max().unwrap_or(0);
    let n = pools.iter().map(|p| p.id.index() + 1).max().unwrap_or(0);
    let loads = allocation.pool_loads(n, kinds);
    pools
        .iter()
        .map(|p| {
            let used = loads[p.id.index()].clone();
            let fraction = (0..kinds)
                .map(|k| {
                    let c = p.capacity.get(KindId(k as u16));
                    if c > 0.0 {
                        used.get(KindId(k as u16)) / c
                    } else {
                        0.0
                    }
                })
                .collect();
            PoolUtilization {
                pool: p.id,
                used,
                fraction,
            }
        })
        .collect()
}

/// Demand that `allocation` leaves unmet: per kind, the sum over requesting agents of
/// `desired - granted` (clamped at zero), and the number of requesting agents without a grant.
pub fn unmet_demand<'a>(
    requests: impl IntoIterator<Item = (AgentId, &'a ResourceRequest)>,
    allocation: &Allocation,
) -> (ResourceVector, usize) {
    let mut unmet = ResourceVector::default();
    let mut unserved = 0;
    for (agent, r) in requests {
        if let Some(g) = allocation.get(agent) {
            unmet.add_assign(&r.desired.saturating_sub(&g.amount));
        } else {
            unserved += 1;
            unmet.add_assign(&r.desired);
        }
    }
    (unmet, unserved)
}

/// Jain's fairness index `(sum x)^2 / (n sum x^2)` of non-negative values: 1 when all are
/// equal, `1/n` when one value takes everything. 1 for an empty or all-zero input.
///
/// ```
/// use qorch_resources::jain_fairness;
/// assert_eq!(jain_fairness(&[2.0, 2.0, 2.0]), 1.0);
/// assert_eq!(jain_fairness(&[1.0, 0.0, 0.0, 0.0]), 0.25);
/// ```
pub fn jain_fairness(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    if sq == 0.0 {
        1.0
    } else {
        sum * sum / (values.len() as f64 * sq)
    }
}

/// Each requesting agent's satisfaction: the mean over kinds with a desired amount of
/// `granted / desired` (capped at 1); 0 for unserved agents, 1 for agents asking for nothing.
pub fn satisfaction<'a>(
    requests: impl IntoIterator<Item = (AgentId, &'a ResourceRequest)>,
    allocation: &Allocation,
) -> Vec<f64> {
    requests
        .into_iter()
        .map(|(agent, r)| {
            let Some(g) = allocation.get(agent) else {
                return if r.desired.is_zero() { 1.0 } else { 0.0 };
            };
            let (sum, n) = r
                .desired
                .amounts()
                .iter()
                .enumerate()
                .filter(|(_, d)| **d > 0.0)
                .fold((0.0, 0_usize), |(s, n), (k, d)| {
                    (s + (g.amount.get(KindId(k as u16)) / d).min(1.0), n + 1)
                });
            if n == 0 { 1.0 } else { sum / n as f64 }
        })
        .collect()
}

/// How much an allocation changed between two rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Churn {
    /// Agents on a different pool.
    pub moved: usize,
    /// Agents served now but not before.
    pub started: usize,
    /// Agents served before but not now.
    pub stopped: usize,
    /// Agents on the same pool (their amount may differ).
    pub stayed: usize,
}

impl Churn {
    /// `(moved + started + stopped) / agents served in either round` (0 if none).
    pub fn rate(&self) -> f64 {
        let changed = self.moved + self.started + self.stopped;
        let total = changed + self.stayed;
        if total == 0 {
            0.0
        } else {
            changed as f64 / total as f64
        }
    }
}

/// Compares two allocations agent by agent.
pub fn churn(previous: &Allocation, next: &Allocation) -> Churn {
    let mut c = Churn::default();
    for (agent, g) in next.iter() {
        match previous.pool_of(agent) {
            Some(p) if p == g.pool => c.stayed += 1,
            Some(_) => c.moved += 1,
            None => c.started += 1,
        }
    }
    c.stopped = previous
        .iter()
        .filter(|(a, _)| next.get(*a).is_none())
        .count();
    c
}

/// A summary of one round's allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationMetrics {
    /// Per pool.
    pub utilization: Vec<PoolUtilization>,
    /// Per kind: total granted over total capacity.
    pub overall_utilization: Vec<f64>,
    /// Per kind: desired but not granted.
    pub unmet: ResourceVector,
    /// Requesting agents without a grant.
    pub unserved: usize,
    /// Jain's index of the agents' satisfaction.
    pub fairness: f64,
    /// Change from the previous allocation.
    pub churn: Churn,
}

impl AllocationMetrics {
    /// Computes every metric.
    ///
    /// # Examples
    ///
    /// ```
    /// use qorch_resources::{
    ///     AgentId, Allocation, AllocationMetrics, Grant, Pool, PoolId, ResourceRequest,
    ///     ResourceVector,
    /// };
    ///
    /// let pools = vec![Pool::node(PoolId(0), "n0", ResourceVector::from(vec![4.0]))];
    /// let want = ResourceRequest::exact(ResourceVector::from(vec![2.0]));
    /// let requests = vec![(AgentId(1), want.clone()), (AgentId(2), want)];
    /// let mut next = Allocation::new();
    /// next.insert(AgentId(1), Grant::new(PoolId(0), ResourceVector::from(vec![2.0])));
    /// let m = AllocationMetrics::compute(&pools, requests.iter().map(|(a, r)| (*a, r)), &Allocation::new(), &next);
    /// assert_eq!(m.overall_utilization, vec![0.5]);
    /// assert_eq!((m.unserved, m.unmet.amounts()[0]), (1, 2.0));
    /// assert_eq!(m.fairness, 0.5);
    /// assert_eq!(m.churn.started, 1);
    /// ```
    pub fn compute<'a>(
        pools: &[Pool],
        requests: impl IntoIterator<Item = (AgentId, &'a ResourceRequest)> + Clone,
        previous: &Allocation,
        next: &Allocation,
    ) -> Self {
        let utilization = utilization(pools, next);
        let kinds = pools.iter().map(|p| p.capacity.len()).max().unwrap_or(0);
        let overall_utilization = (0..kinds)
            .map(|k| {
                let kid = KindId(k as u16);
                let cap: f64 = pools.iter().map(|p| p.capacity.get(kid)).sum();
                let used: f64 = utilization.iter().map(|u| u.used.get(kid)).sum();
                if cap > 0.0 { used / cap } else { 0.0 }
            })
            .collect();
        let (unmet, unserved) = unmet_demand(requests.clone(), next);
        let fairness = jain_fairness(&satisfaction(requests, next));
        AllocationMetrics {
            utilization,
            overall_utilization,
            unmet,
            unserved,
            fairness,
            churn: churn(previous, next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Grant;

    #[test]
    fn churn_counts_every_kind_of_change() {
        let g = |p| Grant::new(PoolId(p), ResourceVector::from(vec![1.0]));
        let prev: Allocation = [(AgentId(1), g(0)), (AgentId(2), g(0)), (AgentId(3), g(1))]
            .into_iter()
            .collect();
        let next: Allocation = [(AgentId(1), g(0)), (AgentId(2), g(1)), (AgentId(4), g(1))]
            .into_iter()
            .collect();
        let c = churn(&prev, &next);
        assert_eq!(
            c,
            Churn {
                moved: 1,
                started: 1,
                stopped: 1,
                stayed: 1
            }
        );
        assert_eq!(c.rate(), 0.75);
        assert_eq!(churn(&next, &next).rate(), 0.0);
    }

    #[test]
    fn fairness_bounds() {
        assert_eq!(jain_fairness(&[]), 1.0);
        assert_eq!(jain_fairness(&[0.0, 0.0]), 1.0);
        let j = jain_fairness(&[1.0, 2.0, 3.0]);
        assert!((j - 36.0 / 42.0).abs() < 1e-12);
    }
}
