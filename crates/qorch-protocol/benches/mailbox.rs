//! Criterion benchmarks of the priority mailbox against tokio mpsc and crossbeam-channel.
//!
//! Run with `cargo bench -p qorch-protocol`. The JSON figures in `docs/benchmarks.md` come from
//! `qorch bench mailbox --json`, which runs the same comparison with 1M messages per producer.

use std::thread;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use qorch_protocol::{Priority, PriorityMailbox};

const MESSAGES: u64 = 100_000;

fn qorch(producers: u64) {
    let (tx, mut rx) = PriorityMailbox::<u64>::bounded(1024);
    let hs: Vec<_> = (0..producers)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..MESSAGES {
                    tx.send_blocking_with(Priority::Normal, i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut n = 0;
    while rx.recv_blocking().is_some() {
        n += 1;
    }
    assert_eq!(n, producers * MESSAGES);
    for h in hs {
        h.join().unwrap();
    }
}

fn tokio_mpsc(producers: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let hs: Vec<_> = (0..producers)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..MESSAGES {
                    tx.blocking_send(i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut n = 0;
    while rx.blocking_recv().is_some() {
        n += 1;
    }
    assert_eq!(n, producers * MESSAGES);
    for h in hs {
        h.join().unwrap();
    }
}

fn crossbeam(producers: u64) {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    let hs: Vec<_> = (0..producers)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..MESSAGES {
                    tx.send(i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let n = rx.iter().count() as u64;
    assert_eq!(n, producers * MESSAGES);
    for h in hs {
        h.join().unwrap();
    }
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpsc_throughput");
    g.sample_size(10);
    for producers in [1_u64, 4] {
        g.throughput(Throughput::Elements(producers * MESSAGES));
        g.bench_with_input(BenchmarkId::new("qorch", producers), &producers, |b, &p| {
            b.iter(|| qorch(p));
        });
        g.bench_with_input(
            BenchmarkId::new("tokio_mpsc", producers),
            &producers,
            |b, &p| {
                b.iter(|| tokio_mpsc(p));
            },
        );
        g.bench_with_input(
            BenchmarkId::new("crossbeam", producers),
            &producers,
            |b, &p| {
                b.iter(|| crossbeam(p));
            },
        );
    }
    g.finish();
}

fn single_thread_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_recv_same_thread");
    g.throughput(Throughput::Elements(1));
    let (tx, mut rx) = PriorityMailbox::<u64>::bounded(1024);
    g.bench_function("qorch_try_send_try_recv", |b| {
        b.iter(|| {
            tx.try_send(1).unwrap();
            rx.try_recv().unwrap()
        });
    });
    let (ttx, mut trx) = tokio::sync::mpsc::channel::<u64>(1024);
    g.bench_function("tokio_try_send_try_recv", |b| {
        b.iter(|| {
            ttx.try_send(1).unwrap();
            trx.try_recv().unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, throughput, single_thread_ops);
criterion_main!(benches);
