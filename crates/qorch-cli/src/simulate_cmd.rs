//! `qorch simulate`: run a scenario (the built-in one without an argument).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use qorch_sim::{Progress, Scenario};

/// Runs a simulation: the scenario file (or the built-in default scenario of 10,000 agents
/// in 100 clusters), flags overriding its values.
#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    /// Scenario file (TOML); without it, the built-in default scenario.
    pub(crate) scenario: Option<PathBuf>,
    /// Number of agents (at most 10 million, and the memory available).
    #[arg(long)]
    pub(crate) agents: Option<usize>,
    /// Number of top-level clusters.
    #[arg(long)]
    pub(crate) clusters: Option<usize>,
    /// Rebalancing rounds (overrides the file's `rounds` and `duration_ticks`).
    #[arg(long)]
    pub(crate) rounds: Option<u64>,
    /// Seed of every random choice.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Worker threads (0: one per core; 1: a reproducible report).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Solver: default, qaoa, sa, pt, tabu, descent, exact, decompose, hybrid, icm or pa.
    #[arg(long)]
    pub(crate) solver: Option<String>,
    /// Allocation policy: `reactive` (for the demand reported at each round) or
    /// `predictive` (for the forecast of the next round's demand); overrides the scenario's
    /// `allocation.policy`.
    #[arg(long, value_name = "POLICY")]
    pub(crate) policy: Option<qorch_sim::PolicyName>,
    /// Write report.json, timings.json, scenario.toml and SVG plots into this directory
    /// (checked before the run; report.json written last: its presence means the run
    /// finished and the other files are from the same run).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Print the report as one JSON object instead of the summary table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the scenario (after the flags) as TOML and exit.
    #[arg(long)]
    pub(crate) print_scenario: bool,
    /// Distributed run: the clusters over this many node processes (`qorch node`) on the
    /// NATS server of `--nats`; missing nodes are started here as child processes.
    #[arg(long, value_name = "K", requires = "nats")]
    pub(crate) nodes: Option<usize>,
    #[command(flatten)]
    pub(crate) nats: crate::nats_args::NatsArgs,
    #[command(flatten)]
    pub(crate) serve: crate::serve_args::ServeArgs,
    #[command(flatten)]
    pub(crate) metrics: crate::metrics_endpoint::MetricsArgs,
}

/// The scenario of the arguments: the file or the default, then the flags.
pub(crate) fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let mut s = match &args.scenario {
        Some(path) => Scenario::from_path(path)?,
        None => Scenario::default(),
    };
    if let Some(n) = args.agents {
        s.topology.agents = n;
    }
    if let Some(k) = args.clusters {
        s.topology.clusters = k;
    }
    if let Some(r) = args.rounds {
        s.rounds = r;
        s.duration_ticks = None;
        // Faults scheduled past the last round are dropped with the rounds they belonged to.
        s.faults.retain(|f| f.round <= r);
    }
    if let Some(seed) = args.seed {
        s.seed = seed;
    }
    if let Some(w) = args.workers {
        s.workers = w;
    }
    if let Some(p) = args.policy {
        s.allocation.policy = p;
    }
    if let Some(name) = &args.solver {
        s.solver.name.clone_from(name);
    }
    s.validate()?;
    Ok(s)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let s = scenario(args)?;
    if args.print_scenario {
        return crate::print_line(s.to_toml().trim_end());
    }
    // Before the run, not after hours of it.
    if let Some(dir) = &args.out {
        qorch_sim::prepare_output_dir(dir)
            .with_context(|| format!("the output directory {}", dir.display()))?;
    }
    let distributed = distributed(args, &s)?;
    // Before the run too: a port in use or a bad address is an error now.
    let processes = distributed.as_ref().map_or(1, |d| d.nodes);
    let served = crate::serve_args::start(&args.serve, &s, processes)?;
    args.metrics.serve()?;
    let bar = ProgressBar::with_draw_target(Some(s.total_rounds()), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:<40} [{bar:30}] {pos}/{len} rounds, {elapsed}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("setting up {} agents", s.topology.agents));
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut on_progress = |p: Progress| {
        if let Some(d) = &served {
            d.progress(&p);
        }
        match p {
            Progress::Ready { agents, .. } => bar.set_message(format!("{agents} agents running")),
            Progress::Round(summary) => {
                bar.set_message(format!(
                    "round {}: efficiency {:.3}",
                    summary.round, summary.efficiency
                ));
                bar.inc(1);
            }
            _ => {}
        }
    };
    let outcome = match &distributed {
        Some(d) => qorch_sim::run_distributed(&s, d, &mut on_progress),
        None => qorch_sim::run(&s, &mut on_progress),
    };
    bar.finish_and_clear();
    let outcome = match (outcome, served) {
        (Ok(o), Some(d)) => {
            let r = &o.report;
            let line = format!(
                "{} rounds, allocation efficiency {:.4}, {} messages handled, {} restarts",
                r.rounds, r.allocation_efficiency, r.messages.handled, r.messages.restarts
            );
            // The results first: with --keep-serving, finishing waits for Ctrl-C.
            let printed = print_outcome(args, &s, &o);
            d.finish(Ok(line));
            return printed;
        }
        (Err(e), Some(d)) => {
            let e = anyhow::Error::from(e);
            d.finish(Err(format!("{e:#}")));
            return Err(e);
        }
        (outcome, None) => outcome?,
    };
    print_outcome(args, &s, &outcome)
}

