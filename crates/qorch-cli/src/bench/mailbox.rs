//! `qorch bench mailbox`: the priority mailbox against `tokio::sync::mpsc` and
//! `crossbeam_channel`, measured in one run on one machine.
//!
//! Throughput: `P` producer threads each send `--messages` `u64`s into one bounded channel
//! (capacity `--capacity`) with the blocking send of each library; one consumer thread takes
//! them with the blocking receive. Messages per second = `P * messages / wall time`, median of
//! `--reps` runs, the libraries interleaved run by run.
//!
//! The same throughput test also runs with async tasks on a two-worker tokio runtime
//! (`*_async_*` keys), for the priority mailbox and tokio mpsc, each with its async API.
//!
//! Latency: one producer thread keeps the Low lane full and, every `--interval-us`, sends a
//! High message stamped with `Instant::now()`; the consumer (spinning on `try_recv`, so it never
//! parks) records how long each High message took to arrive. `tokio_high_p99_us` is the same
//! test on a single tokio channel, where the urgent message queues behind the flood.
//!
//! On a virtual machine the host preempts vCPUs for up to milliseconds, unseen by the guest
//! (measured on the 2-vCPU development VM: dozens of gaps over 100 us per second in a plain
//! clock loop). Such a stall shows as a gap of more than 20 us in the consumer's loop; a
//! sample whose flight overlaps one measures the host, not the mailbox. `high_p99_us` is over
//! the samples without a stall; `high_p99_all_us` is over all of them, and
//! `high_samples_stalled` says how many were set apart. Both libraries get the same treatment.
//!
//! Memory: heap bytes of one empty mailbox (both ends), from a counting global allocator,
//! averaged over 1,000 mailboxes.

use std::thread;
use std::time::{Duration, Instant};

use qorch_protocol::{Priority, PriorityMailbox};
use serde::Serialize;

use crate::alloc_count::Counting;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Messages sent by each producer.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Capacity of each channel (of each lane, for the priority mailbox); 1 to 2^24, as
    /// bounded channels allocate their slots up front.
    #[arg(long, default_value_t = 1024, value_parser = crate::limits::count_usize(1 << 24))]
    capacity: usize,
    /// Repetitions of each throughput measurement; the median is reported (1 to 1,000).
    #[arg(long, default_value_t = 3, value_parser = crate::limits::count_usize(1_000))]
    reps: usize,
    /// High-priority messages sent in the latency test (1 to 10^7: each latency is kept).
    #[arg(long, default_value_t = 5_000, value_parser = crate::limits::count_usize(10_000_000))]
    samples: usize,
    /// Pause between two High messages in the latency test, in microseconds.
    #[arg(long, default_value_t = 100)]
    interval_us: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    qorch_1p: f64,
    tokio_1p: f64,
    crossbeam_1p: f64,
    qorch_4p: f64,
    tokio_4p: f64,
    crossbeam_4p: f64,
    ratio_to_tokio_1p: f64,
    ratio_to_tokio_4p: f64,
    qorch_async_1p: f64,
    tokio_async_1p: f64,
    qorch_async_4p: f64,
    tokio_async_4p: f64,
    high_p99_us: f64,
    high_p50_us: f64,
    high_p99_all_us: f64,
    high_samples: usize,
    high_samples_stalled: usize,
    tokio_high_p99_us: f64,
    tokio_high_p99_all_us: f64,
    tokio_high_samples_stalled: usize,
    empty_mailbox_bytes: f64,
    one_message_mailbox_bytes: f64,
    messages_per_producer: u64,
    capacity: usize,
    reps: usize,
    cpus: usize,
}

#[derive(Clone, Copy)]
enum Lib {
    Qorch,
    Tokio,
    Crossbeam,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    anyhow::ensure!(args.capacity > 0, "--capacity must be at least 1");
    anyhow::ensure!(args.reps > 0, "--reps must be at least 1");
    anyhow::ensure!(args.samples > 0, "--samples must be at least 1");

