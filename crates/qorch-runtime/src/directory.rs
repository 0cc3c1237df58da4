//! The routing directory: which node hosts each agent, and the tree of nodes.
//!
//! Agents map to their hosting node through chunked atomic tables (lock-free reads, no
//! contention between arbiter threads, memory on first use). The node tree is small and
//! changes rarely; readers get a consistent snapshot from an `ArcSwap`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use qorch_protocol::{Address, AgentId, ClusterId, SubClusterId};

/// Internal index of a node (cluster or sub-cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeKey(pub(crate) u32);

const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 1 << (32 - CHUNK_BITS);
/// Marks an agent id with no hosting node.
const NONE: u64 = u64::MAX;
/// Slot of an agent that is on its way to its node (spawn or move in flight).
pub(crate) const IN_TRANSIT: u32 = u32::MAX;

/// Agent id -> (hosting node, slot in that node), for up to 2^32 agents; a chunk of 65,536
/// entries (512 KiB) is allocated the first time one of its ids is set. Agent ids are dense, so
/// neighbouring agents share cache lines: looking up the slot of the next agent in a ring or a
/// batch is one load from memory that is already close.
pub(crate) struct AgentMap {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl AgentMap {
    pub(crate) fn new() -> Self {
        AgentMap {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The hosting node and the agent's slot there (`IN_TRANSIT` while it travels).
    #[inline]
    pub(crate) fn get(&self, agent: AgentId) -> Option<(NodeKey, u32)> {
        let chunk = self.chunks[(agent.0 >> CHUNK_BITS) as usize].get()?;
        let v = chunk[(agent.0 as usize) & (CHUNK - 1)].load(Ordering::Acquire);
        (v != NONE).then_some((NodeKey((v >> 32) as u32), v as u32))
    }

    /// The hosting node.
    #[inline]
    pub(crate) fn node(&self, agent: AgentId) -> Option<NodeKey> {
        self.get(agent).map(|(n, _)| n)
    }

    pub(crate) fn set(&self, agent: AgentId, place: Option<(NodeKey, u32)>) {
        let chunk = self.chunks[(agent.0 >> CHUNK_BITS) as usize]
            .get_or_init(|| (0..CHUNK).map(|_| AtomicU64::new(NONE)).collect());
        let v = place.map_or(NONE, |(n, slot)| (u64::from(n.0) << 32) | u64::from(slot));
        chunk[(agent.0 as usize) & (CHUNK - 1)].store(v, Ordering::Release);
    }
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub(crate) address: Address,
    pub(crate) name: String,
    pub(crate) parent: Option<NodeKey>,
    pub(crate) children: Vec<NodeKey>,
    /// The worker (arbiter) it runs on.
    pub(crate) worker: usize,
    /// Whether it was removed (its key is never reused).
    pub(crate) removed: bool,
    /// Whether it was killed (fault injection): it stays in the tree, failed, but will never
    /// answer again.
    pub(crate) dead: bool,
}

/// The node tree: clusters are the roots' children (the orchestrator is the implicit root).
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeTable {
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) by_cluster: HashMap<ClusterId, NodeKey>,
    pub(crate) by_sub: HashMap<SubClusterId, NodeKey>,
}

impl NodeTable {
    pub(crate) fn info(&self, key: NodeKey) -> &NodeInfo {
        &self.nodes[key.0 as usize]
    }

    /// The node an address names (agents resolve through the agent map instead).
    pub(crate) fn node_of(&self, address: Address) -> Option<NodeKey> {
        match address {
            Address::Cluster(c) => self.by_cluster.get(&c).copied(),
            Address::SubCluster(s) => self.by_sub.get(&s).copied(),
            Address::Orchestrator | Address::Agent(_) => None,
        }
    }

    /// The clusters (top-level nodes), in creation order.
    pub(crate) fn roots(&self) -> impl Iterator<Item = NodeKey> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parent.is_none() && !n.removed)
            .map(|(k, _)| NodeKey(k as u32))
    }

    /// The next hop from `from` (None: the orchestrator) towards node `target` (None: the
    /// orchestrator): `Some(child)` down, `None` up (to the parent, or to the orchestrator).
    /// Returns `Hop::Here` when `from == target`.
    pub(crate) fn next_hop(&self, from: Option<NodeKey>, target: Option<NodeKey>) -> Hop {
        if from == target {
            return Hop::Here;
        }
        // Walk up from the target; if `from` is an ancestor, the step below it is the hop.
        let mut child = None;
        let mut cur = target;
        while let Some(k) = cur {
            let parent = self.info(k).parent;
            if parent == from {
                child = Some(k);
                break;
            }
            cur = parent;
        }
        match (child, from) {
            (Some(c), _) => Hop::Down(c),
            // `from` is the orchestrator and the target is in no cluster (removed): nowhere.
            (None, None) => Hop::Unreachable,
            (None, Some(f)) => match self.info(f).parent {
                Some(p) => Hop::Up(Some(p)),
                None => Hop::Up(None),
            },
        }
    }
}

