//! What a simulated agent does, as a trait ([`AgentWorkload`]): the built-in model
//! (`model.rs`) is one implementation, and [`run_workload`](crate::run_workload) runs any
//! other through the same driver, baseline, faults and report.

use std::hint::black_box;

use qorch_protocol::{AgentId, Priority};
use qorch_resources::ResourceRequest;

/// What every simulated agent does, stated as functions of the agent and the tick.
///
/// A simulation calls a workload from two places with the same arguments: the runtime's
/// agents (one [`SimAgent`](crate::SimAgent) per agent) and the plain loop that measures the
/// communication overhead. So that both do the same work, and that a run is reproducible
/// (one worker and the same seed give the same `report.json` byte for byte), every method
/// must be a function of its arguments alone: derive whatever looks random from a seed, the
/// agent's id and the tick (see [`uniform`]), never from a clock, a global counter or a
/// shared mutable state. A restarted agent is rebuilt from its id ([`profile`]), so it then
/// behaves exactly as the one it replaces.
///
/// Per tick, each live agent runs [`tick`]: its own work, and the [`Task`]s it sends to
/// other agents (its peers, with a priority and work units). Each task is delivered to its
/// receiver, which runs [`handle`] on it. Messages are sent on ticks only: handling a task
/// does work, it sends nothing. Every round, the optimizer asks each agent for its
/// [`demand`] and allocates the scenario's pools among them. [`peers`] states who an agent
/// talks to and how much, for the report's cross-cluster traffic.
///
/// The scenario still gives the hierarchy, the pools (their capacities follow the agents'
/// desired demand at tick 1 unless `pools.capacity` is set; a request must name one amount
/// per kind of `pools.kinds`), the rounds and ticks, the faults, the solver and the
/// re-clustering; its `[behaviour]` and `[workload]` sections describe the built-in model
/// and are not used. Where agents start is [`Scenario::home_leaf`](crate::Scenario::home_leaf)
/// (agents spread evenly over the leaves in id order), so a workload can choose an agent's
/// peers among its neighbours ([`Scenario::home_agents`](crate::Scenario::home_agents)).
///
/// [`profile`]: AgentWorkload::profile
/// [`tick`]: AgentWorkload::tick
/// [`handle`]: AgentWorkload::handle
/// [`demand`]: AgentWorkload::demand
/// [`peers`]: AgentWorkload::peers
///
/// # Examples
///
/// A ring: every agent sends one task per tick to the next agent, and asks for more cpu on
/// odd ticks.
///
/// ```
/// use qorch_protocol::{AgentId, Priority};
/// use qorch_resources::{PoolFilter, ResourceRequest, ResourceVector};
/// use qorch_sim::{AgentWorkload, Scenario, Task};
///
/// struct Ring {
///     agents: u32,
/// }
///
/// impl AgentWorkload for Ring {
///     type Profile = AgentId; // nothing to precompute: the id is enough
///
///     fn profile(&self, agent: AgentId) -> AgentId {
///         agent
///     }
///
///     fn tick(&self, &me: &AgentId, _tick: u64, out: &mut Vec<Task>) {
///         let next = AgentId((me.0 + 1) % self.agents);
///         out.push(Task { to: next, priority: Priority::Normal, units: 100 });
///     }
///
///     fn demand(&self, _me: &AgentId, tick: u64) -> ResourceRequest {
///         let cpu = if tick % 2 == 1 { 2.0 } else { 1.0 };
///         let desired = ResourceVector::from(vec![cpu, 1.0, 0.5]); // cpu, memory, bandwidth
///         ResourceRequest::new(desired.clone(), desired, 1.0, PoolFilter::Any).unwrap()
///     }
///
///     fn peers(&self, &me: &AgentId) -> Vec<(AgentId, f64)> {
///         vec![(AgentId((me.0 + 1) % self.agents), 1.0)] // one message per tick
///     }
/// }
///
/// let mut s = Scenario::default();
/// s.topology.agents = 200;
/// s.topology.clusters = 2;
/// s.rounds = 2;
/// s.workers = 1;
/// s.faults.clear();
/// let ring = Ring { agents: 200 };
/// let out = qorch_sim::run_workload(&s, ring, &mut |_| {}).unwrap();
/// let m = &out.report.messages;
/// assert_eq!(m.sent, 200 * 2); // one task per agent and tick, two ticks
/// assert_eq!((m.handled, m.baseline_handled, m.unaccounted), (400, 400, 0));
/// ```
pub trait AgentWorkload: Send + Sync + 'static {
    /// An agent's fixed traits, built once from its id (its kind, its peers, its base
    /// demand...). The runtime's agent keeps its own; the plain loop keeps every agent's.
    type Profile: Send + Sync + 'static;

    /// The profile of agent `agent` (ids run from 0 to the scenario's `topology.agents`).
    /// A restarted agent gets a new one from this call: it must depend on the id alone.
    fn profile(&self, agent: AgentId) -> Self::Profile;

    /// The agent's tick `tick` (from 1): does its own work and pushes the tasks it sends
    /// onto `out` (empty on entry). Tasks to ids that are not agents of the scenario are
    /// counted as sent and end as dead letters.
    fn tick(&self, agent: &Self::Profile, tick: u64, out: &mut Vec<Task>);

    /// The receiver `agent` handles `task` (`task.to` is its id): the work a task costs.
    /// The default does `task.units` units of work with [`burn`].
    fn handle(&self, agent: &Self::Profile, task: &Task) {
        let _ = agent;
        burn(task.units, u64::from(task.to.0));
    }

    /// What the agent asks of the pools at tick `tick` (the optimizer asks after each
    /// round's ticks, with the round's last tick): one amount per kind of the scenario's
    /// `pools.kinds`, in that order.
    fn demand(&self, agent: &Self::Profile, tick: u64) -> ResourceRequest;

    /// The agents this one sends to, each with the tasks it sends there per tick on average
    /// (an id may come more than once: its rates add up). Only the report's
    /// `cross_cluster_traffic` uses it; an empty list leaves that figure at 0.
    fn peers(&self, agent: &Self::Profile) -> Vec<(AgentId, f64)>;

    /// The figure whose one-round-ahead forecasts the report's `forecast_error` measures: by
    /// default the desired demand at tick `tick`, summed over kinds.
    fn desired_total(&self, agent: &Self::Profile, tick: u64) -> f64 {
        self.demand(agent, tick).desired.amounts().iter().sum()
    }
}

