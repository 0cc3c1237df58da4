//! Re-clustering a running runtime: the scheduler plans it (as QUBO problems) from a
//! snapshot of the runtime's tree, and the plan is applied with the cluster manager's moves.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use qorch_protocol::{Address, AgentId};
use qorch_runtime::{ClusterManager, Host, RuntimeError};
use qorch_scheduler::{Grouping, ReclusterPlan, ReclusterPolicy, Step, plan_reclustering};

/// Re-clusters the agents of a runtime by their affinity (who talks to whom, for instance the
/// optimizer's observed [`OptimizationState::affinity`](crate::OptimizationState)): agents
/// move to the nodes they talk with, small sibling nodes merge, and large ones split in two
/// (see [`qorch_scheduler::plan_reclustering`], which plans it as QUBO problems). Agents move
/// with [`ClusterManager::move_agents`], their state, grant and pending messages with them; a
/// node emptied by a merge stays as a spare, reused by a later split among its siblings, and
/// a split without a spare creates a sibling (`<name>/split-<k>`).
///
/// Moves are under way when this returns: `RuntimeHandle::settle` twice (sources hand the
/// agents over, destinations adopt them) waits for them to land.
///
/// # Errors
///
/// [`RuntimeError::Stopped`] if the runtime has stopped.
pub fn recluster<B: Host, S: BuildHasher>(
    manager: &ClusterManager<B>,
    affinity: &HashMap<(AgentId, AgentId), f64, S>,
    policy: &ReclusterPolicy,
) -> Result<ReclusterPlan, RuntimeError> {
    let topology = manager.topology();
    let n_nodes = topology.nodes.len();
    let mut addresses: Vec<Address> = topology.nodes.iter().map(|n| n.address).collect();
    let mut edges: Vec<(u32, u32, f64)> =
        affinity.iter().map(|(&(a, b), &w)| (a.0, b.0, w)).collect();
    edges.sort_by_key(|e| (e.0, e.1));
    let grouping = Grouping {
        leaf_of: topology.hosts.clone(),
        group: topology
            .nodes
            .iter()
            .map(|n| n.parent.unwrap_or(u32::MAX))
            .collect(),
        live: topology.nodes.iter().map(|n| n.live).collect(),
    };
    let plan = plan_reclustering(&grouping, &edges, policy);
    // Each agent moves once, to where the last step puts it: a second move issued before the
    // first has landed would be sent to the old host.
    let mut dest: BTreeMap<u32, u32> = BTreeMap::new();
    for step in &plan.steps {
        match step {
            Step::Move(m) => dest.extend(m.iter().copied()),
            Step::Merge { into, agents, .. } => {
                dest.extend(agents.iter().map(|&a| (a, *into)));
            }
            Step::Split { leaf, to, leaving } => {
                if *to as usize >= addresses.len() {
                    let k = addresses.len() - n_nodes;
                    let node = &topology.nodes[*leaf as usize];
                    let name = format!("{}/split-{k}", node.name);
                    let parent = node.parent.map(|p| topology.nodes[p as usize].address);
                    let address = match parent {
                        Some(p) => Address::SubCluster(manager.create_sub_cluster(p, &name)?),
                        None => Address::Cluster(manager.create_cluster(&name)?),
                    };
                    addresses.push(address);
                }
                dest.extend(leaving.iter().map(|&a| (a, *to)));
            }
        }
    }
    let mut by_dest: BTreeMap<u32, Vec<AgentId>> = BTreeMap::new();
    for (a, to) in dest {
        by_dest.entry(to).or_default().push(AgentId(a));
    }
    for (to, ids) in by_dest {
        manager.move_agents(&ids, addresses[to as usize])?;
    }
    Ok(plan)
}
