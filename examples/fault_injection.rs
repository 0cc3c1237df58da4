//! Fault injection: agents panic and a sub-cluster is lost mid-run; the runtime restarts the
//! agents, detects the lost sub-cluster by its missing heartbeats, returns its resources to
//! the pools in the next round, and accounts for every message.
//!
//! Run with `cargo run --release -p qorch --example fault_injection`.

use qorch::sim::{Fault, FaultKind, Scenario};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut s = Scenario {
        name: "faults".into(),
        rounds: 5,
        faults: vec![
            Fault {
                round: 2,
                kind: FaultKind::AgentPanic,
                count: 25,
            },
            Fault {
                round: 3,
                kind: FaultKind::SubclusterLoss,
                count: 2,
            },
        ],
        ..Scenario::default()
    };
    s.topology.agents = 4_000;
    s.topology.clusters = 20;
    s.behaviour.message_work = 200;
    s.behaviour.tick_work = 2_000;
    let out = qorch::sim::run(&s, &mut |_| {})?;
    let r = &out.report;
    println!("{}", r.summary_table(&out.timings));
    println!("round  agents  served  efficiency");
    for x in &r.per_round {
        println!(
            "{:>5}  {:>6}  {:>6}  {:>10.4}",
            x.round, x.agents, x.served, x.efficiency
        );
    }
    let m = &r.messages;
    println!(
        "messages: {} sent + {} panics = {} handled + {} dead letters ({} unaccounted)",
        m.sent, r.faults.agent_panics, m.handled, m.dead_letters, m.unaccounted
    );
    assert_eq!(m.unaccounted, 0, "every message is handled or reported");
    assert_eq!(
        m.restarts, r.faults.agent_panics,
        "every panicking agent was restarted"
    );
    Ok(())
}
