//! Scenarios: what a simulation runs, read from TOML (every field optional, defaults are the
//! built-in scenario), checked before anything starts.

use std::path::Path;

use qorch_protocol::AgentId;
use qorch_qubo::SolverKind;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// A simulation scenario.
///
/// Every section and field may be left out; what is missing comes from
/// [`Scenario::default`], the built-in scenario `qorch simulate` runs without an argument
/// (10,000 agents in 100 clusters of 4 sub-clusters, 20 pools, 10 rounds), except the
/// faults: a file without `[[faults]]` injects none. Unknown fields are
/// errors, so a typo never passes silently.
///
/// ```
/// let s = qorch_sim::Scenario::from_toml_str(r#"
///     name = "small"
///     rounds = 3
///     [topology]
///     agents = 200
///     clusters = 4
/// "#).unwrap();
/// assert_eq!(s.topology.agents, 200);
/// assert_eq!(s.topology.fanout, 4); // from the default scenario
/// assert!(qorch_sim::Scenario::from_toml_str("[topology]\nagnets = 3").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
    /// Seed of every random choice: agents, workloads, faults, solvers.
    pub seed: u64,
    /// Worker threads of the runtime (and of the baseline loop); 0: one per core. With one
    /// worker the report is reproducible byte for byte.
    pub workers: usize,
    /// Rebalancing rounds.
    pub rounds: u64,
    /// Simulated duration in ticks instead of rounds: when set, the run has
    /// `ceil(duration_ticks / ticks_per_round)` rounds (`rounds` is then ignored).
    pub duration_ticks: Option<u64>,
    /// Simulated ticks between two rounds (each tick: every agent works and sends).
    pub ticks_per_round: u64,
    /// Clusters and agents.
    pub topology: Topology,
    /// Pools and their capacities.
    pub pools: Pools,
    /// What agents do.
    pub behaviour: Behaviour,
    /// How demand moves over time.
    pub workload: Workload,
    /// Faults injected during the run (`[[faults]]` tables in TOML). A file without any has
    /// none; the built-in default scenario has two (see [`Scenario::default`]).
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Solver settings.
    pub solver: SolverSettings,
    /// Dynamic re-clustering by observed affinity.
    pub clustering: Clustering,
    /// What the rounds allocate for: the demand reported now, or its forecast.
    pub allocation: AllocationSettings,
}

/// The hierarchy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topology {
    /// Agents in all.
    pub agents: usize,
    /// Top-level clusters.
    pub clusters: usize,
    /// Levels of sub-clusters below each cluster (0: agents live in the clusters).
    pub depth: usize,
    /// Sub-clusters per node on each level.
    pub fanout: usize,
    /// Share of agents that start in a random other leaf than the one their peers live in
    /// (re-clustering by observed affinity brings them back).
    pub misplaced: f64,
}

/// The pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pools {
    /// Number of pools.
    pub count: usize,
    /// Resource kinds.
    pub kinds: Vec<String>,
    /// Desired demand at the start over total capacity, per kind (1.0: demand fills the
    /// pools exactly). Capacities are scaled from the agents' demand to meet it, unless
    /// `capacity` is given.
    pub load: f64,
    /// The mean capacity of a pool, per kind (each pool's is jittered around it); when
    /// missing, capacities follow from `load`.
    pub capacity: Option<Vec<f64>>,
    /// Pools differ in size: each pool's capacity is scaled by a factor drawn uniformly in
    /// `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
}

/// The mix of agent behaviours and the work they do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Share of compute agents (cpu-heavy, few messages, heavy ticks).
    pub compute: f64,
    /// Share of chatty agents (bandwidth-heavy, many messages).
    pub chatty: f64,
    /// Share of idle agents (small memory demand, rare messages).
    pub idle: f64,
    /// Work units of one message handled (one unit: one step of a dependent
    /// multiply-xorshift chain, about a nanosecond).
    pub message_work: u32,
    /// Work units of a compute agent's tick (a quarter for the others).
    pub tick_work: u32,
    /// Fixed peers each agent talks to.
    pub partners: usize,
    /// Share of an agent's peers in its own sub-cluster (the rest anywhere).
    pub locality: f64,
}

