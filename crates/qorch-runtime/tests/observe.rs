//! Observing a runtime: `RuntimeHandle::loads` (the nodes' counters, parents first) and the
//! `Observer` a non-generic observer holds.

use qorch_protocol::Address;
use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator};

struct Sink;

impl Agent for Sink {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) -> AgentResult {
        Ok(())
    }
}

#[test]
fn loads_follow_the_tree_and_count_what_nodes_handle() {
    let rt = QuantumOrchestrator::<Sink>::builder()
        .build()
        .expect("a runtime");
    let m = rt.manager();
    let c = Address::Cluster(m.create_cluster("c0").expect("a cluster"));
    let s = Address::SubCluster(m.create_sub_cluster(c, "c0/s0").expect("a sub-cluster"));
    let agents = m.spawn_agents(s, 3, |_| Sink).expect("agents");
    let h = rt.handle();
    for (i, a) in agents.iter().enumerate() {
        for n in 0..=i as u64 {
            h.send_blocking(a, n).expect("sent");
        }
    }
    futures_block_on(h.settle()).expect("settled");
    let loads = h.loads();
    let shape: Vec<_> = loads.iter().map(|l| (l.address, l.parent)).collect();
    assert_eq!(shape, [(c, None), (s, Some(c))]);
    assert_eq!(loads[1].name, "c0/s0");
    assert_eq!(
        loads[1].handled, 6,
        "1 + 2 + 3 messages, handled at the leaf"
    );
    assert_eq!(loads[0].handled, 0);
    assert!(loads.iter().all(|l| l.mailbox_depth == 0 && !l.dead));

    // The same through an Observer, and its status tree; a killed node is dead.
    let o = h.observer();
    let status = futures_block_on(o.status()).expect("a status tree");
    assert_eq!(
        status.address,
        Address::Orchestrator,
        "rooted at the orchestrator"
    );
    m.kill(s).expect("killed");
    assert!(o.loads()[1].dead);
    assert_eq!(format!("{o:?}"), "Observer { .. }");
    rt.shutdown();
    assert!(futures_block_on(o.status()).is_err(), "stopped");
    assert_eq!(o.loads().len(), 2, "the counters outlive the runtime");
}

/// Runs a future on this thread (the handle's futures need no reactor).
fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("an executor")
        .block_on(f)
}
