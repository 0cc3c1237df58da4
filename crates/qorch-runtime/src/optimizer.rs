//! The optimizer: rebalancing rounds on a thread of its own, away from the workers that handle
//! messages.
//!
//! A round: collect one aggregated report per node (every agent's request and placement, and
//! the observed affinity), build the hierarchical allocation problem, solve it with the
//! [`EnhancedQuboScheduler`], send the new allocations down the tree at High priority (agents
//! see them in `on_allocation`), record the changes in the [`ResourceManager`]'s ledger, and
//! keep a summary. Rounds run periodically, when asked, and when triggered (a component
//! failed, utilization skew, unmet demand). Requests that arrive while a round runs are served
//! together by one round after it: a round is never started twice.
//!
//! Plain Rust on a plain thread: no actix here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use qorch_protocol::{Address, AgentId, ClusterId, SubClusterId};
use qorch_resources::{Allocation, ChangeContext, Pool, Reason, ResourceKinds, ResourceManager};
use qorch_scheduler::{
    Affinity, AgentSpec, AllocationProblem, Cluster, CostModel, EnhancedQuboScheduler,
    LevelSummary, ScheduleOutcome, SchedulerConfig, SubCluster,
};
use serde::{Deserialize, Serialize};

use crate::letter::{AllocationBatch, RoundReport};
use crate::status::ComponentStatus;
use crate::{Agent, RuntimeHandle};

/// When the optimizer runs a round by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triggers {
    /// Run a round when a component is newly failed (its agents' resources go back to the
    /// pools).
    pub on_failure: bool,
    /// Run another round when, after one, the utilization of the busiest and the idlest pool
    /// differ by more than this (fraction of capacity).
    pub utilization_skew: Option<f64>,
    /// Run another round when, after one, more than this fraction of the desired demand is
    /// unmet.
    pub unmet_demand: Option<f64>,
    /// How often the status tree is checked for failures.
    pub check_every: Duration,
    /// Least time between two triggered rounds.
    pub min_interval: Duration,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers {
            on_failure: true,
            utilization_skew: None,
            unmet_demand: None,
            check_every: Duration::from_millis(250),
            min_interval: Duration::from_millis(500),
        }
    }
}

/// Settings of the optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// The resource kinds.
    pub kinds: ResourceKinds,
    /// The pools to allocate.
    pub pools: Vec<Pool>,
    /// Migration and communication costs of the objective.
    pub costs: CostModel,
    /// The scheduler's settings (seed, budget, solver policy).
    pub scheduler: SchedulerConfig,
    /// Run a round this often (`None`: only when asked or triggered).
    pub period: Option<Duration>,
    /// Automatic triggers.
    pub triggers: Triggers,
    /// Share of the observed affinity kept from one round to the next (the rest is
    /// forgotten): 0 uses the last round's traffic only.
    pub affinity_memory: f64,
}

// The observed affinity counts messages, while the objective counts resources in units of a
// mean pool (see `AllocationProblem`): before a round, the edges are scaled so that their
// total weight equals the total desired size of the agents that report. `costs.communication`
// then reads as "splitting every pair that talks costs this share of the demand", whatever
// the message rates.

impl OptimizerConfig {
    /// A configuration for these pools, with default costs, scheduler and triggers and no
    /// period.
    pub fn new(kinds: ResourceKinds, pools: Vec<Pool>) -> Self {
        OptimizerConfig {
            kinds,
            pools,
            costs: CostModel::default(),
            scheduler: SchedulerConfig::default(),
            period: None,
            triggers: Triggers::default(),
            affinity_memory: 0.5,
        }
    }
}

/// Why a round ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundReason {
    /// The period elapsed.
    Periodic,
    /// The application asked.
    Requested,
    /// A component failed.
    Failure,
    /// Pools were unevenly used.
    UtilizationSkew,
    /// Too much demand was unmet.
    UnmetDemand,
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// Its number (from 1).
    pub round: u64,
    /// Why it ran.
    pub reason: RoundReason,
    /// Wall-clock seconds from the start of the collection until every agent was told its
    /// allocation.
    pub seconds: f64,
    /// Of which collecting the reports.
    pub collect_seconds: f64,
    /// Of which solving.
    pub solve_seconds: f64,
    /// Agents that asked for resources.
    pub agents: usize,
    /// Of which served.
    pub served: usize,
    /// The objective of the allocation.
    pub objective: f64,
    /// An upper bound on the objective.
    pub bound: f64,
    /// Which bound.
    pub bound_kind: String,
    /// `objective / bound`.
    pub efficiency: f64,
    /// Granted over capacity, per kind, over all pools.
    pub utilization: Vec<f64>,
    /// Busiest pool's utilization minus the idlest's (mean over kinds).
    pub utilization_skew: f64,
    /// Share of the desired demand not granted (all kinds together).
    pub unmet_demand: f64,
    /// Jain's fairness index of the agents' satisfaction.
    pub fairness: f64,
    /// Share of agents whose placement changed since the previous round.
    pub churn: f64,
    /// Affinity edges the problem carried.
    pub affinity_edges: usize,
    /// Per level of the hierarchy.
    pub levels: Vec<LevelSummary>,
    /// Energies of the sub-solves (QUBO convention, lower is better), for plots.
    pub energies: Vec<f64>,
    /// Components failed when the round ran.
    pub failed_components: usize,
}