    let mut rates = [
        [Vec::new(), Vec::new(), Vec::new()],
        [Vec::new(), Vec::new(), Vec::new()],
    ];
    for _ in 0..args.reps {
        for (pi, producers) in [1_u64, 4].into_iter().enumerate() {
            for (li, lib) in [Lib::Qorch, Lib::Tokio, Lib::Crossbeam]
                .into_iter()
                .enumerate()
            {
                rates[pi][li].push(throughput(lib, producers, args.messages, args.capacity));
            }
        }
    }
    let [[q1, t1, c1], [q4, t4, c4]] = rates.map(|row| row.map(median));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    let mut async_rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for _ in 0..args.reps {
        for (pi, producers) in [1_u64, 4].into_iter().enumerate() {
            for (li, lib) in [Lib::Qorch, Lib::Tokio].into_iter().enumerate() {
                let rate = rt.block_on(async_throughput(
                    lib,
                    producers,
                    args.messages,
                    args.capacity,
                ));
                async_rates[pi][li].push(rate);
            }
        }
    }
    let [[qa1, ta1], [qa4, ta4]] = async_rates.map(|row| row.map(median));

    let qorch_lat = qorch_latency(args);
    let tokio_lat = tokio_latency(args);
    let (empty, one) = mailbox_bytes(args.capacity);

    let report = Report {
        qorch_1p: q1,
        tokio_1p: t1,
        crossbeam_1p: c1,
        qorch_4p: q4,
        tokio_4p: t4,
        crossbeam_4p: c4,
        ratio_to_tokio_1p: q1 / t1,
        ratio_to_tokio_4p: q4 / t4,
        qorch_async_1p: qa1,
        tokio_async_1p: ta1,
        qorch_async_4p: qa4,
        tokio_async_4p: ta4,
        high_p99_us: percentile(&qorch_lat.running, 0.99),
        high_p50_us: percentile(&qorch_lat.running, 0.50),
        high_p99_all_us: percentile(&qorch_lat.all, 0.99),
        high_samples: qorch_lat.all.len(),
        high_samples_stalled: qorch_lat.stalled(),
        tokio_high_p99_us: percentile(&tokio_lat.running, 0.99),
        tokio_high_p99_all_us: percentile(&tokio_lat.all, 0.99),
        tokio_high_samples_stalled: tokio_lat.stalled(),
        empty_mailbox_bytes: empty,
        one_message_mailbox_bytes: one,
        messages_per_producer: args.messages,
        capacity: args.capacity,
        reps: args.reps,
        cpus: thread::available_parallelism().map_or(1, std::num::NonZero::get),
    };
    if args.json {
        crate::print_line(&serde_json::to_string(&report)?)
    } else {
        print_table(&report)
    }
}

fn print_table(r: &Report) -> anyhow::Result<()> {
    let m = |x: f64| format!("{:>8.2} M/s", x / 1e6);
    let lines = [
        format!(
            "{:<28}{:>14}{:>14}",
            "messages/s", "1 producer", "4 producers"
        ),
        format!(
            "{:<28}{:>14}{:>14}",
            "qorch PriorityMailbox",
            m(r.qorch_1p),
            m(r.qorch_4p)
        ),
        format!(
            "{:<28}{:>14}{:>14}",
            "tokio::sync::mpsc",
            m(r.tokio_1p),
            m(r.tokio_4p)
        ),
        format!(
            "{:<28}{:>14}{:>14}",
            "crossbeam_channel",
            m(r.crossbeam_1p),
            m(r.crossbeam_4p)
        ),
        format!(
            "{:<28}{:>14.2}{:>14.2}",
            "qorch / tokio", r.ratio_to_tokio_1p, r.ratio_to_tokio_4p
        ),
        format!(
            "{:<28}{:>14}{:>14}",
            "async tasks: qorch",
            m(r.qorch_async_1p),
            m(r.qorch_async_4p)
        ),
        format!(
            "{:<28}{:>14}{:>14}",
            "async tasks: tokio",
            m(r.tokio_async_1p),
            m(r.tokio_async_4p)
        ),
        String::new(),
        format!(
            "High latency under Low flood: p50 {:.1} us, p99 {:.1} us (tokio single channel p99 {:.1} us)",
            r.high_p50_us, r.high_p99_us, r.tokio_high_p99_us
        ),
        format!(
            "  including the {} of {} samples during which the consumer thread was descheduled: p99 {:.1} us (tokio {:.1} us)",
            r.high_samples_stalled, r.high_samples, r.high_p99_all_us, r.tokio_high_p99_all_us
        ),
        format!(
            "Heap bytes: empty mailbox {:.0}, after one message {:.0} (lane capacity {})",
            r.empty_mailbox_bytes, r.one_message_mailbox_bytes, r.capacity
        ),
    ];
    for line in lines {
        crate::print_line(&line)?;
    }
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(sorted_us: &[f64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1]
}

/// Messages per second for `producers` threads sending `n` messages each.
fn throughput(lib: Lib, producers: u64, n: u64, capacity: usize) -> f64 {
    let start = Instant::now();
    let received = match lib {
        Lib::Qorch => {
            let (tx, mut rx) = PriorityMailbox::<u64>::bounded(capacity);
            let hs = spawn_producers(producers, n, move || {
                let tx = tx.clone();
                move |i| {
                    tx.send_blocking_with(Priority::Normal, i)
                        .expect("receiver alive");
                }
            });
            let mut count = 0_u64;
            while rx.recv_blocking().is_some() {
                count += 1;
            }
            join(hs);
            count
        }
        Lib::Tokio => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(capacity);
            let hs = spawn_producers(producers, n, move || {
                let tx = tx.clone();
                move |i| tx.blocking_send(i).expect("receiver alive")
            });
            let mut count = 0_u64;
            while rx.blocking_recv().is_some() {
                count += 1;
            }
            join(hs);
            count
        }
        Lib::Crossbeam => {
            let (tx, rx) = crossbeam_channel::bounded::<u64>(capacity);
            let hs = spawn_producers(producers, n, move || {
                let tx = tx.clone();
                move |i| tx.send(i).expect("receiver alive")
            });
            let count = rx.iter().count() as u64;
            join(hs);
            count
        }
    };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(received, producers * n, "a benchmark lost messages");
    received as f64 / secs
}

