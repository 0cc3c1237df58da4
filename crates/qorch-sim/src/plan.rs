//! The scenario's hierarchy as planned before any runtime exists: its nodes with the ids a
//! runtime gives them, its leaves, and the creation of the planned nodes in a runtime.

use qorch_protocol::{Address, ClusterId, SubClusterId};
use qorch_runtime::{Agent, ClusterManager};

use crate::error::SimError;
use crate::scenario::Scenario;

/// A node of the planned hierarchy, in creation order (parents first).
#[derive(Debug, Clone)]
pub(crate) struct PlannedNode {
    pub(crate) address: Address,
    pub(crate) name: String,
    pub(crate) parent: Option<Address>,
    /// Its top-level cluster's index.
    pub(crate) cluster: u32,
}

/// The scenario's hierarchy with the ids the runtime gives (clusters `0..`, sub-clusters
/// numbered in creation order), and its leaves: (address, cluster index, cluster address).
pub(crate) fn plan_hierarchy(s: &Scenario) -> (Vec<PlannedNode>, Vec<(Address, u32, Address)>) {
    let t = &s.topology;
    let mut nodes = Vec::new();
    let mut leaves = Vec::new();
    let mut next_sub = 0_u32;
    for c in 0..t.clusters as u32 {
        let cluster = Address::Cluster(ClusterId(c));
        nodes.push(PlannedNode {
            address: cluster,
            name: format!("c{c}"),
            parent: None,
            cluster: c,
        });
        let mut frontier = vec![(cluster, format!("c{c}"))];
        for _ in 0..t.depth {
            let mut next = Vec::new();
            for (parent, name) in &frontier {
                for f in 0..t.fanout {
                    let name = format!("{name}/s{f}");
                    let sub = Address::SubCluster(SubClusterId(next_sub));
                    next_sub += 1;
                    nodes.push(PlannedNode {
                        address: sub,
                        name: name.clone(),
                        parent: Some(*parent),
                        cluster: c,
                    });
                    next.push((sub, name));
                }
            }
            frontier = next;
        }
        leaves.extend(frontier.into_iter().map(|(a, _)| (a, c, cluster)));
    }
    (nodes, leaves)
}

/// Creates the planned nodes of the clusters `keep` accepts in a runtime.
pub(crate) fn create_nodes<A: Agent>(
    m: &ClusterManager<A>,
    plan: &[PlannedNode],
    keep: &dyn Fn(u32) -> bool,
) -> Result<(), SimError> {
    for n in plan.iter().filter(|n| keep(n.cluster)) {
        match (n.address, n.parent) {
            (Address::Cluster(c), None) => m.create_cluster_with_id(c, &n.name)?,
            (Address::SubCluster(id), Some(parent)) => {
                m.create_sub_cluster_with_id(parent, id, &n.name)?;
            }
            _ => {
                return Err(SimError::Scenario(format!(
                    "planned node {} is neither a cluster nor a sub-cluster",
                    n.name
                )));
            }
        }
    }
    Ok(())
}
