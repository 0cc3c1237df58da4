//! A round's figures published to the [`metrics`] facade: once per round, never per agent.
//!
//! Gauges hold the last round's allocation figures; histograms take the round's latency and
//! each sub-solve's time and energy, labelled by level and solver (the sub-solve's kind).
//! Without an installed recorder every call is a no-op. `docs/metrics.md` lists the series.

use metrics::{counter, gauge, histogram};
use qorch_scheduler::ScheduleOutcome;

use crate::RoundSummary;

/// Publishes the figures of a finished round.
pub(crate) fn publish_round(summary: &RoundSummary, outcome: &ScheduleOutcome) {
    counter!("qorch_rounds_total", "reason" => reason(summary)).increment(1);
    histogram!("qorch_round_duration_seconds").record(summary.seconds);
    histogram!("qorch_round_collect_seconds").record(summary.collect_seconds);
    histogram!("qorch_round_solve_seconds").record(summary.solve_seconds);
    gauge!("qorch_round").set(summary.round as f64);
    gauge!("qorch_allocation_objective").set(summary.objective);
    gauge!("qorch_allocation_bound").set(summary.bound);
    gauge!("qorch_allocation_efficiency_ratio").set(summary.efficiency);
    gauge!("qorch_allocation_unmet_demand_ratio").set(summary.unmet_demand);
    gauge!("qorch_allocation_churn_ratio").set(summary.churn);
    gauge!("qorch_allocation_fairness_ratio").set(summary.fairness);
    gauge!("qorch_pool_utilization_skew_ratio").set(summary.utilization_skew);
    gauge!("qorch_agents_requesting").set(summary.agents as f64);
    gauge!("qorch_agents_served").set(summary.served as f64);
    gauge!("qorch_failed_components").set(summary.failed_components as f64);
    for (k, u) in summary.utilization.iter().enumerate() {
        gauge!("qorch_pool_utilization_ratio", "kind" => k.to_string()).set(*u);
    }
    for s in &outcome.subsolves {
        let labels = [("level", s.level.to_string()), ("solver", s.solver.clone())];
        histogram!("qorch_subsolve_duration_seconds", &labels).record(s.seconds);
        histogram!("qorch_subsolve_energy", &labels).record(s.energy);
        for (solver, windows, _) in &s.solver_usage {
            counter!("qorch_solver_windows_total", "solver" => solver.clone()).increment(*windows);
        }
    }
}

fn reason(s: &RoundSummary) -> &'static str {
    use crate::RoundReason as R;
    match s.reason {
        R::Periodic => "periodic",
        R::Requested => "requested",
        R::Failure => "failure",
        R::UtilizationSkew => "utilization_skew",
        R::UnmetDemand => "unmet_demand",
    }
}
