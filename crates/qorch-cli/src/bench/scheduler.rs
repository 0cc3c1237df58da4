//! `qorch bench scheduler`: one rebalancing round of the `EnhancedQuboScheduler` on a synthetic
//! problem (see `qorch_scheduler::SyntheticConfig`), with its objective, its Lagrangian bound
//! and the round's wall time.

use std::time::{Duration, Instant};

use anyhow::Context;
use qorch_scheduler::{CostModel, EnhancedQuboScheduler, SchedulerConfig, SyntheticConfig};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Number of agents (1 to 10 million, as in scenarios).
    #[arg(long, default_value_t = 10_000, value_parser = crate::limits::count_usize(qorch_sim::Scenario::MAX_AGENTS as u64))]
    agents: usize,
    /// Number of top-level clusters.
    #[arg(long, default_value_t = 16)]
    clusters: usize,
    /// Number of pools (1 to 100,000, as in scenarios).
    #[arg(long, default_value_t = 100, value_parser = crate::limits::count_usize(qorch_sim::Scenario::MAX_POOLS as u64))]
    pools: usize,
    /// Sub-clusters per cluster (1 to 1,000).
    #[arg(long, default_value_t = 4, value_parser = crate::limits::count_usize(1_000))]
    subclusters: usize,
    /// Desired demand over capacity (above 0, at most 100).
    #[arg(long, default_value_t = 1.1, value_parser = crate::limits::finite)]
    load: f64,
    /// Seed of the problem and of the scheduler.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scheduler work per option (move evaluations); the round is deterministic.
    #[arg(long)]
    effort: Option<f64>,
    /// Wall-clock limit of the round in seconds (instead of a pure work budget; at most 30
    /// days).
    #[arg(long, value_name = "SECONDS", value_parser = crate::limits::seconds)]
    time_limit: Option<Duration>,
    /// Solve sub-problems on one thread.
    #[arg(long)]
    sequential: bool,
    /// Skip the final polish (to see what the levels alone reach).
    #[arg(long)]
    no_polish: bool,
    /// Also write the generated problem as JSON (an `AllocationProblem`), for other solvers.
    #[arg(long, value_name = "FILE")]
    write_problem: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    agents: usize,
    clusters: usize,
    pools: usize,
    round_seconds: f64,
    objective: f64,
    bound: f64,
    efficiency: f64,
    bound_kind: String,
    value: f64,
    migration_cost: f64,
    communication_cost: f64,
    served: usize,
    unserved: usize,
    levels: usize,
    subproblems: usize,
    qubo_windows: u64,
    generate_seconds: f64,
    threads: usize,
    seed: u64,
    utilization: Vec<f64>,
    fairness: f64,
    churn_rate: f64,
}

#[allow(
    clippy::too_many_lines,
    reason = "generate, solve and report in sequence"
)]
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.load > 0.0 && args.load <= 100.0,
        "--load must lie in (0, 100], got {}",
        args.load
    );
    let needed = (args.agents as u64).saturating_mul(qorch_sim::Scenario::BYTES_PER_AGENT);
    if let Some(available) = qorch_qubo::available_memory_bytes() {
        anyhow::ensure!(
            needed <= available,
            "--agents {} needs about {needed} bytes, more than the {available} bytes of memory \
             available",
            args.agents
        );
    }
    anyhow::ensure!(
        args.clusters > 0 && args.clusters <= args.agents,
        "--clusters must be between 1 and --agents"
    );
    let t = Instant::now();
    let problem = SyntheticConfig {
        agents: args.agents,
        clusters: args.clusters,
        subclusters: args.subclusters,
        pools: args.pools,
        load: args.load,
        seed: args.seed,
        costs: CostModel {
            migration: 0.2,
            communication: 0.05,
        },
        ..SyntheticConfig::default()
    }
    .generate();
    let generate_seconds = t.elapsed().as_secs_f64();
    if let Some(path) = &args.write_problem {
        let json = serde_json::to_vec(&problem).context("serializing the problem")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut config = SchedulerConfig {
        seed: args.seed,
        parallel: !args.sequential,
        ..SchedulerConfig::default()
    };
    if let Some(e) = args.effort {
        config.effort = e;
    }
    if args.no_polish {
        config.polish_passes = 0;
    }
    if let Some(limit) = args.time_limit {
        config.time_limit = Some(limit);
    }
    let scheduler = EnhancedQuboScheduler::new(config)?;
    let t = Instant::now();
    let out = scheduler
        .schedule(&problem, None)
        .context("the scheduler refused the synthetic problem")?;
    let round_seconds = t.elapsed().as_secs_f64();
    // The previous round, as far as the problem knows it: agents on their current pools.
    let previous: qorch_resources::Allocation = problem
        .clusters
        .iter()
        .flat_map(|c| {
            c.agents
                .iter()
                .chain(c.subclusters.iter().flat_map(|s| s.agents.iter()))
        })
        .filter_map(|a| {
            a.current.map(|p| {
                (
                    a.id,
                    qorch_resources::Grant::new(p, a.request.desired.clone()),
                )
            })
        })
        .collect();
    let metrics = out.metrics(&problem, Some(&previous));
    let report = Report {
        agents: args.agents,
        clusters: args.clusters,
        pools: args.pools,
        round_seconds,
        objective: out.objective,
        bound: out.bound,
        efficiency: out.efficiency,
        bound_kind: out.bound_kind.clone(),
        value: out.value,
        migration_cost: out.migration_cost,
        communication_cost: out.communication_cost,
        served: out.served,
        unserved: out.unserved,
        levels: out.levels.len(),
        subproblems: out.subsolves.len(),
        qubo_windows: out.subsolves.iter().map(|s| s.windows).sum(),
        generate_seconds,
        threads: if args.sequential { 1 } else { rayon_threads() },
        seed: args.seed,
        utilization: metrics.overall_utilization,
        fairness: metrics.fairness,
        churn_rate: metrics.churn.rate(),
    };
    if args.json {
        crate::print_line(&serde_json::to_string(&report)?)
    } else {
        crate::print_line(&format!(
            "agents {}  clusters {}  pools {}  round {:.3} s  objective {:.4}  bound {:.4}  efficiency {:.4}  served {}/{}  levels {}",
            report.agents,
            report.clusters,
            report.pools,
            report.round_seconds,
            report.objective,
            report.bound,
            report.efficiency,
            report.served,
            report.agents,
            report.levels
        ))
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