/// A demand pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Constant, with noise.
    Steady,
    /// Occasional bursts of a few ticks.
    Bursty,
    /// A sine wave (a day is `period_ticks`), each agent with its own phase.
    Diurnal,
    /// Linear growth (or decline).
    Trending,
}

/// How demand moves: each agent follows one pattern, drawn from the mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Share of steady agents.
    pub steady: f64,
    /// Share of bursty agents.
    pub bursty: f64,
    /// Share of diurnal agents.
    pub diurnal: f64,
    /// Share of trending agents.
    pub trending: f64,
    /// Relative noise of every agent's demand, per tick.
    pub noise: f64,
    /// Length of a diurnal cycle, in ticks.
    pub period_ticks: u64,
    /// Relative amplitude of the diurnal wave.
    pub amplitude: f64,
    /// Probability that a bursty agent starts a burst on a tick.
    pub burst_probability: f64,
    /// Demand multiplier during a burst.
    pub burst_factor: f64,
    /// Length of a burst, in ticks.
    pub burst_ticks: u64,
    /// Relative change of a trending agent's demand per tick (its sign drawn per agent:
    /// two in three grow).
    pub trend: f64,
    /// How far apart the diurnal agents' phases lie, as a share of a day: 1 spreads them over
    /// the whole day (the total stays about flat), 0 puts every agent in phase (the total
    /// peaks once a day); the default, 0.25, makes a daily peak that crosses the pools'
    /// capacity at the default load.
    pub phase_spread: f64,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `count` random agents panic while handling a message (and are restarted by their
    /// cluster, which hands the message to the fresh instance).
    AgentPanic,
    /// `count` random sub-clusters (clusters when the depth is 0) stop at once, as if their
    /// process crashed; they are detected by missing heartbeats, marked Failed, and their
    /// resources go back to the pools in the next round.
    SubclusterLoss,
    /// `count` node processes of a distributed run (`qorch simulate --nats`) die on the
    /// spot, without a goodbye; missing heartbeats reveal it, their clusters are marked
    /// Failed, and their agents restart on the remaining nodes from their last state. Only
    /// in distributed runs, and at least one node must survive.
    NodeCrash,
}

/// A fault injected before a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Before which round (1-based: the fault strikes during the ticks that precede it).
    pub round: u64,
    /// What happens.
    pub kind: FaultKind,
    /// How many agents or sub-clusters.
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

/// Solver settings of the optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolverSettings {
    /// `default` (tabu for windows, decomposition for large ones), one of the QUBO solvers
    /// (`sa`, `pt`, `tabu`, `descent`, `exact`, `decompose`, `hybrid`, `icm`, `pa`) for every
    /// window, or `qaoa` (QAOA on the statevector for windows up to `qaoa_max_vars`, the
    /// default otherwise).
    pub name: String,
    /// The scheduler's work budget per option (see `SchedulerConfig::effort`).
    pub effort: f64,
    /// Largest QUBO window given to QAOA with `name = "qaoa"`.
    pub qaoa_max_vars: usize,
    /// Cost of moving an agent, per unit of its desired size.
    pub migration_cost: f64,
    /// Cost of splitting a pair of agents that talk, per unit of affinity.
    pub communication_cost: f64,
}

/// Dynamic re-clustering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Clustering {
    /// Re-cluster after every this many rounds (0: never).
    pub every: u64,
    /// A leaf larger than this many times the mean leaf size is split.
    pub split_above: f64,
    /// Two sibling leaves smaller than this many times the mean together are merged.
    pub merge_below: f64,
}

