//! `qorch qaoa maxcut`: QAOA for the Max-Cut of a graph on the exact simulator;
//! `qorch qaoa bench`: per-layer and per-expectation times against the memory bandwidth.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use qorch_qaoa::{
    InitStrategy, MemoryPolicy, Method, OptimizerConfig, QaoaOptimizer, QaoaParams, QaoaSimulator,
    SimConfig,
};
use qorch_qubo::Graph;
use serde::Serialize;

#[derive(Subcommand, Debug)]
pub(crate) enum QaoaCommand {
    /// QAOA for the Max-Cut of a graph: the expected cut of the circuit's state and the best
    /// sampled cut. Convention: cost C = weight of the cut edges; each layer applies
    /// `exp(-i gamma C)`, then `exp(-i beta sum_j X_j)`; the start state is `|+>^n`.
    Maxcut(MaxcutArgs),
    /// Time layers, expectations and gradients on random 3-regular graphs, next to the
    /// machine's measured memory bandwidth (the figures of docs/benchmarks.md).
    Bench(BenchArgs),
}

/// Where the angles come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Angles {
    /// The fixed angles of Wurtz & Lykov (2021) for 3-regular graphs, p = 1..11.
    Fixed,
    /// A linear ramp (a Trotterized anneal), scaled to the graph's weights.
    Ramp,
    /// Optimized with the adjoint gradient: from the fixed angles where they apply (so never
    /// worse than them), and by INTERP from a ramp; the better of the two.
    Optimize,
}

/// The classical optimizer for `--angles optimize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Optimizer {
    /// L-BFGS with a Wolfe line search (analytic gradient).
    Lbfgs,
    /// Adam (analytic gradient).
    Adam,
    /// Nelder-Mead (no gradient).
    NelderMead,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("graph").required(true).args(["file", "random_regular"])))]
pub(crate) struct MaxcutArgs {
    /// A rudy / G-set graph file (`n m`, then `i j w` with 1-based vertices).
    file: Option<PathBuf>,
    /// Instead of a file: a random D-regular graph (with --nodes and --seed); D from 1 to
    /// 39.
    #[arg(long, value_name = "D", requires = "nodes", value_parser = crate::limits::count_usize(MAX_QUBITS - 1))]
    random_regular: Option<usize>,
    /// Vertices of the random graph (2 to 40: one qubit each).
    #[arg(long, value_name = "N", value_parser = crate::limits::count_usize(MAX_QUBITS))]
    nodes: Option<usize>,
    /// Seed of the random graph, the sampling and the optimizer's restarts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Circuit depth (1 to 10,000).
    #[arg(long, default_value_t = 1, value_parser = crate::limits::count_usize(MAX_DEPTH))]
    p: usize,
    /// Where the angles come from (default: fixed for unweighted 3-regular graphs and
    /// p <= 11, optimize otherwise).
    #[arg(long, value_enum, conflicts_with_all = ["gammas", "betas"])]
    angles: Option<Angles>,
    /// Explicit phase angles, one per layer (with --betas; p is their number).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "betas",
        value_parser = crate::limits::finite
    )]
    gammas: Option<Vec<f64>>,
    /// Explicit mixer angles, one per layer.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "gammas",
        value_parser = crate::limits::finite
    )]
    betas: Option<Vec<f64>>,
    /// Bitstrings sampled from the final state for the best cut (1 to 10^7).
    #[arg(long, default_value_t = 1000, value_parser = crate::limits::count_usize(MAX_SHOTS))]
    shots: usize,
    /// The optimizer of --angles optimize.
    #[arg(long, value_enum, default_value = "lbfgs")]
    optimizer: Optimizer,
    /// Extra random starts of each optimization (at most 10,000).
    #[arg(long, default_value_t = 0, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_RESTARTS))]
    restarts: usize,
    /// Iterations of each optimization run (1 to 10^6).
    #[arg(long, default_value_t = 200, value_parser = crate::limits::count_usize(MAX_ITERATIONS))]
    max_iterations: usize,
    /// Write the optimization history (every iteration's angles and expectation) as JSON.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Write the graph in rudy format (1-based), for the peer scripts' --graph.
    #[arg(long, value_name = "FILE")]
    write_graph: Option<PathBuf>,
    /// Refuse simulations whose buffers would exceed this many GiB (besides the memory that
    /// is available).
    #[arg(long, value_name = "GIB")]
    memory_cap_gib: Option<f64>,
    /// Threads of the simulator (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Qubit counts to time (random 3-regular graphs; 4 to 40).
    #[arg(long, value_delimiter = ',', default_value = "16,20,22,24", value_parser = crate::limits::count_usize(MAX_QUBITS))]
    nodes: Vec<usize>,
    /// Depths of the timed expectations (fixed angles).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    p: Vec<usize>,
    /// Timed repetitions (the median is reported), after one warm-up (1 to 10,000).
    #[arg(long, default_value_t = 5, value_parser = crate::limits::count_usize(10_000))]
    reps: usize,
    /// Seed of the random graphs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write each graph as `DIR/rr3_n{N}_s{SEED}.txt` (rudy), for the peer scripts.
    #[arg(long, value_name = "DIR")]
    graph_dir: Option<PathBuf>,
    /// Also time the gradient (needs a second state).
    #[arg(long)]
    gradient: bool,
    /// MiB of the buffer of the memory-bandwidth measurement (0 skips it; at most the memory
    /// available).
    #[arg(long, default_value_t = 1024)]
    bandwidth_mib: usize,
    /// Threads of the simulator (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The largest register: [`qorch_qaoa::MAX_QUBITS`] (a state of `2^40` amplitudes needs
