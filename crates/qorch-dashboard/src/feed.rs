//! [`Feed`]: what a run pushes into its dashboard (rounds, pools, events, its state), and
//! the bounded history the pages are served from.
//!
//! The feed knows no simulation: `qorch simulate` (or an application) converts what it has
//! into these small types. Everything is an aggregate; nothing grows with the agents, and
//! the histories are bounded ([`ROUNDS_KEPT`], [`POOL_ROUNDS_KEPT`], [`EVENTS_KEPT`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use qorch_runtime::Observer;
use serde::Serialize;

/// Rounds kept (the oldest go first).
pub const ROUNDS_KEPT: usize = 10_000;
/// Rounds of per-pool figures kept.
pub const POOL_ROUNDS_KEPT: usize = 2_000;
/// Events kept on the timeline.
pub const EVENTS_KEPT: usize = 2_000;
/// Sub-solve energies kept per round (evenly picked from the round's).
pub const ENERGIES_KEPT: usize = 128;

/// What the run is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// Building the hierarchy.
    Starting,
    /// Ticks and rounds.
    Running,
    /// It finished; `summary` says how.
    Finished {
        /// A line for people.
        summary: String,
    },
    /// It stopped on an error.
    Failed {
        /// The error.
        error: String,
    },
}

/// What the run is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunInfo {
    /// Its name (the scenario's).
    pub name: String,
    /// Agents.
    pub agents: u64,
    /// Top-level clusters.
    pub clusters: u64,
    /// Rounds it will run (0: unknown).
    pub rounds: u64,
    /// Processes hosting agents.
    pub processes: u64,
}

/// One finished round.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoundPoint {
    /// Its number (from 1).
    pub round: u64,
    /// The allocation's objective.
    pub objective: f64,
    /// An upper bound on it.
    pub bound: f64,
    /// Which bound.
    pub bound_kind: String,
    /// `objective / bound`.
    pub efficiency: f64,
    /// Share of the desired demand not granted.
    pub unmet_demand: f64,
    /// Mean utilization over the kinds.
    pub utilization: f64,
    /// Agents that asked.
    pub agents: u64,
    /// Of which served.
    pub served: u64,
    /// Share of agents whose placement changed.
    pub churn: f64,
    /// Wall-clock seconds of the round.
    pub seconds: f64,
    /// Energies of its sub-solves (QUBO convention, lower is better); at most
    /// [`ENERGIES_KEPT`] are kept.
    pub energies: Vec<f64>,
}

/// One pool after a round.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolSample {
    /// Its name.
    pub name: String,
    /// Capacity per kind.
    pub capacity: Vec<f64>,
    /// Granted per kind.
    pub granted: Vec<f64>,
}

/// The pools after a round.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolPoint {
    /// The round.
    pub round: u64,
    /// The kinds' names.
    pub kinds: Vec<String>,
    /// Every pool.
    pub pools: Vec<PoolSample>,
    /// What was asked for, all pools together, per kind.
    pub demanded: Vec<f64>,
}

/// One process of a run spread over several (a distributed run's node process), as last
/// heard from: the tree shows processes, then their clusters, where no runtime of this
/// process is observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessSample {
    /// Its name.
    pub name: String,
    /// Whether it is alive.
    pub alive: bool,
    /// The top-level clusters it hosts: name and agents.
    pub clusters: Vec<(String, u64)>,
    /// User messages handled so far (a counter: rates are differences).
    pub handled: u64,
    /// Agents' restarts so far.
    pub restarts: u64,
    /// Dead letters so far.
    pub dead_letters: u64,
    /// User messages not handled yet.
    pub in_flight: u64,
}

/// One event on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The round it happened in.
    pub round: u64,
    /// What (a short snake-case word: `agent_panic`, `subcluster_loss`, `node_loss`,
    /// `restarts`, `recluster`, or an application's own).
    pub kind: String,
    /// How many.
    pub count: u64,
    /// A line for people.
    pub detail: String,
    /// Seconds since the dashboard started.
    pub at_seconds: f64,
}

/// A bounded history with absolute indices: `first` is the index of `items[0]`.
#[derive(Debug)]
pub(crate) struct History<T> {
    pub(crate) first: u64,
    pub(crate) items: VecDeque<T>,
    cap: usize,
}

impl<T: Clone> History<T> {
    fn new(cap: usize) -> Self {
        History {
            first: 0,
            items: VecDeque::new(),
            cap,
        }
    }

