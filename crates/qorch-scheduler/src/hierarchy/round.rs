//! [`EnhancedQuboScheduler::schedule`]: one round from the problem to the outcome (warm
//! starts, the levels, the last steps, the bound, the records).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use qorch_resources::{AgentId, Allocation, Grant, ResourceVector};

use super::reconcile::capacity_guard;
use super::{Deadlines, Group, Share, breakdown};
use crate::global_bound::{class_part, global_bound};
use crate::outcome::{LevelSummary, NodeId, ScheduleOutcome, SubSolve, efficiency};
use crate::polish::Placement;
use crate::{AllocationProblem, EnhancedQuboScheduler, ScheduleError};

impl EnhancedQuboScheduler {
    /// Allocates one round: shares of the pools to the clusters, then placements of agents
    /// within each cluster's share, at every level of the cluster tree; see the crate docs.
    ///
    /// `previous` is the last round's allocation: its pools serve as the current placement
    /// of agents whose [`AgentSpec::current`](crate::AgentSpec::current) is `None`, and its
    /// grants as the starting point of the search.
    ///
    /// Every grant in the outcome fits its pool together with the others (capacities are
    /// never exceeded), lies between the agent's minimum and desired amounts, and is on a pool
    /// the agent's filter allows.
    ///
    /// # Errors
    ///
    /// A [`ScheduleError`] saying what is malformed (unknown pool, duplicate agent, invalid
    /// request or affinity) or why an agent can never be served.
    #[allow(
        clippy::too_many_lines,
        reason = "validation, levels and results in sequence"
    )]
    pub fn schedule(
        &self,
        problem: &AllocationProblem,
        previous: Option<&Allocation>,
    ) -> Result<ScheduleOutcome, ScheduleError> {
        let t0 = Instant::now();
        let _span = tracing::info_span!("schedule").entered();
        let prev = |a: AgentId| previous.and_then(|al| al.pool_of(a));
        let flat = problem.flatten(&prev)?;
        let limit = self.config.time_limit;
        let at = |f: f64| limit.and_then(|l| t0.checked_add(l.mul_f64(f)));
        let deadlines = Deadlines {
            shares: at(0.3),
            leaves: at(0.8),
            polish: at(0.95),
        };
        // Warm starts: the previous grant's pool and level, per agent; else the current pool
        // at the desired amount.
        let warm_start: Vec<Option<(u32, bool)>> =
            flat.agents
                .iter()
                .map(|a| {
                    let Some(g) = previous.and_then(|p| p.get(a.id)) else {
                        return a.current.map(|c| (c, true));
                    };
                    let pool = flat.pool_ids.iter().position(|&p| p == g.pool)? as u32;
                    let full = a.desired.iter().enumerate().all(|(k, d)| {
                        g.amount.get(qorch_resources::KindId(k as u16)) >= *d - 1e-12
                    });
                    Some((pool, full))
                })
                .collect();
        let all = Share {
            pools: (0..flat.pool_ids.len() as u32).collect(),
            cap: flat.capacity.clone(),
        };
        let roots: Vec<Group> = flat.roots.iter().map(|&r| Group::Node(r)).collect();
        let warm: Vec<AtomicU64> = warm_start
            .iter()
            .map(|w| AtomicU64::new(w.map_or(u64::MAX, |(p, f)| u64::from(p) << 1 | u64::from(f))))
            .collect();
        let solved = self.solve_groups(&flat, &roots, &all, 1, &warm, deadlines);
        let mut place: Vec<Placement> = vec![None; flat.agents.len()];
        for (a, p) in solved.placements {
            place[a] = p;
        }
        let mut records = solved.records;
        // The polish runs on one thread; the bound's class part, which needs no placement,
        // runs beside it on the others. It may stop once it reaches the reconciled objective
        // (the polish only raises it): the bound is then the final objective, as it would be
        // after the polish.
        let before = capacity_guard(&flat, &mut place);
        let iterations = self.config.bound_iterations;
        let (last, class) = tracing::debug_span!("reconcile_and_polish").in_scope(|| {
            self.reconcile_and_polish(&flat, &mut place, before, deadlines.polish, |reconciled| {
                class_part(&flat, iterations, reconciled)
            })
        });
        let (value, migration, communication) = breakdown(&flat, &place);
        let objective_value = value - migration - communication;
        let bound = global_bound(&flat, iterations, class, objective_value);
        let level = records.iter().map(|r| r.level).max().unwrap_or(0) + 1;
        // The root's own steps, recorded like sub-solves.
        let step =
            |level, solver: &str, search: String, energy: f64, gain, seconds, evaluations| {
                SubSolve {
                    level,
                    node: NodeId::Root,
                    items: flat.agents.len(),
                    options: 0,
                    windows: 0,
                    windows_improved: 0,
                    max_window_vars: 0,
                    solver: solver.into(),
                    solver_usage: Vec::new(),
                    search,
                    energy: -energy,
                    objective: gain,
                    bound,
                    seconds,
                    evaluations,
                }
            };
        records.push(step(
            level,
            "reconcile",
            "greedy fill and top-up".into(),
            last.reconciled,
            last.reconciled - last.before,
            last.reconcile_seconds,
            0,
        ));
        if let Some(st) = last.polished {
            records.push(step(
                level + 1,
                "polish",
                format!(
                    "exact relocations and swaps: {} passes, {} moves",
                    st.passes, st.moves
                ),
                objective_value,
                objective_value - last.reconciled,
                last.polish_start.elapsed().as_secs_f64(),
                st.evaluations,
            ));
        }
        let mut levels: BTreeMap<usize, LevelSummary> = BTreeMap::new();
        for r in &records {
            let l = levels.entry(r.level).or_insert_with(|| LevelSummary {
                level: r.level,
                subproblems: 0,
                items: 0,
                objective: 0.0,
                bound: 0.0,
                seconds: 0.0,
            });
            l.subproblems += 1;
            l.items += r.items;
            l.objective += r.objective;
            l.bound += r.bound;
            l.seconds += r.seconds;
        }
        let grants: Vec<(AgentId, Option<Grant>)> = flat
            .agents
            .iter()
            .zip(&place)
            .map(|(a, p)| {
                (
                    a.id,
                    p.as_ref().map(|(pool, amount)| {
                        Grant::new(
                            flat.pool_ids[*pool as usize],
                            ResourceVector::from_amounts(amount.clone()),
                        )
                    }),
                )
            })
            .collect();
        let served = place.iter().filter(|p| p.is_some()).count();
        Ok(ScheduleOutcome {
            grants,
            objective: objective_value,
            value,
            migration_cost: migration,
            communication_cost: communication,
            bound,
            bound_kind: "lagrangian: capacities relaxed over every allowed pool and amount; affinity: half of each edge charged to an unserved endpoint, split pairs of served agents not charged".into(),
            efficiency: efficiency(objective_value, bound),
            served,
            unserved: flat.agents.len() - served,
            levels: levels.into_values().collect(),
            subsolves: records,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}
