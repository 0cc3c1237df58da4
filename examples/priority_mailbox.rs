//! A priority mailbox between threads: a Low-priority flood does not delay urgent messages.
//!
//! Run with `cargo run --release -p qorch --example priority_mailbox`.

use std::thread;
use std::time::Instant;

use qorch::protocol::{
    Address, AgentId, Envelope, MailboxConfig, Priority, PriorityMailbox, Sequencer,
};

fn main() {
    let config = MailboxConfig::uniform(256).with_starvation_limit(16);
    let (tx, mut inbox) = PriorityMailbox::<Envelope<Instant>>::with_config(config)
        .expect("valid mailbox configuration");

    let producer = thread::spawn(move || {
        let mut seq = Sequencer::new(Address::Agent(AgentId(1)));
        for i in 0..10_000 {
            let env = seq.envelope(Address::Agent(AgentId(2)), Instant::now());
            let prio = if i % 1000 == 999 {
                Priority::High
            } else {
                Priority::Low
            };
            tx.send_blocking(env.with_priority(prio))
                .expect("inbox open");
        }
    });

    let mut worst_high = 0.0_f64;
    let mut counts = [0_u32; Priority::COUNT];
    while let Some(env) = inbox.recv_blocking() {
        counts[env.priority.lane()] += 1;
        if env.priority == Priority::High {
            worst_high = worst_high.max(env.payload.elapsed().as_secs_f64() * 1e6);
        }
    }
    producer.join().expect("producer panicked");

    let stats = inbox.stats();
    println!(
        "delivered {} messages: {} High (worst latency {worst_high:.1} us), {} Low",
        stats.total(),
        counts[Priority::High.lane()],
        counts[Priority::Low.lane()]
    );
    assert_eq!(stats.total(), 10_000);
}
