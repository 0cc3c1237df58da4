//! [`ClusterManager`]: creates clusters and sub-clusters, spawns and moves agents, kills
//! nodes for fault injection; and the [`Topology`] snapshot planners read.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use qorch_protocol::{Address, AgentId, ClusterId, Priority, PriorityMailbox, SubClusterId};

use super::{RuntimeError, RuntimeHandle};
use crate::directory::{NodeInfo, NodeKey};
use crate::letter::{Factory, Letter};
use crate::{Agent, Host, Hosts};
use qorch_protocol::AgentRef;

/// Creates clusters and sub-clusters, spawns agents into them in bulk, and moves agents.
///
/// Clusters are spread over the workers round-robin; a sub-cluster runs on its cluster's
/// worker, so a cluster's agents share one thread and most of their messages never cross
/// threads.
pub struct ClusterManager<B: Host> {
    pub(super) handle: RuntimeHandle<B>,
}

impl<B: Host> Clone for ClusterManager<B> {
    fn clone(&self) -> Self {
        ClusterManager {
            handle: self.handle.clone(),
        }
    }
}

impl<B: Host> ClusterManager<B> {
    fn add_node(&self, address: Address, name: &str, parent: Option<NodeKey>) -> NodeKey {
        let inner = &self.handle.inner;
        let shared = &inner.shared;
        let _guard = inner
            .topology
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tree = shared.directory.tree.load();
        let key = NodeKey(tree.nodes.len() as u32);
        let worker = match parent {
            Some(p) => tree.info(p).worker,
            None => tree.roots().count() % inner.workers,
        };
        drop(tree);
        let (tx, rx) = PriorityMailbox::with_config(shared.config.mailbox).expect("validated");
        shared.add_sender(tx);
        shared.directory.update_tree(|t| {
            t.nodes.push(NodeInfo {
                address,
                name: name.to_owned(),
                parent,
                children: Vec::new(),
                worker,
                removed: false,
                dead: false,
            });
            if let Some(p) = parent {
                t.nodes[p.0 as usize].children.push(key);
            }
            match address {
                Address::Cluster(c) => {
                    t.by_cluster.insert(c, key);
                }
                Address::SubCluster(s) => {
                    t.by_sub.insert(s, key);
                }
                _ => {}
            }
        });
        inner
            .spawner
            .start_node(Arc::clone(shared), key, worker, rx);
        key
    }

    /// Creates a top-level cluster.
    ///
    /// # Errors
    ///
    /// None today; kept for forward compatibility with remote placement.
    pub fn create_cluster(&self, name: &str) -> Result<ClusterId, RuntimeError> {
        let id = ClusterId(
            self.handle
                .inner
                .shared
                .next_cluster
                .fetch_add(1, Ordering::Relaxed),
        );
        self.add_node(Address::Cluster(id), name, None);
        Ok(id)
    }

    /// Creates a sub-cluster under a cluster or another sub-cluster.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `parent` is not a cluster or sub-cluster.
    pub fn create_sub_cluster(
        &self,
        parent: Address,
        name: &str,
    ) -> Result<SubClusterId, RuntimeError> {
        let tree = self.handle.inner.shared.directory.tree.load();
        let Some(p) = tree.node_of(parent) else {
            return Err(RuntimeError::UnknownAddress(parent));
        };
        drop(tree);
        let id = SubClusterId(
            self.handle
                .inner
                .shared
                .next_sub
                .fetch_add(1, Ordering::Relaxed),
        );
        self.add_node(Address::SubCluster(id), name, Some(p));
        Ok(id)
    }

    /// Creates a top-level cluster with a chosen id (a distributed run places the clusters
    /// of one numbering over several processes). Later [`create_cluster`](Self::create_cluster)
    /// calls number past it.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::AddressInUse`] if the id is taken.
    pub fn create_cluster_with_id(&self, id: ClusterId, name: &str) -> Result<(), RuntimeError> {
        let address = Address::Cluster(id);
        if self
            .handle
            .inner
            .shared
            .directory
            .tree
            .load()
            .node_of(address)
            .is_some()
        {
            return Err(RuntimeError::AddressInUse(address));
        }
        self.handle
            .inner
            .shared
            .next_cluster
            .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
        self.add_node(address, name, None);
        Ok(())
    }

    /// Creates a sub-cluster with a chosen id under a cluster or another sub-cluster.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `parent` is not a cluster or sub-cluster,
    /// [`RuntimeError::AddressInUse`] if the id is taken.
    pub fn create_sub_cluster_with_id(
        &self,
        parent: Address,
        id: SubClusterId,
        name: &str,
    ) -> Result<(), RuntimeError> {
        let address = Address::SubCluster(id);
        let tree = self.handle.inner.shared.directory.tree.load();
        let Some(p) = tree.node_of(parent) else {
            return Err(RuntimeError::UnknownAddress(parent));
        };
        if tree.node_of(address).is_some() {
            return Err(RuntimeError::AddressInUse(address));
        }
        drop(tree);
        self.handle
            .inner
            .shared
            .next_sub
            .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
        self.add_node(address, name, Some(p));
        Ok(())
    }

