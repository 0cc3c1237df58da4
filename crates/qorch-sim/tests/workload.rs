//! Custom workloads (`run_workload`): they run end to end, the report counts what they
//! send, the same seed gives the same report, faults are handled as for the built-in model,
//! and what a custom workload cannot do is refused with a typed error.

use qorch_protocol::{AgentId, Priority};
use qorch_resources::{PoolFilter, ResourceRequest, ResourceVector};
use qorch_sim::{
    AgentWorkload, Fault, FaultKind, Report, Scenario, SimError, Task, run_workload, uniform,
};

/// Gossip among neighbours: every agent knows three agents of its home leaf, and each tick
/// tells one or two of them (urgent news now and then).
#[derive(Clone)]
struct Gossip {
    scenario: Scenario,
    units: u32,
}

struct Gossiper {
    id: AgentId,
    peers: Vec<AgentId>,
    size: f64,
}

impl Gossip {
    fn new(scenario: &Scenario) -> Gossip {
        Gossip {
            scenario: scenario.clone(),
            units: 50,
        }
    }
}

impl AgentWorkload for Gossip {
    type Profile = Gossiper;

    fn profile(&self, id: AgentId) -> Gossiper {
        let seed = self.scenario.seed;
        let home = self.scenario.home_agents(self.scenario.home_leaf(id));
        let len = home.len() as u32;
        let peers = (0..3)
            .filter(|_| len > 1)
            .map(|k| {
                let off = 1 + (uniform(seed, id, 0, 100 + k) * f64::from(len - 1)) as u32;
                AgentId(home.start + (id.0 - home.start + off.min(len - 1)) % len)
            })
            .collect();
        Gossiper {
            id,
            peers,
            size: 0.5 + uniform(seed, id, 0, 1),
        }
    }

    fn tick(&self, me: &Gossiper, t: u64, out: &mut Vec<Task>) {
        if me.peers.is_empty() {
            return;
        }
        let seed = self.scenario.seed;
        let n = if uniform(seed, me.id, t, 2) < 0.5 {
            1
        } else {
            2
        };
        for k in 0..n {
            let u = uniform(seed, me.id, t, 3 + k);
            let to = me.peers[(u * me.peers.len() as f64) as usize % me.peers.len()];
            let priority = if uniform(seed, me.id, t, 10 + k) < 0.1 {
                Priority::High
            } else {
                Priority::Low
            };
            out.push(Task {
                to,
                priority,
                units: self.units,
            });
        }
    }

    fn demand(&self, me: &Gossiper, t: u64) -> ResourceRequest {
        let f = 1.0 + 0.2 * uniform(self.scenario.seed, me.id, t, 4);
        let desired: Vec<f64> = [1.0, 2.0, 0.5].iter().map(|x| x * me.size * f).collect();
        let min: Vec<f64> = desired.iter().map(|d| d / 2.0).collect();
        ResourceRequest::new(
            ResourceVector::from(min),
            ResourceVector::from(desired),
            1.0,
            PoolFilter::Any,
        )
        .unwrap()
    }

    fn peers(&self, me: &Gossiper) -> Vec<(AgentId, f64)> {
        let each = 1.5 / me.peers.len() as f64;
        me.peers.iter().map(|&p| (p, each)).collect()
    }
}

/// A small, light scenario (debug builds run the tests).
fn small(agents: usize, clusters: usize, rounds: u64) -> Scenario {
    let mut s = Scenario {
        name: "gossip".into(),
        rounds,
        ticks_per_round: 2,
        workers: 1,
        faults: Vec::new(),
        ..Scenario::default()
    };
    s.topology.agents = agents;
    s.topology.clusters = clusters;
    s.topology.fanout = 2;
    s.pools.count = 4;
    s.solver.effort = 5.0;
    s.clustering.every = 2;
    s
}

/// Tasks the workload sends over the whole run, per priority (high, low), every agent alive.
fn said(w: &Gossip, s: &Scenario) -> (u64, u64) {
    let (mut high, mut low) = (0, 0);
    let mut out = Vec::new();
    for t in 1..=s.total_rounds() * s.ticks_per_round {
        for a in 0..s.topology.agents as u32 {
            out.clear();
            w.tick(&w.profile(AgentId(a)), t, &mut out);
            for task in &out {
                match task.priority {
                    Priority::High => high += 1,
                    _ => low += 1,
                }
            }
        }
    }
    (high, low)
}

fn run(s: &Scenario) -> Report {
    run_workload(s, Gossip::new(s), &mut |_| {}).unwrap().report
}

