//! `qorch bench sweep`: a sweep's parallel speed-up, the same runs with `--jobs 1` and with
//! `--jobs N`, back to back.

use clap::Args as ClapArgs;
use qorch_sim::Scenario;
use serde::Serialize;

use crate::sweep_cmd;

/// Runs one sweep of `--runs` seeds of the default scenario at `--agents` agents twice,
/// one run at a time and then `--jobs` at a time, each into a fresh directory under the
/// system's temporary directory (removed after), and reports both wall times.
#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    /// Runs (seeds 1..=runs).
    #[arg(long, default_value_t = 20, value_parser = crate::limits::count_usize(sweep_cmd::MAX_RUNS))]
    runs: usize,
    /// Agents per run.
    #[arg(long, default_value_t = 1_000)]
    agents: usize,
    /// Top-level clusters per run (4 sub-clusters each).
    #[arg(long, default_value_t = 10)]
    clusters: usize,
    /// Rounds per run.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Runs at a time in the parallel sweep.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Figures {
    runs: usize,
    agents: usize,
    clusters: usize,
    rounds: u64,
    jobs: usize,
    cores: usize,
    sequential_seconds: f64,
    parallel_seconds: f64,
    speedup: f64,
    /// CPU seconds (user and system) of the runs' processes, per sweep: the same work both
    /// times, unless running two at a time costs more.
    sequential_cpu_seconds: Option<f64>,
    parallel_cpu_seconds: Option<f64>,
    /// CPU seconds over wall seconds of each sweep: the cores its runs got on average (on
    /// a shared machine, less than `jobs` when other processes took their share).
    sequential_cores_used: Option<f64>,
    parallel_cores_used: Option<f64>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    crate::limits::check_threads("--jobs", args.jobs)?;
    let mut s = Scenario {
        name: "bench-sweep".into(),
        rounds: args.rounds,
        ..Scenario::default()
    };
    s.topology.agents = args.agents;
    s.topology.clusters = args.clusters;
    s.faults.clear();
    s.validate()?;
    let root = std::env::temp_dir().join(format!("qorch-bench-sweep-{}", std::process::id()));
    let result = measure(args, &s, &root);
    let _ = std::fs::remove_dir_all(&root);
    let figures = result?;
    if args.json {
        crate::print_line(&serde_json::to_string(&figures)?)
    } else {
        crate::print_line(&format!(
            "{} runs of {} agents ({} rounds): one at a time {:.2} s, {} at a time {:.2} s: \
             {:.2}x ({} cores)",
            figures.runs,
            figures.agents,
            figures.rounds,
            figures.sequential_seconds,
            figures.jobs,
            figures.parallel_seconds,
            figures.speedup,
            figures.cores
        ))
    }
}

fn measure(args: &Args, s: &Scenario, root: &std::path::Path) -> anyhow::Result<Figures> {
    std::fs::create_dir_all(root)?;
    let seeds: Vec<u64> = (1..=args.runs as u64).collect();
    let mut seconds = [0.0; 2];
    let mut cpu = [None; 2];
    for (i, jobs) in [1, args.jobs].into_iter().enumerate() {
        let before = children_cpu_seconds();
        let out = root.join(format!("jobs-{jobs}-{i}"));
        let plan = sweep_cmd::plan(s, &[], &seeds, &out)?;
        let done = sweep_cmd::execute(&plan, jobs, false)?;
        if let Some((dir, e)) = done.failed.first() {
            anyhow::bail!("a run failed in {}: {e}", dir.display());
        }
        seconds[i] = done.seconds;
        cpu[i] = children_cpu_seconds().zip(before).map(|(a, b)| a - b);
    }
    let cores = |i: usize| cpu[i].map(|c: f64| c / seconds[i]);
    Ok(Figures {
        runs: args.runs,
        agents: args.agents,
        clusters: args.clusters,
        rounds: args.rounds,
        jobs: args.jobs,
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        sequential_seconds: seconds[0],
        parallel_seconds: seconds[1],
        speedup: seconds[0] / seconds[1],
        sequential_cpu_seconds: cpu[0],
        parallel_cpu_seconds: cpu[1],
        sequential_cores_used: cores(0),
        parallel_cores_used: cores(1),
    })
}

/// The user and system CPU seconds of this process's children that have ended and been
/// waited for (`cutime` and `cstime` of `/proc/self/stat`, in `USER_HZ` ticks: 100 a
/// second on Linux); `None` where that file cannot be read.
fn children_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // Fields 16 and 17 of the file; the slice starts at field 3.
    Some((ticks(13)? + ticks(14)?) as f64 / 100.0)
}
