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
    /// Run a second time with the live dashboard on and one page open (an event-stream
    /// client on loopback), and report its cost (the `dashboard_*` keys).
    #[arg(long)]
    dashboard: bool,
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
    /// With `--dashboard`: the same figures with the dashboard on and one page open.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    dashboard: Option<DashboardFigures>,
}

#[derive(Serialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the JSON keys, flattened beside the run's own figures"
)]
struct DashboardFigures {
    dashboard_runtime_seconds: f64,
    dashboard_baseline_seconds: f64,
    dashboard_overhead: f64,
    /// `dashboard_overhead - overhead`, in percentage points.
    dashboard_overhead_points: f64,
    /// Updates the page received during the run (it was live).
    dashboard_updates: u64,
    /// Updates that carried the tree's totals (it was sampled while the run went on).
    dashboard_tree_updates: u64,
    /// CPU seconds the dashboard's server thread used during the run (Linux; `None`
    /// elsewhere): its whole cost in this process, whatever the machine's load.
    dashboard_cpu_seconds: Option<f64>,
    /// CPU seconds of the whole process during that run.
    dashboard_process_cpu_seconds: Option<f64>,
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
    let dashboard = if args.dashboard {
        Some(with_dashboard(&s, out.timings.communication_overhead)?)
    } else {
        None
    };
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
        dashboard,
    };
    if args.json {
        crate::print_line(&serde_json::to_string(&f)?)
    } else {
        if let Some(d) = &f.dashboard {
            crate::print_line(&format!(
                "with the dashboard and one page open: runtime {:.3} s, plain loop {:.3} s, \
                 overhead {:+.1}% ({:+.2} points; {} updates sent, {} with the tree; server \
                 thread {:.3} CPU s of {:.1})",
                d.dashboard_runtime_seconds,
                d.dashboard_baseline_seconds,
                100.0 * d.dashboard_overhead,
                d.dashboard_overhead_points,
                d.dashboard_updates,
                d.dashboard_tree_updates,
                d.dashboard_cpu_seconds.unwrap_or(f64::NAN),
                d.dashboard_process_cpu_seconds.unwrap_or(f64::NAN)
            ))?;
        }
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

/// The same run with a dashboard on loopback and one page open: a client that reads the
/// event stream the way a browser does, for the whole run.
fn with_dashboard(s: &Scenario, overhead: f64) -> anyhow::Result<DashboardFigures> {
    use std::io::{BufRead, BufReader, Write};

    let config = qorch_dashboard::DashboardConfig::new(([127, 0, 0, 1], 0).into());
    let dashboard = qorch_dashboard::Dashboard::start(config, qorch_dashboard::Feed::new())?;
    let addr = dashboard.local_addr();
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let page = std::thread::spawn(move || {
        let (mut updates, mut trees) = (0_u64, 0_u64);
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data: ") {
                updates += 1;
                trees += u64::from(!data.contains("\"totals\":null"));
            }
        }
        (updates, trees)
    });
    let start = std::time::Instant::now();
    while dashboard.clients() == 0 {
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the dashboard's client did not connect"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let feed = dashboard.feed().clone();
    let cpu = || {
        (
            thread_cpu_seconds("qorch-dashboard"),
            thread_cpu_seconds(""),
        )
    };
    let (server0, process0) = cpu();
    let out = qorch_sim::run(s, &mut |p| crate::serve_args::forward(&feed, &p))?;
    let (server1, process1) = cpu();
    feed.finish(Ok("done".into()));
    dashboard.stop();
    let (updates, trees) = page.join().unwrap_or((0, 0));
    let t = &out.timings;
    Ok(DashboardFigures {
        dashboard_runtime_seconds: t.runtime_tick_seconds,
        dashboard_baseline_seconds: t.baseline_tick_seconds,
        dashboard_overhead: t.communication_overhead,
        dashboard_overhead_points: 100.0 * (t.communication_overhead - overhead),
        dashboard_updates: updates,
        dashboard_tree_updates: trees,
        dashboard_cpu_seconds: server0.zip(server1).map(|(a, b)| b - a),
        dashboard_process_cpu_seconds: process0.zip(process1).map(|(a, b)| b - a),
    })
}

/// CPU seconds (user and system) of this process's thread named `name`, or of the whole
/// process for `""`, from `/proc` (Linux only).
fn thread_cpu_seconds(name: &str) -> Option<f64> {
    // utime and stime are the 14th and 15th fields, counted after the `(comm)` field.
    let times = |stat: &str| -> Option<f64> {
        let rest = stat.rsplit_once(')')?.1;
        let mut f = rest.split_whitespace().skip(11);
        let utime: f64 = f.next()?.parse().ok()?;
        let stime: f64 = f.next()?.parse().ok()?;
        // The kernel's clock ticks: 100 per second on every Linux build that matters here.
        Some((utime + stime) / 100.0)
    };
    if name.is_empty() {
        return times(&std::fs::read_to_string("/proc/self/stat").ok()?);
    }
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|e| {
        let dir = e.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        (comm.trim() == name)
            .then(|| std::fs::read_to_string(dir.join("stat")).ok())
            .flatten()
            .and_then(|s| times(&s))
    })
}
