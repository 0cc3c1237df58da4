//! Accounting under concurrency: every accepted message is delivered exactly once, in FIFO
//! order per sender and lane, with and without a close in the middle of the traffic.

use std::collections::HashMap;
use std::thread;

use qorch_protocol::{MailboxConfig, Priority, PriorityMailbox};

const PRODUCERS: u32 = 8;
const PER_PRODUCER: u32 = 100_000;

/// A message: which producer, its index, and the lane it was sent on.
type Msg = (u32, u32, Priority);

/// Deterministic priority choice (xorshift), skewed towards Normal like real traffic.
fn priority_for(producer: u32, i: u32) -> Priority {
    let mut x = u64::from(producer) << 32 | u64::from(i);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    match x % 10 {
        0 => Priority::Control,
        1 | 2 => Priority::High,
        3 => Priority::Low,
        _ => Priority::Normal,
    }
}

/// Checks that `delivered` holds, for each producer, exactly indices `0..accepted[p]`, once
/// each, and in increasing order within each (producer, lane).
fn check_exactly_once(delivered: &[Msg], accepted: &[u32]) {
    let mut seen: HashMap<u32, Vec<bool>> = HashMap::new();
    let mut last: HashMap<(u32, Priority), u32> = HashMap::new();
    for &(p, i, prio) in delivered {
        assert_eq!(prio, priority_for(p, i), "message changed lanes");
        let slots = seen
            .entry(p)
            .or_insert_with(|| vec![false; accepted[p as usize] as usize]);
        assert!(
            (i as usize) < slots.len(),
            "producer {p} message {i} delivered but not accepted"
        );
        assert!(
            !slots[i as usize],
            "producer {p} message {i} delivered twice"
        );
        slots[i as usize] = true;
        if let Some(prev) = last.insert((p, prio), i) {
            assert!(
                prev < i,
                "FIFO broken for producer {p} on {prio}: {prev} then {i}"
            );
        }
    }
    for (p, &n) in accepted.iter().enumerate() {
        let got = seen
            .get(&(p as u32))
            .map_or(0, |s| s.iter().filter(|b| **b).count());
        assert_eq!(
            got, n as usize,
            "producer {p}: accepted {n}, delivered {got}"
        );
    }
}

#[test]
fn eight_producers_every_message_exactly_once() {
    let (tx, mut rx) = PriorityMailbox::<Msg>::with_config(MailboxConfig::uniform(256)).unwrap();
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let prio = priority_for(p, i);
                    tx.send_blocking_with(prio, (p, i, prio)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut delivered = Vec::with_capacity((PRODUCERS * PER_PRODUCER) as usize);
    while let Some(m) = rx.recv_blocking() {
        delivered.push(m);
    }
    for h in handles {
        h.join().unwrap();
    }
    check_exactly_once(&delivered, &[PER_PRODUCER; PRODUCERS as usize]);
    assert_eq!(rx.stats().total(), u64::from(PRODUCERS * PER_PRODUCER));
}

#[test]
fn close_mid_traffic_loses_and_duplicates_nothing() {
    let (tx, mut rx) = PriorityMailbox::<Msg>::with_config(MailboxConfig::uniform(64)).unwrap();
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut accepted = 0;
                for i in 0..PER_PRODUCER {
                    let prio = priority_for(p, i);
                    if tx.send_blocking_with(prio, (p, i, prio)).is_err() {
                        // Once closed, every later send fails too.
                        assert!(
                            tx.try_send_with(prio, (p, i, prio))
                                .unwrap_err()
                                .is_closed()
                        );
                        break;
                    }
                    accepted += 1;
                }
                accepted
            })
        })
        .collect();
    drop(tx);
    let mut delivered = Vec::new();
    while delivered.len() < 200_000 {
        delivered.push(rx.recv_blocking().expect("producers still running"));
    }
    rx.close();
    while let Some(m) = rx.recv_blocking() {
        delivered.push(m);
    }
    let accepted: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        accepted.iter().sum::<u32>() < PRODUCERS * PER_PRODUCER,
        "close came too late to test"
    );
    check_exactly_once(&delivered, &accepted);
}

#[test]
fn drain_after_close_accounts_for_in_flight_sends() {
    for _ in 0..20 {
        let (tx, mut rx) = PriorityMailbox::<Msg>::bounded(1 << 16);
        let handles: Vec<_> = (0..4)
            .map(|p| {
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut accepted = 0;
                    for i in 0..20_000 {
                        let prio = priority_for(p, i);
                        if tx.try_send_with(prio, (p, i, prio)).is_err() {
                            break;
                        }
                        accepted += 1;
                    }
                    accepted
                })
            })
            .collect();
        drop(tx);
        let mut delivered: Vec<Msg> = (0..1000).filter_map(|_| rx.recv_blocking()).collect();
        delivered.extend(rx.drain());
        let accepted: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        check_exactly_once(&delivered, &accepted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_producers_and_stream_consumer_exactly_once() {
    use futures_util::StreamExt;

    let (tx, rx) = PriorityMailbox::<Msg>::with_config(MailboxConfig::uniform(128)).unwrap();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..20_000 {
                    let prio = priority_for(p, i);
                    tx.send_with(prio, (p, i, prio)).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let delivered: Vec<Msg> = rx.collect().await;
    for t in tasks {
        t.await.unwrap();
    }
    check_exactly_once(&delivered, &[20_000; PRODUCERS as usize]);
}
