//! The optimizer thread against a live runtime: a round gathers every agent's demand, solves
//! the allocation, and delivers each agent its grant through `on_allocation`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qorch_optimizer::{Optimizer, OptimizerConfig, ReclusterPolicy, recluster};
use qorch_protocol::Address;
use qorch_protocol::{AgentId, Message};
use qorch_resources::{
    Grant, Pool, PoolFilter, PoolId, ResourceKinds, ResourceRequest, ResourceVector,
};
use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator};

/// What the agents were told: (agent, grant) per `on_allocation` call.
type Seen = Arc<Mutex<Vec<(AgentId, Option<Grant>)>>>;

#[derive(Debug, Clone)]
struct Nothing;

impl Message for Nothing {}

/// Asks for `cpu` (half of it at least) and records every grant it is told about.
struct Tenant {
    cpu: f64,
    seen: Seen,
    calls: Arc<AtomicU64>,
}

impl Agent for Tenant {
    type Msg = Nothing;

    fn handle(&mut self, _: Nothing, _: &mut Context<'_, Nothing>) -> AgentResult {
        Ok(())
    }

    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, Nothing>,
    ) -> AgentResult {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.seen.lock().unwrap().push((ctx.id(), grant.cloned()));
        Ok(())
    }

    fn demand(&self) -> Option<ResourceRequest> {
        ResourceRequest::new(
            ResourceVector::from(vec![self.cpu / 2.0]),
            ResourceVector::from(vec![self.cpu]),
            1.0,
            PoolFilter::Any,
        )
        .ok()
    }
}

#[test]
fn a_round_allocates_within_capacity_and_tells_every_agent() {
    let rt = QuantumOrchestrator::<Tenant>::builder()
        .workers(2)
        .seed(3)
        .build()
        .unwrap();
    let m = rt.manager();
    let seen: Seen = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let mut agents = Vec::new();
    for c in 0..2 {
        let cluster = m.create_cluster(&format!("c{c}")).unwrap();
        for s in 0..2 {
            let sub = m
                .create_sub_cluster(cluster.into(), &format!("c{c}/s{s}"))
                .unwrap();
            let (seen, calls) = (Arc::clone(&seen), Arc::clone(&calls));
            agents.extend(
                m.spawn_agents(sub.into(), 10, move |i| Tenant {
                    cpu: 1.0 + f64::from(i.0 % 3),
                    seen: Arc::clone(&seen),
                    calls: Arc::clone(&calls),
                })
                .unwrap(),
            );
        }
    }
    // 40 agents asking for 80 cpu in all; two pools hold 50: some are shrunk or unserved.
    let kinds = ResourceKinds::from_names(["cpu"]);
    let pools = vec![
        Pool::node(PoolId(0), "a", ResourceVector::from(vec![30.0])),
        Pool::node(PoolId(1), "b", ResourceVector::from(vec![20.0])),
    ];
    let optimizer = Optimizer::start(rt.handle(), OptimizerConfig::new(kinds, pools)).unwrap();
    let summary = optimizer.run_round().expect("the round runs");
    assert_eq!(summary.round, 1);
    assert_eq!(summary.agents, 40);
    assert!(summary.served > 0 && summary.served <= 40);
    assert!(summary.objective <= summary.bound + 1e-9, "{summary:?}");
    assert!(
        summary.efficiency > 0.0 && summary.efficiency <= 1.0,
        "{summary:?}"
    );

    // Every agent has heard of its grant (or of being unserved), once, when the round
    // returns: a shutdown right after it loses nothing.
    assert_eq!(calls.load(Ordering::Relaxed), 40);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 40, "one on_allocation per agent");
    let mut ids: Vec<AgentId> = seen.iter().map(|(a, _)| *a).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    let mut load = [0.0_f64; 2];
    for (_, g) in &seen {
        if let Some(g) = g {
            load[g.pool.0 as usize] += g.amount.amounts()[0];
        }
    }
    assert!(
        load[0] <= 30.0 + 1e-9 && load[1] <= 20.0 + 1e-9,
        "over capacity: {load:?}"
    );
    assert_eq!(
        seen.iter().filter(|(_, g)| g.is_some()).count(),
        summary.served
    );

    // The optimization state is kept: the round, its outcome, the ledger.
    let (round, history) = optimizer.with_state(|s| (s.round, s.history.len()));
    assert_eq!((round, history), (1, 1));
    optimizer.stop();
    rt.shutdown();
}

/// Reports every number it receives to the application.
struct Echo;

impl Agent for Echo {
    type Msg = u64;

    fn handle(&mut self, n: u64, ctx: &mut Context<'_, u64>) -> AgentResult {
        ctx.send_to(Address::Orchestrator, n);
        Ok(())
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn recluster_moves_agents_to_the_nodes_they_talk_with_and_keeps_their_messages() {
    const WAIT: Duration = Duration::from_secs(10);
    let rt = QuantumOrchestrator::<Echo>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let a = m.create_sub_cluster(c.into(), "c/a").unwrap();
    let b = m.create_sub_cluster(c.into(), "c/b").unwrap();
    let in_a = m.spawn_agents(a.into(), 6, |_| Echo).unwrap();
    let in_b = m.spawn_agents(b.into(), 6, |_| Echo).unwrap();
    // The first agent of `a` talks only with the agents of `b`.
    let stray = in_a[0];
    let mut affinity = HashMap::new();
    for &x in &in_b {
        affinity.insert((stray.id().min(x.id()), stray.id().max(x.id())), 20.0);
    }
    for w in in_a[1..].windows(2).chain(in_b.windows(2)) {
        affinity.insert((w[0].id(), w[1].id()), 20.0);
    }
    let h = rt.handle();
    let plan = recluster(&m, &affinity, &ReclusterPolicy::default()).unwrap();
    // Messages sent while it moves follow it.
    for tag in 0..50 {
        h.send_blocking(&stray, tag).unwrap();
    }
    block_on(h.settle()).unwrap();
    block_on(h.settle()).unwrap();
    assert_eq!(plan.moved, 1, "{plan:?}");
    assert!(plan.cross_after < plan.cross_before);
    assert_eq!(m.host_of(stray), Some(b.into()));
    assert!(in_a[1..].iter().all(|&x| m.host_of(x) == Some(a.into())));
    let mut seen = 0;
    while seen < 50 && h.recv_blocking(WAIT).is_some() {
        seen += 1;
    }
    assert_eq!(seen, 50, "every message to the moved agent is handled");
    rt.shutdown();
}
