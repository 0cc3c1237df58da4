//! The tree the pages show: per cluster and sub-cluster, aggregates of its subtree (status,
//! agents, mailbox depth, message rate), sampled from an [`Observer`] while a page is open.
//! Pages receive the top level and ask for one node's children when they open it, so what
//! is shipped is O(children of the open nodes), never O(agents).

use std::collections::HashMap;
use std::time::Instant;

use qorch_runtime::{AgentCounts, ComponentStatus, NodeLoad, Observer, StatusNode};
use serde::Serialize;

use crate::feed::ProcessSample;

/// One node of the tree, with the aggregates of its subtree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeNode {
    /// Its key (the address as text: `c3`, `s17`, ...), for asking its children.
    pub key: String,
    /// Its name.
    pub name: String,
    /// 0 for a top-level cluster, 1 for its sub-clusters, ...
    pub level: u32,
    /// The worst status in its subtree.
    pub status: ComponentStatus,
    /// Agents in its subtree.
    pub agents: u64,
    /// Of which failed beyond their restart budget.
    pub failed_agents: u64,
    /// Of which restarted after a failure.
    pub restarted_agents: u64,
    /// Letters waiting in the mailboxes of its subtree.
    pub mailbox_depth: u64,
    /// The deepest single mailbox of its subtree.
    pub max_depth: u64,
    /// User messages handled per second in its subtree, over the last sampling interval.
    pub rate: f64,
    /// Its sub-clusters.
    pub children: u32,
}

/// The sampled tree.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: HashMap<String, TreeNode>,
    children: HashMap<String, Vec<String>>,
    roots: Vec<String>,
    /// Each node's handled count at the last sample, and when it was taken.
    last: HashMap<String, u64>,
    last_at: Option<Instant>,
    /// The last status tree's status and agents, by node.
    statuses: HashMap<String, (ComponentStatus, AgentCounts)>,
    /// Whether a sample was ever taken.
    pub(crate) sampled: bool,
}

impl Tree {
    /// A new sample: the loads (parents before children) and the status tree.
    pub(crate) fn update(&mut self, loads: &[NodeLoad], status: Option<&StatusNode>, now: Instant) {
        let dt = self
            .last_at
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        // Without a new status tree (the runtime stopped, or did not answer in time), the
        // last one stands.
        let statuses = match status {
            Some(root) => root
                .components()
                .map(|c| (c.address.to_string(), (c.status, c.agents)))
                .collect(),
            None => std::mem::take(&mut self.statuses),
        };
        let mut nodes = HashMap::with_capacity(loads.len());
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut roots = Vec::new();
        let mut level: HashMap<String, u32> = HashMap::new();
        let mut last = HashMap::with_capacity(loads.len());
        for l in loads {
            let key = l.address.to_string();
            let handled_before = self.last.get(&key).copied();
            last.insert(key.clone(), l.handled);
            let rate = match handled_before {
                Some(h) if dt > 0.0 => l.handled.saturating_sub(h) as f64 / dt,
                _ => 0.0,
            };
            let (mut st, counts) = statuses
                .get(&key)
                .copied()
                .unwrap_or((ComponentStatus::Starting, AgentCounts::default()));
            if l.dead {
                st = ComponentStatus::Failed;
            }
            let lv = if let Some(p) = &l.parent {
                let p = p.to_string();
                let lv = level.get(&p).map_or(0, |x| x + 1);
                children.entry(p).or_default().push(key.clone());
                lv
            } else {
                roots.push(key.clone());
                0
            };
            level.insert(key.clone(), lv);
            nodes.insert(
                key.clone(),
                TreeNode {
                    key,
                    name: l.name.clone(),
                    level: lv,
                    status: st,
                    agents: counts.total,
                    failed_agents: counts.failed,
                    restarted_agents: counts.restarted,
                    mailbox_depth: l.mailbox_depth,
                    max_depth: l.mailbox_depth,
                    rate,
                    children: 0,
                },
            );
        }
        // Children after their parents in `loads`: fold them up in reverse order.
        for l in loads.iter().rev() {
            let Some(p) = &l.parent else { continue };
            let key = l.address.to_string();
            let Some(child) = nodes.get(&key).cloned() else {
                continue;
            };
            if let Some(parent) = nodes.get_mut(&p.to_string()) {
                parent.status = parent.status.max(child.status);
                parent.agents += child.agents;
                parent.failed_agents += child.failed_agents;
                parent.restarted_agents += child.restarted_agents;
                parent.mailbox_depth += child.mailbox_depth;
                parent.max_depth = parent.max_depth.max(child.max_depth);
                parent.rate += child.rate;
                parent.children += 1;
            }
        }
        *self = Tree {
            nodes,
            children,
            roots,
            last,
            last_at: Some(now),
            statuses,
            sampled: true,
        };
    }

