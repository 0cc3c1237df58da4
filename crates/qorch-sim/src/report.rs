//! The report of a run: what `report.json` holds and `qorch simulate --json` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The report of a simulation.
///
/// Every figure is defined in `docs/guide.md` (Metrics). Fields that measure time
/// (`wall_seconds`, `communication_overhead`, `round_latency_seconds`, per-round and
/// per-solver seconds) depend on the machine; with one worker they are left out of the
/// report (`null`, or empty lists, and `timings_omitted` is true) so that the same seed
/// gives the same report byte for byte, and [`Timings`] carries them instead
/// (`timings.json`). A node process killed from outside breaks that: what it did after its
/// last report is unknown (see [`FaultReport`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Worker threads (per process).
    pub workers: usize,
    /// Processes hosting the agents: 1, or the node processes of a distributed run
    /// (`qorch simulate --nats URL --nodes K`).
    pub processes: usize,
    /// One worker: the fields that depend on timing are left out (`null` or empty). This
    /// key replaces `reproducible`, which said no more than this: whether the report is a
    /// function of the scenario also depends on `faults.nodes_killed` being 0.
    pub timings_omitted: bool,
    /// Agents at the start.
    pub agents: usize,
    /// Top-level clusters.
    pub clusters: usize,
    /// Leaf nodes (the sub-clusters that hold agents) at the end.
    pub leaves: usize,
    /// Pools.
    pub pools: usize,
    /// Rounds run.
    pub rounds: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Wall-clock seconds of the whole run (set-up, ticks, rounds, baseline, shutdown).
    pub wall_seconds: Option<f64>,
    /// Mean over rounds of objective / bound.
    pub allocation_efficiency: f64,
    /// Mean over rounds and kinds of granted / capacity.
    pub utilization: f64,
    /// Mean over rounds of granted / capacity, per kind.
    pub utilization_by_kind: BTreeMap<String, f64>,
    /// Mean over rounds of Jain's fairness index of the agents' satisfaction.
    pub fairness: f64,
    /// The allocation policy (`reactive` or `predictive`).
    pub policy: String,
    /// Mean over rounds (after the first) of the share of the demand the agents reported
    /// that the allocation in force (the previous round's grants) did not cover: the demand
    /// left unmet when it came.
    pub unmet_demand: f64,
    /// Mean over rounds of the share of the requested demand that the round did not grant
    /// (under the predictive policy the requests are the forecasts).
    pub request_unmet_demand: f64,
    /// Agent-rounds whose grant in force fell short of the demand reported (in some kind),
    /// summed over the rounds after the first.
    pub sla_violations: u64,
    /// Share of the demands (agent, kind, round) that fell inside the prediction interval
    /// made for them the round before; `null` under the reactive policy.
    pub forecast_coverage: Option<f64>,
    /// Mean over rounds (after the first) of the share of agents whose placement changed.
    pub churn: f64,
    /// Mean absolute percentage error of one-round-ahead demand forecasts (Holt's linear
    /// trend) over a sample of agents.
    pub forecast_error: f64,
    /// Extra wall time of the ticks in the runtime over the same work in a plain loop:
    /// `runtime / plain - 1`.
    pub communication_overhead: Option<f64>,
    /// Each round's latency (collection, solve, allocations sent), seconds.
    pub round_latency_seconds: Vec<f64>,
    /// Message accounting.
    pub messages: Messages,
    /// Share of the agents' messages between agents of different top-level clusters (from
    /// the agents' peers and send rates, not from the sampled observation the re-clustering
    /// works with).
    pub cross_cluster_traffic: CrossTraffic,
    /// Faults injected and what they cost.
    pub faults: FaultReport,
    /// Leaf sizes at the start and at the end.
    pub cluster_sizes: ClusterSizes,
    /// Re-clustering passes.
    pub reclustering: Vec<ReclusterRecord>,
    /// QUBO windows per solver over all rounds.
    pub solver_windows: BTreeMap<String, u64>,
    /// Per round.
    pub per_round: Vec<RoundRecord>,
}

/// Messages handled and where the others went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Messages {
    /// Agent messages sent by the agents' ticks.
    pub sent: u64,
    /// Handled by agents.
    pub handled: u64,
    /// Handled by the plain loop doing the same work (no faults there).
    pub baseline_handled: u64,
    /// Handled by agents per priority lane: control, high, normal, low.
    pub by_priority: BTreeMap<String, u64>,
    /// Undeliverable (their receiver was lost), counted, never dropped silently.
    pub dead_letters: u64,
    /// Agent restarts.
    pub restarts: u64,
    /// `|sent + panics injected - handled - dead letters|`: messages neither handled nor
    /// reported undeliverable (0 when nothing is lost).
    pub unaccounted: u64,
    /// Messages that crossed between node processes (0 in a single-process run).
    pub cross_process: u64,
}