    /// Spawns agents with chosen ids into a cluster or sub-cluster (a distributed run keeps
    /// one numbering of agents over its processes). Later
    /// [`spawn_agents`](Self::spawn_agents) calls number past the largest.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `host` is not a cluster or sub-cluster,
    /// [`RuntimeError::AddressInUse`] if an id is taken (nothing is spawned then),
    /// [`RuntimeError::Stopped`].
    pub fn spawn_agents_at(
        &self,
        host: Address,
        ids: &[AgentId],
        factory: &Factory<B>,
    ) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(node) = tree.node_of(host) else {
            return Err(RuntimeError::UnknownAddress(host));
        };
        drop(tree);
        if let Some(&taken) = ids
            .iter()
            .find(|&&id| shared.directory.agents.get(id).is_some())
        {
            return Err(RuntimeError::AddressInUse(taken.into()));
        }
        if let Some(max) = ids.iter().map(|a| a.0).max() {
            shared
                .services
                .next_agent
                .fetch_max(max.saturating_add(1), Ordering::Relaxed);
        }
        self.spawn_into(node, host, ids.to_vec(), factory)
    }

    /// Marks `ids` as on their way to `node` and sends it the spawn letter.
    fn spawn_into(
        &self,
        node: NodeKey,
        host: Address,
        ids: Vec<AgentId>,
        factory: &Factory<B>,
    ) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        for &id in &ids {
            shared
                .directory
                .agents
                .set(id, Some((node, crate::directory::IN_TRANSIT)));
        }
        let mb = shared.sender(node).ok_or(RuntimeError::Stopped)?;
        let env = self.handle.envelope(
            host,
            Priority::Control,
            Letter::Spawn(ids, Arc::clone(factory)),
        );
        mb.send_blocking(env).map_err(|_| RuntimeError::Stopped)?;
        Ok(())
    }

    /// Spawns one agent of behaviour `A` into a cluster or sub-cluster; `factory` builds it
    /// (and rebuilds it on restart). Returns its reference, typed by the messages it
    /// accepts. A runtime of one behaviour spawns only that one; a runtime of several
    /// (`QuantumOrchestrator<AnyAgent>`) any. Messages sent to it right away wait for it,
    /// never lost.
    ///
    /// # Errors
    ///
    /// As [`spawn_agents`](Self::spawn_agents).
    pub fn spawn<A: Agent>(
        &self,
        host: Address,
        factory: impl Fn(AgentId) -> A + Send + Sync + 'static,
    ) -> Result<AgentRef<A::Msg>, RuntimeError>
    where
        B: Hosts<A>,
    {
        let factory: Factory<A> = Arc::new(factory);
        let ids = self.spawn_agents_with(host, 1, &B::factory(factory))?;
        Ok(AgentRef::from_id(ids[0]))
    }

    /// Spawns `count` agents of behaviour `A` into a cluster or sub-cluster; `factory` builds
    /// each one (and rebuilds it on restart). Returns their references, in id order. Messages
    /// sent to them right away are held until they exist, never lost.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `host` is not a cluster or sub-cluster,
    /// [`RuntimeError::TooManyAgents`] past 2^32 agents, [`RuntimeError::Stopped`].
    pub fn spawn_agents<A: Agent>(
        &self,
        host: Address,
        count: usize,
        factory: impl Fn(AgentId) -> A + Send + Sync + 'static,
    ) -> Result<Vec<AgentRef<A::Msg>>, RuntimeError>
    where
        B: Hosts<A>,
    {
        let factory: Factory<A> = Arc::new(factory);
        let ids = self.spawn_agents_with(host, count, &B::factory(factory))?;
        Ok(ids.into_iter().map(AgentRef::from_id).collect())
    }

    /// [`spawn_agents`](Self::spawn_agents) with a shared factory of this runtime's hosted
    /// type; returns the new agents' ids.
    ///
    /// # Errors
    ///
    /// As [`spawn_agents`](Self::spawn_agents).
    pub fn spawn_agents_with(
        &self,
        host: Address,
        count: usize,
        factory: &Factory<B>,
    ) -> Result<Vec<AgentId>, RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(node) = tree.node_of(host) else {
            return Err(RuntimeError::UnknownAddress(host));
        };
        drop(tree);
        let count32 = u32::try_from(count).map_err(|_| RuntimeError::TooManyAgents)?;
        let first = shared
            .services
            .allocate_agent_ids(count32)
            .ok_or(RuntimeError::TooManyAgents)?;
        let ids: Vec<AgentId> = (first..first + count32).map(AgentId).collect();
        self.spawn_into(node, host, ids.clone(), factory)?;
        Ok(ids)
    }

    /// Moves agents (with their state, grant and pending messages) to another cluster or
    /// sub-cluster. Messages in flight follow them.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] for an unknown destination.
    pub fn move_agents(&self, agents: &[AgentId], to: Address) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(dest) = tree.node_of(to) else {
            return Err(RuntimeError::UnknownAddress(to));
        };
        drop(tree);
        let mut by_host: std::collections::BTreeMap<NodeKey, Vec<AgentId>> =
            std::collections::BTreeMap::new();
        for &a in agents {
            if let Some(h) = shared.directory.agents.node(a)
                && h != dest
            {
                by_host.entry(h).or_default().push(a);
            }
        }
        for (host, ids) in by_host {
            let Some(mb) = shared.sender(host) else {
                continue;
            };
            let env = self
                .handle
                .envelope(to, Priority::Control, Letter::MoveOut(ids, dest));
            mb.send_blocking(env).map_err(|_| RuntimeError::Stopped)?;
        }
        Ok(())
    }

    /// Fault injection: stops a cluster or sub-cluster (and everything below it) at once, as
    /// if its process crashed: no drain, no more heartbeats. Its parent marks it failed after
    /// the heartbeat timeout.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::UnknownAddress`] if `node` is not a cluster or sub-cluster.
    pub fn kill(&self, node: Address) -> Result<(), RuntimeError> {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let Some(k) = tree.node_of(node) else {
            return Err(RuntimeError::UnknownAddress(node));
        };
        let mut stack = vec![k];
        let mut all = Vec::new();
        while let Some(n) = stack.pop() {
            all.push(n);
            stack.extend(tree.info(n).children.iter().copied());
        }
        drop(tree);
        shared.directory.update_tree(|t| {
            for n in &all {
                t.nodes[n.0 as usize].dead = true;
            }
        });
        for n in all {
            if let Some(mb) = shared.sender(n) {
                let addr = shared.directory.tree.load().info(n).address;
                let _ = mb.try_send(self.handle.envelope(addr, Priority::Control, Letter::Kill));
            }
        }
        Ok(())
    }

    /// The node that hosts an agent, per the directory.
    pub fn host_of(&self, agent: impl Into<AgentId>) -> Option<Address> {
        let agent = agent.into();
        let shared = &self.handle.inner.shared;
        let k = shared.directory.agents.node(agent)?;
        Some(shared.directory.tree.load().info(k).address)
    }

    /// Every cluster and sub-cluster: address, name, parent.
    pub fn nodes(&self) -> Vec<(Address, String, Option<Address>)> {
        let tree = self.handle.inner.shared.directory.tree.load();
        tree.nodes
            .iter()
            .filter(|n| !n.removed)
            .map(|n| {
                (
                    n.address,
                    n.name.clone(),
                    n.parent.map(|p| tree.info(p).address),
                )
            })
            .collect()
    }

    /// A snapshot of the node tree and of where every agent is hosted, for planners (such
    /// as `qorch_optimizer::recluster`) that work on indices rather than addresses.
    pub fn topology(&self) -> Topology {
        let shared = &self.handle.inner.shared;
        let tree = shared.directory.tree.load();
        let nodes = tree
            .nodes
            .iter()
            .map(|n| TopologyNode {
                address: n.address,
                name: n.name.clone(),
                parent: n.parent.map(|p| p.0),
                live: !n.removed && !n.dead,
            })
            .collect();
        drop(tree);
        let agents = shared.services.next_agent.load(Ordering::Relaxed);
        let hosts = (0..agents)
            .map(|a| shared.directory.agents.node(AgentId(a)).map(|k| k.0))
            .collect();
        Topology { nodes, hosts }
    }
}

/// A snapshot of a runtime's tree: every cluster and sub-cluster ever created, by index
/// (killed and removed ones included, marked not live), and the host of every agent id.
/// Taken by [`ClusterManager::topology`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The nodes, by index; a node's index never changes.
    pub nodes: Vec<TopologyNode>,
    /// For agent id `a`, the index of its host node at `hosts[a]` (`None`: no agent of that
    /// id lives here now).
    pub hosts: Vec<Option<u32>>,
}

/// One cluster or sub-cluster of a [`Topology`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyNode {
    /// Its address.
    pub address: Address,
    /// Its name.
    pub name: String,
    /// Its parent's index (`None`: a top-level cluster).
    pub parent: Option<u32>,
    /// Neither killed nor removed.
    pub live: bool,
}