    /// A new sample of a run's processes (no runtime observed): processes, then their
    /// clusters (whose figures other than agents are unknown here). `in_flight` stands for
    /// the mailbox depth.
    pub(crate) fn update_processes(&mut self, processes: &[ProcessSample], now: Instant) {
        let dt = self
            .last_at
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        let mut nodes = HashMap::new();
        let mut children = HashMap::new();
        let mut roots = Vec::new();
        let mut last = HashMap::new();
        for p in processes {
            let key = format!("process:{}", p.name);
            let rate = match self.last.get(&key) {
                Some(&h) if dt > 0.0 => p.handled.saturating_sub(h) as f64 / dt,
                _ => 0.0,
            };
            last.insert(key.clone(), p.handled);
            let status = if p.alive {
                ComponentStatus::Healthy
            } else {
                ComponentStatus::Failed
            };
            let mut kids = Vec::new();
            for (name, agents) in &p.clusters {
                let k = format!("{key}/{name}");
                kids.push(k.clone());
                nodes.insert(
                    k.clone(),
                    TreeNode {
                        key: k,
                        name: name.clone(),
                        level: 1,
                        status,
                        agents: *agents,
                        failed_agents: 0,
                        restarted_agents: 0,
                        mailbox_depth: 0,
                        max_depth: 0,
                        rate: 0.0,
                        children: 0,
                    },
                );
            }
            nodes.insert(
                key.clone(),
                TreeNode {
                    key: key.clone(),
                    name: p.name.clone(),
                    level: 0,
                    status,
                    agents: p.clusters.iter().map(|c| c.1).sum(),
                    failed_agents: 0,
                    restarted_agents: p.restarts,
                    mailbox_depth: p.in_flight,
                    max_depth: p.in_flight,
                    rate,
                    children: kids.len() as u32,
                },
            );
            children.insert(key.clone(), kids);
            roots.push(key);
        }
        *self = Tree {
            nodes,
            children,
            roots,
            last,
            last_at: Some(now),
            statuses: HashMap::new(),
            sampled: true,
        };
    }

    /// The children of `key` (the top-level clusters for `None`), in creation order.
    pub(crate) fn children_of(&self, key: Option<&str>) -> Option<Vec<TreeNode>> {
        let keys = match key {
            None => &self.roots,
            Some(k) => match self.children.get(k) {
                Some(c) => c,
                None if self.nodes.contains_key(k) => return Some(Vec::new()),
                None => return None,
            },
        };
        Some(
            keys.iter()
                .filter_map(|k| self.nodes.get(k).cloned())
                .collect(),
        )
    }

    /// Totals over the top-level clusters.
    pub(crate) fn totals(&self) -> TreeNode {
        let mut t = TreeNode {
            key: "orchestrator".into(),
            name: "all".into(),
            level: 0,
            status: ComponentStatus::Healthy,
            agents: 0,
            failed_agents: 0,
            restarted_agents: 0,
            mailbox_depth: 0,
            max_depth: 0,
            rate: 0.0,
            children: self.roots.len() as u32,
        };
        for n in self.roots.iter().filter_map(|k| self.nodes.get(k)) {
            t.status = t.status.max(n.status);
            t.agents += n.agents;
            t.failed_agents += n.failed_agents;
            t.restarted_agents += n.restarted_agents;
            t.mailbox_depth += n.mailbox_depth;
            t.max_depth = t.max_depth.max(n.max_depth);
            t.rate += n.rate;
        }
        t
    }
}

/// Samples `observer` into `tree`: its loads (counters) and its status tree (one query to
/// the orchestrator, given up after `timeout`).
pub(crate) async fn sample(
    observer: &Observer,
    timeout: std::time::Duration,
) -> (Vec<NodeLoad>, Option<StatusNode>) {
    let loads = observer.loads();
    let status = tokio::time::timeout(timeout, observer.status())
        .await
        .ok()
        .and_then(Result::ok);
    (loads, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qorch_protocol::{Address, ClusterId, SubClusterId};

    fn load(addr: Address, parent: Option<Address>, depth: u64, handled: u64) -> NodeLoad {
        NodeLoad {
            address: addr,
            parent,
            name: addr.to_string(),
            mailbox_depth: depth,
            handled,
            dead: false,
        }
    }

    #[test]
    fn subtrees_sum_up_and_rates_are_differences() {
        let c = Address::Cluster(ClusterId(0));
        let s1 = Address::SubCluster(SubClusterId(0));
        let s2 = Address::SubCluster(SubClusterId(1));
        let t0 = Instant::now();
        let mut tree = Tree::default();
        let loads = |h: u64| {
            vec![
                load(c, None, 1, 0),
                load(s1, Some(c), 2, h),
                load(s2, Some(c), 5, 2 * h),
            ]
        };
        tree.update(&loads(0), None, t0);
        tree.update(&loads(100), None, t0 + std::time::Duration::from_secs(2));
        let top = tree.children_of(None).unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].mailbox_depth, top[0].max_depth), (8, 5));
        assert_eq!((top[0].rate, top[0].children), (150.0, 2));
        let subs = tree.children_of(Some(&c.to_string())).unwrap();
        assert_eq!(subs.iter().map(|n| n.level).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(subs[1].rate, 100.0);
        assert_eq!(tree.children_of(Some(&s1.to_string())), Some(Vec::new()));
        assert_eq!(tree.children_of(Some("nowhere")), None);
        assert_eq!(tree.totals().mailbox_depth, 8);
    }
}