/// Cross-cluster traffic before and after the run's re-clustering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrossTraffic {
    /// At the start (after the scenario's misplacement).
    pub start: f64,
    /// At the end.
    pub end: f64,
}

/// Faults injected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// Agents made to panic.
    pub agent_panics: u64,
    /// Sub-clusters stopped.
    pub subclusters_lost: u64,
    /// Agents lost with them.
    pub agents_lost: u64,
    /// Node processes lost (distributed runs): `node_crash` faults, and nodes killed from
    /// outside.
    pub nodes_lost: u64,
    /// Of which killed from outside (no fault said so), at any point of a tick.
    pub nodes_killed: u64,
    /// Agents restarted on the remaining nodes for them.
    pub agents_restarted: u64,
    /// Messages the lost nodes had accepted and not finished at their last report (their
    /// frames were not acknowledged, so they were delivered again elsewhere). Exact for
    /// `node_crash` faults (a quiet point); for a node killed mid-tick, only what its last
    /// report before the kill said.
    pub in_flight_at_node_loss: u64,
    /// Ticks run again after a node was killed during them (the surviving nodes skip a
    /// tick they finished; the restarted agents resume with the next one).
    pub ticks_rerun: Vec<u64>,
    /// Messages whose fate is unknown because a node was killed mid-tick: what it handled
    /// or sent after its last report cannot be known. Equal to `messages.unaccounted` when
    /// `nodes_killed` > 0, and 0 otherwise (then `unaccounted` is a defect, not a loss).
    pub messages_unknown: u64,
}

/// Leaf sizes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSizes {
    /// At the start, per leaf.
    pub initial: Vec<u32>,
    /// At the end, per leaf (empty leaves left out).
    pub last: Vec<u32>,
}

/// One re-clustering pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReclusterRecord {
    /// After which round.
    pub round: u64,
    /// Agents moved.
    pub moved: u64,
    /// Leaves split.
    pub splits: u64,
    /// Leaves merged into a sibling.
    pub merges: u64,
    /// Share of the messages across top-level clusters, before.
    pub cross_before: f64,
    /// And after.
    pub cross_after: f64,
}

/// One round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Its number.
    pub round: u64,
    /// Agents that asked.
    pub agents: usize,
    /// Of which served.
    pub served: usize,
    /// Objective.
    pub objective: f64,
    /// Bound.
    pub bound: f64,
    /// Objective / bound.
    pub efficiency: f64,
    /// Mean over kinds of granted / capacity.
    pub utilization: f64,
    /// Share of the demand reported at this round that the allocation in force did not
    /// cover (`null` at the first round: nothing was in force).
    pub unmet_demand: Option<f64>,
    /// Share of this round's requested demand that it did not grant.
    pub request_unmet_demand: f64,
    /// Agents whose grant in force fell short of their reported demand (`null` at the first
    /// round).
    pub sla_violations: Option<u64>,
    /// Share of the demands inside the previous round's prediction intervals.
    pub forecast_coverage: Option<f64>,
    /// Jain's index.
    pub fairness: f64,
    /// Share of agents moved.
    pub churn: f64,
    /// Agent messages handled in the ticks before it, per lane (control, high, normal,
    /// low).
    pub messages_by_priority: [u64; 4],
    /// Energies of its sub-solves (QUBO convention: lower is better).
    pub energies: Vec<f64>,
    /// Latency, seconds (`None` with one worker).
    pub seconds: Option<f64>,
}

/// What a run measured in time, and what else depends on the machine's timing
/// (`timings.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Whole run.
    pub wall_seconds: f64,
    /// Ticks in the runtime.
    pub runtime_tick_seconds: f64,
    /// The same ticks in the plain loop.
    pub baseline_tick_seconds: f64,
    /// `runtime / plain - 1`.
    pub communication_overhead: f64,
    /// Each round's latency.
    pub round_latency_seconds: Vec<f64>,
    /// Of which solving.
    pub round_solve_seconds: Vec<f64>,
    /// Of each round's latency: the allocation policy's share (measuring the grants in
    /// force, and the predictive policy's forecasts), seconds.
    pub round_policy_seconds: Vec<f64>,
    /// Seconds per solver.
    pub solver_seconds: BTreeMap<String, f64>,
    /// Setting up the hierarchy and spawning the agents.
    pub setup_seconds: f64,
    /// Protocol letters (heartbeats, barriers, ...) left in mailboxes or outboxes, and
    /// reliable messages unacknowledged, when the runtime stopped (their number depends on
    /// timing; user messages in mailboxes are delivered while stopping).
    pub letters_left_at_shutdown: u64,
    /// Nodes that did not file their shutdown report within the runtime's wait.
    pub nodes_missing_at_shutdown: usize,
}

