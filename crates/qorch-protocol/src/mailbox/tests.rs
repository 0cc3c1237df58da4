use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::*;

fn config(cap: usize, k: usize) -> MailboxConfig {
    MailboxConfig::uniform(cap).with_starvation_limit(k)
}

#[test]
fn fifo_within_a_lane() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(100);
    for i in 0..100 {
        tx.try_send(i).unwrap();
    }
    let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

#[test]
fn highest_non_empty_lane_first() {
    let (tx, mut rx) = PriorityMailbox::<(Priority, u32)>::bounded(10);
    let order = [
        Priority::Low,
        Priority::Normal,
        Priority::Control,
        Priority::High,
    ];
    for (i, p) in order.iter().enumerate() {
        tx.try_send_with(*p, (*p, i as u32)).unwrap();
    }
    let got: Vec<Priority> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|(p, _)| p)
        .collect();
    assert_eq!(got, Priority::DESCENDING);
    assert_eq!(rx.stats().total(), 4);
    assert_eq!(rx.stats().delivered(Priority::Control), 1);
}

#[test]
fn message_declares_its_own_priority() {
    struct Stop;
    impl Message for Stop {
        const PRIORITY: Priority = Priority::Control;
    }
    let (tx, mut rx) = PriorityMailbox::<Stop>::bounded(4);
    tx.try_send(Stop).unwrap();
    assert_eq!(rx.lane_len(Priority::Control), 1);
    assert!(rx.try_recv().is_ok());
}

/// Checks the starvation guarantee on a delivery sequence: while a lane holds messages, it is
/// served at least once every `k` deliveries.
fn assert_starvation_bound(deliveries: &[Priority], initial: [usize; LANES], k: usize) {
    let mut left = initial;
    let mut waited = [0_usize; LANES];
    for (step, p) in deliveries.iter().enumerate() {
        let lane = p.lane();
        for i in 0..LANES {
            if i == lane {
                waited[i] = 0;
            } else if left[i] > 0 {
                waited[i] += 1;
                assert!(
                    waited[i] < k,
                    "lane {i} passed over {} times at step {step}",
                    waited[i]
                );
            }
        }
        left[lane] -= 1;
    }
}

#[test]
fn starvation_guard_serves_every_lane_within_k() {
    for k in [8, 9, 13, 32] {
        let (tx, mut rx) = PriorityMailbox::<Priority>::with_config(config(1000, k)).unwrap();
        let initial = [300, 500, 200, 100];
        for p in Priority::DESCENDING {
            for _ in 0..initial[p.lane()] {
                tx.try_send_with(p, p).unwrap();
            }
        }
        let got: Vec<Priority> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got.len(), 1100);
        assert_starvation_bound(&got, initial, k);
        assert!(rx.stats().starvation_overrides > 0);
        // Strict priority still dominates: the first deliveries are Control.
        assert!(got[..k - LANES].iter().all(|p| *p == Priority::Control));
    }
}

#[test]
fn starvation_guard_under_interleaved_arrivals() {
    // Control keeps arriving while Low waits: Low still gets through every k deliveries.
    let k = 8;
    let (tx, mut rx) = PriorityMailbox::<Priority>::with_config(config(64, k)).unwrap();
    for _ in 0..10 {
        tx.try_send_with(Priority::Low, Priority::Low).unwrap();
    }
    let mut since_low = 0;
    let mut lows = 0;
    while lows < 10 {
        tx.try_send_with(Priority::Control, Priority::Control)
            .unwrap();
        let p = rx.try_recv().unwrap();
        if p == Priority::Low {
            lows += 1;
            since_low = 0;
        } else {
            since_low += 1;
            assert!(since_low < k);
        }
    }
}

#[test]
fn invalid_configs_are_refused() {
    assert_eq!(
        PriorityMailbox::<u8>::with_config(MailboxConfig::uniform(0)).unwrap_err(),
        MailboxConfigError::ZeroCapacity(Priority::Control)
    );
    let err = PriorityMailbox::<u8>::with_config(config(4, 3)).unwrap_err();
    assert!(err.to_string().contains("at least 8"), "{err}");
}

#[test]
fn full_lane_gives_the_message_back() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    // Other lanes are independent; Control never waits behind data.
    tx.try_send_with(Priority::Control, 99).unwrap();
    assert_eq!(rx.try_recv(), Ok(99));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(3).unwrap();
}

