//! Simulations of qorch: scenarios, workload generators, metrics, reports and plots.
//!
//! A [`Scenario`] (TOML, every field optional) describes the hierarchy, the pools, the mix of
//! agent behaviours, how demand moves (steady, bursty, diurnal, trending), the faults to
//! inject and the solver. [`run`] builds the hierarchy in a [`qorch_runtime`] runtime,
//! spawns the agents, drives ticks (every agent works and sends to its peers) and
//! rebalancing rounds (the optimizer's `EnhancedQuboScheduler` allocates the pools), injects
//! the faults, re-clusters agents by their observed traffic, and runs every tick a second
//! time in a plain loop to measure what the runtime costs. The [`Report`] is what
//! `qorch simulate` writes to `report.json`.
//!
//! # Your own agents
//!
//! What the agents do (the work of their ticks, the tasks they send to their peers, what
//! handling a task costs, their demand) is an [`AgentWorkload`]. [`run`] simulates the
//! built-in one, described by the scenario's `[behaviour]` and `[workload]` sections;
//! [`run_workload`] simulates yours, with the same report, faults and baseline (in one
//! process: distributed runs simulate the built-in model only). See [`AgentWorkload`] for
//! an example, and `examples/simulate_custom.rs`.
//!
//! # Features
//!
//! * `distributed` (default): runs over node processes joined by NATS
//!   (`run_distributed`, `run_node`, through `qorch-net`).
//! * `plots` (default): the SVG plots (`write_plots`, through `plotters`).
//!
//! ```
//! let mut s = qorch_sim::Scenario::default();
//! s.topology.agents = 300;
//! s.topology.clusters = 3;
//! s.rounds = 2;
//! s.workers = 1;
//! s.faults.clear();
//! let out = qorch_sim::run(&s, &mut |_| {}).unwrap();
//! let r = &out.report;
//! assert_eq!((r.agents, r.rounds), (300, 2));
//! assert!(r.allocation_efficiency > 0.5 && r.allocation_efficiency <= 1.0 + 1e-9);
//! // Every message the agents sent was handled, as in the plain loop.
//! assert_eq!(r.messages.handled, r.messages.sent);
//! assert_eq!(r.messages.handled, r.messages.baseline_handled);
//! // One worker: no timing in the report, so the same seed gives the same bytes.
//! assert!(r.timings_omitted && r.wall_seconds.is_none());
//! ```
//!
//! # Determinism
//!
//! Every random choice (agent traits, peers, demand noise, bursts, faults, misplacement,
//! solver seeds) derives from the scenario's seed; the agents' work and demand are functions
//! of (seed, agent, tick), so a restarted agent behaves as the one it replaces; rounds run
//! at fixed points, never on timers. With one worker the report is the same byte for byte
//! (for a custom workload, when it is a function of its arguments too).
//!
//! # Communication overhead
//!
//! Each tick runs again, right after the runtime's, in a plain loop on as many threads as
//! the runtime has workers, agents grouped on threads as the runtime groups them (by
//! cluster), with the same work per tick and per message, and no actors, mailboxes, routing
//! or supervision. The overhead is the runtime's tick time over the loop's, minus one.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod agent;
mod baseline;
#[cfg(feature = "distributed")]
mod distributed;
mod error;
mod local;
mod model;
mod plan;
#[cfg(feature = "plots")]
mod plots;
mod recluster;
mod report;
mod scenario;
mod setup;
mod simulation;
mod sweep;
mod workload;

use std::path::Path;

pub use agent::{SimAgent, SimMsg};
#[cfg(feature = "distributed")]
pub use distributed::{Distributed, SpawnNode, run_distributed, run_node};
pub use error::SimError;
pub use local::{run, run_workload};
#[cfg(feature = "plots")]
pub use plots::write_plots;
pub use report::{
    ClusterSizes, CrossTraffic, FaultReport, Messages, ReclusterRecord, Report, RoundRecord,
    Timings,
};
pub use scenario::{
    AllocationSettings, Behaviour, Clustering, Fault, FaultKind, Pattern, PolicyName, Pools,
    Scenario, SolverSettings, Topology, Workload,
};
pub use simulation::{Outcome, Progress};
#[cfg(feature = "plots")]
pub use sweep::write_sweep_plots;
pub use sweep::{
    RunRecord, Stat, SummaryRow, SweepError, SweepParam, scalars, summarize, write_runs_csv,
    write_summary_csv,
};
pub use workload::{AgentWorkload, Task, burn, uniform};

/// Checks, before a run, that `dir` can take its outputs: creates it if missing and writes
/// (then removes) a probe file, so that a run of hours does not end on an unwritable
/// directory.
///
/// # Errors
///
/// [`SimError::Io`] naming the directory or the probe.
pub fn prepare_output_dir(dir: &Path) -> Result<(), SimError> {
    let io = |path: &Path, source: std::io::Error| SimError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let probe = dir.join(format!(".qorch-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(|e| io(&probe, e))?;
    std::fs::remove_file(&probe).map_err(|e| io(&probe, e))
}

/// Writes `timings.json`, `scenario.toml`, (with the `plots` feature) the SVG plots, and
/// last `report.json` into `dir` (created if missing); returns the files written, in that
/// order.
///
/// Each file is written whole under a temporary name (`.NAME.tmp-PID`), synced and renamed
/// over `NAME`, so a reader never sees a half-written file. A previous run's `report.json`
/// is removed first and the new one is renamed into place last: a `report.json` in `dir`
/// means every other file beside it is from the same run, and that run finished. After a
/// failure, `report.json` is absent and the other files may be from either run.
///
/// # Panics
///
/// Never: timings always serialize.
///
/// # Errors
///
/// [`SimError::Io`] or [`SimError::Plot`] naming the file.
pub fn write_outputs(
    dir: &Path,
    scenario: &Scenario,
    outcome: &Outcome,
) -> Result<Vec<String>, SimError> {
    let io = |path: &Path, source: std::io::Error| SimError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let report = dir.join("report.json");
    match std::fs::remove_file(&report) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&report, e)),
        _ => {}
    }
    let mut files = Vec::new();
    for (name, text) in [
        (
            "timings.json",
            serde_json::to_string_pretty(&outcome.timings).expect("timings serialize") + "\n",
        ),
        ("scenario.toml", {
            // The worker count actually used (the report's), not `0` for "one per core", so
            // that the file reruns the same configuration.
            let mut used = scenario.clone();
            used.workers = outcome.report.workers;
            used.to_toml()
        }),
    ] {
        write_whole(dir, name, &mut |tmp| std::fs::write(tmp, text.as_bytes()))
            .map_err(|(path, e)| io(&path, e))?;
        files.push(name.to_owned());
    }
    #[cfg(feature = "plots")]
    files.extend(write_plots(dir, &outcome.report, &outcome.timings)?);
    let text = outcome.report.to_json() + "\n";
    write_whole(dir, "report.json", &mut |tmp| {
        std::fs::write(tmp, text.as_bytes())
    })
    .map_err(|(path, e)| io(&path, e))?;
    files.push("report.json".to_owned());
    Ok(files)
}

/// Writes `dir/name` whole: `write` fills a temporary file beside it, which is synced and
/// renamed over `name` (removed on failure). The error names the file that failed.
pub(crate) fn write_whole<E>(
    dir: &Path,
    name: &str,
    write: &mut dyn FnMut(&Path) -> Result<(), E>,
) -> Result<(), (std::path::PathBuf, E)>
where
    E: From<std::io::Error>,
{
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let path = dir.join(name);
    let result = write(&tmp)
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(E::from)
        })
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(E::from));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| (path, e))
}
