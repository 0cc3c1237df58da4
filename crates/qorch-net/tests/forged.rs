//! Forged frames against a running deployment, over a real `nats-server` (started on a free
//! loopback port): a client with the server's credentials but without the run's deployment
//! key publishes data frames, acknowledgements, control-call parts, heartbeats and garbage on
//! the subjects the gateways, a control server and a heartbeat watcher listen on. Every one
//! is refused before it is decoded, counted where it arrived, and never handled, while the
//! keyed traffic beside it keeps flowing.
//!
//! Without `nats-server` installed this test says so and passes, unless
//! `QORCH_REQUIRE_NATS=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use qorch_net::{
    Connection, FrameKey, Gateway, GatewayConfig, Membership, NatsConfig, NetError, RouteTable,
    Subjects, TAG_BYTES, beacon, rpc,
};
use qorch_protocol::{AgentId, ClusterId, Message, SubClusterId};
use qorch_runtime::{Agent, AgentResult, Context, Factory, QuantumOrchestrator};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Msg {
    /// Send `Work(base)` .. `Work(base + n - 1)` to `to`.
    Burst {
        to: AgentId,
        base: u32,
        n: u32,
    },
    Work(u32),
}

impl Message for Msg {}

struct Node {
    handled: Arc<AtomicU64>,
    /// Work items at or above this were sent by the process without the key.
    forged: Arc<AtomicU64>,
}

const FORGED_BASE: u32 = 1_000_000;

