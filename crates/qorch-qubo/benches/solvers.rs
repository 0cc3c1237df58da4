//! Criterion benchmarks of the solvers' inner loops on a G-set-like random graph.
//!
//! `cargo bench -p qorch-qubo`. Side-by-side figures against D-Wave's samplers come from
//! `scripts/bench-qubo.sh` (see `docs/benchmarks.md`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qorch_qubo::{Budget, Graph, SimulatedAnnealing, SolveOptions, Solver, TabuSearch};

/// A random graph like G1: 800 vertices, 19,176 unit edges.
fn g1_like() -> Graph {
    let n = 800_usize;
    let mut s = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut seen = std::collections::HashSet::new();
    let mut edges = Vec::new();
    while edges.len() < 19_176 {
        let (i, j) = ((next() % n as u64) as usize, (next() % n as u64) as usize);
        if i != j && seen.insert((i.min(j), i.max(j))) {
            edges.push((i, j, 1.0));
        }
    }
    Graph::new(n, edges).unwrap()
}

fn sa_sweeps(c: &mut Criterion) {
    let q = g1_like().max_cut_qubo();
    let mut g = c.benchmark_group("sa_g1_like");
    g.throughput(Throughput::Elements(1000));
    g.sample_size(20);
    g.bench_function("1000_sweeps", |b| {
        let sa = SimulatedAnnealing {
            reads: Some(1),
            ..Default::default()
        };
        b.iter(|| {
            sa.solve(&q, &SolveOptions::new(Budget::sweeps(1000), 1))
                .unwrap()
                .energy
        });
    });
    g.finish();
    let mut g = c.benchmark_group("tabu_g1_like");
    g.throughput(Throughput::Elements(10));
    g.sample_size(20);
    g.bench_function("10_sweeps", |b| {
        b.iter(|| {
            TabuSearch::default()
                .solve(&q, &SolveOptions::new(Budget::sweeps(10), 1))
                .unwrap()
                .energy
        });
    });
    g.finish();
}

criterion_group!(benches, sa_sweeps);
criterion_main!(benches);
