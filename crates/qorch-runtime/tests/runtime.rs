//! Integration tests of the runtime: routing, request/reply, priorities, supervision,
//! heartbeats, shutdown and determinism.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorch_protocol::{Address, AgentId, Envelope, Message, Priority};
use qorch_runtime::{
    Agent, AgentResult, ComponentStatus, Context, QuantumOrchestrator, RuntimeHandle,
};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
enum Msg {
    /// Ask the receiver to send `Hello(tag)` to `to`.
    SendTo {
        to: Address,
        tag: u64,
    },
    /// Reported to the application by its receiver.
    Hello(u64),
    /// Tells the application which agent handled what.
    Saw {
        tag: u64,
    },
    /// Keeps the receiver busy for a while.
    Block(u64),
    Flood(u64),
    Urgent,
    /// Reliable work item.
    Work(u64),
    /// Ask the receiver to send `n` reliable work items to `to`.
    Produce {
        to: AgentId,
        n: u64,
    },
    /// Start a random walk of `tokens` tokens of `hops` hops.
    Go {
        tokens: u64,
        hops: u64,
    },
    Token {
        hops: u64,
        id: u64,
    },
    Done(u64),
}

impl Message for Msg {
    fn priority(&self) -> Priority {
        match self {
            Msg::Flood(_) => Priority::Low,
            Msg::Urgent => Priority::High,
            _ => Priority::Normal,
        }
    }
}

/// One behaviour for every test, so that one runtime type serves all.
struct Probe {
    agents: u32,
    /// Values of `Work` this instance saw (reset on restart, as it must be).
    order: Vec<String>,
    panics: Arc<Mutex<HashSet<u64>>>,
    fragile: bool,
}

fn probe(agents: u32) -> Probe {
    Probe {
        agents,
        order: Vec::new(),
        panics: Arc::default(),
        fragile: false,
    }
}

impl Agent for Probe {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) -> AgentResult {
        match msg {
            Msg::SendTo { to, tag } => ctx.send_to(to, Msg::Hello(tag)),
            Msg::Hello(tag) => ctx.send_to(Address::Orchestrator, Msg::Saw { tag }),
            Msg::Block(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                self.order.push("block".into());
            }
            Msg::Flood(i) => {
                self.order.push(format!("flood{i}"));
                if i == 999 {
                    ctx.send_to(
                        Address::Orchestrator,
                        Msg::Saw {
                            tag: self
                                .order
                                .iter()
                                .position(|s| s == "urgent")
                                .unwrap_or(usize::MAX) as u64,
                        },
                    );
                }
            }
            Msg::Urgent => self.order.push("urgent".into()),
            Msg::Produce { to, n } => {
                for i in 0..n {
                    ctx.send_reliable_to(to, Msg::Work(i));
                }
            }
            Msg::Work(v) => {
                // Crash on the first delivery of some items (remembered across restarts).
                if self.fragile && v % 7 == 3 && self.panics.lock().unwrap().insert(v) {
                    std::panic::panic_any(format!("injected fault on work item {v}"));
                }
                ctx.send_to(Address::Orchestrator, Msg::Saw { tag: v });
            }
            Msg::Go { tokens, hops } => {
                for t in 0..tokens {
                    let to = AgentId((ctx.random_u64() % u64::from(self.agents)) as u32);
                    ctx.send_to(to, Msg::Token { hops, id: t });
                }
            }
            Msg::Token { hops, id } => {
                if hops == 0 {
                    ctx.send_to(Address::Orchestrator, Msg::Done(id));
                } else {
                    let to = AgentId((ctx.random_u64() % u64::from(self.agents)) as u32);
                    ctx.send_to(to, Msg::Token { hops: hops - 1, id });
                }
            }
            other => return Err(format!("unexpected message {other:?}").into()),
        }
        Ok(())
    }
}

fn recv(h: &RuntimeHandle<Probe>) -> Envelope<Msg> {
    h.recv_blocking(WAIT)
        .expect("a message for the application in time")
}