#[test]
fn blocking_send_waits_for_room() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(1);
    tx.try_send(0).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let h = thread::spawn(move || {
        tx.send_blocking(1).unwrap();
        d.store(true, Ordering::SeqCst);
    });
    thread::sleep(Duration::from_millis(50));
    assert!(
        !done.load(Ordering::SeqCst),
        "send must wait while the lane is full"
    );
    assert_eq!(rx.recv_blocking(), Some(0));
    h.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(rx.recv_blocking(), Some(1));
    assert_eq!(rx.recv_blocking(), None, "all senders gone");
}

#[test]
fn close_wakes_waiting_senders_with_their_message() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(1);
    tx.try_send(0).unwrap();
    let h = thread::spawn(move || tx.send_blocking(7));
    thread::sleep(Duration::from_millis(50));
    rx.close();
    assert_eq!(h.join().unwrap(), Err(SendError(7)));
    // What was accepted is still delivered, then the end.
    assert_eq!(rx.recv_blocking(), Some(0));
    assert_eq!(rx.recv_blocking(), None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Ended));
}

#[test]
fn close_refuses_new_sends_and_drain_returns_the_rest_in_priority_order() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(8);
    tx.try_send_with(Priority::Low, 1).unwrap();
    tx.try_send_with(Priority::High, 2).unwrap();
    tx.try_send_with(Priority::Low, 3).unwrap();
    let left = rx.drain();
    assert_eq!(left, [2, 1, 3]);
    assert!(tx.is_closed());
    assert_eq!(tx.try_send(4), Err(TrySendError::Closed(4)));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Ended));
}

#[test]
fn recv_timeout_times_out_then_still_works() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(8);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    tx.try_send(5).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_millis(20)), Ok(5));
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Ended)
    );
}

#[test]
fn blocked_receiver_is_woken_by_another_thread() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(8);
    let h = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        tx.try_send(11).unwrap();
        thread::sleep(Duration::from_millis(30));
        // Dropping the last sender ends the mailbox.
    });
    assert_eq!(rx.recv_blocking(), Some(11));
    assert_eq!(rx.recv_blocking(), None);
    h.join().unwrap();
}

#[test]
fn empty_mailbox_allocates_no_lane() {
    let (tx, rx) = PriorityMailbox::<u64>::bounded(1024);
    assert!((0..LANES).all(|i| rx.shared.lane(i).is_none()));
    tx.try_send_with(Priority::High, 1).unwrap();
    let allocated: Vec<bool> = (0..LANES).map(|i| rx.shared.lane(i).is_some()).collect();
    assert_eq!(allocated, [false, true, false, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_send_and_stream() {
    use futures_util::StreamExt;

    let (tx, rx) = PriorityMailbox::<u32>::bounded(4);
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..1000 {
                    tx.send(p * 1000 + i).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let got: Vec<u32> = rx.collect().await;
    for p in producers {
        p.await.unwrap();
    }
    assert_eq!(got.len(), 4000);
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..4000).collect::<Vec<_>>());
    // FIFO per sender within the lane.
    for p in 0..4 {
        let mine: Vec<u32> = got.iter().copied().filter(|x| x / 1000 == p).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn cancelled_send_does_not_block_other_senders() {
    let (tx, mut rx) = PriorityMailbox::<u32>::bounded(1);
    tx.try_send(0).unwrap();
    let tx2 = tx.clone();
    // Two senders wait; the first gives up; the second must still get through.
    let first = tokio::spawn({
        let tx = tx.clone();
        async move {
            tokio::time::timeout(Duration::from_millis(20), tx.send(1))
                .await
                .is_err()
        }
    });
    let second = tokio::spawn(async move { tx2.send(2).await });
    tokio::task::yield_now().await;
    assert!(first.await.unwrap(), "first send timed out");
    assert_eq!(rx.recv().await, Some(0));
    second.await.unwrap().unwrap();
    assert_eq!(rx.recv().await, Some(2));
}

#[test]
fn pushed_word_and_lane_pointers_are_a_cache_line_apart() {
    use std::mem::offset_of;
    let lanes = offset_of!(Shared<u64>, lanes);
    let state = offset_of!(Shared<u64>, state);
    assert!(lanes >= state + 64, "state at {state}, lanes at {lanes}");
}