impl Report {
    /// The report as pretty JSON (what `report.json` holds).
    ///
    /// # Panics
    ///
    /// Never: every field serializes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// A summary table for people.
    #[expect(
        clippy::too_many_lines,
        reason = "one row after another, in the report's order"
    )]
    pub fn summary_table(&self, timings: &Timings) -> String {
        let mut s = String::new();
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<28} {v}");
        };
        let _ = writeln!(
            s,
            "scenario {} (seed {}, {} workers)",
            self.scenario, self.seed, self.workers
        );
        row(
            &mut s,
            "agents / clusters / leaves",
            format!("{} / {} / {}", self.agents, self.clusters, self.leaves),
        );
        row(
            &mut s,
            "rounds / ticks",
            format!("{} / {}", self.rounds, self.ticks),
        );
        row(
            &mut s,
            "wall time",
            format!("{:.2} s", timings.wall_seconds),
        );
        row(
            &mut s,
            "allocation efficiency",
            format!("{:.4}", self.allocation_efficiency),
        );
        row(&mut s, "utilization", format!("{:.3}", self.utilization));
        row(&mut s, "policy", self.policy.clone());
        row(
            &mut s,
            "unmet demand",
            format!(
                "{:.4} (of the demand, against the grants in force; {:.4} of the requests)",
                self.unmet_demand, self.request_unmet_demand
            ),
        );
        row(
            &mut s,
            "SLA violations",
            format!("{} agent-rounds", self.sla_violations),
        );
        if let Some(c) = self.forecast_coverage {
            row(
                &mut s,
                "forecast coverage",
                format!("{:.1}% in the intervals", 100.0 * c),
            );
        }
        row(&mut s, "fairness (Jain)", format!("{:.3}", self.fairness));
        row(&mut s, "churn", format!("{:.3}", self.churn));
        row(
            &mut s,
            "forecast error (MAPE)",
            format!("{:.2}%", self.forecast_error),
        );
        row(
            &mut s,
            "communication overhead",
            format!(
                "{:+.1}% ({:.2} s in the runtime, {:.2} s in a plain loop)",
                100.0 * timings.communication_overhead,
                timings.runtime_tick_seconds,
                timings.baseline_tick_seconds
            ),
        );
        let lat = &timings.round_latency_seconds;
        if !lat.is_empty() {
            let mean = lat.iter().sum::<f64>() / lat.len() as f64;
            let max = lat.iter().copied().fold(0.0, f64::max);
            let policy: f64 = timings.round_policy_seconds.iter().sum();
            row(
                &mut s,
                "round latency",
                format!(
                    "mean {mean:.3} s, max {max:.3} s ({:.1}% in the allocation policy)",
                    100.0 * policy / lat.iter().sum::<f64>().max(1e-12)
                ),
            );
        }
        row(
            &mut s,
            "messages handled",
            format!(
                "{} of {} sent (plain loop: {}), dead letters {}, unaccounted {}",
                self.messages.handled,
                self.messages.sent,
                self.messages.baseline_handled,
                self.messages.dead_letters,
                self.messages.unaccounted
            ),
        );
        row(
            &mut s,
            "cross-cluster traffic",
            format!(
                "{:.3} -> {:.3}",
                self.cross_cluster_traffic.start, self.cross_cluster_traffic.end
            ),
        );
        row(
            &mut s,
            "faults",
            format!(
                "{} agent panics ({} restarts), {} sub-clusters lost ({} agents)",
                self.faults.agent_panics,
                self.messages.restarts,
                self.faults.subclusters_lost,
                self.faults.agents_lost
            ),
        );
        if self.processes > 1 {
            row(&mut s, "node processes", self.processes_line());
        }
        s
    }

    /// The summary's line about the node processes of a distributed run.
    fn processes_line(&self) -> String {
        format!(
            "{} over NATS: {} messages crossed, {} nodes lost ({} killed from outside; {} \
             agents restarted, {} messages in flight, {} of unknown fate)",
            self.processes,
            self.messages.cross_process,
            self.faults.nodes_lost,
            self.faults.nodes_killed,
            self.faults.agents_restarted,
            self.faults.in_flight_at_node_loss,
            self.faults.messages_unknown
        )
    }
}