#[test]
fn routes_to_every_level_and_back_up() {
    let rt = QuantumOrchestrator::<Probe>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let c0 = m.create_cluster("c0").unwrap();
    let s0 = m.create_sub_cluster(c0.into(), "c0/s0").unwrap();
    let ss0 = m.create_sub_cluster(s0.into(), "c0/s0/ss0").unwrap();
    let c1 = m.create_cluster("c1").unwrap();
    let s1 = m.create_sub_cluster(c1.into(), "c1/s1").unwrap();
    let hosts: Vec<Address> = vec![c0.into(), s0.into(), ss0.into(), c1.into(), s1.into()];
    let mut agents = Vec::new();
    for h in &hosts {
        agents.extend(m.spawn_agents(*h, 2, |_| probe(10)).unwrap());
    }
    for (h, pair) in hosts.iter().zip(agents.chunks(2)) {
        assert_eq!(m.host_of(pair[0]), Some(*h));
    }
    let handle = rt.handle();
    // Every agent sends to every agent: the receiver reports, tagged with the pair.
    let mut expected = HashMap::new();
    for (i, &src) in agents.iter().enumerate() {
        for (j, &dst) in agents.iter().enumerate() {
            let tag = (i * 100 + j) as u64;
            expected.insert(tag, dst);
            handle
                .send_blocking(
                    &src,
                    Msg::SendTo {
                        to: dst.into(),
                        tag,
                    },
                )
                .unwrap();
        }
    }
    let mut seen = HashMap::new();
    while seen.len() < expected.len() {
        let env = recv(&handle);
        let Msg::Saw { tag } = env.payload else {
            panic!("unexpected {:?}", env.payload)
        };
        assert!(seen.insert(tag, env.from).is_none(), "tag {tag} twice");
    }
    for (tag, dst) in &expected {
        assert_eq!(seen[tag], dst.address(), "tag {tag}");
    }
    // Messages to a sub-cluster's or the orchestrator's address reach the application.
    handle
        .send_blocking(
            &agents[9],
            Msg::SendTo {
                to: ss0.into(),
                tag: 7,
            },
        )
        .unwrap();
    let env = recv(&handle);
    assert_eq!(
        (env.to, env.from, env.payload),
        (ss0.into(), agents[9].into(), Msg::Hello(7))
    );
    handle
        .send_blocking(
            &agents[0],
            Msg::SendTo {
                to: Address::Orchestrator,
                tag: 8,
            },
        )
        .unwrap();
    assert_eq!(recv(&handle).payload, Msg::Hello(8));
    let report = rt.shutdown();
    assert_eq!(report.nodes_missing, 0);
    assert!(report.stats.forwarded > 0);
}

#[test]
fn a_high_message_overtakes_a_low_flood() {
    let rt = QuantumOrchestrator::<Probe>::builder()
        .workers(1)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let a = m.spawn_agents(c.into(), 1, |_| probe(1)).unwrap()[0];
    let h = rt.handle();
    // Keep the agent busy while a flood and then one urgent message queue up.
    h.send_blocking(&a, Msg::Block(300)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..1000 {
        h.send_blocking(&a, Msg::Flood(i)).unwrap();
    }
    h.send_blocking(&a, Msg::Urgent).unwrap();
    let Msg::Saw { tag: urgent_at } = recv(&h).payload else {
        panic!()
    };
    // "block" is entry 0; the urgent message must come right after it, ahead of the flood.
    assert_eq!(urgent_at, 1, "urgent handled at position {urgent_at}");
    rt.shutdown();
}

#[test]
fn a_panicking_agent_is_restarted_and_loses_or_duplicates_nothing() {
    let rt = QuantumOrchestrator::<Probe>::builder()
        .workers(2)
        .restart_budget(1000)
        .redelivery(Duration::from_millis(30), 20)
        .build()
        .unwrap();
    let m = rt.manager();
    let a = m.create_cluster("producers").unwrap();
    let b = m.create_cluster("fragile").unwrap();
    let producer = m.spawn_agents(a.into(), 1, |_| probe(2)).unwrap()[0];
    let panics: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let p = Arc::clone(&panics);
    let fragile = m
        .spawn_agents(b.into(), 1, move |_| Probe {
            fragile: true,
            panics: Arc::clone(&p),
            ..probe(2)
        })
        .unwrap()[0];
    let h = rt.handle();
    let n = 300_u64;
    h.send_blocking(
        &producer,
        Msg::Produce {
            to: fragile.id(),
            n,
        },
    )
    .unwrap();
    let mut seen = Vec::new();
    while (seen.len() as u64) < n {
        let Msg::Saw { tag } = recv(&h).payload else {
            panic!()
        };
        seen.push(tag);
    }
    // Nothing more arrives: no duplicate.
    std::thread::sleep(Duration::from_millis(300));
    assert!(h.try_recv().is_none(), "a work item was handled twice");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..n).collect::<Vec<_>>(),
        "every item handled exactly once"
    );
    let crashes = panics.lock().unwrap().len() as u64;
    assert_eq!(crashes, (0..n).filter(|v| v % 7 == 3).count() as u64);
    let stats = futures_block_on(h.stats()).unwrap();
    assert_eq!(stats.restarts, crashes);
    assert!(stats.redeliveries >= crashes);
    let report = rt.shutdown();
    assert_eq!(report.unacknowledged, 0);
}

