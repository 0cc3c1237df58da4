//! Subjects. Data subjects mirror the hierarchy, so that one wildcard subscription takes a
//! whole hosted sub-tree and a cluster's traffic follows it when another process adopts it:
//!
//! | subject | carries |
//! |---|---|
//! | `<prefix>.d.<cluster>.<leaf>.<priority>` | data frames for agents of that leaf (`<leaf>` is `_` for agents directly in the cluster, and for the cluster's own address) |
//! | `<prefix>.ack.<process>` | acknowledgements of the frames `<process>` sent (control connection) |
//! | `<prefix>.hb.<process>` | heartbeats (control connection) |
//! | `<prefix>.ctl.<...>` | control calls of the application (control connection) |
//!
//! `<cluster>` is `c<id>`, `<leaf>` is `s<id>`, `<priority>` is the lane name (`control`,
//! `high`, `normal`, `low`).

use qorch_protocol::{ClusterId, Priority, SubClusterId};

/// The subjects of one deployment (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

/// The lane names used in subjects, by lane index.
pub const LANES: [&str; 4] = ["control", "high", "normal", "low"];

impl Subjects {
    /// Subjects under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Subjects {
        Subjects {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where frames for agents of `leaf` (or of the cluster itself) at `priority` go.
    pub fn data(
        &self,
        cluster: ClusterId,
        leaf: Option<SubClusterId>,
        priority: Priority,
    ) -> String {
        let lane = LANES[priority.lane()];
        match leaf {
            Some(s) => format!("{}.d.c{}.s{}.{lane}", self.prefix, cluster.0, s.0),
            None => format!("{}.d.c{}._.{lane}", self.prefix, cluster.0),
        }
    }

    /// The wildcard that takes every frame for a cluster's sub-tree.
    pub fn cluster_wildcard(&self, cluster: ClusterId) -> String {
        format!("{}.d.c{}.>", self.prefix, cluster.0)
    }

    /// Where `process`'s acknowledgements go.
    pub fn acks(&self, process: &str) -> String {
        format!("{}.ack.{process}", self.prefix)
    }

    /// Where `process` sends heartbeats.
    pub fn heartbeat(&self, process: &str) -> String {
        format!("{}.hb.{process}", self.prefix)
    }

    /// Every heartbeat.
    pub fn heartbeats(&self) -> String {
        format!("{}.hb.*", self.prefix)
    }

    /// An application control subject: `<prefix>.ctl.<name>`.
    pub fn control(&self, name: &str) -> String {
        format!("{}.ctl.{name}", self.prefix)
    }
}

/// The longest process name, in bytes.
pub const MAX_PROCESS_NAME: usize = 100;

/// Checks that a process name is one subject token (letters, digits, `-`, `_`) of at most
/// [`MAX_PROCESS_NAME`] bytes.
pub fn valid_process_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PROCESS_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_subjects_mirror_the_hierarchy() {
        let s = Subjects::new("q.run1");
        assert_eq!(
            s.data(ClusterId(3), Some(SubClusterId(12)), Priority::High),
            "q.run1.d.c3.s12.high"
        );
        assert_eq!(
            s.data(ClusterId(3), None, Priority::Low),
            "q.run1.d.c3._.low"
        );
        assert_eq!(s.cluster_wildcard(ClusterId(3)), "q.run1.d.c3.>");
        assert!(valid_process_name("node-1_a"));
        assert!(!valid_process_name("node.1"));
        assert!(!valid_process_name(""));
        assert!(!valid_process_name(&"n".repeat(MAX_PROCESS_NAME + 1)));
    }
}
