//! Criterion benchmarks (filled in below as the crate grows).

use criterion::{Criterion, criterion_group, criterion_main};

fn benches(_c: &mut Criterion) {}

criterion_group!(scheduler, benches);
criterion_main!(scheduler);