/// One message of a simulation: `units` of work that an agent sends to agent `to` with
/// priority `priority` (the lane it travels in, and the order the receiver's mailbox serves
/// it in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Task {
    /// The receiver.
    pub to: AgentId,
    /// Its priority.
    pub priority: Priority,
    /// Work units the receiver does when it handles the task (what one unit costs is the
    /// workload's [`handle`](AgentWorkload::handle); with the default, about a nanosecond).
    pub units: u32,
}

/// Does `units` steps of a dependent multiply-xorshift chain (about a nanosecond or two
/// each) from `seed` and returns the result, so that the work cannot be optimized away: the
/// unit of work of the built-in model and of [`AgentWorkload::handle`]'s default.
///
/// ```
/// assert_eq!(qorch_sim::burn(1_000, 7), qorch_sim::burn(1_000, 7));
/// ```
pub fn burn(units: u32, seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..units {
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        x ^= x >> 29;
    }
    black_box(x)
}

/// A uniform number in `[0, 1)`, a hash of (`seed`, `agent`, `tick`, `purpose`): the
/// deterministic randomness of a workload (use one `purpose` per decision, so that two
/// decisions of the same agent and tick are independent). The built-in model draws its own
/// numbers the same way.
///
/// ```
/// use qorch_protocol::AgentId;
/// let u = qorch_sim::uniform(1, AgentId(3), 10, 0);
/// assert!((0.0..1.0).contains(&u));
/// assert_eq!(u, qorch_sim::uniform(1, AgentId(3), 10, 0));
/// assert_ne!(u, qorch_sim::uniform(1, AgentId(3), 10, 1));
/// ```
pub fn uniform(seed: u64, agent: AgentId, tick: u64, purpose: u64) -> f64 {
    crate::model::unit(seed, agent.0, tick, purpose)
}
