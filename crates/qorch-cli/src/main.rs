//! `qorch`: the command-line front end. Glue only: parse arguments, call the libraries, print.

#![deny(unsafe_code)]

mod alloc_count;
mod allocate_cmd;
mod bench;
mod limits;
mod metrics_endpoint;
mod nats_args;
mod node_cmd;
#[cfg(feature = "otlp")]
mod otlp;
mod qaoa_cmd;
mod qubo_cmd;
mod redact;
mod serve_args;
mod simulate_cmd;
mod sweep_cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: alloc_count::CountingAlloc = alloc_count::CountingAlloc;

/// qorch: an actor runtime whose resource allocations are rebalanced by a quantum-inspired
/// optimizer (the quantum parts are simulated classically).
#[derive(Parser, Debug)]
#[command(name = "qorch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Allocation with the `EnhancedQuboScheduler`: solve generalized assignment files.
    Allocate {
        #[command(subcommand)]
        cmd: allocate_cmd::AllocateCommand,
    },
    /// Benchmarks that print figures measured side by side with baselines.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
    /// A node process of distributed simulations (`qorch simulate --nats URL --nodes K`):
    /// hosts the clusters it is given, over NATS.
    Node(node_cmd::Args),
    /// QAOA on the exact statevector simulator: Max-Cut and the simulator's benchmark.
    Qaoa {
        #[command(subcommand)]
        cmd: qaoa_cmd::QaoaCommand,
    },
    /// The QUBO engine: solve models and Max-Cut graphs.
    Qubo {
        #[command(subcommand)]
        cmd: qubo_cmd::QuboCommand,
    },
    /// Run a simulation: a scenario file, or the built-in default scenario (10,000 agents,
    /// 100 clusters), with flags overriding its values.
    Simulate(Box<simulate_cmd::Args>),
    /// Run a scenario over a grid of parameter values and seeds, in parallel: a directory
    /// per run, `runs.csv`, `summary.csv` (means and 95% confidence intervals) and plots;
    /// an interrupted sweep resumes.
    Sweep(sweep_cmd::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match &cli.command {
        Command::Allocate { .. } => "allocate",
        Command::Bench { .. } => "bench",
        Command::Node(_) => "node",
        Command::Qaoa { .. } => "qaoa",
        Command::Qubo { .. } => "qubo",
        Command::Simulate(_) => "simulate",
        Command::Sweep(_) => "sweep",
    };
    let telemetry = match redact::init_logging(command) {
        Ok(t) => t,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Allocate { cmd } => allocate_cmd::run(&cmd),
        Command::Bench { which } => bench::run(&which),
        Command::Node(args) => node_cmd::run(&args),
        Command::Qaoa { cmd } => qaoa_cmd::run(&cmd),
        Command::Qubo { cmd } => qubo_cmd::run(&cmd),
        Command::Simulate(args) => simulate_cmd::run(&args),
        Command::Sweep(args) => sweep_cmd::run(&args),
    };
    // The exporter sends its last spans before the exit status is decided.
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints one line to stdout, reporting a closed pipe as an error the caller can recognise.
pub(crate) fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}
