//! Criterion benchmarks of the resource manager's hot paths: applying a round's allocation
//! (with its ledger entries), replaying a ledger, forecasting, and metrics.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use qorch_resources::{
    AgentId, Allocation, AllocationMetrics, ChangeContext, DemandForecaster, ForecastModel, Grant,
    PoolId, PoolKind, Reason, ResourceKinds, ResourceManager, ResourceRequest, ResourceVector,
};

const AGENTS: u32 = 10_000;
const POOLS: u32 = 100;

fn manager() -> ResourceManager {
    let mut m = ResourceManager::new(&ResourceKinds::standard());
    let c = ChangeContext::new(0, 0, Reason::Configuration);
    for p in 0..POOLS {
        m.add_pool(
            format!("n{p}"),
            PoolKind::Node,
            &ResourceVector::from(vec![1000.0, 4000.0, 100.0]),
            &c,
        )
        .unwrap();
    }
    m
}

fn allocation(shift: u32) -> Allocation {
    (0..AGENTS)
        .map(|a| {
            let amount =
                ResourceVector::from(vec![f64::from(a % 7 + 1), f64::from(a % 13 + 1), 0.5]);
            (AgentId(a), Grant::new(PoolId((a + shift) % POOLS), amount))
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let a0 = allocation(0);
    let a1 = allocation(1);
    c.bench_function("apply_allocation_10k_agents_all_move", |b| {
        b.iter_batched(
            || {
                let mut m = manager();
                m.apply_allocation(&a0, &ChangeContext::new(1, 1, Reason::Rebalance))
                    .unwrap();
                m
            },
            |mut m| {
                m.apply_allocation(&a1, &ChangeContext::new(2, 2, Reason::Rebalance))
                    .unwrap();
                m
            },
            criterion::BatchSize::LargeInput,
        );
    });
    let mut m = manager();
    m.apply_allocation(&a0, &ChangeContext::new(1, 1, Reason::Rebalance))
        .unwrap();
    m.apply_allocation(&a1, &ChangeContext::new(2, 2, Reason::Rebalance))
        .unwrap();
    c.bench_function("replay_ledger_30k_entries", |b| {
        b.iter(|| ResourceManager::replay(black_box(m.ledger())).unwrap());
    });
    c.bench_function("forecast_observe_1k_agents_x3_kinds", |b| {
        let mut f = DemandForecaster::new(
            ForecastModel::Holt {
                alpha: 0.3,
                beta: 0.1,
            },
            32,
        );
        let mut t = 0.0;
        b.iter(|| {
            t += 1.0;
            for a in 0..1000 {
                f.observe(AgentId(a), &ResourceVector::from(vec![t, 2.0 * t, 1.0]));
            }
        });
    });
    let requests: Vec<(AgentId, ResourceRequest)> = (0..AGENTS)
        .map(|a| {
            (
                AgentId(a),
                ResourceRequest::exact(ResourceVector::from(vec![4.0, 8.0, 1.0])),
            )
        })
        .collect();
    c.bench_function("metrics_10k_agents", |b| {
        b.iter(|| {
            AllocationMetrics::compute(
                m.pools(),
                requests.iter().map(|(a, r)| (*a, r)),
                black_box(&a0),
                black_box(&a1),
            )
        });
    });
}

criterion_group!(resources, benches);
criterion_main!(resources);
