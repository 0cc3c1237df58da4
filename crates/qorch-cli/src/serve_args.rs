//! `--serve` and its companions: the live dashboard of `qorch simulate` (and of `qorch bench
//! overhead --serve`), and what a run's progress becomes on it.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use qorch_dashboard::{
    Dashboard, DashboardConfig, Event, Feed, PoolPoint, PoolSample, ProcessSample, RoundPoint,
    RunInfo, TOKEN_ENV,
};
use qorch_sim::{Progress, Scenario};

/// The dashboard's flags.
#[derive(ClapArgs, Debug, Default)]
pub(crate) struct ServeArgs {
    /// Serve a live dashboard of the run on this address (IP:PORT, a loopback address such
    /// as 127.0.0.1:8080; port 0 picks a free one). The address served is printed on
    /// stderr.
    #[arg(long, value_name = "ADDR")]
    pub(crate) serve: Option<String>,
    /// Allow `--serve` on an address other than loopback; every request must then carry the
    /// token of the `QORCH_DASHBOARD_TOKEN` environment variable.
    #[arg(long, requires = "serve")]
    pub(crate) serve_remote: bool,
    /// Pages served at once (1 to 256); one more is refused (503).
    #[arg(long, value_name = "N", requires = "serve", default_value_t = qorch_dashboard::DEFAULT_MAX_CLIENTS)]
    pub(crate) serve_clients: usize,
    /// Keep serving the dashboard after the run, until Ctrl-C.
    #[arg(long, requires = "serve")]
    pub(crate) keep_serving: bool,
    /// Pause this many milliseconds after each round, to watch a short run (demos, tests).
    #[arg(long, value_name = "MS", requires = "serve", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub(crate) round_pause: Option<u64>,
}

/// A dashboard started for a run.
pub(crate) struct Served {
    pub(crate) dashboard: Dashboard,
    keep: bool,
    pause: Option<Duration>,
}

/// Starts the dashboard of `args`, if any: every error (an address that does not parse, a
/// port in use, a non-local address without the flag or the token) comes before the run.
pub(crate) fn start(
    args: &ServeArgs,
    s: &Scenario,
    processes: usize,
) -> anyhow::Result<Option<Served>> {
    let Some(addr) = &args.serve else {
        return Ok(None);
    };
    let mut config = DashboardConfig::new(qorch_dashboard::parse_addr(addr).context("--serve")?);
    config.allow_remote = args.serve_remote;
    config.max_clients = args.serve_clients;
    config.token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let feed = Feed::new();
    feed.info(RunInfo {
        name: s.name.clone(),
        agents: s.topology.agents as u64,
        clusters: s.topology.clusters as u64,
        rounds: s.total_rounds(),
        processes: processes as u64,
    });
    let dashboard = Dashboard::start(config, feed).context("--serve")?;
    eprintln!("dashboard: http://{}/", dashboard.local_addr());
    Ok(Some(Served {
        dashboard,
        keep: args.keep_serving,
        pause: args.round_pause.map(Duration::from_millis),
    }))
}

impl Served {
    /// What a run's progress shows on the dashboard (and `--round-pause`).
    pub(crate) fn progress(&self, p: &Progress) {
        forward(self.dashboard.feed(), p);
        if let (Progress::Round(_), Some(d)) = (p, self.pause) {
            std::thread::sleep(d);
        }
    }

    /// The run ended: the page says so; then the server stops, or with `--keep-serving`
    /// serves until the process is interrupted (Ctrl-C).
    pub(crate) fn finish(self, result: Result<String, String>) {
        self.dashboard.feed().finish(result);
        if self.keep {
            eprintln!(
                "the run has ended; the dashboard stays at http://{}/ until Ctrl-C",
                self.dashboard.local_addr()
            );
            loop {
                std::thread::park();
            }
        }
        self.dashboard.stop();
    }
}

/// What a run's progress becomes on a dashboard's feed.
pub(crate) fn forward(feed: &Feed, p: &Progress) {
    match p {
        Progress::Runtime(o) => feed.observe(o.clone()),
        Progress::Ready { .. } => feed.running(),
        Progress::Pools(p) => feed.pools(PoolPoint {
            round: p.round,
            kinds: p.kinds.clone(),
            pools: p
                .pools
                .iter()
                .map(|q| PoolSample {
                    name: q.name.clone(),
                    capacity: q.capacity.clone(),
                    granted: q.granted.clone(),
                })
                .collect(),
            demanded: p.demanded.clone(),
        }),
        Progress::Round(r) => feed.round(RoundPoint {
            round: r.round,
            objective: r.objective,
            bound: r.bound,
            bound_kind: r.bound_kind.clone(),
            efficiency: r.efficiency,
            unmet_demand: r.unmet_demand,
            utilization: r.utilization.iter().sum::<f64>() / r.utilization.len().max(1) as f64,
            agents: r.agents as u64,
            served: r.served as u64,
            churn: r.churn,
            seconds: r.seconds,
            energies: r.energies.clone(),
        }),
        Progress::Event(e) => feed.event(Event {
            round: e.round,
            kind: serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            count: e.count,
            detail: e.detail.clone(),
            at_seconds: 0.0,
        }),
        Progress::Processes(ps) => feed.processes(
            ps.iter()
                .map(|p| ProcessSample {
                    name: p.name.clone(),
                    alive: p.alive,
                    clusters: p.clusters.clone(),
                    handled: p.handled,
                    restarts: p.restarts,
                    dead_letters: p.dead_letters,
                    in_flight: p.in_flight,
                })
                .collect(),
        ),
        _ => {}
    }
}
