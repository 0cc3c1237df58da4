//! Criterion benchmarks of the scheduler: one whole round on a seeded synthetic problem
//! (shares, leaf placement, reconciliation, polish and the global bound), sequential and
//! with sibling sub-problems in parallel. Larger rounds, with their objective and bound,
//! are `qorch bench scheduler`'s job.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use qorch_scheduler::{CostModel, EnhancedQuboScheduler, SchedulerConfig, SyntheticConfig};

fn benches(c: &mut Criterion) {
    let problem = SyntheticConfig {
        agents: 2_000,
        clusters: 8,
        subclusters: 4,
        pools: 10,
        seed: 7,
        costs: CostModel {
            migration: 0.2,
            communication: 0.05,
        },
        ..SyntheticConfig::default()
    }
    .generate();
    let mut group = c.benchmark_group("schedule_2000_agents");
    group.sample_size(10);
    for parallel in [false, true] {
        let scheduler = EnhancedQuboScheduler::new(SchedulerConfig {
            seed: 7,
            parallel,
            ..SchedulerConfig::default()
        })
        .expect("valid settings");
        let name = if parallel { "parallel" } else { "sequential" };
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    scheduler
                        .schedule(black_box(&problem), None)
                        .expect("a feasible round"),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(scheduler, benches);
criterion_main!(scheduler);
