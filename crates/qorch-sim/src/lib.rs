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
//! assert!(r.reproducible && r.wall_seconds.is_none());
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
    Behaviour, Clustering, Fault, FaultKind, Pattern, Pools, Scenario, SolverSettings, Topology,
    Workload,
};
pub use simulation::{Outcome, Progress};
pub use workload::{AgentWorkload, Task, burn, uniform};

/// Writes `report.json`, `timings.json`, `scenario.toml` and (with the `plots` feature) the
/// SVG plots into `dir` (created if missing); returns the files written.
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
    let mut files = Vec::new();
    for (name, text) in [
        ("report.json", outcome.report.to_json() + "\n"),
        (
            "timings.json",
            serde_json::to_string_pretty(&outcome.timings).expect("timings serialize") + "\n",
        ),
        ("scenario.toml", scenario.to_toml()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
        files.push(name.to_owned());
    }
    #[cfg(feature = "plots")]
    files.extend(write_plots(dir, &outcome.report, &outcome.timings)?);
    Ok(files)
}
