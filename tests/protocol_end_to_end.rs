//! Cross-crate check of the protocol path: envelopes are encoded, decoded, and routed through a
//! priority mailbox between threads without loss, duplication or reordering within a class.

use std::thread;

use qorch::protocol::{
    Address, AgentId, ClusterId, Envelope, Priority, PriorityMailbox, Sequencer, WireCodec,
};

#[test]
fn envelopes_survive_the_wire_and_the_mailbox() {
    let codec = WireCodec::default();
    let (tx, mut inbox) = PriorityMailbox::<Envelope<u64>>::bounded(64);

    let senders: Vec<_> = (0..4_u32)
        .map(|a| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut seq = Sequencer::new(Address::Agent(AgentId(a)));
                for i in 0..5_000_u64 {
                    let prio = if i % 7 == 0 {
                        Priority::High
                    } else {
                        Priority::Normal
                    };
                    let env = seq
                        .envelope(Address::Cluster(ClusterId(0)), i)
                        .with_priority(prio);
                    // Every envelope crosses the wire before it is delivered.
                    let bytes = codec.encode(&env).expect("encodes");
                    let back: Envelope<u64> = codec.decode(&bytes).expect("decodes");
                    assert_eq!(back, env);
                    tx.send_blocking(back).expect("inbox open");
                }
            })
        })
        .collect();
    drop(tx);

    let mut last = std::collections::HashMap::new();
    let mut n = 0;
    while let Some(env) = inbox.recv_blocking() {
        n += 1;
        assert_eq!(env.seq, env.payload + 1, "sequence numbers start at 1");
        if let Some(prev) = last.insert((env.from, env.priority), env.seq) {
            assert!(prev < env.seq, "FIFO within a class and sender");
        }
    }
    for s in senders {
        s.join().expect("sender panicked");
    }
    assert_eq!(n, 20_000);
}