#[test]
fn a_custom_workload_runs_end_to_end_and_its_messages_are_counted() {
    let s = small(400, 4, 4);
    let (high, low) = said(&Gossip::new(&s), &s);
    let r = run(&s);
    assert_eq!((r.agents, r.rounds, r.ticks), (400, 4, 8));
    let m = &r.messages;
    assert_eq!(
        m.sent,
        high + low,
        "the report counts what the workload sends"
    );
    assert_eq!(m.handled, m.sent, "every message handled: no faults");
    assert_eq!(
        m.baseline_handled, m.sent,
        "the plain loop did the same work"
    );
    assert_eq!((m.dead_letters, m.unaccounted, m.restarts), (0, 0, 0));
    assert_eq!(m.by_priority["high"], high);
    assert_eq!(m.by_priority["low"], low);
    assert_eq!(m.by_priority["normal"], 0);
    let per_round: u64 = r.per_round.iter().map(|x| x.messages_by_priority[1]).sum();
    assert_eq!(per_round, high);
    // The rounds allocated the pools to the workload's demand.
    for round in &r.per_round {
        assert_eq!(round.agents, 400);
        assert!(round.served > 0 && round.served <= round.agents);
        assert!(round.objective <= round.bound + 1e-9, "{round:?}");
    }
    assert!(r.allocation_efficiency > 0.5 && r.allocation_efficiency <= 1.0 + 1e-9);
    assert!(r.forecast_error > 0.0);
    // Peers are home neighbours: after the misplacement some traffic crosses clusters,
    // and re-clustering (after round 2) brings it down.
    let c = &r.cross_cluster_traffic;
    assert!(c.start > 0.0 && c.end <= c.start, "{c:?}");
    assert_eq!(r.reclustering.len(), 1);
}

#[test]
fn the_same_seed_gives_the_same_report_byte_for_byte() {
    let mut s = small(300, 3, 3);
    s.faults = vec![Fault {
        round: 2,
        kind: FaultKind::AgentPanic,
        count: 2,
    }];
    let a = run(&s).to_json();
    let b = run(&s).to_json();
    assert_eq!(a, b);
    assert!(run(&s).timings_omitted);
    s.seed += 1;
    assert_ne!(a, run(&s).to_json(), "another seed, another run");
}

#[test]
fn faults_are_handled_for_a_custom_workload_as_for_the_built_in_model() {
    let mut s = small(600, 4, 4);
    s.workers = 2;
    s.faults = vec![
        Fault {
            round: 2,
            kind: FaultKind::AgentPanic,
            count: 6,
        },
        Fault {
            round: 3,
            kind: FaultKind::SubclusterLoss,
            count: 1,
        },
    ];
    let r = run(&s);
    let m = &r.messages;
    assert_eq!(r.faults.agent_panics, 6);
    assert_eq!(m.restarts, 6, "each panicking agent restarted once");
    assert_eq!(r.faults.subclusters_lost, 1);
    assert!(r.faults.agents_lost > 0);
    assert_eq!(m.unaccounted, 0, "{m:?}");
    assert!(m.dead_letters >= 6, "the panics' messages at least: {m:?}");
    // The plain loop does the same work, minus what the lost sub-cluster would have received.
    assert_eq!(
        m.baseline_handled + m.dead_letters,
        m.sent + r.faults.agent_panics
    );
    assert_eq!(r.per_round[1].agents, 600);
    assert_eq!(r.per_round[2].agents as u64, 600 - r.faults.agents_lost);
    assert!(!r.timings_omitted && r.communication_overhead.is_some());
}

/// Sends every tick to an id that is no agent: counted as sent, then a dead letter.
struct Astray;

impl AgentWorkload for Astray {
    type Profile = AgentId;

    fn profile(&self, id: AgentId) -> AgentId {
        id
    }

    fn tick(&self, &me: &AgentId, _t: u64, out: &mut Vec<Task>) {
        if me.0 == 0 {
            out.push(Task {
                to: AgentId(1_000_000),
                priority: Priority::Normal,
                units: 1,
            });
        }
    }

    fn demand(&self, _me: &AgentId, _t: u64) -> ResourceRequest {
        ResourceRequest::exact(ResourceVector::from(vec![1.0, 1.0, 1.0]))
    }

    fn peers(&self, _me: &AgentId) -> Vec<(AgentId, f64)> {
        vec![(AgentId(1_000_000), 1.0)]
    }
}

#[test]
fn tasks_to_unknown_agents_are_dead_letters() {
    let mut s = small(50, 2, 2);
    s.clustering.every = 0;
    let r = run_workload(&s, Astray, &mut |_| {}).unwrap().report;
    let m = &r.messages;
    assert_eq!((m.sent, m.handled, m.baseline_handled), (4, 0, 0));
    assert_eq!((m.dead_letters, m.unaccounted), (4, 0), "{m:?}");
    assert_eq!(r.cross_cluster_traffic.start, 0.0);
}

#[test]
fn what_a_custom_workload_cannot_do_is_refused() {
    let mut s = small(100, 2, 2);
    s.faults = vec![Fault {
        round: 1,
        kind: FaultKind::NodeCrash,
        count: 1,
    }];
    let e = run_workload(&s, Gossip::new(&s), &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            e,
            SimError::LocalOnly {
                what: "node_crash faults"
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("built-in model only"), "{e}");
    // A demand with two amounts for the scenario's three kinds.
    let mut s = small(100, 2, 2);
    s.pools.kinds = vec!["cpu".into(), "memory".into()];
    let e = run_workload(&s, Gossip::new(&s), &mut |_| {}).unwrap_err();
    assert!(matches!(e, SimError::Scenario(_)), "{e:?}");
    assert!(e.to_string().contains("has 3 amounts"), "{e}");
}
