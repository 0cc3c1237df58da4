//! The level driver: sibling groups split a share among them, then each is solved (in
//! parallel), down the cluster tree to the leaves.

use std::time::Instant;

use rayon::prelude::*;

use super::{Deadlines, Group, Hints, Share, Solved, agents_of};
use crate::EnhancedQuboScheduler;
use crate::assign::solve::FlatParams;
use crate::problem::Flat;

impl EnhancedQuboScheduler {
    /// Solves sibling groups over `share`: splits it among them (if more than one), then
    /// solves each in parallel.
    pub(crate) fn solve_groups(
        &self,
        flat: &Flat,
        groups: &[Group],
        share: &Share,
        level: usize,
        warm: &Hints,
        deadlines: Deadlines,
    ) -> Solved {
        let groups: Vec<Group> = groups
            .iter()
            .copied()
            .filter(|g| !agents_of(flat, *g).is_empty())
            .collect();
        if groups.is_empty() {
            return Solved::default();
        }
        if groups.len() == 1 {
            return self.solve_group(flat, groups[0], share, level, warm, deadlines);
        }
        // One span per level of sibling groups; the parallel tasks enter it on their threads.
        let span = tracing::debug_span!("level", level, groups = groups.len());
        let (shares, rec) = span.in_scope(|| {
            tracing::debug_span!("subsolve", kind = "shares", level)
                .in_scope(|| self.split(flat, &groups, share, level, warm, deadlines))
        });
        let run = |(g, s): (&Group, &Share)| {
            span.in_scope(|| self.solve_group(flat, *g, s, level + 1, warm, deadlines))
        };
        let parts: Vec<Solved> = if self.config.parallel {
            groups.par_iter().zip(shares.par_iter()).map(run).collect()
        } else {
            groups.iter().zip(shares.iter()).map(run).collect()
        };
        let mut out = Solved {
            placements: Vec::new(),
            records: vec![rec],
        };
        for p in parts {
            out.placements.extend(p.placements);
            out.records.extend(p.records);
        }
        out
    }

    fn solve_group(
        &self,
        flat: &Flat,
        g: Group,
        share: &Share,
        level: usize,
        warm: &Hints,
        deadlines: Deadlines,
    ) -> Solved {
        if share.pools.is_empty() {
            // No capacity came down to this group (more groups than pools, say): its agents
            // wait unserved for the reconciliation pass, which offers whatever is left.
            return Solved {
                placements: agents_of(flat, g).iter().map(|&a| (a, None)).collect(),
                records: Vec::new(),
            };
        }
        match g {
            Group::Node(n) if !flat.nodes[n].children.is_empty() => {
                let node = &flat.nodes[n];
                let mut kids: Vec<Group> = node.children.iter().map(|&c| Group::Node(c)).collect();
                if !node.agents.is_empty() {
                    kids.push(Group::Direct(n));
                }
                self.solve_groups(flat, &kids, share, level, warm, deadlines)
            }
            _ => self.solve_leaf(flat, g, share, level, warm, deadlines),
        }
    }

    pub(crate) fn params(
        &self,
        options: usize,
        seed: u64,
        deadline: Option<Instant>,
    ) -> FlatParams<'_> {
        let mut p = FlatParams::from_config(&self.config, &self.solvers, options, seed);
        if deadline.is_some() {
            p.deadline = deadline;
            p.evaluations = u64::MAX;
        }
        p
    }
}