/// Windows and time spent per solver over all rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SolverStats {
    /// QUBO windows solved.
    pub windows: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// The optimization state, kept by the optimizer and readable through it.
#[derive(Debug, Clone)]
pub struct OptimizationState {
    /// Rounds run.
    pub round: u64,
    /// Every round's summary.
    pub history: Vec<RoundSummary>,
    /// The last round's full result (its grants and, per level, its sub-solves).
    pub last: Option<ScheduleOutcome>,
    /// Per solver, over all rounds.
    pub solvers: BTreeMap<String, SolverStats>,
    /// The current allocation.
    pub allocation: Allocation,
    /// Pools, requests, holdings and the full ledger of changes.
    pub resources: ResourceManager,
    /// The observed affinity graph (undirected, `(low id, high id) -> weight`).
    pub affinity: HashMap<(AgentId, AgentId), f64>,
}

/// Why the optimizer could not run a round.
#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    /// The configuration is invalid.
    #[error("invalid optimizer configuration: {0}")]
    Config(String),
    /// The runtime stopped.
    #[error("the runtime is stopped")]
    Stopped,
    /// A [`Hierarchy`] other than the local runtime failed (a process of a distributed run).
    #[error("the hierarchy failed: {0}")]
    Hierarchy(String),
    /// The scheduler refused the problem.
    #[error("scheduling failed: {0}")]
    Schedule(#[from] qorch_scheduler::ScheduleError),
    /// The scheduler panicked (a bug; the round is abandoned, later rounds still run).
    #[error("the scheduler {0}")]
    Panic(String),
    /// The ledger refused the allocation (a bug: the scheduler's allocations are feasible).
    #[error("ledger: {0}")]
    Ledger(#[from] qorch_resources::ResourceError),
}

/// What optimizer rounds run against: a hierarchy that reports its agents' demand and takes
/// their grants. [`Optimizer::start`] runs on a local runtime ([`RuntimeHandle`]); a
/// distributed run implements it over its transport (the reports and grants of every
/// process), and gets the same rounds, triggers, ledger and summaries.
///
/// Methods block: they are called on the optimizer's own thread.
pub trait Hierarchy: Send + 'static {
    /// Collects every agent's report for round `round`.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Stopped`] (or another error) if the hierarchy cannot answer.
    fn collect(&mut self, round: u64) -> Result<RoundReport, OptimizerError>;

    /// Components (clusters, sub-clusters, processes) that are failed now.
    fn failed_components(&mut self) -> usize;

    /// The node tree: `(address, name, parent)` of every cluster and sub-cluster, parents
    /// first.
    fn nodes(&mut self) -> Vec<(Address, String, Option<Address>)>;

    /// Sends the grants down and waits until every agent has been told.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Stopped`] (or another error) if they cannot be delivered.
    fn deliver(&mut self, batch: AllocationBatch) -> Result<(), OptimizerError>;
}

/// A local runtime as the optimizer's hierarchy, driven from a current-thread executor of
/// the optimizer's own.
struct Local<B: Agent> {
    handle: RuntimeHandle<B>,
    rt: tokio::runtime::Runtime,
}

impl<B: Agent> Hierarchy for Local<B> {
    fn collect(&mut self, round: u64) -> Result<RoundReport, OptimizerError> {
        self.rt
            .block_on(self.handle.round(round))
            .map_err(|_| OptimizerError::Stopped)
    }

    fn failed_components(&mut self) -> usize {
        self.rt.block_on(self.handle.status()).map_or(0, |t| {
            t.components()
                .filter(|c| c.status == ComponentStatus::Failed)
                .count()
        })
    }

