//! Supervision and lifecycle: restart intensity (N restarts within a period, per runtime or
//! per behaviour), stopping agents, watches and their `Terminated` notices, async shutdown.

use std::time::Duration;

use qorch_protocol::{Address, AgentId, AgentRef, Message};
use qorch_runtime::{
    Agent, AgentResult, Context, QuantumOrchestrator, RestartIntensity, RuntimeHandle,
    RuntimeSendError, Terminated, TerminationReason,
};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
enum Msg {
    Crash,
    Ping(u32),
    /// Watch this agent.
    Watch(AgentRef<Msg>),
    /// Stop yourself.
    StopSelf,
    /// A watched agent terminated (reported on to the application).
    Down(Terminated),
}

impl From<Terminated> for Msg {
    fn from(t: Terminated) -> Self {
        Msg::Down(t)
    }
}

impl Message for Msg {}

/// Panics on `Crash`, answers `Ping` to the application.
struct Fragile {
    intensity: Option<RestartIntensity>,
}

impl Agent for Fragile {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) -> AgentResult {
        match msg {
            Msg::Crash => panic!("asked to crash"),
            Msg::Ping(n) => ctx.send_to(Address::Orchestrator, Msg::Ping(n)),
            Msg::Watch(a) => ctx.watch(&a),
            Msg::StopSelf => ctx.stop(),
            Msg::Down(t) => ctx.send_to(Address::Orchestrator, Msg::Down(t)),
        }
        Ok(())
    }

    fn restart_intensity(&self) -> Option<RestartIntensity> {
        self.intensity
    }
}

