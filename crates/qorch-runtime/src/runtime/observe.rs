//! Reading a running runtime without disturbing it: [`NodeLoad`]s from counters the nodes
//! keep anyway (no letter is sent to a node), and [`Observer`], a runtime seen through a
//! trait object whatever it hosts, for observers that are not generic (the dashboard).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use qorch_protocol::Address;
use serde::{Deserialize, Serialize};

use super::{RuntimeError, RuntimeHandle};
use crate::directory::NodeKey;
use crate::status::StatusTree;
use crate::{BoxFuture, Host};

/// One node's (cluster's or sub-cluster's) load, read from its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// The node.
    pub address: Address,
    /// Its parent node (`None`: a top-level cluster, under the orchestrator).
    pub parent: Option<Address>,
    /// Its name.
    pub name: String,
    /// Letters waiting in its mailbox, over all lanes (a snapshot).
    pub mailbox_depth: u64,
    /// User messages it consumed so far (delivered to its agents, or counted as dead
    /// letters): a counter, so that rates are differences of two readings.
    pub handled: u64,
    /// Whether it was killed (fault injection) or failed.
    pub dead: bool,
}

impl<B: Host> RuntimeHandle<B> {
    /// Every live or killed node's load, parents before their children, read from counters
    /// the nodes keep anyway: no letter is sent, so observing costs the nodes nothing. The
    /// cost is a pass over the nodes (not the agents).
    pub fn loads(&self) -> Vec<NodeLoad> {
        let shared = &self.inner.shared;
        let tree = shared.directory.tree.load();
        let flows = shared.flows.load();
        let mut out = Vec::with_capacity(tree.nodes.len());
        let mut order: Vec<NodeKey> = tree.roots().collect();
        let mut i = 0;
        while i < order.len() {
            let k = order[i];
            i += 1;
            let info = tree.info(k);
            if info.removed {
                continue;
            }
            order.extend(info.children.iter().copied());
            out.push(NodeLoad {
                address: info.address,
                parent: info.parent.map(|p| tree.info(p).address),
                name: info.name.clone(),
                mailbox_depth: shared.sender(k).map_or(0, |s| s.len() as u64),
                handled: flows
                    .get(k.0 as usize)
                    .map_or(0, |f| f.consumed.load(Ordering::Relaxed)),
                dead: info.dead,
            });
        }
        out
    }

    /// This runtime as an [`Observer`].
    pub fn observer(&self) -> Observer {
        Observer {
            inner: Arc::new(self.clone()),
        }
    }
}

/// What an observer reads of a runtime, whatever it hosts.
trait Observe: Send + Sync {
    fn loads(&self) -> Vec<NodeLoad>;
    fn status(&self) -> BoxFuture<'_, Result<StatusTree, RuntimeError>>;
}

impl<B: Host> Observe for RuntimeHandle<B> {
    fn loads(&self) -> Vec<NodeLoad> {
        RuntimeHandle::loads(self)
    }

    fn status(&self) -> BoxFuture<'_, Result<StatusTree, RuntimeError>> {
        Box::pin(RuntimeHandle::status(self))
    }
}

/// A runtime seen by an observer: its status tree and its nodes' loads, whatever the
/// runtime hosts. Cheap to clone; it keeps the runtime's shared state alive, not the
/// runtime running (once the runtime stops, [`Observer::status`] fails with
/// [`RuntimeError::Stopped`]).
#[derive(Clone)]
pub struct Observer {
    inner: Arc<dyn Observe>,
}

impl Observer {
    /// As [`RuntimeHandle::loads`].
    pub fn loads(&self) -> Vec<NodeLoad> {
        self.inner.loads()
    }

    /// As [`RuntimeHandle::status`].
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Stopped`] if the runtime has stopped.
    pub async fn status(&self) -> Result<StatusTree, RuntimeError> {
        self.inner.status().await
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

impl<B: Host> From<&RuntimeHandle<B>> for Observer {
    fn from(handle: &RuntimeHandle<B>) -> Self {
        handle.observer()
    }
}
