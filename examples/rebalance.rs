//! Rebalancing: a behaviour that states its demand, a hierarchy, and one round of the
//! optimizer over two pools.
//! Run with `cargo run --release -p qorch --example rebalance`.

use qorch::optimizer::{Optimizer, OptimizerConfig};
use qorch::resources::{Grant, Pool, PoolFilter, PoolId, ResourceKinds, ResourceRequest};
use qorch::runtime::AgentResult;
use qorch::{Agent, Context, QuantumOrchestrator};

/// Wants `cpu` cores (half of them at least) and says what it was granted.
struct Worker {
    cpu: f64,
}

impl Agent for Worker {
    type Msg = ();

    fn handle(&mut self, (): (), _: &mut Context<'_, ()>) -> AgentResult {
        Ok(())
    }

    fn demand(&self) -> Option<ResourceRequest> {
        let (min, desired) = (vec![self.cpu / 2.0].into(), vec![self.cpu].into());
        ResourceRequest::new(min, desired, 1.0, PoolFilter::Any).ok()
    }

    fn on_allocation(&mut self, grant: Option<&Grant>, ctx: &mut Context<'_, ()>) -> AgentResult {
        let got = grant.map(|g| (g.amount.amounts()[0], g.pool));
        println!("agent {} wants {} cpu, got {got:?}", ctx.id().0, self.cpu);
        Ok(())
    }
}

fn main() {
    let rt = QuantumOrchestrator::<Worker>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    for c in 0..2 {
        let cluster = m.create_cluster(&format!("c{c}")).unwrap();
        let sub = m
            .create_sub_cluster(cluster.into(), &format!("c{c}/a"))
            .unwrap();
        let cpu = |id: qorch::protocol::AgentId| Worker {
            cpu: 1.0 + f64::from(id.0 % 4),
        };
        m.spawn_agents(sub.into(), 5, cpu).unwrap();
    }
    // Two pools of 10 cpu for 10 agents that want 25: the optimizer has to choose.
    let pools = (0..2).map(|p| Pool::node(PoolId(p), format!("n{p}"), vec![10.0].into()));
    let config = OptimizerConfig::new(ResourceKinds::from_names(["cpu"]), pools.collect());
    let optimizer = Optimizer::start(rt.handle(), config).unwrap();
    let r = optimizer.run_round().unwrap();
    println!(
        "{} of {} served, efficiency {:.3}",
        r.served, r.agents, r.efficiency
    );
    optimizer.stop();
    rt.shutdown(); // delivers what was accepted (the grants), then stops
}