    fn push(&mut self, x: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
            self.first += 1;
        }
        self.items.push_back(x);
    }

    /// The index after the last item.
    pub(crate) fn end(&self) -> u64 {
        self.first + self.items.len() as u64
    }

    /// The items from absolute index `from` (or the oldest kept).
    pub(crate) fn since(&self, from: u64) -> Vec<T> {
        let skip = from.saturating_sub(self.first) as usize;
        self.items.iter().skip(skip).cloned().collect()
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) info: RunInfo,
    pub(crate) run: RunState,
    pub(crate) rounds: History<RoundPoint>,
    pub(crate) pools: History<PoolPoint>,
    pub(crate) events: History<Event>,
    pub(crate) observer: Option<Observer>,
    /// The latest processes, when they were received, and how many times.
    pub(crate) processes: Option<(Vec<ProcessSample>, Instant)>,
    pub(crate) process_updates: u64,
}

pub(crate) struct Inner {
    pub(crate) state: Mutex<State>,
    pub(crate) started: Instant,
}

/// Where a run pushes what it does; cheap to clone, `Send + Sync`. Each push takes a short
/// lock; open pages read the feed at their own pace (every refresh), so a run never waits
/// for a page.
#[derive(Clone)]
pub struct Feed {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").finish_non_exhaustive()
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// An empty feed: the run is [`RunState::Starting`].
    pub fn new() -> Self {
        Feed {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    info: RunInfo::default(),
                    run: RunState::Starting,
                    rounds: History::new(ROUNDS_KEPT),
                    pools: History::new(POOL_ROUNDS_KEPT),
                    events: History::new(EVENTS_KEPT),
                    observer: None,
                    processes: None,
                    process_updates: 0,
                }),
                started: Instant::now(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
    }

    /// What the run is.
    pub fn info(&self, info: RunInfo) {
        self.change(|s| s.info = info);
    }

    /// The runtime whose tree the dashboard shows (status, agents, mailbox depth, rates).
    pub fn observe(&self, observer: Observer) {
        self.change(|s| s.observer = Some(observer));
    }

    /// The processes of a run spread over several, as last heard from (the tree shows them
    /// where no runtime is [observed](Self::observe)).
    pub fn processes(&self, processes: Vec<ProcessSample>) {
        self.change(|s| {
            s.processes = Some((processes, Instant::now()));
            s.process_updates += 1;
        });
    }

    /// The run is running.
    pub fn running(&self) {
        self.change(|s| s.run = RunState::Running);
    }

    /// A round finished. Its energies are thinned to [`ENERGIES_KEPT`].
    pub fn round(&self, mut point: RoundPoint) {
        point.energies = thin(&point.energies, ENERGIES_KEPT);
        self.change(|s| {
            if s.run == RunState::Starting {
                s.run = RunState::Running;
            }
            s.rounds.push(point);
        });
    }

    /// The pools after a round.
    pub fn pools(&self, point: PoolPoint) {
        self.change(|s| s.pools.push(point));
    }

    /// Something happened (`at_seconds` is filled in here).
    pub fn event(&self, mut event: Event) {
        event.at_seconds = self.inner.started.elapsed().as_secs_f64();
        self.change(|s| s.events.push(event));
    }

    /// The run ended: `Ok(summary)` or `Err(error)`. Open pages say so.
    pub fn finish(&self, result: Result<String, String>) {
        self.change(|s| {
            s.run = match result {
                Ok(summary) => RunState::Finished { summary },
                Err(error) => RunState::Failed { error },
            };
        });
    }

    /// The run's state now.
    pub fn state(&self) -> RunState {
        self.lock().run.clone()
    }

    /// Rounds finished so far.
    pub fn rounds_finished(&self) -> u64 {
        self.lock().rounds.end()
    }
}

/// At most `n` values, evenly picked (the first and last kept).
fn thin(v: &[f64], n: usize) -> Vec<f64> {
    if v.len() <= n {
        return v.to_vec();
    }
    if n < 2 {
        return v[..n].to_vec();
    }
    (0..n).map(|i| v[i * (v.len() - 1) / (n - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_are_bounded_and_keep_absolute_indices() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(i);
        }
        assert_eq!((h.first, h.end()), (2, 5));
        assert_eq!(h.since(0), vec![2, 3, 4]);
        assert_eq!(h.since(4), vec![4]);
        assert!(h.since(5).is_empty());
    }

    #[test]
    fn energies_are_thinned_evenly() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = thin(&v, 5);
        assert_eq!(t, vec![0.0, 249.0, 499.0, 749.0, 999.0]);
        assert_eq!(thin(&[1.0, 2.0], 5), vec![1.0, 2.0]);
    }

    #[test]
    fn a_finished_run_says_how() {
        let f = Feed::new();
        assert_eq!(f.state(), RunState::Starting);
        f.round(RoundPoint {
            round: 1,
            ..RoundPoint::default()
        });
        assert_eq!((f.state(), f.rounds_finished()), (RunState::Running, 1));
        f.finish(Ok("done".into()));
        assert_eq!(
            f.state(),
            RunState::Finished {
                summary: "done".into()
            }
        );
    }
}