/// 16 TiB; the memory check refuses much less on most machines).
const MAX_QUBITS: u64 = qorch_qaoa::MAX_QUBITS as u64;
/// The deepest circuit: each layer is two passes over the state, and the angles, the
/// history and the gradient grow with `p`; 10,000 layers of 20 qubits take minutes.
const MAX_DEPTH: u64 = 10_000;
/// The most shots: sampling keeps every draw (8 bytes each, sorted), so 10^7 shots hold
/// 80 MB and take about a second.
const MAX_SHOTS: u64 = 10_000_000;
/// The most extra random starts of an optimization (each a full optimization).
const MAX_RESTARTS: u64 = 10_000;
/// The most iterations of one optimization run.
const MAX_ITERATIONS: u64 = 1_000_000;

pub(crate) fn run(cmd: &QaoaCommand) -> anyhow::Result<()> {
    match cmd {
        QaoaCommand::Maxcut(args) => maxcut(args),
        QaoaCommand::Bench(args) => bench(args),
    }
}

#[derive(Serialize)]
struct MaxcutReport {
    n: usize,
    m: usize,
    p: usize,
    gammas: Vec<f64>,
    betas: Vec<f64>,
    /// Expected cut of the final state.
    expectation: f64,
    /// expectation / total edge weight.
    cut_fraction: f64,
    /// Best cut among the samples.
    best_cut: f64,
    /// Wall time of the simulation: diagonal, angles (and optimization), expectation, sampling.
    seconds: f64,
    angles: &'static str,
    shots: usize,
    seed: u64,
    /// The maximum cut (exact: the largest entry of the cost diagonal).
    max_cut: f64,
    /// `expectation / max_cut`.
    approximation_ratio: f64,
    /// The fixed-angle table's cut fraction for 3-regular graphs of girth > 2p+1.
    table_cut_fraction: Option<f64>,
    girth: Option<usize>,
    /// Circuit evaluations (expectations and gradients).
    evaluations: u64,
    precompute_seconds: f64,
}

fn load_graph(args: &MaxcutArgs) -> anyhow::Result<Graph> {
    match (&args.file, args.random_regular) {
        (Some(path), _) => read_graph(path),
        (None, Some(d)) => {
            let n = args.nodes.context("--random-regular needs --nodes")?;
            Ok(qorch_qaoa::random_regular_graph(n, d, args.seed)?)
        }
        (None, None) => anyhow::bail!("give a graph FILE or --random-regular D --nodes N"),
    }
}

fn read_graph(path: &Path) -> anyhow::Result<Graph> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    qorch_qubo::read_rudy(BufReader::new(f))
        .with_context(|| format!("cannot read {}", path.display()))
}

