//! How a parent watches its children: the last heartbeat of each (with the status of its
//! subtree), which are failed, and the child's line of the parent's status tree. Nodes
//! watch their sub-clusters; the orchestrator watches the clusters.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use qorch_protocol::Address;

use crate::directory::{NodeInfo, NodeKey};
use crate::status::{AgentCounts, ComponentStatus, StatusNode};

/// A child never heard from.
fn starting(info: &NodeInfo, silent: Duration) -> StatusNode {
    StatusNode {
        address: info.address,
        name: info.name.clone(),
        status: ComponentStatus::Starting,
        agents: AgentCounts::default(),
        silent_ms: silent.as_millis() as u64,
        children: Vec::new(),
    }
}

/// The children of one parent, as their heartbeats tell.
#[derive(Default)]
pub(crate) struct ChildWatch {
    /// When each child was last heard from, and its subtree as it last reported it.
    seen: HashMap<NodeKey, (Instant, StatusNode)>,
    failed: HashSet<NodeKey>,
}

impl ChildWatch {
    /// A heartbeat of `child` with its subtree's status.
    pub(crate) fn heartbeat(&mut self, child: NodeKey, tree: StatusNode, now: Instant) {
        self.failed.remove(&child);
        self.seen.insert(child, (now, tree));
    }

    /// Any other letter from a child that has sent a heartbeat: it is alive.
    pub(crate) fn alive(&mut self, child: NodeKey, now: Instant) {
        if let Some(seen) = self.seen.get_mut(&child) {
            seen.0 = now;
            self.failed.remove(&child);
        }
    }

    /// Whether `child` is failed (silent past the timeout).
    pub(crate) fn is_failed(&self, child: NodeKey) -> bool {
        self.failed.contains(&child)
    }

    /// Fails the children silent for longer than `timeout`; returns those newly failed.
    ///
    /// A child never heard from is timed from the first check that sees it when
    /// `from_first_look` (a node's sub-clusters: one that dies before its first heartbeat is
    /// failed too); otherwise it is left `Starting` until its first heartbeat (the
    /// orchestrator's clusters, which may take long to start their agents).
    pub(crate) fn check(
        &mut self,
        parent: Address,
        children: impl IntoIterator<Item = (NodeKey, NodeInfo)>,
        now: Instant,
        timeout: Duration,
        from_first_look: bool,
    ) -> Vec<NodeKey> {
        let mut newly = Vec::new();
        for (c, info) in children {
            let seen = if from_first_look {
                Some(
                    self.seen
                        .entry(c)
                        .or_insert_with(|| (now, starting(&info, Duration::ZERO)))
                        .0,
                )
            } else {
                self.seen.get(&c).map(|(t, _)| *t)
            };
            let silent = seen.map(|t| now.duration_since(t));
            if silent.is_some_and(|s| s > timeout) && self.failed.insert(c) {
                tracing::warn!(
                    %parent,
                    child = %info.address,
                    name = %info.name,
                    silent = ?silent.unwrap_or_default(),
                    "child missed its heartbeats: failed"
                );
                newly.push(c);
            }
        }
        newly
    }

    /// The child's line in its parent's status tree: its last report with how long it has
    /// been silent, or `Starting` (silent for `unseen_for`) if it never reported; `Failed`
    /// if it is.
    pub(crate) fn status_of(
        &self,
        child: NodeKey,
        info: &NodeInfo,
        now: Instant,
        unseen_for: Duration,
    ) -> StatusNode {
        let mut node = match self.seen.get(&child) {
            Some((t, n)) => {
                let mut n = n.clone();
                n.silent_ms = now.duration_since(*t).as_millis() as u64;
                n
            }
            None => starting(info, unseen_for),
        };
        if self.failed.contains(&child) {
            node.status = ComponentStatus::Failed;
        }
        node
    }
}