/// The built-in default scenario (`scenarios/default.toml`): 10,000 agents in 100 clusters
/// for 10 rounds, with a daily peak (a day of 10 ticks) that crosses the pools' capacity, a
/// wave of 20 agent panics before round 3 and a sub-cluster lost before round 6.
impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".to_owned(),
            seed: 1,
            workers: 0,
            rounds: 10,
            duration_ticks: None,
            ticks_per_round: 1,
            topology: Topology::default(),
            pools: Pools::default(),
            behaviour: Behaviour::default(),
            workload: Workload::default(),
            // A panic wave and a lost sub-cluster, so that the default run shows recovery.
            faults: vec![
                Fault {
                    round: 3,
                    kind: FaultKind::AgentPanic,
                    count: 20,
                },
                Fault {
                    round: 6,
                    kind: FaultKind::SubclusterLoss,
                    count: 1,
                },
            ],
            solver: SolverSettings::default(),
            clustering: Clustering::default(),
            allocation: AllocationSettings::default(),
        }
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            agents: 10_000,
            clusters: 100,
            depth: 1,
            fanout: 4,
            misplaced: 0.1,
        }
    }
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            count: 20,
            kinds: vec!["cpu".into(), "memory".into(), "bandwidth".into()],
            load: 0.9,
            capacity: None,
            jitter: 0.3,
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            compute: 0.5,
            chatty: 0.3,
            idle: 0.2,
            message_work: 20_000,
            tick_work: 200_000,
            partners: 6,
            locality: 0.8,
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            steady: 0.3,
            bursty: 0.1,
            diurnal: 0.5,
            trending: 0.1,
            noise: 0.05,
            period_ticks: 10,
            amplitude: 0.35,
            burst_probability: 0.02,
            burst_factor: 2.0,
            burst_ticks: 4,
            trend: 0.01,
            phase_spread: 0.25,
        }
    }
}

impl Default for SolverSettings {
    fn default() -> Self {
        SolverSettings {
            name: "default".to_owned(),
            effort: 40.0,
            qaoa_max_vars: 12,
            migration_cost: 0.1,
            communication_cost: 0.05,
        }
    }
}

impl Default for Clustering {
    fn default() -> Self {
        Clustering {
            every: 3,
            split_above: 2.0,
            merge_below: 0.5,
        }
    }
}

/// The allocation policy of the rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyName {
    /// Allocate for the demand each agent reports at the round (the baseline).
    #[default]
    Reactive,
    /// Allocate for the forecast of the next round's demand: the upper end of a prediction
    /// interval at `level` (Holt's linear trend per agent and kind), at most `max_margin`
    /// above the point forecast; agents with too short a history stay reactive.
    Predictive,
}

impl PolicyName {
    /// `reactive` or `predictive`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Reactive => "reactive",
            PolicyName::Predictive => "predictive",
        }
    }
}

impl std::str::FromStr for PolicyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reactive" => Ok(PolicyName::Reactive),
            "predictive" => Ok(PolicyName::Predictive),
            other => Err(format!(
                "unknown allocation policy '{}': expected 'reactive' or 'predictive'",
                qorch_qubo::quote(other)
            )),
        }
    }
}

/// The `[allocation]` section: what the rounds allocate for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocationSettings {
    /// `reactive` (default) or `predictive`.
    pub policy: PolicyName,
    /// Level of the prediction interval whose upper end the predictive policy allocates
    /// for, in (0, 1).
    pub level: f64,
    /// Largest margin above the point forecast, as a fraction of it (0 to 10).
    pub max_margin: f64,
    /// Share of the pools' capacity the predictive requests may fill with head-room, in
    /// (0, 1].
    pub fill: f64,
    /// Share of each pool's capacity the predictive grants may fill once the round is
    /// solved, topped up toward each agent's head-room from the room the placement left, in
    /// [0, 1] (0: no top-up).
    pub top_up: f64,
}

impl Default for AllocationSettings {
    /// The reactive policy, with the optimizer's default predictive settings.
    fn default() -> Self {
        let p = qorch_optimizer::Predictive::default();
        AllocationSettings {
            policy: PolicyName::Reactive,
            level: p.safety.level,
            max_margin: p.safety.max_margin,
            fill: p.fill,
            top_up: p.top_up,
        }
    }
}

