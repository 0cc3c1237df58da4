//! An allocation: which agent holds what on which pool.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{AgentId, Grant, PoolId, ResourceVector};

/// The grants of one round: at most one [`Grant`] per agent (an agent without a grant is
/// unserved). Ordered by agent, so iteration and serialization are deterministic.
///
/// # Examples
///
/// ```
/// use qorch_resources::{AgentId, Allocation, Grant, PoolId, ResourceVector};
///
/// let mut a = Allocation::new();
/// a.insert(AgentId(7), Grant::new(PoolId(1), ResourceVector::from(vec![2.0, 1.0])));
/// a.insert(AgentId(3), Grant::new(PoolId(1), ResourceVector::from(vec![1.0, 1.0])));
/// assert_eq!(a.pool_of(AgentId(7)), Some(PoolId(1)));
/// let loads = a.pool_loads(2, 2);
/// assert_eq!(loads[1].amounts(), &[3.0, 2.0]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Allocation {
    grants: BTreeMap<AgentId, Grant>,
}

impl Allocation {
    /// No grants.
    pub fn new() -> Self {
        Allocation::default()
    }

    /// Sets the grant of `agent`, returning the one it replaces.
    pub fn insert(&mut self, agent: AgentId, grant: Grant) -> Option<Grant> {
        self.grants.insert(agent, grant)
    }

    /// Removes the grant of `agent`.
    pub fn remove(&mut self, agent: AgentId) -> Option<Grant> {
        self.grants.remove(&agent)
    }

    /// The grant of `agent`, if it is served.
    pub fn get(&self, agent: AgentId) -> Option<&Grant> {
        self.grants.get(&agent)
    }

    /// The pool `agent` is on, if it is served.
    pub fn pool_of(&self, agent: AgentId) -> Option<PoolId> {
        self.grants.get(&agent).map(|g| g.pool)
    }

    /// Number of served agents.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no agent is served.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Every grant, by agent.
    pub fn iter(&self) -> impl Iterator<Item = (AgentId, &Grant)> {
        self.grants.iter().map(|(a, g)| (*a, g))
    }

    /// The total granted on each pool: `pools` vectors of `kinds` amounts, indexed by
    /// [`PoolId::index`]. Grants on pools beyond `pools` are ignored.
    pub fn pool_loads(&self, pools: usize, kinds: usize) -> Vec<ResourceVector> {
        let mut loads = vec![ResourceVector::zeros(kinds); pools];
        for g in self.grants.values() {
            if let Some(l) = loads.get_mut(g.pool.index()) {
                l.add_assign(&g.amount);
            }
        }
        loads
    }
}

impl FromIterator<(AgentId, Grant)> for Allocation {
    fn from_iter<I: IntoIterator<Item = (AgentId, Grant)>>(iter: I) -> Self {
        Allocation {
            grants: iter.into_iter().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Allocation {
    type Item = (&'a AgentId, &'a Grant);
    type IntoIter = std::collections::btree_map::Iter<'a, AgentId, Grant>;

    fn into_iter(self) -> Self::IntoIter {
        self.grants.iter()
    }
}
