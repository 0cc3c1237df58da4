//! `qorch qubo solve`: read a model or graph, solve it, print the result.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use qorch_qubo::{Budget, Graph, Qubo, SolveOptions, SolverKind};
use serde::Serialize;

/// The most sweeps `--sweeps` may ask for: a sweep is at least one move of about a
/// nanosecond per variable, so 10^12 sweeps are over a quarter of an hour for one variable.
const MAX_SWEEPS: u64 = 1_000_000_000_000;
/// The most reads, and sweeps per read, of `--solver sa` (their product is computed
/// saturating).
const MAX_READS: u64 = 1_000_000_000;

#[derive(Subcommand, Debug)]
pub(crate) enum QuboCommand {
    /// Solve a QUBO (or the Max-Cut of a graph) from a file.
    Solve(SolveArgs),
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A rudy / G-set graph (`n m`, then `i j w`, 1-based); solved as Max-Cut.
    Rudy,
    /// The QUBO text format (`p qubo 0 n nodes couplers`, then `i j value`, 0-based).
    Qubo,
    /// JSON: `{"num_vars": n, "linear": [[i, a]], "quadratic": [[i, j, b]], "offset": c}`.
    Json,
}

#[derive(Args, Debug)]
pub(crate) struct SolveArgs {
    /// The input file.
    file: PathBuf,
    /// Input format; by default from the extension (.qubo, .json), else rudy.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Solve the Max-Cut of the graph whose edges are the model's quadratic terms, and print
    /// the cut (implied for rudy graphs).
    #[arg(long)]
    maxcut: bool,
    /// The solver: sa, pt, tabu, descent, exact, decompose, icm (tempering with cluster
    /// moves), pa (population annealing), or hybrid (annealing with consensus coarsening, the
    /// default).
    #[arg(long, default_value = "hybrid", value_parser = parse_solver)]
    solver: SolverKind,
    /// Wall-clock limit in seconds (by default each solver's own default amount of work;
    /// at most 30 days).
    #[arg(long, value_name = "SECONDS", value_parser = crate::limits::seconds)]
    time_limit: Option<Duration>,
    /// Sweep budget (n moves per sweep), instead of or besides the time limit (1 to 10^12).
    #[arg(long, value_parser = crate::limits::count(MAX_SWEEPS))]
    sweeps: Option<u64>,
    /// Annealing only: number of reads (restarts), 1 to 10^9.
    #[arg(long, value_parser = crate::limits::count(MAX_READS))]
    reads: Option<u64>,
    /// Annealing only: sweeps of each read, 1 to 10^9.
    #[arg(long, value_parser = crate::limits::count(MAX_READS))]
    sweeps_per_read: Option<u64>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_solver(s: &str) -> Result<SolverKind, String> {
    s.parse()
        .map_err(|e: qorch_qubo::ParseSolverError| e.to_string())
}

#[derive(Serialize)]
struct Report {
    energy: f64,
    cut: Option<f64>,
    solver: String,
    n: usize,
    m: usize,
    seconds: f64,
    seed: u64,
    sweeps: u64,
    stop: qorch_qubo::StopReason,
}

pub(crate) fn run(cmd: &QuboCommand) -> anyhow::Result<()> {
    match cmd {
        QuboCommand::Solve(args) => solve(args),
    }
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::new(f))
}

fn format_of(args: &SolveArgs) -> Format {
    args.format.unwrap_or_else(|| {
        match args
            .file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("qubo") => Format::Qubo,
            Some("json") => Format::Json,
            _ => Format::Rudy,
        }
    })
}

/// The model to minimize, and the graph when the problem is a Max-Cut.
fn load(args: &SolveArgs) -> anyhow::Result<(Qubo, Option<Graph>)> {
    let path = &args.file;
    let ctx = || format!("cannot read {}", path.display());
    match format_of(args) {
        Format::Rudy => {
            let g = qorch_qubo::read_rudy(open(path)?).with_context(ctx)?;
            Ok((g.max_cut_qubo(), Some(g)))
        }
        f => {
            let q = if f == Format::Qubo {
                qorch_qubo::read_qubo_text(open(path)?).with_context(ctx)?
            } else {
                qorch_qubo::read_json(open(path)?).with_context(ctx)?
            };
            if args.maxcut {
                let g = Graph::new(q.num_vars(), q.interactions().collect())?;
                Ok((g.max_cut_qubo(), Some(g)))
            } else {
                Ok((q, None))
            }
        }
    }
}

fn solve(args: &SolveArgs) -> anyhow::Result<()> {
    let time_limit = args.time_limit;
    let (qubo, graph) = load(args)?;
    let budget = Budget {
        sweeps: args.sweeps,
        time_limit,
        target_energy: None,
    };
    let solver: Box<dyn qorch_qubo::Solver> = match args.solver {
        SolverKind::Sa => {
            let mut sa = qorch_qubo::SimulatedAnnealing {
                reads: args.reads,
                ..Default::default()
            };
            if let Some(s) = args.sweeps_per_read {
                sa.sweeps_per_read = s;
            }
            Box::new(sa)
        }
        kind => {
            anyhow::ensure!(
                args.reads.is_none() && args.sweeps_per_read.is_none(),
                "--reads and --sweeps-per-read apply to --solver sa only"
            );
            kind.build()
        }
    };
    let sol = solver
        .solve(&qubo, &SolveOptions::new(budget, args.seed))
        .with_context(|| format!("solver {} failed", args.solver))?;
    let report = Report {
        energy: sol.energy,
        cut: graph.as_ref().map(|g| g.cut_value(&sol.assignment)),
        solver: sol.solver,
        n: qubo.num_vars(),
        m: graph
            .as_ref()
            .map_or_else(|| qubo.num_interactions(), Graph::num_edges),
        seconds: sol.seconds,
        seed: args.seed,
        sweeps: sol.sweeps,
        stop: sol.stop,
    };
    if args.json {
        crate::print_line(&serde_json::to_string(&report)?)
    } else {
        let cut = report.cut.map(|c| format!("cut {c}  ")).unwrap_or_default();
        crate::print_line(&format!(
            "energy {}  {cut}solver {}  n {}  m {}  seconds {:.3}  sweeps {}  seed {}",
            report.energy,
            report.solver,
            report.n,
            report.m,
            report.seconds,
            report.sweeps,
            report.seed
        ))
    }
}