impl AllocationSettings {
    /// The optimizer's policy for these settings.
    pub fn policy(&self) -> qorch_optimizer::AllocationPolicy {
        match self.policy {
            PolicyName::Reactive => qorch_optimizer::AllocationPolicy::Reactive,
            PolicyName::Predictive => {
                qorch_optimizer::AllocationPolicy::Predictive(self.predictive())
            }
        }
    }

    /// The predictive policy's settings these give (also checked under the reactive policy,
    /// so that a sweep over the policy fails before its first run, not halfway).
    fn predictive(&self) -> qorch_optimizer::Predictive {
        let mut p = qorch_optimizer::Predictive::with_level(self.level);
        p.safety.max_margin = self.max_margin;
        p.fill = self.fill;
        p.top_up = self.top_up;
        p
    }
}

/// The solver a scenario names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SolverChoice {
    /// The scheduler's own policy.
    Default,
    /// One QUBO solver for every window.
    Qubo(SolverKind),
    /// QAOA for small windows.
    Qaoa,
}

impl SolverSettings {
    pub(crate) fn choice(&self) -> Result<SolverChoice, SimError> {
        match self.name.to_ascii_lowercase().as_str() {
            "default" => Ok(SolverChoice::Default),
            "qaoa" => Ok(SolverChoice::Qaoa),
            other => other.parse().map(SolverChoice::Qubo).map_err(|_| {
                SimError::Scenario(format!(
                    "solver.name: unknown solver `{}`: expected default, qaoa, sa, pt, tabu, \
                     descent, exact, decompose, hybrid, icm or pa",
                    self.name
                ))
            }),
        }
    }
}

