//! Criterion benchmarks of the simulator's kernels on random 3-regular Max-Cut graphs.
//!
//! `cargo bench -p qorch-qaoa`. Side-by-side figures against qulacs (and `QOKit`'s published
//! ones), with the memory-bandwidth fraction, come from `scripts/bench-qaoa.sh` (see
//! `docs/benchmarks.md`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qorch_qaoa::{QaoaParams, QaoaSimulator, SimConfig, random_regular_graph};

fn sim(n: usize) -> QaoaSimulator {
    let g = random_regular_graph(n, 3, 1).expect("n is even");
    QaoaSimulator::for_max_cut(&g, SimConfig::default()).expect("fits in memory")
}

fn layers(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer");
    for n in [12, 16, 20] {
        let mut s = sim(n);
        g.throughput(Throughput::Elements(1 << n));
        g.bench_function(format!("n{n}"), |b| b.iter(|| s.layer(0.3, 0.2)));
    }
    g.finish();
}

fn expectations(c: &mut Criterion) {
    let mut g = c.benchmark_group("expectation_p1");
    g.sample_size(20);
    let params = QaoaParams::fixed_angles_3_regular(1).expect("tabulated");
    for n in [12, 16, 20] {
        let mut s = sim(n);
        g.throughput(Throughput::Elements(1 << n));
        g.bench_function(format!("n{n}"), |b| {
            b.iter(|| s.expectation(&params).expect("valid"));
        });
    }
    g.finish();
    let mut g = c.benchmark_group("gradient_p3");
    g.sample_size(10);
    let params = QaoaParams::fixed_angles_3_regular(3).expect("tabulated");
    for n in [12, 16] {
        let mut s = sim(n);
        g.bench_function(format!("n{n}"), |b| {
            b.iter(|| s.expectation_and_gradient(&params).expect("valid"));
        });
    }
    g.finish();
}

fn diagonal(c: &mut Criterion) {
    let mut g = c.benchmark_group("diagonal");
    g.sample_size(10);
    let graph = random_regular_graph(20, 3, 1).expect("n is even");
    g.throughput(Throughput::Elements(1 << 20));
    g.bench_function("max_cut_n20", |b| {
        b.iter(|| QaoaSimulator::for_max_cut(&graph, SimConfig::default()).expect("fits"));
    });
    g.finish();
}

criterion_group!(benches, layers, expectations, diagonal);
criterion_main!(benches);