/// Whether the agent still answers.
fn answers(h: &RuntimeHandle<Fragile>, a: AgentRef<Msg>, n: u32) -> bool {
    h.send_blocking(&a, Msg::Ping(n)).unwrap();
    h.recv_blocking(Duration::from_millis(500))
        .is_some_and(|env| env.payload == Msg::Ping(n))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn spawn(rt: &QuantumOrchestrator<Fragile>, intensity: Option<RestartIntensity>) -> AgentRef<Msg> {
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    m.spawn_agents(c.into(), 1, move |_| Fragile { intensity })
        .unwrap()[0]
}

#[test]
fn restarts_spread_over_time_stay_within_the_intensity() {
    let rt = QuantumOrchestrator::<Fragile>::builder()
        .workers(1)
        .restart_intensity(RestartIntensity::new(2, Duration::from_millis(300)))
        .build()
        .unwrap();
    let a = spawn(&rt, None);
    let h = rt.handle();
    // Five crashes, never more than one within the period: the agent lives on.
    for n in 0..5 {
        h.send_to_blocking(a, Msg::Crash).unwrap();
        block_on(h.settle()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert!(answers(&h, a, n), "the agent answers after crash {n}");
    }
    // Three within the period: failed for good.
    for _ in 0..3 {
        h.send_to_blocking(a, Msg::Crash).unwrap();
    }
    block_on(h.settle()).unwrap();
    assert!(!answers(&h, a, 99), "failed past its intensity");
    let stats = block_on(h.stats()).unwrap();
    assert_eq!(stats.restarts, 8);
    rt.shutdown();
}

#[test]
fn a_behaviour_sets_its_own_intensity() {
    let rt = QuantumOrchestrator::<Fragile>::builder()
        .workers(1)
        .restart_budget(100)
        .build()
        .unwrap();
    // Never restarted: its first failure is its last.
    let a = spawn(&rt, Some(RestartIntensity::lifetime(0)));
    let h = rt.handle();
    assert!(answers(&h, a, 1));
    h.send_to_blocking(a, Msg::Crash).unwrap();
    block_on(h.settle()).unwrap();
    assert!(!answers(&h, a, 2));
    // The sub-cluster reports the failure up the tree with its next heartbeat.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = block_on(h.status()).unwrap();
        if status.total_agents().failed == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.shutdown();
}

#[test]
fn a_zero_restart_period_is_refused() {
    let r = QuantumOrchestrator::<Fragile>::builder()
        .restart_intensity(RestartIntensity::new(1, Duration::ZERO))
        .build();
    assert!(
        matches!(r, Err(qorch_runtime::RuntimeError::Config(_))),
        "{:?}",
        r.err()
    );
}

/// The next `Down` notice the application receives.
fn next_down(h: &RuntimeHandle<Fragile>) -> Terminated {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Some(env) = h.recv_blocking(WAIT)
            && let Msg::Down(t) = env.payload
        {
            return t;
        }
    }
    panic!("no notice");
}

#[test]
fn watchers_hear_of_stops_and_failures_and_a_stopped_agent_gets_no_more_mail() {
    let rt = QuantumOrchestrator::<Fragile>::builder()
        .workers(2)
        .restart_budget(0)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let d = m.create_cluster("d").unwrap();
    let watcher = m
        .spawn_agents(c.into(), 1, |_| Fragile { intensity: None })
        .unwrap()[0];
    // On another cluster, so that watches and notices travel the tree.
    let quitter = m
        .spawn_agents(d.into(), 1, |_| Fragile { intensity: None })
        .unwrap()[0];
    let crasher = m
        .spawn_agents(d.into(), 1, |_| Fragile { intensity: None })
        .unwrap()[0];
    let h = rt.handle();
    h.send_blocking(&watcher, Msg::Watch(quitter)).unwrap();
    h.send_blocking(&watcher, Msg::Watch(crasher)).unwrap();
    let mut app = block_on(h.watch(&crasher)).unwrap();
    block_on(h.settle()).unwrap();
    block_on(h.settle()).unwrap();

    h.send_blocking(&quitter, Msg::StopSelf).unwrap();
    let t = next_down(&h);
    assert_eq!(
        t,
        Terminated {
            agent: quitter.id(),
            reason: TerminationReason::Stopped
        }
    );
    // Mail to a stopped agent is refused with the message given back.
    assert!(matches!(
        h.send_blocking(&quitter, Msg::Ping(1)),
        Err(RuntimeSendError::Closed(Msg::Ping(1)))
    ));

    h.send_blocking(&crasher, Msg::Crash).unwrap();
    let t = next_down(&h);
    assert_eq!(t.agent, crasher);
    assert!(
        matches!(&t.reason, TerminationReason::Failed(why) if why.contains("asked to crash")),
        "{t:?}"
    );
    let t = app
        .wait_blocking(WAIT)
        .expect("the application's watch completes");
    assert_eq!(t.agent, crasher);

    // A watch of an agent that terminated already is answered at once.
    h.send_blocking(&watcher, Msg::Watch(crasher)).unwrap();
    assert_eq!(next_down(&h).reason, TerminationReason::NotRunning);
    rt.shutdown();
}

#[test]
fn the_application_stops_and_watches_agents_and_shuts_down_without_blocking() {
    let exec = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    exec.block_on(async {
        let rt = QuantumOrchestrator::<Fragile>::builder()
            .workers(1)
            .build()
            .unwrap();
        let m = rt.manager();
        let c = m.create_cluster("c").unwrap();
        let agents = m
            .spawn_agents(c.into(), 2, |_| Fragile { intensity: None })
            .unwrap();
        let h = rt.handle();
        let stopped = h.watch(&agents[0]).await.unwrap();
        let survivor = h.watch(&agents[1]).await.unwrap();
        h.stop(&agents[0]).await.unwrap();
        assert_eq!(stopped.await.reason, TerminationReason::Stopped);
        assert!(matches!(
            h.stop(&AgentRef::<Msg>::from_id(AgentId(999))).await,
            Err(qorch_runtime::RuntimeError::UnknownAddress(_))
        ));
        let report = rt.shutdown_async().await;
        assert_eq!(report.nodes_missing, 0, "{report:?}");
        assert_eq!(survivor.await.reason, TerminationReason::Shutdown);
    });
}

#[test]
fn a_full_application_inbox_loses_nothing() {
    let config = qorch_runtime::RuntimeConfig {
        workers: 1,
        inbox: qorch_protocol::MailboxConfig::uniform(4),
        ..qorch_runtime::RuntimeConfig::default()
    };
    let rt = QuantumOrchestrator::<Fragile>::builder()
        .config(config)
        .build()
        .unwrap();
    let m = rt.manager();
    let c = m.create_cluster("c").unwrap();
    let a = m
        .spawn_agents(c.into(), 1, |_| Fragile { intensity: None })
        .unwrap()[0];
    let h = rt.handle();
    // 200 answers for an inbox of 4 per lane, none read until all were sent.
    for n in 0..200 {
        h.send_blocking(&a, Msg::Ping(n)).unwrap();
    }
    block_on(h.settle()).unwrap();
    block_on(h.settle()).unwrap();
    let status = block_on(h.status()).unwrap();
    assert_eq!(status.status, qorch_runtime::ComponentStatus::Overloaded);
    let mut got = Vec::new();
    while got.len() < 200 {
        match h.recv_blocking(WAIT) {
            Some(env) => got.push(env.payload),
            None => break,
        }
    }
    let expected: Vec<Msg> = (0..200).map(Msg::Ping).collect();
    assert_eq!(got, expected, "every answer, in order");
    rt.shutdown();
}

#[test]
fn waiting_with_an_unrepresentable_timeout_does_not_panic() {
    let rt = QuantumOrchestrator::<Fragile>::builder()
        .workers(1)
        .build()
        .unwrap();
    let a = spawn(&rt, None);
    let h = rt.handle();
    let mut watch = h.watch_blocking(&a).unwrap();
    h.send_blocking(&a, Msg::StopSelf).unwrap();
    let t = watch
        .wait_blocking(Duration::MAX)
        .expect("the agent stopped");
    assert_eq!(t.reason, TerminationReason::Stopped);
    rt.shutdown();
}