#[test]
fn an_agent_failing_beyond_its_budget_is_failed_and_its_mail_counted() {
    struct Crasher;
    impl Agent for Crasher {
        type Msg = u32;
        fn handle(&mut self, _: u32, _: &mut Context<'_, u32>) -> AgentResult {
            Err("always fails".into())
        }
    }
    let rt = QuantumOrchestrator::<Crasher>::builder()
        .workers(1)
        .restart_budget(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let a = m.spawn_agents(c.into(), 1, |_| Crasher).unwrap()[0];
    let h = rt.handle();
    for i in 0..10 {
        h.send_blocking(&a, i).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let s = futures_block_on(h.stats()).unwrap();
        if s.restarts == 3 && s.dead_letters == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "stats {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = wait_status(&h, |t| {
        t.find(c.into()).is_some_and(|n| n.agents.failed == 1)
    });
    assert_eq!(
        status.find(c.into()).unwrap().status,
        ComponentStatus::Degraded
    );
    rt.shutdown();
}

fn wait_status(
    h: &RuntimeHandle<impl Agent>,
    ok: impl Fn(&qorch_runtime::StatusTree) -> bool,
) -> qorch_runtime::StatusTree {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = futures_block_on(h.status()).unwrap();
        if ok(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "status never satisfied: {t:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_silent_sub_cluster_is_marked_failed() {
    let rt = QuantumOrchestrator::<Probe>::builder()
        .workers(2)
        .heartbeat(Duration::from_millis(20), Duration::from_millis(120))
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let s = m.create_sub_cluster(c.into(), "c/s").unwrap();
    let other = m.create_sub_cluster(c.into(), "c/other").unwrap();
    m.spawn_agents(s.into(), 5, |_| probe(5)).unwrap();
    let h = rt.handle();
    let t = wait_status(&h, |t| {
        t.find(s.into())
            .is_some_and(|n| n.status == ComponentStatus::Healthy)
    });
    assert_eq!(t.find(s.into()).unwrap().agents.total, 5);
    m.kill(s.into()).unwrap();
    let t = wait_status(&h, |t| {
        t.find(s.into())
            .is_some_and(|n| n.status == ComponentStatus::Failed)
    });
    assert_eq!(
        t.find(other.into()).unwrap().status,
        ComponentStatus::Healthy
    );
    assert_eq!(t.worst(), ComponentStatus::Failed);
    // Rounds do not wait for the failed sub-cluster.
    let round = futures_block_on(h.round(1)).unwrap();
    assert!(round.agents.is_empty());
    rt.shutdown();
}

#[test]
fn graceful_shutdown_delivers_what_was_accepted_and_reports() {
    let rt = QuantumOrchestrator::<Probe>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let agents = m.spawn_agents(c.into(), 4, |_| probe(4)).unwrap();
    let h = rt.handle();
    // Slow the agents down so that messages are still queued when the stop arrives.
    for &a in &agents {
        h.send_blocking(&a, Msg::Block(100)).unwrap();
        for i in 0..250 {
            h.send_blocking(&a, Msg::Hello(i)).unwrap();
        }
    }
    let report = rt.shutdown();
    assert_eq!(report.nodes_reported, 1);
    assert_eq!(report.stats.handled, 4 * 251, "{report:?}");
    assert_eq!(report.left_in_inbox, 4 * 250);
    assert_eq!(report.stats.dead_letters, 0);
}

/// Runs the random-walk workload on one worker and returns the message trace.
fn walk_trace(seed: u64) -> Vec<qorch_runtime::TraceEvent> {
    // No wall-clock events during the run (timers, heartbeats): with one worker the order in
    // which messages are handled is then a function of the messages alone.
    let config = qorch_runtime::RuntimeConfig {
        workers: 1,
        seed,
        trace: true,
        heartbeat_interval: Duration::from_secs(3600),
        heartbeat_timeout: Duration::from_secs(7200),
        timer_resolution: Duration::from_secs(3600),
        ..qorch_runtime::RuntimeConfig::default()
    };
    let rt = QuantumOrchestrator::<Probe>::builder()
        .config(config)
        .build()
        .unwrap();
    let m = rt.manager();
    let n = 60_u32;
    let c0 = m.create_cluster("c0").unwrap();
    let c1 = m.create_cluster("c1").unwrap();
    let s1 = m.create_sub_cluster(c1.into(), "s1").unwrap();
    for host in [Address::from(c0), c1.into(), s1.into()] {
        m.spawn_agents(host, (n / 3) as usize, move |_| probe(n))
            .unwrap();
    }
    let h = rt.handle();
    // Start from a settled runtime (every spawn done), whatever the machine's load.
    futures_block_on(h.settle()).unwrap();
    h.send_to_blocking(
        AgentId(0),
        Msg::Go {
            tokens: 20,
            hops: 40,
        },
    )
    .unwrap();
    for _ in 0..20 {
        assert!(matches!(recv(&h).payload, Msg::Done(_)));
    }
    let trace = futures_block_on(h.trace()).unwrap();
    rt.shutdown();
    trace
}

#[test]
fn same_seed_on_one_worker_gives_the_same_trace() {
    let a = walk_trace(7);
    let b = walk_trace(7);
    assert_eq!(a.len(), 1 + 20 * 41);
    assert_eq!(a, b);
    let c = walk_trace(8);
    assert_ne!(a, c, "a different seed walks differently");
}

#[test]
fn embeds_in_an_application_tokio_runtime() {
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rt = QuantumOrchestrator::<Probe>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let agents = m.spawn_agents(c.into(), 8, |_| probe(8)).unwrap();
    let h = rt.handle();
    let sent = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicBool::new(false));
    app.block_on({
        let (sent, ok) = (Arc::clone(&sent), Arc::clone(&ok));
        async move {
            let tasks: Vec<_> = agents
                .iter()
                .map(|&a| {
                    let (h, sent) = (h.clone(), Arc::clone(&sent));
                    tokio::spawn(async move {
                        for i in 0..100 {
                            h.send(
                                &a,
                                Msg::SendTo {
                                    to: Address::Orchestrator,
                                    tag: i,
                                },
                            )
                            .await
                            .unwrap();
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            for _ in 0..800 {
                h.recv().await.unwrap();
            }
            ok.store(true, Ordering::Relaxed);
        }
    });
    assert!(ok.load(Ordering::Relaxed));
    assert_eq!(sent.load(Ordering::Relaxed), 800);
    rt.shutdown();
}

/// Runs a future to completion on a throwaway current-thread runtime.
fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Starts a chain of `hops` messages on every tick (from every tenth agent).
struct Chainer {
    n: u32,
}

impl Agent for Chainer {
    type Msg = u32;

    fn on_tick(&mut self, _tick: u64, ctx: &mut Context<'_, u32>) -> AgentResult {
        if ctx.id().0 % 10 == 0 {
            ctx.send_to(AgentId((ctx.id().0 + 1) % self.n), 30);
        }
        Ok(())
    }

    fn handle(&mut self, hops: u32, ctx: &mut Context<'_, u32>) -> AgentResult {
        if hops == 0 {
            ctx.send_to(Address::Orchestrator, 0);
        } else {
            // Jump far, so that chains cross clusters.
            ctx.send_to(AgentId((ctx.id().0 + 37) % self.n), hops - 1);
        }
        Ok(())
    }
}

#[test]
fn quiesce_waits_for_the_cascades_a_tick_starts() {
    let rt = QuantumOrchestrator::<Chainer>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let n = 200_u32;
    for c in 0..4 {
        let cid = m.create_cluster(&format!("c{c}")).unwrap();
        let sub = m.create_sub_cluster(cid.into(), "s").unwrap();
        m.spawn_agents(sub.into(), (n / 4) as usize, move |_| Chainer { n })
            .unwrap();
    }
    let h = rt.handle();
    let mut done = 0;
    for tick in 1..=5 {
        futures_block_on(h.tick(tick)).unwrap();
        futures_block_on(h.quiesce(tick, WAIT)).unwrap();
        // Every chain of this tick has finished: exactly 20 more completions, none pending.
        while h.try_recv().is_some() {
            done += 1;
        }
        assert_eq!(done, 20 * tick, "after tick {tick}");
    }
    let stats = futures_block_on(h.stats()).unwrap();
    assert_eq!(stats.handled, 5 * 20 * 31);
    rt.shutdown();
}

#[test]
fn quiesce_returns_after_a_sub_cluster_is_killed_with_messages_in_flight() {
    let rt = QuantumOrchestrator::<Chainer>::builder()
        .workers(2)
        .heartbeat(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    let m = rt.manager();
    let n = 200_u32;
    let mut subs = Vec::new();
    for c in 0..4 {
        let cid = m.create_cluster(&format!("c{c}")).unwrap();
        let sub = m.create_sub_cluster(cid.into(), "s").unwrap();
        m.spawn_agents(sub.into(), (n / 4) as usize, move |_| Chainer { n })
            .unwrap();
        subs.push(sub);
    }
    let h = rt.handle();
    futures_block_on(h.tick(1)).unwrap();
    futures_block_on(h.quiesce(1, WAIT)).unwrap();
    // Kill one sub-cluster while the next tick's chains run through it.
    futures_block_on(h.tick(2)).unwrap();
    m.kill(subs[1].into()).unwrap();
    futures_block_on(h.quiesce(2, WAIT)).expect("the killed node's messages are accounted for");
    // And later ticks still settle: chains into the dead sub-cluster end as dead letters.
    futures_block_on(h.tick(3)).unwrap();
    futures_block_on(h.quiesce(3, WAIT)).unwrap();
    let stats = futures_block_on(h.stats()).unwrap();
    assert!(stats.dead_letters > 0, "{stats:?}");
    rt.shutdown();
}
