//! Two runtimes in one process joined by an in-memory [`RemoteLink`]: what one does not host
//! leaves through the link, comes in through `inject` on the other, and keeps its sender,
//! sequence number and priority; reliable messages are acknowledged across the link.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use qorch_protocol::{Address, AgentId, ClusterId, Envelope, Message, SubClusterId};
use qorch_runtime::{
    Agent, AgentResult, Context, InjectError, QuantumOrchestrator, Remote, RemoteLink, RuntimeError,
};

#[derive(Debug, Clone, PartialEq)]
enum Msg {
    /// Forward to `to`, reliably or not.
    Relay { to: AgentId, reliable: bool },
    /// Report to the application.
    Hello(u32),
}

impl Message for Msg {}

struct Relay;

impl Agent for Relay {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) -> AgentResult {
        match msg {
            Msg::Relay { to, reliable } => {
                if reliable {
                    ctx.send_reliable_to(to, Msg::Hello(ctx.id().0));
                } else {
                    ctx.send_to(to, Msg::Hello(ctx.id().0));
                }
            }
            Msg::Hello(n) => ctx.send_to(Address::Orchestrator, Msg::Hello(n)),
        }
        Ok(())
    }
}

/// Queues what leaves; agents with ids below `hosts_below` exist on the other side.
struct Wire {
    tx: Sender<Envelope<Remote<Msg>>>,
    hosts_below: u32,
    refused: Mutex<u64>,
}

impl RemoteLink<Msg> for Wire {
    fn forward(&self, env: Envelope<Remote<Msg>>) -> Result<(), Envelope<Remote<Msg>>> {
        match env.to {
            Address::Agent(a) if a.0 < self.hosts_below => self.tx.send(env).map_err(|e| e.0),
            _ => {
                *self.refused.lock().unwrap() += 1;
                Err(env)
            }
        }
    }
}

/// Delivers what arrives on `rx` into `to`'s runtime until the channel closes.
fn pump(rx: Receiver<Envelope<Remote<Msg>>>, to: qorch_runtime::RuntimeHandle<Relay>) {
    std::thread::spawn(move || {
        let exec = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for env in rx {
            exec.block_on(to.inject(env))
                .expect("the other side hosts it");
        }
    });
}

fn side(
    link: Arc<Wire>,
    cluster: u32,
    sub: u32,
    agents: std::ops::Range<u32>,
) -> QuantumOrchestrator<Relay> {
    let rt = QuantumOrchestrator::<Relay>::builder()
        .workers(1)
        .remote(link)
        .build()
        .unwrap();
    let m = rt.manager();
    m.create_cluster_with_id(ClusterId(cluster), "c").unwrap();
    m.create_sub_cluster_with_id(ClusterId(cluster).into(), SubClusterId(sub), "s")
        .unwrap();
    let ids: Vec<AgentId> = agents.map(AgentId).collect();
    let factory: qorch_runtime::Factory<Relay> = Arc::new(|_| Relay);
    m.spawn_agents_at(SubClusterId(sub).into(), &ids, &factory)
        .unwrap();
    rt
}

#[test]
fn messages_and_acknowledgements_cross_the_link() {
    let (a_tx, a_rx) = crossbeam_channel::unbounded();
    let (b_tx, b_rx) = crossbeam_channel::unbounded();
    // A hosts agents 0..4 in cluster 0; B hosts 4..8 in cluster 1.
    let a_link = Arc::new(Wire {
        tx: a_tx,
        hosts_below: 8,
        refused: Mutex::new(0),
    });
    let b_link = Arc::new(Wire {
        tx: b_tx,
        hosts_below: 4,
        refused: Mutex::new(0),
    });
    let a = side(Arc::clone(&a_link), 0, 0, 0..4);
    let b = side(Arc::clone(&b_link), 1, 7, 4..8);
    pump(a_rx, b.handle());
    pump(b_rx, a.handle());

    let ha = a.handle();
    ha.send_to_blocking(
        AgentId(1),
        Msg::Relay {
            to: AgentId(6),
            reliable: false,
        },
    )
    .unwrap();
    ha.send_to_blocking(
        AgentId(2),
        Msg::Relay {
            to: AgentId(5),
            reliable: true,
        },
    )
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let env = b
            .handle()
            .recv_blocking(Duration::from_secs(5))
            .expect("a hello");
        got.push((env.from, env.payload));
    }
    got.sort_by_key(|(f, _)| format!("{f}"));
    // The receivers report to their own application, naming themselves; the hello came from
    // A's agents (1 and 2), across the link.
    assert_eq!(
        got,
        vec![
            (AgentId(5).into(), Msg::Hello(2)),
            (AgentId(6).into(), Msg::Hello(1))
        ]
    );

    // Nothing left in flight once the reliable message's ack has come back to A.
    let exec = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..200 {
        if ha.in_flight() == 0 && b.handle().in_flight() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    exec.block_on(ha.settle()).unwrap();
    assert_eq!(ha.in_flight(), 0);
    let stats = exec.block_on(ha.stats()).unwrap();
    assert_eq!(
        stats.redeliveries, 0,
        "the ack crossed back before any redelivery"
    );

    // An address nobody hosts is refused by the link and counted as a dead letter.
    ha.send_to_blocking(
        AgentId(3),
        Msg::Relay {
            to: AgentId(99),
            reliable: false,
        },
    )
    .unwrap();
    for _ in 0..200 {
        if *a_link.refused.lock().unwrap() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*a_link.refused.lock().unwrap(), 1);
    let a_report = a.shutdown();
    assert_eq!(a_report.stats.dead_letters, 1);
    b.shutdown();
}

#[test]
fn chosen_ids_are_checked_and_inject_refuses_unknown_addresses() {
    let (tx, _rx) = crossbeam_channel::unbounded();
    let link = Arc::new(Wire {
        tx,
        hosts_below: 0,
        refused: Mutex::new(0),
    });
    let rt = side(link, 3, 2, 10..12);
    let m = rt.manager();
    assert!(matches!(
        m.create_cluster_with_id(ClusterId(3), "again"),
        Err(RuntimeError::AddressInUse(_))
    ));
    let factory: qorch_runtime::Factory<Relay> = Arc::new(|_| Relay);
    assert!(matches!(
        m.spawn_agents_at(SubClusterId(2).into(), &[AgentId(11)], &factory),
        Err(RuntimeError::AddressInUse(_))
    ));
    // New clusters and agents number past the chosen ones.
    assert_eq!(m.create_cluster("next").unwrap(), ClusterId(4));
    let next = m.spawn_agents(ClusterId(4).into(), 1, |_| Relay).unwrap();
    assert_eq!(next, vec![AgentId(12)]);

    let exec = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let env = Envelope {
        from: AgentId(500).into(),
        to: AgentId(77).into(),
        priority: qorch_protocol::Priority::Normal,
        seq: 1,
        correlation: None,
        deadline: None,
        ack_required: false,
        payload: Remote::User(Msg::Hello(0)),
    };
    assert!(matches!(
        exec.block_on(rt.handle().inject(env)),
        Err(InjectError::Unknown(_))
    ));
    rt.shutdown();
}
