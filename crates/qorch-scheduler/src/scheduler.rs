//! [`EnhancedQuboScheduler`]: the entry point.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qorch_qubo::Solver;

use crate::assign::solve::{FlatParams, FlatResult, Solvers, solve_flat};
use crate::outcome::{AssignmentOutcome, NodeId, SubSolve, efficiency};
use crate::{AssignmentProblem, AssignmentSolution, ScheduleError, SchedulerConfig};

/// Extra inputs of a flat solve.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssignmentOptions<'a> {
    /// A starting solution (repaired if infeasible).
    pub initial: Option<&'a AssignmentSolution>,
    /// Stop as soon as a feasible solution reaches this objective.
    pub target: Option<f64>,
    /// Overrides the configuration's time limit for this call.
    pub time_limit: Option<Duration>,
}

/// Allocation as hierarchical QUBO problems.
///
/// * [`schedule`](Self::schedule) allocates the pools of an [`AllocationProblem`](crate::AllocationProblem)
///   to the agents of a cluster tree: level 1 gives capacity shares of the pools to the
///   top-level clusters, level 2 places agents within each cluster's share (or shares the
///   cluster's capacity among its sub-clusters, and so on at any depth), the clusters of a
///   level solved in parallel; a last pass offers unused capacity to agents left unserved.
/// * [`solve_assignment`](Self::solve_assignment) solves one flat [`AssignmentProblem`]
///   (the generalized assignment problem with optional "unserved" and affinity) through the
///   same path every sub-problem takes.
///
/// That path: a Lagrangian bound whose multipliers guide a greedy start; repair to
/// feasibility; move-based local search (descent, or penalized tabu search for tight or
/// mandatory problems); and QUBO windows of a few pools and tens of variables, each solved by
/// the solver the [`SolverPolicy`](crate::SolverPolicy) picks for its size (exact, QAOA,
/// tabu, decomposition), decoded, repaired, and kept when it improves the objective.
pub struct EnhancedQuboScheduler {
    pub(crate) config: SchedulerConfig,
    pub(crate) solvers: Solvers,
}

impl fmt::Debug for EnhancedQuboScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnhancedQuboScheduler")
            .field("config", &self.config)
            .field(
                "qaoa_solver",
                &self.solvers.qaoa.as_ref().map(|s| s.name().to_owned()),
            )
            .finish()
    }
}

impl EnhancedQuboScheduler {
    /// A scheduler with these settings.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::InvalidConfig`] if a setting is out of range.
    pub fn new(config: SchedulerConfig) -> Result<Self, ScheduleError> {
        config.validate()?;
        let solvers = Solvers::new(config.policy, None);
        Ok(EnhancedQuboScheduler { config, solvers })
    }

    /// Plugs in a QAOA solver (any [`Solver`]) for windows of at most
    /// [`SolverPolicy::qaoa_max_vars`](crate::SolverPolicy::qaoa_max_vars) variables; used
    /// only when [`SolverPolicy::qaoa`](crate::SolverPolicy::qaoa) is set. Windows are then
    /// sized for it and encoded without slack bits.
    #[must_use]
    pub fn with_qaoa_solver(mut self, solver: Arc<dyn Solver>) -> Self {
        self.solvers.qaoa = Some(solver);
        self
    }

    /// The settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Solves a flat assignment problem.
    ///
    /// # Errors
    ///
    /// None at present for a built problem (the builder validated it); the `Result` leaves
    /// room for solver failures.
    ///
    /// # Examples
    ///
    /// ```
    /// use qorch_scheduler::{AssignmentBuilder, AssignmentOptions, EnhancedQuboScheduler, SchedulerConfig};
    ///
    /// // Three items, two pools of capacity 10; the best packs 5+4 on one pool.
    /// let mut b = AssignmentBuilder::new(1, vec![10.0, 6.0]);
    /// for (v, d) in [(5.0, 6.0), (4.0, 4.0), (3.0, 5.0)] {
    ///     let i = b.add_item(Some(0.0));
    ///     b.add_option(i, 0, v, &[d]).add_option(i, 1, v, &[d]);
    /// }
    /// let p = b.build().unwrap();
    /// let s = EnhancedQuboScheduler::new(SchedulerConfig::default()).unwrap();
    /// let out = s.solve_assignment(&p, &AssignmentOptions::default()).unwrap();
    /// assert!(out.feasible);
    /// assert_eq!(out.objective, 12.0);
    /// assert!(out.bound >= out.objective);
    /// ```
    pub fn solve_assignment(
        &self,
        problem: &AssignmentProblem,
        options: &AssignmentOptions<'_>,
    ) -> Result<AssignmentOutcome, ScheduleError> {
        let mut params = FlatParams::from_config(
            &self.config,
            &self.solvers,
            problem.num_options(),
            self.config.seed,
        );
        let limit = options.time_limit.or(self.config.time_limit);
        if let Some(t) = limit {
            params.deadline = Instant::now().checked_add(t);
            // With a time limit the work budget is not the binding constraint.
            params.evaluations = u64::MAX;
        }
        params.target = options.target;
        params.initial = options.initial.map(|s| problem.global(s));
        let r = solve_flat(problem, &params);
        let record = record(0, NodeId::Root, problem, &r);
        Ok(AssignmentOutcome {
            solution: problem.local(&r.choice),
            objective: r.objective,
            feasible: r.feasible,
            bound: r.bound,
            efficiency: efficiency(r.objective, r.bound),
            seconds: r.seconds,
            trace: r.trace,
            record,
        })
    }
}

/// The record of a flat solve.
pub(crate) fn record(
    level: usize,
    node: NodeId,
    p: &AssignmentProblem,
    r: &FlatResult,
) -> SubSolve {
    SubSolve {
        level,
        node,
        items: p.num_items(),
        options: p.num_options(),
        windows: r.windows.count,
        windows_improved: r.windows.improved,
        max_window_vars: r.windows.max_variables,
        solver: r.windows.main_solver().unwrap_or("none").to_owned(),
        solver_usage: r
            .windows
            .by_solver
            .iter()
            .map(|(k, v)| (k.clone(), v.0, v.1))
            .collect(),
        search: r.search.to_owned(),
        energy: -r.objective,
        objective: r.objective,
        bound: r.bound,
        seconds: r.seconds,
        evaluations: r.evaluations,
    }
}