fn write_graph(g: &Graph, path: &Path) -> anyhow::Result<()> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    qorch_qaoa::write_rudy(g, BufWriter::new(f))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Whether the fixed-angle table applies: an unweighted simple 3-regular graph.
fn is_unit_cubic(g: &Graph) -> bool {
    qorch_qaoa::regular_degree(g) == Some(3) && qorch_qaoa::is_simple_unweighted(g)
}

fn sim_config(threads: Option<usize>, cap_gib: Option<f64>) -> anyhow::Result<SimConfig> {
    let mut memory = MemoryPolicy::default();
    if let Some(gib) = cap_gib {
        anyhow::ensure!(
            gib.is_finite() && gib > 0.0,
            "--memory-cap-gib must be a positive number, got {gib}"
        );
        memory.cap_bytes = Some((gib * f64::from(1_u32 << 30)) as u64);
    }
    if let Some(t) = threads {
        crate::limits::check_threads("--threads", t)?;
    }
    Ok(SimConfig {
        memory,
        threads,
        ..SimConfig::default()
    })
}

/// Explicit angles, or where the angles come from; and the depth.
fn choose_angles(
    args: &MaxcutArgs,
    unit_cubic: bool,
) -> anyhow::Result<(Option<QaoaParams>, Option<Angles>, usize)> {
    let explicit = match (&args.gammas, &args.betas) {
        (Some(g), Some(b)) => Some(QaoaParams::new(g.clone(), b.clone())?),
        _ => None,
    };
    let p = explicit.as_ref().map_or(args.p, QaoaParams::p);
    let angles = match (&explicit, args.angles) {
        (Some(_), _) => None,
        (None, Some(a)) => Some(a),
        (None, None) if unit_cubic && (1..=11).contains(&p) => Some(Angles::Fixed),
        (None, None) => Some(Angles::Optimize),
    };
    if angles == Some(Angles::Fixed) {
        anyhow::ensure!(
            unit_cubic && (1..=11).contains(&p),
            "fixed angles are tabulated for unweighted 3-regular graphs and p = 1..11; use --angles ramp or optimize"
        );
    }
    anyhow::ensure!(p > 0 || explicit.is_some(), "--p must be at least 1");
    Ok((explicit, angles, p))
}

fn optimizer_config(args: &MaxcutArgs) -> OptimizerConfig {
    OptimizerConfig {
        method: match args.optimizer {
            Optimizer::Lbfgs => Method::Lbfgs,
            Optimizer::Adam => Method::Adam,
            Optimizer::NelderMead => Method::NelderMead,
        },
        restarts: args.restarts,
        max_iterations: args.max_iterations,
        seed: args.seed,
        ..OptimizerConfig::default()
    }
}

/// The best of the optimizations from the fixed angles (where they apply) and by INTERP.
fn optimize(
    opt: &mut QaoaOptimizer,
    config: &OptimizerConfig,
    p: usize,
    unit_cubic: bool,
) -> anyhow::Result<QaoaParams> {
    let mut best: Option<qorch_qaoa::OptimizeResult> = None;
    let mut inits = vec![InitStrategy::Interp];
    if unit_cubic && p <= 11 {
        inits.insert(0, InitStrategy::FixedAngles);
    }
    for init in inits {
        opt.set_config(OptimizerConfig {
            init,
            ..config.clone()
        });
        let r = opt.optimize(p)?;
        if best.as_ref().is_none_or(|b| r.expectation > b.expectation) {
            best = Some(r);
        }
    }
    Ok(best.expect("one run at least").params)
}