impl Agent for Node {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) -> AgentResult {
        match msg {
            Msg::Burst { to, base, n } => {
                for i in 0..n {
                    ctx.send_to(to, Msg::Work(base + i));
                }
            }
            Msg::Work(i) => {
                self.handled.fetch_add(1, Ordering::Relaxed);
                if i >= FORGED_BASE {
                    self.forged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

struct Side {
    rt: QuantumOrchestrator<Node>,
    gateway: Gateway<Msg>,
    control: Connection,
    handled: Arc<AtomicU64>,
    forged: Arc<AtomicU64>,
}

/// A process hosting cluster `c` (leaf `c`, agents `4c .. 4c + 4`); every side knows where
/// clusters 0, 1 and 2 live.
async fn side(config: &NatsConfig, name: &str, c: u32) -> Side {
    let routes = Arc::new(RouteTable::new());
    for k in 0..3 {
        routes.place_agents(
            (4 * k..4 * k + 4).map(|a| (AgentId(a), ClusterId(k), Some(SubClusterId(k)))),
        );
    }
    let mut gc = GatewayConfig::new(name);
    // Long enough that no frame is published twice while the test runs: counts stay exact.
    gc.redelivery_timeout = Duration::from_secs(60);
    let (mut gateway, link) = Gateway::<Msg>::new(gc, Subjects::new("t"), routes);
    let rt = QuantumOrchestrator::<Node>::builder()
        .workers(1)
        .remote(link)
        .build()
        .unwrap();
    let m = rt.manager();
    m.create_cluster_with_id(ClusterId(c), "c").unwrap();
    m.create_sub_cluster_with_id(ClusterId(c).into(), SubClusterId(c), "s")
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let forged = Arc::new(AtomicU64::new(0));
    let (h, f) = (Arc::clone(&handled), Arc::clone(&forged));
    let factory: Factory<Node> = Arc::new(move |_| Node {
        handled: Arc::clone(&h),
        forged: Arc::clone(&f),
    });
    let ids: Vec<AgentId> = (4 * c..4 * c + 4).map(AgentId).collect();
    m.spawn_agents_at(SubClusterId(c).into(), &ids, &factory)
        .unwrap();
    let data = config.connect(&format!("{name}/data")).await.unwrap();
    let control = config.connect(&format!("{name}/control")).await.unwrap();
    gateway
        .start(&data, &control, rt.handle(), &[ClusterId(c)])
        .await
        .unwrap();
    Side {
        rt,
        gateway,
        control,
        handled,
        forged,
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn burst(s: &Side, from: u32, to: u32, base: u32, n: u32) {
    s.rt.handle()
        .send_to_blocking(
            AgentId(from),
            Msg::Burst {
                to: AgentId(to),
                base,
                n,
            },
        )
        .unwrap();
}

/// The next message on `sub`, within a second.
async fn next(sub: &mut qorch_net::Subscription) -> qorch_net::Delivery {
    tokio::time::timeout(Duration::from_secs(1), sub.next())
        .await
        .expect("a message within a second")
        .expect("an open subscription")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one scenario, forgery by forgery")]
async fn forged_frames_are_refused_counted_and_never_handled() {
    let Some(srv) = qorch_net::local_server::start_or_skip(&[], "forged") else {
        return;
    };
    let mut keyed = NatsConfig::new(srv.url());
    keyed.frame_key = Some(FrameKey::generate().unwrap());
    // The forger: the server's credentials, not the key.
    let plain = NatsConfig::new(srv.url());
    let subjects = Subjects::new("t");

    let a = side(&keyed, "a", 0).await;
    let b = side(&keyed, "b", 1).await;
    // A process without the key, with a real gateway: well-formed frames, no tag.
    let c = side(&plain, "c", 2).await;
    assert!(a.control.authenticated() && !c.control.authenticated());

    // Node b's control server, and a heartbeat watcher, each on a connection of its own so
    // that each counts only its own refusals.
    let ctl = keyed.connect("b/ctl").await.unwrap();
    let node_subject = subjects.control("node.b");
    let mut requests = rpc::serve(&ctl, &node_subject).await.unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    {
        let (ctl, calls) = (ctl.clone(), Arc::clone(&calls));
        tokio::spawn(async move {
            while let Some(req) = requests.recv().await {
                let n: u32 = req.decode().unwrap();
                calls.fetch_add(1, Ordering::Relaxed);
                req.answer(&ctl, &Ok::<u32, String>(n + 1)).await.unwrap();
            }
        });
    }
    let watcher = keyed.connect("watcher").await.unwrap();
    let members = Membership::watch(&watcher, &subjects).await.unwrap();
    watcher.flush().await.unwrap();
    let beat_a = beacon(&a.control, &subjects, "a", Duration::from_millis(50));

    // The forger listens too (it may subscribe under the prefix), to record genuine frames.
    let forger = plain.connect("forger").await.unwrap();
    let mut data_spy = forger.subscribe("t.d.c1.>").await.unwrap();
    let mut ack_spy = forger.subscribe(subjects.acks("a")).await.unwrap();
    forger.flush().await.unwrap();

    // Keyed traffic flows: a -> b, acknowledged.
    burst(&a, 0, 5, 0, 100);
    until("100 handled on b", || {
        b.handled.load(Ordering::Relaxed) == 100
    })
    .await;
    until("a's frames acknowledged", || {
        a.gateway.stats().idle() && b.gateway.stats().idle()
    })
    .await;
    let sealed = next(&mut data_spy).await;
    let sealed_ack = next(&mut ack_spy).await;
    let (frames_in, acked) = (b.gateway.stats().frames_in, a.gateway.stats().frames_acked);

    // 1. Data frames from the process without the key: well-formed, valid CRC, no tag.
    burst(&c, 8, 5, FORGED_BASE, 10);
    until("c's frames published", || {
        let s = c.gateway.stats();
        s.envelopes_out == 10 && s.frames_out >= 1 && b.gateway.stats().refused_frames >= 1
    })
    .await;
    // 2. A genuine data frame with its tag cut off: exactly what the codec would accept.
    let cut = sealed.payload.slice(..sealed.payload.len() - TAG_BYTES);
    forger.publish(sealed.subject.clone(), cut).await.unwrap();
    // 3. The genuine frame, tag intact, on another priority's subject.
    let elsewhere = sealed.subject.replace(".normal", ".high");
    assert_ne!(elsewhere, sealed.subject);
    forger
        .publish(elsewhere, sealed.payload.clone())
        .await
        .unwrap();
    // 4. Garbage on a data subject.
    forger
        .publish(
            sealed.subject.clone(),
            Bytes::from_static(b"\x01not a frame"),
        )
        .await
        .unwrap();
    // 5. An acknowledgement without its tag, and garbage on the acknowledgement subject.
    let cut_ack = sealed_ack
        .payload
        .slice(..sealed_ack.payload.len() - TAG_BYTES);
    forger
        .publish(sealed_ack.subject.clone(), cut_ack)
        .await
        .unwrap();
    forger
        .publish(
            subjects.acks("a"),
            Bytes::from_static(b"\x01ack everything"),
        )
        .await
        .unwrap();
    // 6. A control call without the key (one part), and garbage on the call subject.
    let forged_client = rpc::RpcClient::new(&forger).await.unwrap();
    let err = forged_client
        .call::<u32, u32>(&node_subject, &41, Duration::from_millis(500))
        .await
        .expect_err("a call without the key is never answered");
    assert!(matches!(err, NetError::Timeout { .. }), "{err}");
    forger
        .publish(node_subject.clone(), Bytes::from_static(b"\x01crash"))
        .await
        .unwrap();
    // 7. Heartbeats without the key: one for a process that never beats ("b"), one for a
    //    stranger, and garbage (one beat each: the first tick of an interval is at once).
    let beat_b = beacon(&forger, &subjects, "b", Duration::from_secs(3600));
    let beat_ghost = beacon(&forger, &subjects, "ghost", Duration::from_secs(3600));
    forger
        .publish(subjects.heartbeat("b"), Bytes::from_static(b"\x01alive"))
        .await
        .unwrap();
    // 8. The genuine frame replayed as is: accepted by the MAC, then de-duplicated.
    forger
        .publish(sealed.subject.clone(), sealed.payload.clone())
        .await
        .unwrap();
    forger.flush().await.unwrap();

    let c_frames = c.gateway.stats().frames_out;
    until("every forgery refused", || {
        b.gateway.stats().refused_frames == c_frames + 3
            && a.gateway.stats().refused_frames == 2
            && ctl.refused_frames() == 2
            && watcher.refused_frames() == 3
            && b.gateway.stats().duplicate_frames == 1
    })
    .await;
    // Nothing more arrives late.
    tokio::time::sleep(Duration::from_millis(300)).await;
    beat_b.abort();
    beat_ghost.abort();

    let (sa, sb, sc) = (a.gateway.stats(), b.gateway.stats(), c.gateway.stats());
    assert_eq!(sb.refused_frames, c_frames + 3, "{sb:?}");
    assert_eq!(
        sb.corrupt_frames, 0,
        "the MAC refuses before the codec: {sb:?}"
    );
    assert_eq!(sb.frames_in, frames_in, "no forged frame admitted: {sb:?}");
    assert_eq!(sb.envelopes_in, 100, "{sb:?}");
    assert_eq!(sb.duplicate_frames, 1, "{sb:?}");
    assert_eq!(
        b.forged.load(Ordering::Relaxed),
        0,
        "a forged message was handled"
    );
    assert_eq!(b.handled.load(Ordering::Relaxed), 100);
    assert_eq!(sa.refused_frames, 2, "{sa:?}");
    assert_eq!(sa.frames_acked, acked, "no forged acknowledgement: {sa:?}");
    assert_eq!(sa.corrupt_frames, 0, "{sa:?}");
    // The process without the key: never acknowledged, nothing redelivered yet.
    assert_eq!(
        (sc.frames_acked, sc.frames_pending, sc.frames_redelivered),
        (0, sc.frames_out, 0),
        "{sc:?}"
    );
    // Refusals are counted on the connection they arrived on, too.
    assert_eq!(a.control.refused_frames(), 2);
    assert_eq!(ctl.refused_frames(), 2);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "a forged call was handled"
    );
    assert_eq!(watcher.refused_frames(), 3);
    assert!(members.alive("a", Duration::from_secs(5)));
    assert!(
        !members.alive("b", Duration::from_secs(3600)),
        "kept alive by forgeries"
    );
    assert!(!members.alive("ghost", Duration::from_secs(3600)));

    // Keyed traffic still flows after all that: calls, data, acknowledgements.
    let client = rpc::RpcClient::new(&a.control).await.unwrap();
    let answer: u32 = client
        .call(&node_subject, &41_u32, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    burst(&a, 1, 6, 0, 50);
    until("150 handled on b", || {
        b.handled.load(Ordering::Relaxed) == 150
    })
    .await;
    until("acknowledged", || {
        a.gateway.stats().idle() && b.gateway.stats().idle()
    })
    .await;
    assert_eq!(b.gateway.stats().envelopes_in, 150);
    assert_eq!(b.forged.load(Ordering::Relaxed), 0);

    beat_a.abort();
    tokio::task::spawn_blocking(move || {
        for s in [a, b, c] {
            s.rt.shutdown();
        }
    })
    .await
    .unwrap();
}
