//! `qorch bench nats`: the same scenario in one process and over 2 and 4 local node
//! processes joined by NATS: tick throughput, messages across processes per second, and
//! round latency, side by side.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use qorch_net::NatsConfig;
use qorch_net::local_server::LocalServer;
use qorch_sim::{Distributed, Outcome, Scenario};
use serde::Serialize;

/// Runs one scenario locally, then distributed over each node count; prints the figures.
#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    /// Number of agents.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Number of top-level clusters (spread over the nodes).
    #[arg(long, default_value_t = 24)]
    clusters: usize,
    /// Rounds (two ticks each).
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Node counts to compare with the single process, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    nodes: Vec<usize>,
    /// Work units per message handled (small: the transport is what is measured).
    #[arg(long, default_value_t = 1000)]
    message_work: u32,
    /// Work units of a compute agent's tick.
    #[arg(long, default_value_t = 10_000)]
    tick_work: u32,
    /// A NATS server to use; without it a local `nats-server` is started on a free port.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Run {
    /// 0: the single-process run.
    nodes: usize,
    tick_seconds: f64,
    messages: u64,
    messages_per_second: f64,
    cross_process_messages: u64,
    cross_process_per_second: f64,
    round_latency_mean_seconds: f64,
    wall_seconds: f64,
    /// Tick throughput relative to the single process.
    throughput_vs_single: f64,
    unaccounted: u64,
}

#[derive(Serialize)]
struct Figures {
    agents: usize,
    clusters: usize,
    rounds: u64,
    ticks: u64,
    cores: usize,
    single: Run,
    distributed: Vec<Run>,
}

fn figures(nodes: usize, o: &Outcome, single_rate: f64) -> Run {
    let t = o.timings.runtime_tick_seconds.max(1e-9);
    let m = &o.report.messages;
    let lat = &o.timings.round_latency_seconds;
    let rate = m.handled as f64 / t;
    Run {
        nodes,
        tick_seconds: o.timings.runtime_tick_seconds,
        messages: m.handled,
        messages_per_second: rate,
        cross_process_messages: m.cross_process,
        cross_process_per_second: m.cross_process as f64 / t,
        round_latency_mean_seconds: lat.iter().sum::<f64>() / lat.len().max(1) as f64,
        wall_seconds: o.timings.wall_seconds,
        throughput_vs_single: if single_rate > 0.0 {
            rate / single_rate
        } else {
            1.0
        },
        unaccounted: m.unaccounted,
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let mut s = Scenario {
        name: "bench-nats".into(),
        seed: args.seed,
        rounds: args.rounds,
        ticks_per_round: 2,
        faults: Vec::new(),
        ..Scenario::default()
    };
    s.topology.agents = args.agents;
    s.topology.clusters = args.clusters;
    s.behaviour.message_work = args.message_work;
    s.behaviour.tick_work = args.tick_work;
    s.clustering.every = 0;
    s.validate()?;
    let server = match &args.nats {
        Some(_) => None,
        None => Some(LocalServer::start(&[]).context("starting a local nats-server")?),
    };
    let url = args
        .nats
        .clone()
        .or_else(|| server.as_ref().map(LocalServer::url))
        .unwrap_or_default();
    let single = qorch_sim::run(&s, &mut |_| {})?;
    let single_rate =
        single.report.messages.handled as f64 / single.timings.runtime_tick_seconds.max(1e-9);
    let mut distributed = Vec::new();
    for &k in &args.nodes {
        let mut config = NatsConfig::new(url.clone());
        config.prefix = format!("qorch-bench-{}-{k}", std::process::id());
        // Authenticated control frames, as `qorch simulate --nats` runs them.
        config.frame_key = Some(qorch_net::FrameKey::generate()?);
        let spawn = crate::simulate_cmd::node_spawner(
            vec!["--nats-prefix".into(), config.prefix.clone()],
            &config,
        )?;
        let mut d = Distributed::new(config, k);
        d.spawn = Some(spawn);
        let o = qorch_sim::run_distributed(&s, &d, &mut |_| {})?;
        distributed.push(figures(k, &o, single_rate));
    }
    let f = Figures {
        agents: args.agents,
        clusters: args.clusters,
        rounds: args.rounds,
        ticks: single.report.ticks,
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        single: figures(0, &single, single_rate),
        distributed,
    };
    if args.json {
        return crate::print_line(&serde_json::to_string(&f)?);
    }
    let mut out = format!(
        "{} agents, {} clusters, {} ticks, {} cores\n  nodes      msgs/s     cross/s  round s  vs single\n",
        f.agents, f.clusters, f.ticks, f.cores
    );
    for r in std::iter::once(&f.single).chain(&f.distributed) {
        let _ = writeln!(
            out,
            "  {:>5}  {:>10.0}  {:>10.0}  {:>7.3}  {:>8.2}",
            if r.nodes == 0 {
                "1 (p)".to_owned()
            } else {
                r.nodes.to_string()
            },
            r.messages_per_second,
            r.cross_process_per_second,
            r.round_latency_mean_seconds,
            r.throughput_vs_single
        );
    }
    crate::print_line(out.trim_end())
}
