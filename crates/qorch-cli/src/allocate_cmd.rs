//! `qorch allocate gap`: solve OR-Library generalized assignment files through the
//! `EnhancedQuboScheduler`'s solve path (QUBO windows, solver policy, repair, local search).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use qorch_scheduler::{
    AssignmentOptions, EnhancedQuboScheduler, GapSense, SchedulerConfig, read_gap,
};
use serde::Serialize;

/// The largest `--effort`: 10^6 move evaluations per option, about 25,000 times the
/// default (40), already hours on the largest OR-Library instances.
const MAX_EFFORT: f64 = 1e6;

#[derive(Subcommand, Debug)]
pub(crate) enum AllocateCommand {
    /// Solve the problems of an OR-Library generalized assignment file (gap1..gap12, types
    /// A-D): OR-Library agents are pools, jobs are agents that must be placed.
    Gap(GapArgs),
}

/// Objective sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sense {
    /// Maximize total profit (gap1..gap12).
    Max,
    /// Minimize total cost (types A-D).
    Min,
}

#[derive(Args, Debug)]
pub(crate) struct GapArgs {
    /// The GAP file (OR-Library format).
    file: PathBuf,
    /// Solve only problem K (1-based); by default every problem, one line each.
    #[arg(long, value_name = "K")]
    problem: Option<usize>,
    /// Objective sense; by default `max` for files named gap1..gap12 and `min` otherwise.
    #[arg(long, value_enum)]
    sense: Option<Sense>,
    /// Wall-clock limit per problem, in seconds (default 10; the solve stops earlier when the
    /// objective meets the bound, which proves it optimal; at most 30 days).
    #[arg(long, value_name = "SECONDS", value_parser = crate::limits::seconds)]
    time_limit: Option<Duration>,
    /// Work budget instead of a time limit: move evaluations per option (above 0, at most
    /// 10^6). Deterministic: the same seed and effort give the same result on any machine.
    #[arg(long, conflicts_with = "time_limit", value_parser = crate::limits::finite)]
    effort: Option<f64>,
    /// Stop as soon as the objective is at least this good (for time-to-target
    /// measurements); `seconds` is then the time to reach it. A finite number.
    #[arg(long, value_name = "OBJECTIVE", value_parser = crate::limits::finite)]
    target: Option<f64>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object per problem.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    instance: String,
    problem: usize,
    objective: i64,
    feasible: bool,
    seconds: f64,
    sense: &'static str,
    agents: usize,
    jobs: usize,
    bound: f64,
    gap_to_bound: f64,
    seed: u64,
    windows: u64,
    window_solver: String,
    search: String,
}

pub(crate) fn run(cmd: &AllocateCommand) -> anyhow::Result<()> {
    match cmd {
        AllocateCommand::Gap(args) => gap(args),
    }
}

fn default_sense(instance: &str) -> Sense {
    let lower = instance.to_ascii_lowercase();
    let digits = lower.strip_prefix("gap").unwrap_or("");
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        Sense::Max
    } else {
        Sense::Min
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "read, solve and print each problem in sequence"
)]
fn gap(args: &GapArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let problems = read_gap(BufReader::new(file))
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let instance = args
        .file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("gap")
        .to_owned();
    let sense = args.sense.unwrap_or_else(|| default_sense(&instance));
    let gap_sense = match sense {
        Sense::Max => GapSense::Max,
        Sense::Min => GapSense::Min,
    };
    let selected: Vec<usize> = match args.problem {
        Some(k) if k == 0 || k > problems.len() => anyhow::bail!(
            "--problem {k} is out of range: {} holds problems 1 to {}",
            args.file.display(),
            problems.len()
        ),
        Some(k) => vec![k],
        None => (1..=problems.len()).collect(),
    };
    let time_limit = match (args.time_limit, args.effort) {
        (Some(t), _) => Some(t),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let mut config = SchedulerConfig {
        seed: args.seed,
        time_limit,
        ..SchedulerConfig::default()
    };
    if let Some(e) = args.effort {
        anyhow::ensure!(
            e > 0.0 && e <= MAX_EFFORT,
            "--effort must be above 0 and at most {MAX_EFFORT:e} (move evaluations per option), \
             got {e:e}"
        );
        config.effort = e;
    }
    let scheduler = EnhancedQuboScheduler::new(config)?;
    // The scheduler maximizes; costs are negated for minimization.
    let sign = match sense {
        Sense::Max => 1.0,
        Sense::Min => -1.0,
    };
    for k in selected {
        let inst = &problems[k - 1];
        let problem = inst
            .to_problem(gap_sense)
            .with_context(|| format!("problem {k} of {instance} is malformed"))?;
        let options = AssignmentOptions {
            target: args.target.map(|t| sign * t),
            ..AssignmentOptions::default()
        };
        let out = scheduler.solve_assignment(&problem, &options)?;
        let (objective, feasible) = inst.evaluate(&problem, &out.solution);
        let seconds = match args.target {
            // Time to the target: the first improvement that reached it.
            Some(t) => out
                .trace
                .iter()
                .find(|(_, v)| *v >= sign * t - 1e-9)
                .map_or(out.seconds, |(s, _)| *s),
            None => out.seconds,
        };
        let bound = sign * out.bound;
        let gap_to_bound = if objective == 0 {
            0.0
        } else {
            (objective as f64 - bound).abs() / (objective as f64).abs()
        };
        let report = Report {
            instance: instance.clone(),
            problem: k,
            objective,
            feasible: feasible && out.feasible,
            seconds,
            sense: match sense {
                Sense::Max => "max",
                Sense::Min => "min",
            },
            agents: inst.agents,
            jobs: inst.jobs,
            bound,
            gap_to_bound,
            seed: args.seed,
            windows: out.record.windows,
            window_solver: out.record.solver.clone(),
            search: out.record.search.clone(),
        };
        if args.json {
            crate::print_line(&serde_json::to_string(&report)?)?;
        } else {
            crate::print_line(&format!(
                "{} problem {}  objective {}  feasible {}  seconds {:.3}  bound {}  gap {:.3}%  ({}x{}, {})",
                report.instance,
                report.problem,
                report.objective,
                report.feasible,
                report.seconds,
                report.bound,
                100.0 * report.gap_to_bound,
                report.agents,
                report.jobs,
                report.sense,
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sense_defaults_follow_or_library_names() {
        assert_eq!(default_sense("gap1"), Sense::Max);
        assert_eq!(default_sense("gap12"), Sense::Max);
        assert_eq!(default_sense("gapa"), Sense::Min);
        assert_eq!(default_sense("gapd-80x1600"), Sense::Min);
    }
}