    fn nodes(&mut self) -> Vec<(Address, String, Option<Address>)> {
        self.handle.manager().nodes()
    }

    /// The grants travel one level per hop, so one settle pass per level (and one for the
    /// orchestrator).
    fn deliver(&mut self, batch: AllocationBatch) -> Result<(), OptimizerError> {
        self.rt
            .block_on(self.handle.allocate(batch))
            .map_err(|_| OptimizerError::Stopped)?;
        let depth = tree_depth(&self.handle.manager().nodes());
        for _ in 0..=depth {
            self.rt
                .block_on(self.handle.settle())
                .map_err(|_| OptimizerError::Stopped)?;
        }
        Ok(())
    }
}

enum Command {
    Run(
        RoundReason,
        Option<Sender<Result<RoundSummary, Arc<OptimizerError>>>>,
    ),
    Stop,
}

/// The running optimizer: a handle to its thread.
pub struct Optimizer {
    tx: Sender<Command>,
    state: Arc<Mutex<OptimizationState>>,
    thread: Option<JoinHandle<()>>,
}

impl Optimizer {
    /// Starts the optimizer for a runtime.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Config`] for invalid pools or scheduler settings.
    pub fn start<B: Agent>(
        handle: RuntimeHandle<B>,
        config: OptimizerConfig,
    ) -> Result<Optimizer, OptimizerError> {
        let scheduler = EnhancedQuboScheduler::new(config.scheduler.clone())
            .map_err(|e| OptimizerError::Config(e.to_string()))?;
        Self::start_with(handle, config, scheduler)
    }