/// Messages per second with producer tasks and a consumer task on the current tokio runtime,
/// each side using the library's async send and receive.
async fn async_throughput(lib: Lib, producers: u64, n: u64, capacity: usize) -> f64 {
    let start = Instant::now();
    let received = match lib {
        Lib::Qorch => {
            let (tx, mut rx) = PriorityMailbox::<u64>::bounded(capacity);
            let tasks: Vec<_> = (0..producers)
                .map(|_| {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for i in 0..n {
                            tx.send_with(Priority::Normal, i)
                                .await
                                .expect("receiver alive");
                        }
                    })
                })
                .collect();
            drop(tx);
            let consumer = tokio::spawn(async move {
                let mut count = 0_u64;
                while rx.recv().await.is_some() {
                    count += 1;
                }
                count
            });
            for t in tasks {
                t.await.expect("producer panicked");
            }
            consumer.await.expect("consumer panicked")
        }
        Lib::Tokio | Lib::Crossbeam => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(capacity);
            let tasks: Vec<_> = (0..producers)
                .map(|_| {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for i in 0..n {
                            tx.send(i).await.expect("receiver alive");
                        }
                    })
                })
                .collect();
            drop(tx);
            let consumer = tokio::spawn(async move {
                let mut count = 0_u64;
                while rx.recv().await.is_some() {
                    count += 1;
                }
                count
            });
            for t in tasks {
                t.await.expect("producer panicked");
            }
            consumer.await.expect("consumer panicked")
        }
    };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(received, producers * n, "a benchmark lost messages");
    received as f64 / secs
}

/// Spawns `producers` threads sending `0..n`; `make` builds each thread's send function (and, by being
/// dropped afterwards, drops the original sender so that the receiver sees the end).
fn spawn_producers<F, S>(producers: u64, n: u64, make: F) -> Vec<thread::JoinHandle<()>>
where
    F: Fn() -> S,
    S: FnMut(u64) + Send + 'static,
{
    (0..producers)
        .map(|_| {
            let mut send = make();
            thread::spawn(move || {
                for i in 0..n {
                    send(i);
                }
            })
        })
        .collect()
}

fn join(hs: Vec<thread::JoinHandle<()>>) {
    for h in hs {
        h.join().expect("producer panicked");
    }
}

/// A consumer-loop gap longer than this means the consumer thread was not running.
const STALL: Duration = Duration::from_micros(20);

/// Latencies of High messages under a Low flood, split by whether the consumer thread was
/// descheduled while the message was in flight.
#[derive(Default)]
struct Latencies {
    /// Microseconds, sorted, of samples during which the consumer kept running.
    running: Vec<f64>,
    /// Microseconds, sorted, of all samples.
    all: Vec<f64>,
    /// Samples set apart because the consumer was descheduled during their flight.
    stalled: usize,
}

impl Latencies {
    fn stalled(&self) -> usize {
        self.stalled
    }
}

/// The consumer side of the latency test: spins on `try_recv` (so it never parks) and times
/// each High message, noting gaps in its own loop, which can only mean that the thread was
/// descheduled (on a virtual machine the host preempts vCPUs without the guest seeing it).
struct LatencyProbe {
    last: Instant,
    /// Recent gaps of the consumer loop: (start, end).
    stalls: std::collections::VecDeque<(Instant, Instant)>,
    lat: Latencies,
}

