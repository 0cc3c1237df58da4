//! The optimizer's thread: when to run a round (periodic, requested, triggered; never two at
//! once), and what a round does.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use qorch_resources::{ChangeContext, Reason, ResourceVector};
use qorch_runtime::AllocationBatch;
use qorch_scheduler::EnhancedQuboScheduler;

use crate::hierarchy::Hierarchy;
use crate::policy;
use crate::problem::{cluster_agents, normalize_affinity, problem, update_affinity};
use crate::{OptimizationState, OptimizerConfig, OptimizerError, RoundReason, RoundSummary};

/// What the [`Optimizer`](crate::Optimizer) handle asks of its thread.
pub(crate) enum Command {
    Run(
        RoundReason,
        Option<Sender<Result<RoundSummary, Arc<OptimizerError>>>>,
    ),
    Stop,
}

pub(crate) struct Worker<H> {
    pub(crate) hierarchy: H,
    pub(crate) config: OptimizerConfig,
    pub(crate) scheduler: EnhancedQuboScheduler,
    pub(crate) state: Arc<Mutex<OptimizationState>>,
    pub(crate) started: Instant,
}

type Reply = Sender<Result<RoundSummary, Arc<OptimizerError>>>;

impl<H: Hierarchy> Worker<H> {
    pub(crate) fn run(&mut self, rx: &Receiver<Command>) {
        let now = Instant::now();
        let mut next_period = self.config.period.map(|p| now + p);
        let mut next_check = now + self.config.triggers.check_every;
        let mut known_failed = 0_usize;
        let mut last_triggered: Option<Instant> = None;
        // The next round to run and everyone waiting for it: requests that arrive while a
        // round runs are served together by the next one.
        let mut pending: Option<(RoundReason, Vec<Reply>)> = None;
        let mut stopping = false;
        loop {
            // 1. Commands: block only when nothing is due.
            let first = if pending.is_some() || stopping {
                None
            } else {
                let wake = next_period.map_or(next_check, |p| p.min(next_check));
                match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                    Ok(cmd) => Some(cmd),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        None
                    }
                }
            };
            for cmd in first.into_iter().chain(rx.try_iter()) {
                match cmd {
                    Command::Run(reason, reply) => {
                        pending.get_or_insert((reason, Vec::new())).1.extend(reply);
                    }
                    Command::Stop => stopping = true,
                }
            }
            // 2. Time-driven rounds.
            let now = Instant::now();
            if !stopping {
                if let Some(p) = next_period
                    && now >= p
                {
                    next_period = self.config.period.map(|d| now + d);
                    pending.get_or_insert((RoundReason::Periodic, Vec::new()));
                }
                if now >= next_check {
                    next_check = now + self.config.triggers.check_every;
                    if self.config.triggers.on_failure {
                        let failed = self.hierarchy.failed_components();
                        if failed > known_failed {
                            tracing::info!(failed, "optimizer: component failure, rebalancing");
                            pending.get_or_insert((RoundReason::Failure, Vec::new()));
                        }
                        known_failed = failed;
                    }
                }
            }
            // 3. The round.
            if let Some((reason, replies)) = pending.take() {
                let result = self.round(reason).map_err(Arc::new);
                for r in replies {
                    let _ = r.send(result.clone());
                }
                if !stopping
                    && let Ok(summary) = &result
                    && let Some(reason) = self.follow_up(summary)
                    && last_triggered
                        .is_none_or(|t| t.elapsed() >= self.config.triggers.min_interval)
                {
                    last_triggered = Some(Instant::now());
                    pending = Some((reason, Vec::new()));
                }
            }
            if stopping && pending.is_none() {
                return;
            }
        }
    }

    fn follow_up(&self, s: &RoundSummary) -> Option<RoundReason> {
        let t = &self.config.triggers;
        if t.unmet_demand.is_some_and(|x| s.unmet_demand > x) {
            Some(RoundReason::UnmetDemand)
        } else if t.utilization_skew.is_some_and(|x| s.utilization_skew > x) {
            Some(RoundReason::UtilizationSkew)
        } else {
            None
        }
    }

    /// The pools' capacity per kind, summed.
    fn total_capacity(&self) -> Vec<f64> {
        let mut total = vec![0.0; self.config.kinds.len()];
        for p in &self.config.pools {
            for (t, c) in total.iter_mut().zip(p.capacity.amounts()) {
                *t += c;
            }
        }
        total
    }

    #[expect(
        clippy::too_many_lines,
        reason = "a round's steps in their order: collect, measure, formulate, solve, deliver, sum up"
    )]
    fn round(&mut self, reason: RoundReason) -> Result<RoundSummary, OptimizerError> {
        let t0 = Instant::now();
        let number = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .round
            + 1;
        let _span = tracing::info_span!("round", round = number, reason = ?reason).entered();
        let mut report =
            tracing::info_span!("collect").in_scope(|| self.hierarchy.collect(number))?;
        let collect_seconds = t0.elapsed().as_secs_f64();
        let failed_components = self.hierarchy.failed_components();
        let nodes = self.hierarchy.nodes();

        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The grants in force against the demand that came, then the policy's requests.
        let t_policy = Instant::now();
        let in_force = (number > 1).then(|| policy::served(&st.allocation, &st.policy, &report));
        let capacity = self.total_capacity();
        policy::apply(&self.config.policy, &mut st.policy, &mut report, &capacity);
        let policy_seconds = t_policy.elapsed().as_secs_f64();
        let mut affinity = update_affinity(&self.config, &mut st.affinity, &report);
        normalize_affinity(&self.config, &mut affinity, &report);
        let problem = problem(&self.config, &nodes, &report, affinity);
        let previous = st.allocation.clone();
        let t1 = Instant::now();
        // A panic in the scheduler is a bug, but it must not take the optimizer thread (and
        // every later round) with it: it fails this round with an error that says so.
        let mut outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.scheduler.schedule(&problem, Some(&previous))
        }))
        .map_err(|p| OptimizerError::Panic(panic_message(p.as_ref())))??;
        let solve_seconds = t1.elapsed().as_secs_f64();
        // Head-room from the room the placement left (the predictive policy's second part).
        let t_top_up = Instant::now();
        policy::top_up(
            &self.config.policy,
            &st.policy,
            &mut outcome.grants,
            &self.config.pools,
        );
        let policy_seconds = policy_seconds + t_top_up.elapsed().as_secs_f64();
        let batch = AllocationBatch {
            round: number,
            grants: outcome.grants.clone(),
        };
        // The state lock is not held while the grants travel.
        drop(st);
        tracing::info_span!("deliver").in_scope(|| self.hierarchy.deliver(batch))?;
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seconds = t0.elapsed().as_secs_f64();

        let metrics = outcome.metrics(&problem, Some(&previous));
        let allocation = outcome.allocation();
        let at_ms = self.started.elapsed().as_millis() as u64;
        let solver = outcome
            .subsolves
            .first()
            .map_or_else(|| "none".to_owned(), |s| s.solver.clone());
        let ctx = ChangeContext::new(number, at_ms, Reason::Rebalance)
            .with_solution(outcome.objective, solver);
        st.resources.apply_allocation(&allocation, &ctx)?;
        for s in &outcome.subsolves {
            for (name, windows, secs) in &s.solver_usage {
                let e = st.solvers.entry(name.clone()).or_default();
                e.windows += windows;
                e.seconds += secs;
            }
        }
        let mut demanded = ResourceVector::default();
        for a in problem.clusters.iter().flat_map(cluster_agents) {
            demanded.add_assign(&a.request.desired);
        }
        let desired_total = demanded.total();
        let unmet_total = metrics.unmet.total();
        let pool_means: Vec<f64> = metrics
            .utilization
            .iter()
            .map(|p| p.fraction.iter().sum::<f64>() / p.fraction.len().max(1) as f64)
            .collect();
        let skew = pool_means.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - pool_means.iter().copied().fold(f64::INFINITY, f64::min);
        let summary = RoundSummary {
            round: number,
            reason,
            seconds,
            collect_seconds,
            solve_seconds,
            agents: outcome.served + outcome.unserved,
            served: outcome.served,
            objective: outcome.objective,
            bound: outcome.bound,
            bound_kind: outcome.bound_kind.clone(),
            efficiency: outcome.efficiency,
            utilization: metrics.overall_utilization.clone(),
            utilization_skew: if skew.is_finite() { skew } else { 0.0 },
            unmet_demand: if desired_total > 0.0 {
                unmet_total / desired_total
            } else {
                0.0
            },
            in_force,
            policy_seconds,
            predicted_agents: st.policy.predicted_agents,
            demanded: demanded.amounts().to_vec(),
            fairness: metrics.fairness,
            churn: metrics.churn.rate(),
            affinity_edges: problem.affinity.len(),
            levels: outcome.levels.clone(),
            energies: outcome.subsolves.iter().map(|s| s.energy).collect(),
            failed_components,
        };
        crate::telemetry::publish_round(&summary, &outcome);
        st.round = number;
        st.allocation = allocation;
        st.history.push(summary.clone());
        st.last = Some(outcome);
        Ok(summary)
    }
}

/// The message of a panic payload (a `&str` or a `String`, as `panic!` makes them).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = (payload.downcast_ref::<&str>().copied())
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    text.map_or_else(|| "panicked".to_owned(), |t| format!("panicked: {t}"))
}