    /// Starts the optimizer with a scheduler built by the caller (for instance one with a
    /// QAOA sub-solver plugged in, see `EnhancedQuboScheduler::with_qaoa_solver`); the
    /// scheduler's own settings are used, `config.scheduler` is ignored.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Config`] for invalid pools.
    pub fn start_with<B: Agent>(
        handle: RuntimeHandle<B>,
        config: OptimizerConfig,
        scheduler: EnhancedQuboScheduler,
    ) -> Result<Optimizer, OptimizerError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OptimizerError::Config(format!("cannot build its executor: {e}")))?;
        Self::start_on(Local { handle, rt }, config, scheduler)
    }

    /// Starts the optimizer on any [`Hierarchy`] (for instance the processes of a
    /// distributed run); otherwise as [`start_with`](Self::start_with).
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Config`] for invalid pools.
    pub fn start_on<H: Hierarchy>(
        hierarchy: H,
        config: OptimizerConfig,
        scheduler: EnhancedQuboScheduler,
    ) -> Result<Optimizer, OptimizerError> {
        if config.pools.is_empty() {
            return Err(OptimizerError::Config("at least one pool is needed".into()));
        }
        if !(0.0..=1.0).contains(&config.affinity_memory) {
            return Err(OptimizerError::Config(format!(
                "affinity_memory {} must lie in [0, 1]",
                config.affinity_memory
            )));
        }
        let mut resources = ResourceManager::new(&config.kinds);
        let setup = ChangeContext::new(0, 0, Reason::Configuration);
        for p in &config.pools {
            let id = resources
                .add_pool(p.name.clone(), p.kind, &p.capacity, &setup)
                .map_err(|e| OptimizerError::Config(format!("pool {}: {e}", p.id)))?;
            if id != p.id {
                return Err(OptimizerError::Config(format!(
                    "pool ids must be 0, 1, 2, .. in order; found {} at position {}",
                    p.id, id
                )));
            }
        }
        let state = Arc::new(Mutex::new(OptimizationState {
            round: 0,
            history: Vec::new(),
            last: None,
            solvers: BTreeMap::new(),
            allocation: Allocation::new(),
            resources,
            affinity: HashMap::new(),
        }));
        let (tx, rx) = crossbeam_channel::unbounded();
        let worker = Worker {
            hierarchy,
            config,
            scheduler,
            state: Arc::clone(&state),
            started: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("qorch-optimizer".into())
            .spawn(move || {
                let mut worker = worker;
                worker.run(&rx);
            })
            .map_err(|e| {
                OptimizerError::Config(format!("cannot start the optimizer thread: {e}"))
            })?;
        Ok(Optimizer {
            tx,
            state,
            thread: Some(thread),
        })
    }

    /// Runs a round now (or joins the one about to run) and waits for it.
    ///
    /// # Errors
    ///
    /// An [`OptimizerError`] if the round failed or the optimizer stopped.
    pub fn run_round(&self) -> Result<RoundSummary, Arc<OptimizerError>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Command::Run(RoundReason::Requested, Some(tx)))
            .map_err(|_| Arc::new(OptimizerError::Stopped))?;
        rx.recv().map_err(|_| Arc::new(OptimizerError::Stopped))?
    }

    /// Asks for a round without waiting.
    pub fn trigger(&self) {
        let _ = self.tx.send(Command::Run(RoundReason::Requested, None));
    }

    /// Reads the optimization state.
    pub fn with_state<R>(&self, f: impl FnOnce(&OptimizationState) -> R) -> R {
        f(&self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The summaries of every round so far.
    pub fn history(&self) -> Vec<RoundSummary> {
        self.with_state(|s| s.history.clone())
    }

    /// Stops the thread (after the round in progress, if any).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Optimizer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker<H> {
    hierarchy: H,
    config: OptimizerConfig,
    scheduler: EnhancedQuboScheduler,
    state: Arc<Mutex<OptimizationState>>,
    started: Instant,
}

type Reply = Sender<Result<RoundSummary, Arc<OptimizerError>>>;

impl<H: Hierarchy> Worker<H> {
    fn run(&mut self, rx: &Receiver<Command>) {
        let now = Instant::now();
        let mut next_period = self.config.period.map(|p| now + p);
        let mut next_check = now + self.config.triggers.check_every;
        let mut known_failed = 0_usize;
        let mut last_triggered: Option<Instant> = None;
        // The next round to run and everyone waiting for it: requests that arrive while a
        // round runs are served together by the next one.
        let mut pending: Option<(RoundReason, Vec<Reply>)> = None;
        let mut stopping = false;
        loop {
            // 1. Commands: block only when nothing is due.
            let first = if pending.is_some() || stopping {
                None
            } else {
                let wake = next_period.map_or(next_check, |p| p.min(next_check));
                match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                    Ok(cmd) => Some(cmd),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        None
                    }
                }
            };
            for cmd in first.into_iter().chain(rx.try_iter()) {
                match cmd {
                    Command::Run(reason, reply) => {
                        pending.get_or_insert((reason, Vec::new())).1.extend(reply);
                    }
                    Command::Stop => stopping = true,
                }
            }
            // 2. Time-driven rounds.
            let now = Instant::now();
            if !stopping {
                if let Some(p) = next_period
                    && now >= p
                {
                    next_period = self.config.period.map(|d| now + d);
                    pending.get_or_insert((RoundReason::Periodic, Vec::new()));
                }
                if now >= next_check {
                    next_check = now + self.config.triggers.check_every;
                    if self.config.triggers.on_failure {
                        let failed = self.hierarchy.failed_components();
                        if failed > known_failed {
                            tracing::info!(failed, "optimizer: component failure, rebalancing");
                            pending.get_or_insert((RoundReason::Failure, Vec::new()));
                        }
                        known_failed = failed;
                    }
                }
            }
            // 3. The round.
            if let Some((reason, replies)) = pending.take() {
                let result = self.round(reason).map_err(Arc::new);
                for r in replies {
                    let _ = r.send(result.clone());
                }
                if !stopping
                    && let Ok(summary) = &result
                    && let Some(reason) = self.follow_up(summary)
                    && last_triggered
                        .is_none_or(|t| t.elapsed() >= self.config.triggers.min_interval)
                {
                    last_triggered = Some(Instant::now());
                    pending = Some((reason, Vec::new()));
                }
            }
            if stopping && pending.is_none() {
                return;
            }
        }
    }

    fn follow_up(&self, s: &RoundSummary) -> Option<RoundReason> {
        let t = &self.config.triggers;
        if t.unmet_demand.is_some_and(|x| s.unmet_demand > x) {
            Some(RoundReason::UnmetDemand)
        } else if t.utilization_skew.is_some_and(|x| s.utilization_skew > x) {
            Some(RoundReason::UtilizationSkew)
        } else {
            None
        }
    }

    fn round(&mut self, reason: RoundReason) -> Result<RoundSummary, OptimizerError> {
        let t0 = Instant::now();
        let number = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .round
            + 1;
        let report = self.hierarchy.collect(number)?;
        let collect_seconds = t0.elapsed().as_secs_f64();
        let failed_components = self.hierarchy.failed_components();
        let nodes = self.hierarchy.nodes();

        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut affinity = self.update_affinity(&mut st.affinity, &report);
        self.normalize_affinity(&mut affinity, &report);
        let problem = self.problem(&nodes, &report, affinity);
        let previous = st.allocation.clone();
        let t1 = Instant::now();
        // A panic in the scheduler is a bug, but it must not take the optimizer thread (and
        // every later round) with it: it fails this round with an error that says so.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.scheduler.schedule(&problem, Some(&previous))
        }))
        .map_err(|p| OptimizerError::Panic(crate::panic_guard::message(p.as_ref())))??;
        let solve_seconds = t1.elapsed().as_secs_f64();
        let batch = AllocationBatch {
            round: number,
            grants: outcome.grants.clone(),
        };
        // The state lock is not held while the grants travel.
        drop(st);
        self.hierarchy.deliver(batch)?;
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seconds = t0.elapsed().as_secs_f64();

        let metrics = outcome.metrics(&problem, Some(&previous));
        let allocation = outcome.allocation();
        let at_ms = self.started.elapsed().as_millis() as u64;
        let solver = outcome
            .subsolves
            .first()
            .map_or_else(|| "none".to_owned(), |s| s.solver.clone());
        let ctx = ChangeContext::new(number, at_ms, Reason::Rebalance)
            .with_solution(outcome.objective, solver);
        st.resources.apply_allocation(&allocation, &ctx)?;
        for s in &outcome.subsolves {
            for (name, windows, secs) in &s.solver_usage {
                let e = st.solvers.entry(name.clone()).or_default();
                e.windows += windows;
                e.seconds += secs;
            }
        }
        let desired_total: f64 = problem
            .clusters
            .iter()
            .flat_map(cluster_agents)
            .map(|a| a.request.desired.total())
            .sum();
        let unmet_total = metrics.unmet.total();
        let pool_means: Vec<f64> = metrics
            .utilization
            .iter()
            .map(|p| p.fraction.iter().sum::<f64>() / p.fraction.len().max(1) as f64)
            .collect();
        let skew = pool_means.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - pool_means.iter().copied().fold(f64::INFINITY, f64::min);
        let summary = RoundSummary {
            round: number,
            reason,
            seconds,
            collect_seconds,
            solve_seconds,
            agents: outcome.served + outcome.unserved,
            served: outcome.served,
            objective: outcome.objective,
            bound: outcome.bound,
            bound_kind: outcome.bound_kind.clone(),
            efficiency: outcome.efficiency,
            utilization: metrics.overall_utilization.clone(),
            utilization_skew: if skew.is_finite() { skew } else { 0.0 },
            unmet_demand: if desired_total > 0.0 {
                unmet_total / desired_total
            } else {
                0.0
            },
            fairness: metrics.fairness,
            churn: metrics.churn.rate(),
            affinity_edges: problem.affinity.len(),
            levels: outcome.levels.clone(),
            energies: outcome.subsolves.iter().map(|s| s.energy).collect(),
            failed_components,
        };
        st.round = number;
        st.allocation = allocation;
        st.history.push(summary.clone());
        st.last = Some(outcome);
        Ok(summary)
    }

    /// Decays the affinity graph and adds this round's observations; returns the edges among
    /// the reporting agents.
    fn update_affinity(
        &self,
        graph: &mut HashMap<(AgentId, AgentId), f64>,
        report: &RoundReport,
    ) -> Vec<Affinity> {
        let keep = self.config.affinity_memory;
        graph.retain(|_, w| {
            *w *= keep;
            *w >= 0.5
        });
        for &(a, b, w) in &report.affinity {
            if a != b {
                *graph.entry((a.min(b), a.max(b))).or_insert(0.0) += w;
            }
        }
        let present: std::collections::HashSet<AgentId> = report
            .agents
            .iter()
            .filter(|r| r.request.is_some() && r.status != ComponentStatus::Failed)
            .map(|r| r.agent)
            .collect();
        let mut edges: Vec<Affinity> = graph
            .iter()
            .filter(|((a, b), _)| present.contains(a) && present.contains(b))
            .map(|(&(a, b), &weight)| Affinity { a, b, weight })
            .collect();
        edges.sort_by_key(|e| (e.a, e.b));
        edges
    }

    /// Scales the edges so that their total weight equals the reporting agents' total
    /// desired size (in units of a mean pool, as the objective counts it).
    fn normalize_affinity(&self, edges: &mut [Affinity], report: &RoundReport) {
        let kinds = self.config.kinds.len();
        let pools = self.config.pools.len().max(1) as f64;
        let mean_cap: Vec<f64> = (0..kinds)
            .map(|k| {
                self.config
                    .pools
                    .iter()
                    .map(|p| p.capacity.amounts().get(k).copied().unwrap_or(0.0))
                    .sum::<f64>()
                    / pools
            })
            .collect();
        let size: f64 = report
            .agents
            .iter()
            .filter(|r| r.status != ComponentStatus::Failed)
            .filter_map(|r| r.request.as_ref())
            .map(|req| {
                req.desired
                    .amounts()
                    .iter()
                    .zip(&mean_cap)
                    .filter(|(_, c)| **c > 0.0)
                    .map(|(d, c)| d / c)
                    .sum::<f64>()
                    / kinds.max(1) as f64
            })
            .sum();
        let total: f64 = edges.iter().map(|e| e.weight).sum();
        if total > 0.0 && size > 0.0 {
            let scale = size / total;
            for e in edges {
                e.weight *= scale;
            }
        }
    }

    /// The allocation problem of a round: the cluster tree of the runtime, with every
    /// reporting agent under its host.
    fn problem(
        &self,
        nodes: &[(Address, String, Option<Address>)],
        report: &RoundReport,
        affinity: Vec<Affinity>,
    ) -> AllocationProblem {
        let mut agents_of: HashMap<Address, Vec<AgentSpec>> = HashMap::new();
        for r in &report.agents {
            if r.status == ComponentStatus::Failed {
                continue;
            }
            if let Some(request) = &r.request {
                agents_of.entry(r.host).or_default().push(AgentSpec {
                    id: r.agent,
                    request: request.clone(),
                    current: r.pool,
                });
            }
        }
        let mut children: HashMap<Option<Address>, Vec<Address>> = HashMap::new();
        for (addr, _, parent) in nodes {
            children.entry(*parent).or_default().push(*addr);
        }
        let clusters = children
            .get(&None)
            .into_iter()
            .flatten()
            .filter_map(|root| {
                let Address::Cluster(id) = *root else {
                    return None;
                };
                Some(Cluster {
                    id: ClusterId(id.0),
                    agents: agents_of.remove(root).unwrap_or_default(),
                    subclusters: children
                        .get(&Some(*root))
                        .into_iter()
                        .flatten()
                        .map(|c| sub_tree(*c, &children, &mut agents_of))
                        .collect(),
                })
            })
            .collect();
        AllocationProblem {
            kinds: self.config.kinds.clone(),
            pools: self.config.pools.clone(),
            clusters,
            affinity,
            costs: self.config.costs,
        }
    }
}

/// Levels of the node tree (1: clusters only).
fn tree_depth(nodes: &[(Address, String, Option<Address>)]) -> usize {
    let parent: HashMap<Address, Option<Address>> =
        nodes.iter().map(|(a, _, p)| (*a, *p)).collect();
    let mut memo: HashMap<Address, usize> = HashMap::new();
    let mut deepest = 0;
    for (a, _, _) in nodes {
        let mut chain = vec![*a];
        let mut cur = *a;
        let base = loop {
            match parent.get(&cur).copied().flatten() {
                Some(p) => {
                    if let Some(&d) = memo.get(&p) {
                        break d;
                    }
                    chain.push(p);
                    cur = p;
                }
                None => break 0,
            }
        };
        for (i, n) in chain.iter().rev().enumerate() {
            memo.insert(*n, base + i + 1);
        }
        deepest = deepest.max(memo[a]);
    }
    deepest
}

fn cluster_agents(c: &Cluster) -> Vec<&AgentSpec> {
    fn sub<'a>(s: &'a SubCluster, out: &mut Vec<&'a AgentSpec>) {
        out.extend(s.agents.iter());
        for c in &s.subclusters {
            sub(c, out);
        }
    }
    let mut v: Vec<&AgentSpec> = c.agents.iter().collect();
    for s in &c.subclusters {
        sub(s, &mut v);
    }
    v
}

/// The sub-cluster at `addr` with its agents and, recursively, its children.
fn sub_tree(
    addr: Address,
    children: &HashMap<Option<Address>, Vec<Address>>,
    agents_of: &mut HashMap<Address, Vec<AgentSpec>>,
) -> SubCluster {
    let id = match addr {
        Address::SubCluster(s) => s,
        _ => SubClusterId(u32::MAX),
    };
    SubCluster {
        id,
        agents: agents_of.remove(&addr).unwrap_or_default(),
        subclusters: children
            .get(&Some(addr))
            .into_iter()
            .flatten()
            .map(|c| sub_tree(*c, children, agents_of))
            .collect(),
    }
}
