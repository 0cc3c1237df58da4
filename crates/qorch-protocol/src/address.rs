//! Addresses of components in the hierarchy: orchestrator, clusters, sub-clusters and agents.
//!
//! Ids are small `Copy` integers assigned by the runtime; they stay the same when an agent moves
//! between clusters, so the runtime keeps the directory (id -> parent) that routing needs. An
//! [`Address`] is eight bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// The raw integer value.
            #[inline]
            pub const fn get(self) -> u32 {
                self.0
            }

            /// The id as a `usize`, for indexing dense tables.
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "/{}"), self.0)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                Self(v)
            }
        }
    };
}

id_type!(
    /// Identifies an agent. Stable for the agent's lifetime, even across cluster moves.
    AgentId,
    "agent"
);
id_type!(
    /// Identifies a top-level cluster (a direct child of the orchestrator).
    ClusterId,
    "cluster"
);
id_type!(
    /// Identifies a sub-cluster at any depth below a cluster.
    SubClusterId,
    "sub"
);

/// The address of a component in the hierarchy.
///
/// # Examples
///
/// ```
/// use qorch_protocol::{Address, AgentId, ClusterId};
///
/// let a = Address::Agent(AgentId(7));
/// assert_eq!(a.to_string(), "agent/7");
/// assert_eq!(Address::from(ClusterId(2)), Address::Cluster(ClusterId(2)));
/// assert_eq!(std::mem::size_of::<Address>(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Address {
    /// The root of the hierarchy.
    Orchestrator,
    /// A top-level cluster.
    Cluster(ClusterId),
    /// A sub-cluster at any depth.
    SubCluster(SubClusterId),
    /// An agent (a leaf).
    Agent(AgentId),
}

impl Address {
    /// Whether this is an agent's address.
    pub const fn is_agent(self) -> bool {
        matches!(self, Address::Agent(_))
    }

    /// The agent id, if this is an agent's address.
    pub const fn agent(self) -> Option<AgentId> {
        match self {
            Address::Agent(id) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Orchestrator => f.write_str("orchestrator"),
            Address::Cluster(id) => id.fmt(f),
            Address::SubCluster(id) => id.fmt(f),
            Address::Agent(id) => id.fmt(f),
        }
    }
}

impl From<AgentId> for Address {
    fn from(id: AgentId) -> Self {
        Address::Agent(id)
    }
}

impl From<ClusterId> for Address {
    fn from(id: ClusterId) -> Self {
        Address::Cluster(id)
    }
}

impl From<SubClusterId> for Address {
    fn from(id: SubClusterId) -> Self {
        Address::SubCluster(id)
    }
}
