//! Simulating your own agents: a pipeline in every leaf of the hierarchy, simulated with the
//! same rounds, faults, baseline and report as the built-in model.
//!
//! In each leaf (sub-cluster), a quarter of the agents are producers: every tick they send
//! batches of work to the leaf's workers, larger during bursts, some of it urgent. Workers
//! handle the batches and, every tick, send a summary to their leaf's sink, whose storage
//! (memory demand) grows as the run goes. Every choice is a function of the scenario's
//! seed, the agent and the tick, so one worker thread gives the same report every time.
//!
//! Run with `cargo run --release -p qorch --example simulate_custom`.

use std::ops::Range;

use qorch::protocol::{AgentId, Priority};
use qorch::resources::{PoolFilter, ResourceRequest, ResourceVector};
use qorch::sim::{AgentWorkload, Fault, FaultKind, Scenario, Task, uniform};

/// What an agent is in its leaf's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Worker,
    Sink,
}

/// An agent's fixed traits: its role and its leaf's workers and sink.
struct Stage {
    id: AgentId,
    role: Role,
    workers: Range<u32>,
    sink: AgentId,
}

/// The pipeline workload: the scenario's seed and layout, and the sizes of the work.
struct Pipeline {
    scenario: Scenario,
    /// Work units of a batch (handled by a worker) and of a summary (handled by a sink).
    batch_units: u32,
    summary_units: u32,
}

/// Decisions drawn per agent and tick (`uniform`'s purpose argument).
const BURST: u64 = 1;
const PICK: u64 = 2;
const URGENT: u64 = 3;
const NOISE: u64 = 4;

impl Pipeline {
    fn new(scenario: &Scenario) -> Pipeline {
        Pipeline {
            scenario: scenario.clone(),
            batch_units: 2_000,
            summary_units: 500,
        }
    }

    /// Batches a producer sends at tick `t`: 2, or 6 during a burst (bursts last 4 ticks).
    fn batches(&self, me: AgentId, t: u64) -> u32 {
        let burst = uniform(self.scenario.seed, me, t / 4, BURST) < 0.15;
        if burst { 6 } else { 2 }
    }

    /// Mean batches a producer sends per tick.
    const MEAN_BATCHES: f64 = 2.0 + 4.0 * 0.15;

    fn request(min: [f64; 3], desired: [f64; 3]) -> ResourceRequest {
        let (min, desired) = (ResourceVector::from(min.to_vec()), desired.to_vec().into());
        ResourceRequest::new(min, desired, 1.0, PoolFilter::Any).expect("a valid request")
    }
}

impl AgentWorkload for Pipeline {
    type Profile = Stage;

    fn profile(&self, id: AgentId) -> Stage {
        let leaf = self.scenario.home_agents(self.scenario.home_leaf(id));
        let producers = leaf.len() as u32 / 4;
        let offset = id.0 - leaf.start;
        let role = match offset {
            0 => Role::Sink,
            o if o <= producers => Role::Producer,
            _ => Role::Worker,
        };
        Stage {
            id,
            role,
            workers: leaf.start + 1 + producers..leaf.end,
            sink: AgentId(leaf.start),
        }
    }

    fn tick(&self, me: &Stage, t: u64, out: &mut Vec<Task>) {
        let seed = self.scenario.seed;
        match me.role {
            Role::Producer if !me.workers.is_empty() => {
                for b in 0..u64::from(self.batches(me.id, t)) {
                    let u = uniform(seed, me.id, t, PICK + 16 * b);
                    let to = me.workers.start + (u * me.workers.len() as f64) as u32;
                    let urgent = uniform(seed, me.id, t, URGENT + 16 * b) < 0.1;
                    out.push(Task {
                        to: AgentId(to.min(me.workers.end - 1)),
                        priority: if urgent {
                            Priority::High
                        } else {
                            Priority::Normal
                        },
                        units: self.batch_units,
                    });
                }
            }
            Role::Worker => out.push(Task {
                to: me.sink,
                priority: Priority::Low,
                units: self.summary_units,
            }),
            Role::Producer | Role::Sink => {}
        }
    }