impl LatencyProbe {
    fn new(samples: usize) -> Self {
        LatencyProbe {
            last: Instant::now(),
            stalls: std::collections::VecDeque::new(),
            lat: Latencies {
                running: Vec::with_capacity(samples),
                all: Vec::with_capacity(samples),
                stalled: 0,
            },
        }
    }

    /// Call once per loop iteration; returns the current time.
    fn tick(&mut self) -> Instant {
        let now = Instant::now();
        if now - self.last > STALL {
            if self.stalls.len() == 64 {
                self.stalls.pop_front();
            }
            self.stalls.push_back((self.last, now));
        }
        self.last = now;
        now
    }

    fn record(&mut self, sent: Instant, received: Instant) {
        let us = (received - sent).as_secs_f64() * 1e6;
        self.lat.all.push(us);
        if !self
            .stalls
            .iter()
            .any(|&(start, end)| end > sent && start < received)
        {
            self.lat.running.push(us);
        }
    }

    fn finish(mut self) -> Latencies {
        self.lat.running.sort_by(f64::total_cmp);
        self.lat.all.sort_by(f64::total_cmp);
        self.lat.stalled = self.lat.all.len() - self.lat.running.len();
        if self.lat.running.is_empty() {
            // Every sample overlapped a stall (tiny runs on a busy machine): report them all
            // rather than nothing.
            self.lat.running.clone_from(&self.lat.all);
        }
        self.lat
    }
}

/// High-message latencies under a Low flood, priority mailbox.
///
/// One producer thread keeps the Low lane full (retrying `try_send` while it is full) and,
/// every `interval_us`, sends one High message stamped with the time; one consumer thread
/// receives everything.
fn qorch_latency(args: &Args) -> Latencies {
    let (tx, mut rx) = PriorityMailbox::<Option<Instant>>::bounded(args.capacity);
    let (samples, interval) = (args.samples, Duration::from_micros(args.interval_us));
    let producer = thread::spawn(move || {
        let mut next_high = Instant::now() + interval;
        let mut sent = 0;
        while sent < samples {
            if Instant::now() >= next_high {
                tx.send_blocking_with(Priority::High, Some(Instant::now()))
                    .expect("receiver alive");
                sent += 1;
                next_high += interval;
            }
            match tx.try_send_with(Priority::Low, None) {
                Ok(()) => {}
                Err(e) if e.is_closed() => break,
                Err(_) => std::hint::spin_loop(),
            }
        }
    });
    let mut probe = LatencyProbe::new(samples);
    while probe.lat.all.len() < samples {
        probe.tick();
        if let Ok(Some(sent)) = rx.try_recv() {
            let now = probe.tick();
            probe.record(sent, now);
        }
    }
    rx.close();
    producer.join().expect("producer panicked");
    probe.finish()
}

/// The same test on one tokio channel: the urgent message waits behind the flood.
fn tokio_latency(args: &Args) -> Latencies {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Instant>>(args.capacity);
    let (samples, interval) = (args.samples, Duration::from_micros(args.interval_us));
    let producer = thread::spawn(move || {
        let mut next_high = Instant::now() + interval;
        let mut sent = 0;
        while sent < samples {
            if Instant::now() >= next_high {
                if tx.blocking_send(Some(Instant::now())).is_err() {
                    break;
                }
                sent += 1;
                next_high += interval;
            }
            match tx.try_send(None) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => std::hint::spin_loop(),
            }
        }
    });
    let mut probe = LatencyProbe::new(samples);
    while probe.lat.all.len() < samples {
        probe.tick();
        if let Ok(Some(sent)) = rx.try_recv() {
            let now = probe.tick();
            probe.record(sent, now);
        }
    }
    drop(rx);
    producer.join().expect("producer panicked");
    probe.finish()
}

/// Heap bytes per mailbox: empty, and after one Normal message (one lane allocated).
fn mailbox_bytes(capacity: usize) -> (f64, f64) {
    const N: usize = 1000;
    let mut boxes = Vec::with_capacity(N);
    let counting = Counting::start();
    for _ in 0..N {
        boxes.push(PriorityMailbox::<u64>::bounded(capacity));
    }
    let empty = counting.live_bytes() as f64 / N as f64;
    for (tx, _) in &boxes {
        tx.try_send(1).expect("empty lane has room");
    }
    let one = counting.live_bytes() as f64 / N as f64;
    drop(counting);
    drop(boxes);
    (empty, one)
}