impl Scenario {
    /// Parses a scenario from TOML text and checks it.
    ///
    /// # Errors
    ///
    /// [`SimError::Toml`] for malformed TOML or unknown fields (with the line),
    /// [`SimError::Scenario`] for values out of range.
    pub fn from_toml_str(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Toml(shorten(e)))?;
        s.validate()?;
        Ok(s)
    }

    /// Reads a scenario file.
    ///
    /// # Errors
    ///
    /// [`SimError::Io`] if the file cannot be read, otherwise as
    /// [`from_toml_str`](Self::from_toml_str).
    pub fn from_path(path: &Path) -> Result<Scenario, SimError> {
        use std::io::Read as _;
        let io = |source| SimError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(Self::MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > Self::MAX_FILE_BYTES {
            return Err(SimError::Scenario(format!(
                "{} is larger than the limit of {} bytes for a scenario",
                path.display(),
                Self::MAX_FILE_BYTES
            )));
        }
        Self::from_toml_str(&text)
    }

    /// The largest scenario file read (1 MiB; the built-in scenario is under 2 KiB).
    pub const MAX_FILE_BYTES: u64 = 1 << 20;
    /// The most agents: 10 million. Each needs about [`BYTES_PER_AGENT`](Self::BYTES_PER_AGENT)
    /// (checked against the memory available when a run starts).
    pub const MAX_AGENTS: usize = 10_000_000;
    /// Memory per agent of a local run, an estimate used before allocating: the runtime's
    /// slot and mailbox (under 1 KiB), the optimizer's request, grant and forecast, the
    /// model's state and the report's per-agent figures.
    pub const BYTES_PER_AGENT: u64 = 4096;
    /// The most pools: 100,000.
    pub const MAX_POOLS: usize = 100_000;
    /// The most resource kinds: 64.
    pub const MAX_KINDS: usize = 64;
    /// The most rounds, ticks per round, and `duration_ticks`: 10^6.
    pub const MAX_ROUNDS: u64 = 1_000_000;
    /// The most agent-ticks (agents x rounds x ticks per round): 10^12, at least a day of
    /// work at the runtime's pace of about 10^7 handled ticks a second.
    pub const MAX_AGENT_TICKS: u64 = 1_000_000_000_000;
    /// The largest capacity amount of a pool: `1e15`. Capacities are summed over up to
    /// [`MAX_POOLS`](Self::MAX_POOLS) pools and scaled by the load and the jitter, which
    /// stays far below `f64::MAX` (`1e308` became infinite and was refused by the optimizer
    /// with a confusing message).
    pub const MAX_CAPACITY: f64 = 1e15;
    /// The most work units of a message or a tick: 10^7 (about 10 ms).
    pub const MAX_WORK: u32 = 10_000_000;

    /// Memory per node of the tree (cluster or sub-cluster) of a local run, an estimate used
    /// before allocating: the node's priority mailbox, its tables and its share of the
    /// optimizer's tree. Measured: `qorch simulate scenarios/scaling.toml --agents 100000
    /// --rounds 1` peaks at 258 MB with 100 clusters (500 nodes) and 645 MB with 2,000
    /// (10,000 nodes), about 41 KiB a node; 48 KiB leaves room. (It was 460 KiB while a
    /// mailbox's lanes allocated all their slots up front.)
    pub const BYTES_PER_NODE: u64 = 48 << 10;

    /// The nodes of the tree: `clusters * (1 + fanout + ... + fanout^depth)`.
    pub fn nodes(&self) -> usize {
        let t = &self.topology;
        let mut level = t.clusters;
        let mut total = t.clusters;
        for _ in 0..t.depth {
            level = level.saturating_mul(t.fanout);
            total = total.saturating_add(level);
        }
        total
    }

    /// The memory a local run of this scenario needs, by
    /// [`BYTES_PER_AGENT`](Self::BYTES_PER_AGENT) and
    /// [`BYTES_PER_NODE`](Self::BYTES_PER_NODE).
    pub fn memory_bytes(&self) -> u64 {
        (self.topology.agents as u64)
            .saturating_mul(Self::BYTES_PER_AGENT)
            .saturating_add((self.nodes() as u64).saturating_mul(Self::BYTES_PER_NODE))
    }

    /// Refuses a scenario whose agents and nodes need more memory than `available` bytes.
    ///
    /// # Errors
    ///
    /// [`SimError::Scenario`] stating the bytes needed, and how much of them the agents and
    /// the nodes take.
    pub fn check_memory(&self, available: Option<u64>) -> Result<(), SimError> {
        let needed = self.memory_bytes();
        match available {
            Some(available) if needed > available => Err(SimError::Scenario(format!(
                "{} agents and {} cluster nodes need about {needed} bytes ({} per agent, {} per \
                 node), more than the {available} bytes of memory available; lower \
                 topology.agents, or topology.clusters, fanout or depth",
                self.topology.agents,
                self.nodes(),
                Self::BYTES_PER_AGENT,
                Self::BYTES_PER_NODE
            ))),
            _ => Ok(()),
        }
    }

    /// The scenario as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The number of worker threads this scenario runs with (0 resolved to the cores).
    pub fn worker_threads(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        } else {
            self.workers
        }
    }

    /// The rounds the run has: `rounds`, or what `duration_ticks` makes.
    pub fn total_rounds(&self) -> u64 {
        match self.duration_ticks {
            Some(d) => d.div_ceil(self.ticks_per_round.max(1)),
            None => self.rounds,
        }
    }

    /// Leaves (the nodes that hold agents): `clusters * fanout^depth`.
    pub fn leaves(&self) -> usize {
        let t = &self.topology;
        (0..t.depth).fold(t.clusters, |n, _| n.saturating_mul(t.fanout))
    }

    /// The leaf (0-based, in creation order: cluster by cluster, sub-clusters depth first)
    /// that agent `agent` is spawned in. Agents are spread evenly over the leaves in id
    /// order; a share `topology.misplaced` of them is then moved away from it, and
    /// re-clustering moves agents again, so this is where an agent belongs, not where it is.
    ///
    /// ```
    /// use qorch_protocol::AgentId;
    /// let mut s = qorch_sim::Scenario::default();
    /// (s.topology.agents, s.topology.clusters, s.topology.depth) = (10, 3, 0);
    /// let leaves: Vec<u32> = (0..10).map(|a| s.home_leaf(AgentId(a))).collect();
    /// assert_eq!(leaves, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    /// assert_eq!(s.home_agents(1), 4..7);
    /// ```
    pub fn home_leaf(&self, agent: AgentId) -> u32 {
        home_leaf(self.topology.agents as u32, self.leaves() as u32, agent.0)
    }

    /// The agents spawned in leaf `leaf` (see [`home_leaf`](Self::home_leaf)): a range of
    /// ids, empty past the last leaf.
    pub fn home_agents(&self, leaf: u32) -> std::ops::Range<u32> {
        let leaves = self.leaves() as u32;
        if leaf >= leaves {
            return 0..0;
        }
        let (first, len) = home_range(self.topology.agents as u32, leaves, leaf);
        first..first + len
    }

    /// Why the scenario's re-clustering never runs, if it cannot: it runs after every
    /// `clustering.every` rounds, never after the last round.
    pub fn clustering_note(&self) -> Option<String> {
        let (every, rounds) = (self.clustering.every, self.total_rounds());
        if every == 0 {
            Some("off (clustering.every = 0)".to_owned())
        } else if every >= rounds {
            Some(format!(
                "never ran: clustering.every = {every} needs more than {every} rounds, and the \
                 run has {rounds}"
            ))
        } else {
            None
        }
    }

    /// Checks every value; the message names the field and the range.
    ///
    /// # Errors
    ///
    /// [`SimError::Scenario`] naming the first field out of range.
    #[allow(
        clippy::too_many_lines,
        reason = "one check per field, in the file's order"
    )]
    #[expect(
        clippy::too_many_lines,
        reason = "one check after another, in the order of the file's sections"
    )]
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Scenario(m));
        let t = &self.topology;
        if t.agents == 0 {
            return bad("topology.agents must be at least 1".into());
        }
        if t.agents > Self::MAX_AGENTS {
            return bad(format!(
                "topology.agents {} is above the limit of {} (at about {} bytes each)",
                t.agents,
                Self::MAX_AGENTS,
                Self::BYTES_PER_AGENT
            ));
        }
        if t.clusters == 0 {
            return bad("topology.clusters must be at least 1".into());
        }
        if t.depth > 0 && t.fanout == 0 {
            return bad("topology.fanout must be at least 1 when depth > 0".into());
        }
        if !(0.0..=1.0).contains(&t.misplaced) {
            return bad(format!(
                "topology.misplaced must lie in [0, 1], got {}",
                t.misplaced
            ));
        }
        if t.depth > 8 {
            return bad(format!(
                "topology.depth {} is above the limit of 8",
                t.depth
            ));
        }
        let leaves = self.leaves();
        if leaves > t.agents {
            return bad(format!(
                "the topology has {leaves} leaf nodes (clusters x fanout^depth) for {} agents: \
                 every node needs an agent at least; lower clusters, fanout or depth",
                t.agents
            ));
        }
        if leaves > 1_000_000 {
            return bad(format!(
                "{leaves} leaf nodes is above the limit of 1,000,000"
            ));
        }
        if !(0.0..=1.0).contains(&self.workload.phase_spread) {
            return bad(format!(
                "workload.phase_spread must lie in [0, 1], got {}",
                self.workload.phase_spread
            ));
        }
        let a = &self.allocation;
        // The scenario allows a narrower margin than the optimizer; the optimizer's own
        // checks name the other settings (`allocation.` + its message).
        if !(0.0..=10.0).contains(&a.max_margin) {
            return bad(format!(
                "allocation.max_margin must lie in [0, 10], got {}",
                a.max_margin
            ));
        }
        if let Err(e) = a.predictive().validate() {
            return bad(format!("allocation.{e}"));
        }
        if self.rounds == 0 {
            return bad("rounds must be at least 1".into());
        }
        if self.duration_ticks == Some(0) {
            return bad("duration_ticks must be at least 1".into());
        }
        if self.ticks_per_round == 0 {
            return bad("ticks_per_round must be at least 1".into());
        }
        for (name, v) in [
            ("rounds", self.rounds),
            ("ticks_per_round", self.ticks_per_round),
            ("duration_ticks", self.duration_ticks.unwrap_or(1)),
        ] {
            if v > Self::MAX_ROUNDS {
                return bad(format!(
                    "{name} {v} is above the limit of {} (the report keeps a summary per round)",
                    Self::MAX_ROUNDS
                ));
            }
        }
        let agent_ticks = (t.agents as u64)
            .saturating_mul(self.total_rounds())
            .saturating_mul(self.ticks_per_round);
        if agent_ticks > Self::MAX_AGENT_TICKS {
            return bad(format!(
                "{} agents for {} rounds of {} ticks are {agent_ticks} agent-ticks, above the \
                 limit of {:e} (a run of days)",
                t.agents,
                self.total_rounds(),
                self.ticks_per_round,
                Self::MAX_AGENT_TICKS as f64
            ));
        }
        for (name, v) in [
            ("behaviour.message_work", self.behaviour.message_work),
            ("behaviour.tick_work", self.behaviour.tick_work),
        ] {
            if v > Self::MAX_WORK {
                return bad(format!(
                    "{name} {v} is above the limit of {} (about 10 ms of work)",
                    Self::MAX_WORK
                ));
            }
        }
        if self.workers > 1024 {
            return bad(format!(
                "workers {} is above the limit of 1024",
                self.workers
            ));
        }
        let p = &self.pools;
        if p.count == 0 {
            return bad("pools.count must be at least 1".into());
        }
        if p.kinds.is_empty() {
            return bad("pools.kinds must name at least one resource kind".into());
        }
        if p.count > Self::MAX_POOLS {
            return bad(format!(
                "pools.count {} is above the limit of {} (every agent's request is weighed \
                 against every pool it may use)",
                p.count,
                Self::MAX_POOLS
            ));
        }
        if p.kinds.len() > Self::MAX_KINDS {
            return bad(format!(
                "pools.kinds has {} kinds, above the limit of {}",
                p.kinds.len(),
                Self::MAX_KINDS
            ));
        }
        let mut names = p.kinds.clone();
        names.sort();
        names.dedup();
        if names.len() != p.kinds.len() {
            return bad(format!("pools.kinds has duplicates: {:?}", p.kinds));
        }
        if !(p.load.is_finite() && p.load > 0.0 && p.load <= 100.0) {
            return bad(format!("pools.load must lie in (0, 100], got {}", p.load));
        }
        if let Some(c) = &p.capacity {
            if c.len() != p.kinds.len() {
                return bad(format!(
                    "pools.capacity has {} amounts for {} kinds ({:?})",
                    c.len(),
                    p.kinds.len(),
                    p.kinds
                ));
            }
            if let Some(x) = c.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return bad(format!(
                    "pools.capacity amounts must be finite and positive, got {x}"
                ));
            }
            if let Some(x) = c.iter().find(|x| **x > Self::MAX_CAPACITY) {
                return bad(format!(
                    "pools.capacity amount {x:e} is above the limit of {:e} (sums over pools \
                     and their jitter must stay finite)",
                    Self::MAX_CAPACITY
                ));
            }
        }
        if !(0.0..1.0).contains(&p.jitter) {
            return bad(format!("pools.jitter must lie in [0, 1), got {}", p.jitter));
        }
        let b = &self.behaviour;
        shares(
            "behaviour",
            &[
                ("compute", b.compute),
                ("chatty", b.chatty),
                ("idle", b.idle),
            ],
        )?;
        if !(0.0..=1.0).contains(&b.locality) {
            return bad(format!(
                "behaviour.locality must lie in [0, 1], got {}",
                b.locality
            ));
        }
        if b.partners > 64 {
            return bad(format!(
                "behaviour.partners {} is above the limit of 64",
                b.partners
            ));
        }
        let w = &self.workload;
        shares(
            "workload",
            &[
                ("steady", w.steady),
                ("bursty", w.bursty),
                ("diurnal", w.diurnal),
                ("trending", w.trending),
            ],
        )?;
        for (name, v, hi) in [
            ("noise", w.noise, 0.5),
            ("amplitude", w.amplitude, 0.95),
            ("burst_probability", w.burst_probability, 1.0),
            ("trend", w.trend, 0.5),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return bad(format!("workload.{name} must lie in [0, {hi}], got {v}"));
            }
        }
        if !(w.burst_factor.is_finite() && (1.0..=100.0).contains(&w.burst_factor)) {
            return bad(format!(
                "workload.burst_factor must lie in [1, 100], got {}",
                w.burst_factor
            ));
        }
        if w.period_ticks == 0 {
            return bad("workload.period_ticks must be at least 1".into());
        }
        for (i, f) in self.faults.iter().enumerate() {
            if f.round == 0 || f.round > self.total_rounds() {
                return bad(format!(
                    "faults[{i}].round {} must lie in 1..={} (the scenario's rounds)",
                    f.round,
                    self.total_rounds()
                ));
            }
            let limit = match f.kind {
                FaultKind::AgentPanic => t.agents,
                FaultKind::SubclusterLoss => leaves.saturating_sub(1),
                // Checked against the number of nodes when a distributed run starts.
                FaultKind::NodeCrash => usize::MAX,
            };
            if f.count > limit {
                return bad(format!(
                    "faults[{i}]: {} {:?} faults, but only {limit} can be injected (at least \
                     one leaf must survive)",
                    f.count, f.kind
                ));
            }
        }
        let s = &self.solver;
        s.choice()?;
        if !(s.effort.is_finite() && (0.0..=1e6).contains(&s.effort)) {
            return bad(format!(
                "solver.effort must lie in [0, 1e6], got {}",
                s.effort
            ));
        }
        if s.qaoa_max_vars == 0 || s.qaoa_max_vars > 24 {
            return bad(format!(
                "solver.qaoa_max_vars must lie in 1..=24 (the statevector holds 2^n \
                 amplitudes), got {}",
                s.qaoa_max_vars
            ));
        }
        for (name, v) in [
            ("migration_cost", s.migration_cost),
            ("communication_cost", s.communication_cost),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!(
                    "solver.{name} must be finite and non-negative, got {v}"
                ));
            }
        }
        let c = &self.clustering;
        if !(c.split_above.is_finite() && c.split_above > 1.0) {
            return bad(format!(
                "clustering.split_above must be above 1, got {}",
                c.split_above
            ));
        }
        if !(c.merge_below.is_finite() && (0.0..1.0).contains(&c.merge_below)) {
            return bad(format!(
                "clustering.merge_below must lie in [0, 1), got {}",
                c.merge_below
            ));
        }
        Ok(())
    }
}

