//! Two runtimes joined by gateways over a real `nats-server` (started on a free loopback
//! port): messages cross, priorities hold, a frame delivered twice is handled once, corrupted
//! bytes are counted and never handled, the server's authentication is enforced, and a
//! server restart is survived.
//!
//! Without `nats-server` installed these tests say so and pass, unless
//! `QORCH_REQUIRE_NATS=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorch_net::local_server::LocalServer;
use qorch_net::{Gateway, GatewayConfig, NatsConfig, NetError, RouteTable, Subjects};
use qorch_protocol::{AgentId, ClusterId, Message, Priority, SubClusterId};
use qorch_runtime::{Agent, AgentResult, Context, Factory, QuantumOrchestrator, RuntimeHandle};
use serde::{Deserialize, Serialize};

fn server(args: &[&str]) -> Option<LocalServer> {
    qorch_net::local_server::start_or_skip(args, "nats")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Msg {
    /// Send `n` messages of class `p` to `to`.
    Burst {
        to: AgentId,
        n: u32,
        p: Priority,
    },
    Work(u32),
}

impl Message for Msg {}

/// Records the order in which work arrives.
struct Node {
    log: Arc<Mutex<Vec<u32>>>,
    handled: Arc<AtomicU64>,
}

impl Agent for Node {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) -> AgentResult {
        match msg {
            Msg::Burst { to, n, p } => {
                for i in 0..n {
                    ctx.send_to_with(p, to, Msg::Work(i));
                }
            }
            Msg::Work(i) => {
                self.log.lock().unwrap().push(i);
                self.handled.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

struct Side {
    rt: QuantumOrchestrator<Node>,
    gateway: Gateway<Msg>,
    handled: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<u32>>>,
}

/// A process: cluster `c` with leaf `s` holding agents `agents`; the route table knows both
/// sides.
async fn side(url: &str, name: &str, c: u32, s: u32, agents: std::ops::Range<u32>) -> Side {
    let config = NatsConfig::new(url);
    let subjects = Subjects::new("t");
    let routes = Arc::new(RouteTable::new());
    routes.place_agents((0..4).map(|a| (AgentId(a), ClusterId(0), Some(SubClusterId(0)))));
    routes.place_agents((4..8).map(|a| (AgentId(a), ClusterId(1), Some(SubClusterId(1)))));
    let mut gc = GatewayConfig::new(name);
    gc.redelivery_timeout = Duration::from_millis(200);
    let (mut gateway, link) = Gateway::<Msg>::new(gc, subjects, routes);
    let rt = QuantumOrchestrator::<Node>::builder()
        .workers(1)
        .remote(link)
        .build()
        .unwrap();
    let m = rt.manager();
    m.create_cluster_with_id(ClusterId(c), "c").unwrap();
    m.create_sub_cluster_with_id(ClusterId(c).into(), SubClusterId(s), "s")
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (h, l) = (Arc::clone(&handled), Arc::clone(&log));
    let factory: Factory<Node> = Arc::new(move |_| Node {
        log: Arc::clone(&l),
        handled: Arc::clone(&h),
    });
    let ids: Vec<AgentId> = agents.map(AgentId).collect();
    m.spawn_agents_at(SubClusterId(s).into(), &ids, &factory)
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
        handled,
        log,
    }
}

async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn send(h: &RuntimeHandle<Node>, to: u32, msg: Msg) {
    h.send_to_blocking(AgentId(to), msg).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one scenario, step by step")]
async fn messages_cross_processes_once_each_and_corruption_is_counted() {
    let Some(srv) = server(&[]) else { return };
    let url = srv.url();
    let a = side(&url, "a", 0, 0, 0..4).await;
    let b = side(&url, "b", 1, 1, 4..8).await;

    // A spy keeps a copy of every data frame for cluster 1, to replay it later.
    let spy_client = NatsConfig::new(&url).connect("spy").await.unwrap();
    let mut spy = spy_client.subscribe("t.d.c1.>").await.unwrap();
    spy_client.flush().await.unwrap();

    send(
        &a.rt.handle(),
        1,
        Msg::Burst {
            to: AgentId(5),
            n: 3000,
            p: Priority::Normal,
        },
    );
    until("3000 handled on b", Duration::from_secs(20), || {
        b.handled.load(Ordering::Relaxed) == 3000
    })
    .await;
    until("a's frames acknowledged", Duration::from_secs(10), || {
        a.gateway.stats().idle() && b.gateway.stats().idle()
    })
    .await;
    let (sa, sb) = (a.gateway.stats(), b.gateway.stats());
    assert_eq!(sa.envelopes_out, 3000);
    assert_eq!(sb.envelopes_in, 3000);
    assert_eq!(sa.frames_out, sb.frames_in);
    assert_eq!(sa.frames_acked, sa.frames_out);
    // In order within one sender and lane.
    assert_eq!(*b.log.lock().unwrap(), (0..3000).collect::<Vec<_>>());

    // Replay every frame (as a NATS redelivery would): nothing is handled twice, and each
    // replay is acknowledged again.
    let mut frames = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), spy.next()).await {
        frames.push(m);
    }
    assert!(!frames.is_empty());
    for f in &frames {
        spy_client
            .publish(f.subject.clone(), f.payload.clone())
            .await
            .unwrap();
    }
    // And some garbage on the same subjects.
    spy_client
        .publish(
            "t.d.c1.s1.normal",
            bytes::Bytes::from_static(b"\x01not a frame"),
        )
        .await
        .unwrap();
    spy_client.flush().await.unwrap();
    until("duplicates seen", Duration::from_secs(10), || {
        b.gateway.stats().duplicate_frames == frames.len() as u64
            && b.gateway.stats().corrupt_frames == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        b.handled.load(Ordering::Relaxed),
        3000,
        "replays are not handled again"
    );
    assert_eq!(b.gateway.stats().envelopes_in, 3000);

    // Both classes cross (frames waiting together are injected by priority; the order
    // itself is checked by the gateway's unit test, as timing decides what waits together).
    b.log.lock().unwrap().clear();
    send(
        &a.rt.handle(),
        2,
        Msg::Burst {
            to: AgentId(6),
            n: 2000,
            p: Priority::Low,
        },
    );
    send(
        &a.rt.handle(),
        3,
        Msg::Burst {
            to: AgentId(6),
            n: 2000,
            p: Priority::High,
        },
    );
    until("4000 more handled", Duration::from_secs(20), || {
        b.handled.load(Ordering::Relaxed) == 7000
    })
    .await;
    assert_eq!(b.log.lock().unwrap().len(), 4000);

    // A message for an agent nobody hosts is refused by the link and counted.
    send(
        &a.rt.handle(),
        0,
        Msg::Burst {
            to: AgentId(42),
            n: 1,
            p: Priority::Normal,
        },
    );
    tokio::task::spawn_blocking(move || {
        let ra = a.rt.shutdown();
        let rb = b.rt.shutdown();
        assert_eq!(ra.stats.dead_letters, 1);
        assert_eq!(rb.stats.handled, 7000);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_authenticate_does_not_start() {
    let Some(srv) = server(&["--user", "qorch", "--pass", "s3cret-pw"]) else {
        return;
    };
    let mut c = NatsConfig::new(srv.url());
    let err = c.connect("x").await.expect_err("no credentials");
    assert!(matches!(err, NetError::Auth { .. }), "{err}");
    c.user = Some("qorch".into());
    c.password = Some("wrong".into());
    let err = c.connect("x").await.expect_err("wrong password");
    let shown = err.to_string();
    assert!(matches!(err, NetError::Auth { .. }), "{shown}");
    assert!(!shown.contains("wrong"), "never print secrets: {shown}");
    c.password = Some("s3cret-pw".into());
    c.connect("x").await.expect("right password");
    // A URL with the secret inside is redacted in errors too.
    let c = NatsConfig::new(format!(
        "nats://qorch:bad-secret@127.0.0.1:{}",
        srv.url().rsplit(':').next().unwrap()
    ));
    let err = c.connect("x").await.expect_err("bad secret in the URL");
    assert!(!err.to_string().contains("bad-secret"), "{err}");
    // Nothing listening: a clear connection error.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = NatsConfig::new(format!("nats://127.0.0.1:{free}"))
        .connect("x")
        .await
        .expect_err("no server");
    assert!(matches!(err, NetError::Connect { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_survived_and_nothing_is_lost() {
    let Some(mut srv) = server(&[]) else { return };
    let url = srv.url();
    let a = side(&url, "a", 0, 0, 0..4).await;
    let b = side(&url, "b", 1, 1, 4..8).await;
    send(
        &a.rt.handle(),
        1,
        Msg::Burst {
            to: AgentId(5),
            n: 500,
            p: Priority::Normal,
        },
    );
    until("500 handled", Duration::from_secs(20), || {
        b.handled.load(Ordering::Relaxed) == 500
    })
    .await;
    tokio::task::block_in_place(|| srv.restart(Duration::from_millis(300))).unwrap();
    // Sent while the clients reconnect: held and redelivered until acknowledged.
    send(
        &a.rt.handle(),
        2,
        Msg::Burst {
            to: AgentId(6),
            n: 500,
            p: Priority::Normal,
        },
    );
    until(
        "1000 handled after the restart",
        Duration::from_secs(30),
        || b.handled.load(Ordering::Relaxed) == 1000,
    )
    .await;
    until("all acknowledged", Duration::from_secs(30), || {
        a.gateway.stats().idle()
    })
    .await;
    assert_eq!(b.gateway.stats().envelopes_in, 1000);
    tokio::task::spawn_blocking(move || {
        a.rt.shutdown();
        b.rt.shutdown();
    })
    .await
    .unwrap();
}

/// A CA and a server certificate for 127.0.0.1, made with the `openssl` command.
fn certificates(dir: &std::path::Path) -> Option<()> {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").ok()?;
    let ok = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=qorch-test-ca",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    ok.then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_needs_the_right_authority_and_says_so() {
    let dir = std::env::temp_dir().join(format!("qorch-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if certificates(&dir).is_none() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED tls: the openssl command is not available"
        );
        return;
    }
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let Some(srv) = server(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]) else {
        return;
    };
    let url = srv.url().replace("nats://", "tls://");
    let mut c = NatsConfig::new(&url);
    c.require_tls = true;
    let err = c.connect("x").await.expect_err("unknown authority");
    assert!(matches!(err, NetError::Tls { .. }), "{err}");
    c.tls_ca = Some(dir.join("ca.pem"));
    let client = c.connect("x").await.expect("trusted authority");
    client.flush().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A control call's trace context crosses in its (sealed) frame header: the callee sees the
/// caller's trace and span ids, and an untraced call carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_trace_context_reaches_the_callee() {
    let Some(srv) = server(&[]) else { return };
    let mut config = NatsConfig::new(srv.url());
    config.frame_key = Some(qorch_net::FrameKey::generate().unwrap());
    let callee = config.connect("callee").await.unwrap();
    let caller = config.connect("caller").await.unwrap();
    let subject = Subjects::new("tr").control("node.x");
    let mut requests = qorch_net::rpc::serve(&callee, &subject).await.unwrap();
    callee.flush().await.unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            let _ = seen_tx.send(req.trace());
            req.answer(&callee, &Ok::<u8, String>(1)).await.unwrap();
        }
    });
    let client = qorch_net::rpc::RpcClient::new(&caller).await.unwrap();
    let trace = qorch_net::TraceContext::new_trace();
    let wait = Duration::from_secs(30);
    let _: u8 = client
        .call_traced(&subject, &(), wait, Some(trace))
        .await
        .unwrap();
    let _: u8 = client.call(&subject, &(), wait).await.unwrap();
    assert_eq!(seen_rx.recv().await.unwrap(), Some(trace));
    assert_eq!(seen_rx.recv().await.unwrap(), None);
}