    // `handle`: the default, `task.units` units of work.

    fn demand(&self, me: &Stage, t: u64) -> ResourceRequest {
        // Kinds: the scenario's pools.kinds, cpu, memory, bandwidth.
        let noise = 1.0 + 0.1 * (uniform(self.scenario.seed, me.id, t, NOISE) - 0.5);
        match me.role {
            Role::Producer => {
                let bw = 0.5 * f64::from(self.batches(me.id, t)) * noise;
                Pipeline::request([0.25, 0.25, bw / 2.0], [0.5, 0.5, bw])
            }
            Role::Worker => {
                let cpu = 1.0 + 0.5 * noise;
                Pipeline::request([cpu / 2.0, 0.5, 0.1], [cpu, 1.0, 0.3])
            }
            Role::Sink => {
                let memory = (2.0 + 0.05 * t as f64) * noise;
                Pipeline::request([0.1, memory, 0.2], [0.5, memory, 0.5])
            }
        }
    }

    fn peers(&self, me: &Stage) -> Vec<(AgentId, f64)> {
        match me.role {
            Role::Producer => {
                let n = me.workers.len() as f64;
                me.workers
                    .clone()
                    .map(|w| (AgentId(w), Pipeline::MEAN_BATCHES / n))
                    .collect()
            }
            Role::Worker => vec![(me.sink, 1.0)],
            Role::Sink => Vec::new(),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut s = Scenario {
        name: "pipeline".into(),
        rounds: 6,
        ticks_per_round: 2,
        workers: 1,
        faults: vec![Fault {
            round: 3,
            kind: FaultKind::AgentPanic,
            count: 10,
        }],
        ..Scenario::default()
    };
    s.topology.agents = 800;
    s.topology.clusters = 4;
    s.topology.fanout = 2;
    s.pools.count = 6;
    s.solver.effort = 5.0;
    s.clustering.every = 2;

    let pipeline = Pipeline::new(&s);
    let roles = (0..s.topology.agents as u32).map(|a| pipeline.profile(AgentId(a)).role);
    let count = |r: Role| roles.clone().filter(|&x| x == r).count();
    println!(
        "pipeline: {} leaves, {} producers, {} workers, {} sinks",
        s.leaves(),
        count(Role::Producer),
        count(Role::Worker),
        count(Role::Sink)
    );
    // What the workload says it sends (no agent is lost here: panicking agents restart).
    let mut said = 0;
    let mut out = Vec::new();
    for t in 1..=s.total_rounds() * s.ticks_per_round {
        for a in 0..s.topology.agents as u32 {
            out.clear();
            pipeline.tick(&pipeline.profile(AgentId(a)), t, &mut out);
            said += out.len() as u64;
        }
    }

    let outcome = qorch::sim::run_workload(&s, pipeline, &mut |_| {})?;
    let r = &outcome.report;
    let m = &r.messages;
    println!(
        "messages: {} sent (the workload says {said}), {} handled + {} dead letters = sent + \
         {} panics ({} unaccounted)",
        m.sent, m.handled, m.dead_letters, r.faults.agent_panics, m.unaccounted
    );
    println!(
        "by lane: high {}, normal {}, low {}; plain loop handled {}",
        m.by_priority["high"], m.by_priority["normal"], m.by_priority["low"], m.baseline_handled
    );
    println!(
        "allocation: efficiency {:.4}, utilization {:.3}, unmet demand {:.3}, fairness {:.3}",
        r.allocation_efficiency, r.utilization, r.unmet_demand, r.fairness
    );
    println!(
        "cross-cluster traffic {:.3} -> {:.3}, restarts {}",
        r.cross_cluster_traffic.start, r.cross_cluster_traffic.end, m.restarts
    );
    assert_eq!(m.sent, said, "the report counts what the workload sent");
    assert_eq!(m.unaccounted, 0, "every message is handled or reported");
    assert_eq!(
        m.restarts, r.faults.agent_panics,
        "every panic was survived"
    );
    Ok(())
}
