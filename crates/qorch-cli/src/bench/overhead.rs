//! `qorch bench overhead`: the runtime's cost over the same agent work in a plain loop, and
//! what metrics add to it: the same run with the Prometheus recorder collecting every
//! series and without a recorder, in one process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args as ClapArgs;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;
use qorch_sim::{Outcome, Scenario};
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
    /// Pairs of runs with metrics on and off (the order alternates between pairs; the
    /// figures are medians). 0: the plain comparison only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=50))]
    metrics_pairs: u32,
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
    /// Pairs of runs with metrics on and off (0: not measured; the `metrics_*` keys below
    /// are then absent).
    metrics_pairs: u32,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    metrics: Option<MetricsFigures>,
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

/// Metrics on against metrics off: each the median over the pairs.
#[derive(Serialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the fields are the JSON keys, flattened beside the others"
)]
struct MetricsFigures {
    /// Overhead over the plain loop with no recorder installed.
    metrics_off_overhead: f64,
    /// Overhead over the plain loop with the Prometheus recorder collecting every series.
    metrics_on_overhead: f64,
    /// Runtime seconds of the ticks, without and with metrics.
    metrics_off_runtime_seconds: f64,
    metrics_on_runtime_seconds: f64,
    /// `100 * (on - off)` overhead, per pair, then the median: percentage points.
    metrics_overhead_points: f64,
    /// CPU seconds of the whole process during each run (user and system, all threads:
    /// setup, ticks, the plain loop, the round), without and with metrics. Less sensitive
    /// to other processes on the machine than wall time.
    metrics_off_cpu_seconds: f64,
    metrics_on_cpu_seconds: f64,
    /// `100 * (on / off - 1)` CPU seconds, per pair, then the median.
    metrics_cpu_percent: f64,
    /// Lines of the Prometheus exposition at the end (proof that the recorder collected).
    metrics_exposition_lines: usize,
}

/// A recorder that forwards to the Prometheus recorder while on and hands out no-op handles
/// while off. Nodes register their handles when they first publish, so a run started while
/// off costs what a run without any recorder costs.
struct Switch {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

/// Runs the scenario `pairs` times with metrics on and off, alternating the order.
fn compare(s: &Scenario, pairs: u32) -> anyhow::Result<MetricsFigures> {
    let inner = crate::metrics_endpoint::builder().build_recorder();
    let handle = inner.handle();
    let switch = Arc::new(Switch {
        on: AtomicBool::new(false),
        inner,
    });
    metrics::set_global_recorder(Arc::clone(&switch))
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        for metrics_on in [pair % 2 == 1, pair % 2 == 0] {
            switch.on.store(metrics_on, Ordering::Relaxed);
            let cpu0 = cpu_seconds();
            let out = qorch_sim::run(s, &mut |_| {})?;
            let cpu = cpu_seconds().zip(cpu0).map_or(f64::NAN, |(b, a)| b - a);
            let t = (
                out.timings.communication_overhead,
                out.timings.runtime_tick_seconds,
                cpu,
            );
            if metrics_on { on.push(t) } else { off.push(t) }
        }
    }
    switch.on.store(false, Ordering::Relaxed);
    let points: Vec<f64> = on
        .iter()
        .zip(&off)
        .map(|(a, b)| 100.0 * (a.0 - b.0))
        .collect();
    let cpu_points: Vec<f64> = on
        .iter()
        .zip(&off)
        .map(|(a, b)| 100.0 * (a.2 / b.2 - 1.0))
        .collect();
    let series = handle
        .render()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    Ok(MetricsFigures {
        metrics_off_overhead: median(off.iter().map(|t| t.0)),
        metrics_on_overhead: median(on.iter().map(|t| t.0)),
        metrics_off_runtime_seconds: median(off.iter().map(|t| t.1)),
        metrics_on_runtime_seconds: median(on.iter().map(|t| t.1)),
        metrics_overhead_points: median(points.into_iter()),
        metrics_off_cpu_seconds: median(off.iter().map(|t| t.2)),
        metrics_on_cpu_seconds: median(on.iter().map(|t| t.2)),
        metrics_cpu_percent: median(cpu_points.into_iter()),
        metrics_exposition_lines: series,
    })
}

/// CPU seconds (user and system) this process has used so far, from `/proc/self/stat`
/// (Linux; in clock ticks of 1/100 s, the `USER_HZ` of Linux builds). `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // pid (comm) state ...: comm may hold spaces, so split after ')'. utime and stime are
    // the 14th and 15th fields, the 12th and 13th after the state.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let mut s = Scenario {
        name: "bench-overhead".into(),
        seed: args.seed,
        workers: args.workers,
        rounds: 1,
        ticks_per_round: args.ticks,
        // The runtime's cost without faults (the default scenario has some).
        faults: Vec::new(),
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
    let out: Outcome = qorch_sim::run(&s, &mut |_| {})?;
    let dashboard = if args.dashboard {
        Some(with_dashboard(&s, out.timings.communication_overhead)?)
    } else {
        None
    };
    let metrics = (args.metrics_pairs > 0)
        .then(|| compare(&s, args.metrics_pairs))
        .transpose()?;
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
        metrics_pairs: args.metrics_pairs,
        metrics,
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
        ))?;
        if let Some(m) = &f.metrics {
            crate::print_line(&format!(
                "metrics ({} pairs, medians): overhead {:+.1}% off, {:+.1}% on: {:+.2} points \
                 ({} exposition lines)",
                f.metrics_pairs,
                100.0 * m.metrics_off_overhead,
                100.0 * m.metrics_on_overhead,
                m.metrics_overhead_points,
                m.metrics_exposition_lines
            ))?;
        }
        Ok(())
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