/// The leaf hosting agent `id` at the start, of `agents` spread evenly over `leaves` in id
/// order.
pub(crate) fn home_leaf(agents: u32, leaves: u32, id: u32) -> u32 {
    ((u64::from(id) * u64::from(leaves)) / u64::from(agents)) as u32
}

/// The first agent of leaf `leaf` and the number of its agents (see [`home_leaf`]).
pub(crate) fn home_range(agents: u32, leaves: u32, leaf: u32) -> (u32, u32) {
    let first = |l: u32| ((u64::from(l) * u64::from(agents)).div_ceil(u64::from(leaves))) as u32;
    let a = first(leaf);
    (a, first(leaf + 1) - a)
}

/// A TOML error whose message quotes at most [`qorch_qubo::MAX_QUOTE_CHARS`] characters of
/// each line (the parser's message shows the offending line whole).
fn shorten(e: toml::de::Error) -> toml::de::Error {
    let message = e.to_string();
    if message
        .lines()
        .all(|l| l.len() <= 2 * qorch_qubo::MAX_QUOTE_CHARS)
    {
        return e;
    }
    let short: Vec<String> = message.lines().map(qorch_qubo::quote).collect();
    <toml::de::Error as serde::de::Error>::custom(short.join("\n"))
}

fn shares(section: &str, parts: &[(&str, f64)]) -> Result<(), SimError> {
    for (name, v) in parts {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(SimError::Scenario(format!(
                "{section}.{name} must be a non-negative share, got {v}"
            )));
        }
    }
    if parts.iter().map(|p| p.1).sum::<f64>() <= 0.0 {
        return Err(SimError::Scenario(format!(
            "{section}: the shares {} are all zero",
            parts.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}
