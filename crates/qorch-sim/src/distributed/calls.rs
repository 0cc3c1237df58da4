//! The coordinator's control calls to its node processes ([`Calls`]: one node, every live
//! node at once, their counters), and which node hosts what ([`Placement`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use qorch_net::rpc::RpcClient;
use qorch_net::{Membership, Subjects, TraceContext};
use qorch_protocol::AgentId;

use super::protocol::{FromNode, HEARTBEAT, NodeStatus, SILENCE, ToNode, node_subject};
use crate::error::SimError;

/// The answer timeout of control calls (building a node's share of a million agents takes
/// seconds; a tick of heavy work can take long).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// One node process as the coordinator knows it.
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) alive: bool,
    pub(super) clusters: Vec<u32>,
    /// Its last reported counts (a lost node's are its final ones: exact when it was lost
    /// at a quiet point, a lower bound when it died mid-tick).
    pub(super) last: NodeStatus,
}

/// Which node hosts each cluster: shared by the driver's backend and the optimizer's
/// hierarchy.
pub(super) struct Placement {
    pub(super) slots: Vec<Slot>,
    /// Cluster index -> slot.
    pub(super) host: Vec<usize>,
    /// Agent -> cluster index (agents do not move between clusters in distributed runs).
    pub(super) cluster_of: Vec<u32>,
}

impl Placement {
    /// The live nodes: slot and name.
    pub(super) fn alive(&self) -> Vec<(usize, String)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.alive)
            .map(|(i, s)| (i, s.name.clone()))
            .collect()
    }
}

/// Talks to the nodes.
#[derive(Clone)]
pub(super) struct Calls {
    pub(super) rpc: RpcClient,
    pub(super) subjects: Subjects,
    /// Who sends heartbeats.
    pub(super) members: Membership,
    pub(super) placement: Arc<Mutex<Placement>>,
}

impl Calls {
    /// Which node hosts what, locked.
    pub(super) fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        self.placement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Calls a node; gives up early if its heartbeats stop (a dead node never answers).
    pub(super) async fn call(&self, name: &str, msg: &ToNode) -> Result<FromNode, SimError> {
        self.call_traced(name, msg, None).await
    }

    /// [`call`](Self::call) with a trace context in the call's frame header (a round's:
    /// the node's spans for it join the coordinator's trace).
    pub(super) async fn call_traced(
        &self,
        name: &str,
        msg: &ToNode,
        trace: Option<TraceContext>,
    ) -> Result<FromNode, SimError> {
        let subject = node_subject(&self.subjects, name);
        let answer = self.rpc.call_traced(&subject, msg, CALL_TIMEOUT, trace);
        let silent = async {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if !self.members.alive(name, SILENCE) {
                    return;
                }
            }
        };
        tokio::select! {
            r = answer => r.map_err(|source| SimError::Node { node: name.to_owned(), source }),
            () = silent => Err(SimError::Distributed(format!(
                "node {name} fell silent (no heartbeat for {SILENCE:?})"
            ))),
        }
    }

    /// The same call to every live node at once.
    pub(super) async fn call_all(&self, msg: &ToNode) -> Vec<(usize, Result<FromNode, SimError>)> {
        self.call_all_traced(msg, None).await
    }

    /// [`call_all`](Self::call_all) with a trace context.
    pub(super) async fn call_all_traced(
        &self,
        msg: &ToNode,
        trace: Option<TraceContext>,
    ) -> Vec<(usize, Result<FromNode, SimError>)> {
        let alive = self.placement().alive();
        let calls = alive
            .iter()
            .map(|(i, name)| async move { (*i, self.call_traced(name, msg, trace).await) });
        join_all(calls).await
    }

    /// Every live node's counters (kept as its last).
    pub(super) async fn statuses(&self) -> Result<Vec<(usize, NodeStatus)>, SimError> {
        let mut out = Vec::new();
        for (i, r) in self.call_all(&ToNode::Status).await {
            match r? {
                FromNode::Status(s) => out.push((i, *s)),
                other => return Err(unexpected(&other)),
            }
        }
        // Kept: if a node dies, its last counts still count.
        let mut p = self.placement();
        for (i, s) in &out {
            p.slots[*i].last = *s;
        }
        Ok(out)
    }

    /// The live node hosting `agent`.
    pub(super) fn host_of_agent(&self, agent: AgentId) -> Option<String> {
        let p = self.placement();
        let c = *p.cluster_of.get(agent.0 as usize)?;
        let s = &p.slots[p.host[c as usize]];
        s.alive.then(|| s.name.clone())
    }
}

/// An answer that does not fit the call.
pub(super) fn unexpected(answer: &FromNode) -> SimError {
    SimError::Distributed(format!("unexpected answer {answer:?}"))
}