fn maxcut(args: &MaxcutArgs) -> anyhow::Result<()> {
    let graph = load_graph(args)?;
    if let Some(path) = &args.write_graph {
        write_graph(&graph, path)?;
    }
    let unit_cubic = is_unit_cubic(&graph);
    let (explicit, angles, p) = choose_angles(args, unit_cubic)?;
    let config = optimizer_config(args);

    let began = Instant::now();
    let sim = sim_config(args.threads, args.memory_cap_gib)?;
    let mut opt = QaoaOptimizer::for_max_cut(&graph, sim, config.clone())
        .context("cannot build the simulator")?;
    let precompute_seconds = began.elapsed().as_secs_f64();
    let (params, label) = match (explicit, angles) {
        (Some(params), _) => (params, "explicit"),
        (None, Some(Angles::Fixed)) => (
            QaoaParams::fixed_angles_3_regular(p).expect("checked above"),
            "fixed",
        ),
        (None, Some(Angles::Ramp)) => (opt.initial_params(&InitStrategy::LinearRamp, p)?, "ramp"),
        (None, Some(Angles::Optimize)) => (optimize(&mut opt, &config, p, unit_cubic)?, "optimize"),
        (None, None) => unreachable!("angles are chosen above"),
    };
    let expectation = opt.evaluate(&params)?;
    let best = opt.best_sample(&params, args.shots, args.seed)?;
    let seconds = began.elapsed().as_secs_f64();
    if let Some(path) = &args.history {
        opt.history()
            .save_json(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let total = graph.total_weight();
    let max_cut = opt.simulator().diagonal().max();
    let report = MaxcutReport {
        n: graph.num_vertices(),
        m: graph.num_edges(),
        p: params.p(),
        expectation,
        cut_fraction: if total == 0.0 {
            0.0
        } else {
            expectation / total
        },
        best_cut: best.map_or(f64::NAN, |s| s.cost),
        seconds,
        angles: label,
        shots: args.shots,
        seed: args.seed,
        max_cut,
        approximation_ratio: if max_cut == 0.0 {
            1.0
        } else {
            expectation / max_cut
        },
        table_cut_fraction: if unit_cubic {
            QaoaParams::fixed_angle_cut_fraction_3_regular(params.p())
        } else {
            None
        },
        girth: qorch_qaoa::girth(&graph),
        evaluations: opt.simulator().evaluations(),
        precompute_seconds,
        gammas: params.gammas,
        betas: params.betas,
    };
    if args.json {
        return crate::print_line(&serde_json::to_string(&report)?);
    }
    print_maxcut(&report)
}

fn print_maxcut(report: &MaxcutReport) -> anyhow::Result<()> {
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.10}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let table = report
        .table_cut_fraction
        .map(|t| format!("  (table, girth > 2p+1: {t:.10})"))
        .unwrap_or_default();
    crate::print_line(&format!(
        "n {}  m {}  p {}  angles {}\ngammas {}\nbetas {}\nexpectation {:.10}  cut_fraction {:.10}{table}\nbest_cut {} of {} shots  (max_cut {}, approximation ratio {:.6})\nseconds {:.4}",
        report.n,
        report.m,
        report.p,
        report.angles,
        list(&report.gammas),
        list(&report.betas),
        report.expectation,
        report.cut_fraction,
        report.best_cut,
        report.shots,
        report.max_cut,
        report.approximation_ratio,
        report.seconds
    ))
}

#[derive(Serialize)]
struct BenchRun {
    n: usize,
    m: usize,
    graph: Option<String>,
    /// Building the cost diagonal and allocating the state.
    precompute_s: f64,
    /// One layer (phase and mixer), median.
    layer_s: f64,
    /// Passes over the state per layer.
    passes_per_layer: usize,
    /// Bytes one layer reads and writes.
    layer_bytes: u64,
    /// `layer_bytes / layer_s`, in GB/s.
    layer_gbps: f64,
    /// `layer_gbps` over the measured read-write bandwidth.
    bandwidth_fraction: Option<f64>,
    /// Per depth: one full evaluation (initial state, p layers, <C>), median.
    expectations: Vec<BenchExpectation>,
}

#[derive(Serialize)]
struct BenchExpectation {
    p: usize,
    expectation_s: f64,
    gradient_s: Option<f64>,
    expectation: f64,
    cut_fraction: f64,
}

#[derive(Serialize)]
struct BenchReport {
    threads: usize,
    simd: bool,
    bandwidth: Option<qorch_qaoa::Bandwidth>,
    runs: Vec<BenchRun>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    Ok(median(ts))
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.reps > 0, "--reps must be at least 1");
    anyhow::ensure!(
        args.p.iter().all(|p| (1..=11).contains(p)),
        "--p values must be 1..11 (fixed angles)"
    );
    let config = sim_config(args.threads, None)?;
    if let Some(dir) = &args.graph_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let bandwidth_bytes = (args.bandwidth_mib as u64).saturating_mul(1 << 20);
    if let Some(available) = qorch_qubo::available_memory_bytes() {
        anyhow::ensure!(
            bandwidth_bytes <= available / 2,
            "--bandwidth-mib {} needs {bandwidth_bytes} bytes (two buffers of that size), more \
             than the {available} bytes of memory available",
            args.bandwidth_mib
        );
    }
    let bandwidth = (args.bandwidth_mib > 0)
        .then(|| qorch_qaoa::measure_memory_bandwidth(args.bandwidth_mib << 20, 3));
    let mut runs = Vec::new();
    let mut simd = false;
    for &n in &args.nodes {
        let (run, uses_simd) = bench_one(args, &config, n, bandwidth.as_ref())?;
        simd = uses_simd;
        runs.push(run);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let report = BenchReport {
        threads,
        simd,
        bandwidth,
        runs,
    };
    if args.json {
        return crate::print_line(&serde_json::to_string(&report)?);
    }
    print_bench(&report)
}

/// Times one register size; returns the figures and whether the SIMD kernels ran.
fn bench_one(
    args: &BenchArgs,
    config: &SimConfig,
    n: usize,
    bandwidth: Option<&qorch_qaoa::Bandwidth>,
) -> anyhow::Result<(BenchRun, bool)> {
    let g = qorch_qaoa::random_regular_graph(n, 3, args.seed)?;
    let graph = match &args.graph_dir {
        Some(dir) => {
            let path = dir.join(format!("rr3_n{n}_s{}.txt", args.seed));
            write_graph(&g, &path)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let t = Instant::now();
    let mut sim = QaoaSimulator::for_max_cut(&g, config.clone())?;
    let precompute_s = t.elapsed().as_secs_f64();
    let layer_s = time(args.reps, || {
        sim.layer(0.3, 0.2);
        Ok(())
    })?;
    let mut expectations = Vec::new();
    for &p in &args.p {
        let params = QaoaParams::fixed_angles_3_regular(p).expect("p checked");
        let mut expectation = 0.0;
        let expectation_s = time(args.reps, || {
            expectation = sim.expectation(&params)?;
            Ok(())
        })?;
        let gradient_s = if args.gradient {
            Some(time(args.reps, || {
                sim.expectation_and_gradient(&params)?;
                Ok(())
            })?)
        } else {
            None
        };
        let cut_fraction = expectation / g.num_edges() as f64;
        expectations.push(BenchExpectation {
            p,
            expectation_s,
            gradient_s,
            expectation,
            cut_fraction,
        });
    }
    let layer_bytes = sim.layer_bytes();
    let layer_gbps = layer_bytes as f64 / layer_s / 1e9;
    let run = BenchRun {
        n,
        m: g.num_edges(),
        graph,
        precompute_s,
        layer_s,
        passes_per_layer: sim.passes_per_layer(),
        layer_bytes,
        layer_gbps,
        bandwidth_fraction: bandwidth.map(|b| layer_gbps / b.read_write_gbps),
        expectations,
    };
    Ok((run, sim.uses_simd()))
}

fn print_bench(report: &BenchReport) -> anyhow::Result<()> {
    if let Some(b) = &report.bandwidth {
        crate::print_line(&format!(
            "memory bandwidth ({} MiB, {} threads): read-write {:.1} GB/s, read {:.1} GB/s",
            b.bytes >> 20,
            report.threads,
            b.read_write_gbps,
            b.read_gbps
        ))?;
    }
    for r in &report.runs {
        let e: Vec<String> = r
            .expectations
            .iter()
            .map(|e| {
                let grad = e
                    .gradient_s
                    .map(|g| format!(" grad {g:.4}s"))
                    .unwrap_or_default();
                format!(
                    "p={} {:.4}s{grad} (cut fraction {:.6})",
                    e.p, e.expectation_s, e.cut_fraction
                )
            })
            .collect();
        let frac = r
            .bandwidth_fraction
            .map(|f| format!(" = {:.0}% of bandwidth", 100.0 * f))
            .unwrap_or_default();
        crate::print_line(&format!(
            "n={:>2}  precompute {:.4}s  layer {:.5}s ({} passes, {:.2} GB/s{frac})  expectation {}",
            r.n,
            r.precompute_s,
            r.layer_s,
            r.passes_per_layer,
            r.layer_gbps,
            e.join(", ")
        ))?;
    }
    Ok(())
}