/// Where a message goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// It has arrived.
    Here,
    /// To this child.
    Down(NodeKey),
    /// To the parent node (`None`: the orchestrator).
    Up(Option<NodeKey>),
    /// The target does not exist.
    Unreachable,
}

/// Routing state shared by every node and handle of one runtime.
pub(crate) struct Directory {
    pub(crate) agents: AgentMap,
    pub(crate) tree: ArcSwap<NodeTable>,
}

impl Directory {
    pub(crate) fn new() -> Self {
        Directory {
            agents: AgentMap::new(),
            tree: ArcSwap::from_pointee(NodeTable::default()),
        }
    }

    /// The node that hosts `address` (an agent's host, a cluster or sub-cluster itself);
    /// `Ok(None)` for the orchestrator; `Err(())` if it names nothing that exists.
    pub(crate) fn resolve(
        &self,
        tree: &NodeTable,
        address: Address,
    ) -> Result<Option<NodeKey>, ()> {
        match address {
            Address::Orchestrator => Ok(None),
            Address::Agent(a) => self.agents.node(a).map(Some).ok_or(()),
            other => tree
                .node_of(other)
                .filter(|k| !tree.info(*k).removed)
                .map(Some)
                .ok_or(()),
        }
    }

    /// Applies a change to the node tree (copy-on-write; rare).
    pub(crate) fn update_tree(&self, f: impl FnOnce(&mut NodeTable)) {
        let mut t = NodeTable::clone(&self.tree.load());
        f(&mut t);
        self.tree.store(Arc::new(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(address: Address, parent: Option<u32>) -> NodeInfo {
        NodeInfo {
            address,
            name: String::new(),
            parent: parent.map(NodeKey),
            children: Vec::new(),
            worker: 0,
            removed: false,
            dead: false,
        }
    }

    #[test]
    fn agent_map_sets_and_gets_across_chunks() {
        let m = AgentMap::new();
        assert_eq!(m.get(AgentId(5)), None);
        m.set(AgentId(5), Some((NodeKey(3), 9)));
        m.set(AgentId(1 << 20), Some((NodeKey(7), IN_TRANSIT)));
        assert_eq!(m.get(AgentId(5)), Some((NodeKey(3), 9)));
        assert_eq!(m.node(AgentId(1 << 20)), Some(NodeKey(7)));
        assert_eq!(m.get(AgentId(1 << 20)), Some((NodeKey(7), IN_TRANSIT)));
        assert_eq!(m.get(AgentId(6)), None);
        m.set(AgentId(5), None);
        assert_eq!(m.get(AgentId(5)), None);
    }

    #[test]
    fn next_hop_goes_up_to_the_common_ancestor_and_down() {
        // c0 (0) -> s1 (1) -> s2 (2); c3 (3)
        let t = NodeTable {
            nodes: vec![
                node(Address::Cluster(ClusterId(0)), None),
                node(Address::SubCluster(SubClusterId(1)), Some(0)),
                node(Address::SubCluster(SubClusterId(2)), Some(1)),
                node(Address::Cluster(ClusterId(3)), None),
            ],
            ..NodeTable::default()
        };
        let k = |i| Some(NodeKey(i));
        assert_eq!(t.next_hop(k(2), k(2)), Hop::Here);
        assert_eq!(t.next_hop(k(2), k(3)), Hop::Up(k(1)));
        assert_eq!(t.next_hop(k(1), k(3)), Hop::Up(k(0)));
        assert_eq!(t.next_hop(k(0), k(3)), Hop::Up(None));
        assert_eq!(t.next_hop(None, k(3)), Hop::Down(NodeKey(3)));
        assert_eq!(t.next_hop(None, k(2)), Hop::Down(NodeKey(0)));
        assert_eq!(t.next_hop(k(0), k(2)), Hop::Down(NodeKey(1)));
        assert_eq!(t.next_hop(k(2), None), Hop::Up(k(1)));
        assert_eq!(t.next_hop(None, None), Hop::Here);
    }
}