/// Writes the outputs of `--out` and prints the report.
fn print_outcome(args: &Args, s: &Scenario, outcome: &qorch_sim::Outcome) -> anyhow::Result<()> {
    if let Some(dir) = &args.out {
        qorch_sim::write_outputs(dir, s, outcome)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
    }
    if args.json {
        crate::print_line(&serde_json::to_string(&outcome.report)?)
    } else {
        let mut table = outcome.report.summary_table(&outcome.timings);
        if let Some(note) = s.clustering_note() {
            let _ = writeln!(table, "  {:<28} {note}", "re-clustering");
        }
        if let Some(dir) = &args.out {
            let _ = writeln!(table, "  report, timings and plots in {}", dir.display());
        }
        crate::print_line(table.trim_end())
    }
}

/// The distributed settings of `--nats` (with `--nodes`, 1 by default): missing nodes are
/// started as `qorch node` child processes of this binary.
fn distributed(args: &Args, s: &Scenario) -> anyhow::Result<Option<qorch_sim::Distributed>> {
    let Some(mut config) = args.nats.config()? else {
        return Ok(None);
    };
    if let Some(k) = args.nodes {
        let clusters = s.topology.clusters;
        anyhow::ensure!(
            (1..=clusters).contains(&k),
            "--nodes {k} is out of range 1..={clusters}: each node process hosts one cluster \
             at least"
        );
    }
    if config.frame_key.is_none() {
        // A key for this run alone: the nodes started here get it; nodes started by hand
        // need one given to every process (--frame-key-file or QORCH_FRAME_KEY).
        config.frame_key = Some(qorch_net::FrameKey::generate()?);
        tracing::info!(
            "control frames are authenticated under a fresh key for this run (nodes started \
             by hand need --frame-key-file or {} given to every process)",
            crate::nats_args::KEY_ENV
        );
    }
    let spawn = node_spawner(args.nats.to_args(), &config)?;
    let mut d = qorch_sim::Distributed::new(config, args.nodes.unwrap_or(1));
    d.spawn = Some(spawn);
    Ok(Some(d))
}

/// Starts `qorch node ... --join NAME` child processes of this very binary. Their command
/// line holds no secret: the URL and the deployment key go through their environment.
pub(crate) fn node_spawner(
    flags: Vec<String>,
    config: &qorch_net::NatsConfig,
) -> anyhow::Result<qorch_sim::SpawnNode> {
    let exe = std::env::current_exe().context("cannot find this program to start nodes")?;
    let url = config.url.clone();
    let key = config.frame_key.clone();
    Ok(std::sync::Arc::new(move |name: &str| {
        node_command(&exe, &flags, &url, key.as_ref(), name).spawn()
    }))
}

/// The command that starts node `name`.
pub(crate) fn node_command(
    exe: &std::path::Path,
    flags: &[String],
    url: &str,
    key: Option<&qorch_net::FrameKey>,
    name: &str,
) -> std::process::Command {
    use crate::nats_args::{KEY_ENV, URL_ENV};
    let mut c = std::process::Command::new(exe);
    c.arg("node")
        .args(flags)
        .args(["--join", name])
        .env(URL_ENV, url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    match key {
        Some(k) => c.env(KEY_ENV, k.expose()),
        None => c.env_remove(KEY_ENV),
    };
    c
}
