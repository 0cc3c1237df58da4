//! Supervision: restart intensity (N restarts within a period, per runtime or per behaviour).

use std::time::Duration;

use qorch_protocol::{Address, AgentId, Message};
use qorch_runtime::{
    Agent, AgentResult, Context, QuantumOrchestrator, RestartIntensity, RuntimeHandle,
};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
enum Msg {
    Crash,
    Ping(u32),
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
            Msg::Ping(n) => ctx.send(Address::Orchestrator, Msg::Ping(n)),
        }
        Ok(())
    }

    fn restart_intensity(&self) -> Option<RestartIntensity> {
        self.intensity
    }
}

/// Whether the agent still answers.
fn answers(h: &RuntimeHandle<Fragile>, a: AgentId, n: u32) -> bool {
    h.send_blocking(a, Msg::Ping(n)).unwrap();
    h.recv_blocking(Duration::from_millis(500))
        .is_some_and(|env| env.payload == Msg::Ping(n))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn spawn(rt: &QuantumOrchestrator<Fragile>, intensity: Option<RestartIntensity>) -> AgentId {
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
        h.send_blocking(a, Msg::Crash).unwrap();
        block_on(h.settle()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert!(answers(&h, a, n), "the agent answers after crash {n}");
    }
    // Three within the period: failed for good.
    for _ in 0..3 {
        h.send_blocking(a, Msg::Crash).unwrap();
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
    h.send_blocking(a, Msg::Crash).unwrap();
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
