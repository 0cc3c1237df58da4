//! `qorch bench overhead`: the runtime's cost over the same agent work in a plain loop.

use clap::Args as ClapArgs;
use qorch_sim::Scenario;
use serde::Serialize;

/// Runs the default scenario's agents for a number of ticks, in the runtime and then in a
/// plain loop on as many threads (same agents, same work per tick and per message), and
/// reports the extra wall time.
#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    /// Number of agents.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Number of top-level clusters (4 sub-clusters each).
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Ticks to run.
    #[arg(long, default_value_t = 10)]
    ticks: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Work units per message handled (about a nanosecond each); default: the scenario's.
    #[arg(long)]
    message_work: Option<u32>,
    /// Work units of a compute agent's tick; default: the scenario's.
    #[arg(long)]
    tick_work: Option<u32>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Figures {
    agents: usize,
    clusters: usize,
    workers: usize,
    ticks: u64,
    messages: u64,
    message_work: u32,
    tick_work: u32,
    runtime_seconds: f64,
    baseline_seconds: f64,
    overhead: f64,
    extra_microseconds_per_message: f64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let mut s = Scenario {
        name: "bench-overhead".into(),
        seed: args.seed,
        workers: args.workers,
        rounds: 1,
        ticks_per_round: args.ticks,
        ..Scenario::default()
    };
    s.topology.agents = args.agents;
    s.topology.clusters = args.clusters;
    s.clustering.every = 0;
    if let Some(w) = args.message_work {
        s.behaviour.message_work = w;
    }
    if let Some(w) = args.tick_work {
        s.behaviour.tick_work = w;
    }
    s.validate()?;
    let out = qorch_sim::run(&s, &mut |_| {})?;
    let t = &out.timings;
    let messages = out.report.messages.handled;
    let f = Figures {
        agents: s.topology.agents,
        clusters: s.topology.clusters,
        workers: s.worker_threads(),
        ticks: args.ticks,
        messages,
        message_work: s.behaviour.message_work,
        tick_work: s.behaviour.tick_work,
        runtime_seconds: t.runtime_tick_seconds,
        baseline_seconds: t.baseline_tick_seconds,
        overhead: t.communication_overhead,
        extra_microseconds_per_message: 1e6 * (t.runtime_tick_seconds - t.baseline_tick_seconds)
            / messages.max(1) as f64,
    };
    if args.json {
        crate::print_line(&serde_json::to_string(&f)?)
    } else {
        crate::print_line(&format!(
            "{} agents, {} workers, {} ticks, {} messages: runtime {:.3} s, plain loop {:.3} s, \
             overhead {:+.1}% ({:.2} us per message)",
            f.agents,
            f.workers,
            f.ticks,
            f.messages,
            f.runtime_seconds,
            f.baseline_seconds,
            100.0 * f.overhead,
            f.extra_microseconds_per_message
        ))
    }
}
