//! Agents' timers: one-shot and periodic, cancelled, bound to one instance of their agent
//! (a restart ends them), and the typed errors of misuse.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorch_protocol::{Address, AgentId, Message};
use qorch_runtime::{
    Agent, AgentResult, Context, QuantumOrchestrator, RuntimeHandle, TimerError, TimerHandle,
};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
enum Msg {
    /// A timer fired (the tag says which).
    Fired(u32),
    /// Arm a one-shot timer of `ms` milliseconds with this tag; cancel it at once if asked.
    Once { ms: u64, tag: u32, cancel: bool },
    /// Arm the periodic timer of the test.
    Every { ms: u64 },
    /// Panic (the agent restarts).
    Crash,
    /// Try to cancel the handle kept outside the agent (armed by an earlier instance, or by
    /// another agent).
    CancelKept,
    /// To the application: what an attempt gave.
    Outcome(Result<(), TimerError>),
}

impl Message for Msg {}

/// Arms a periodic timer in `started` (if `period` is set) and reports every firing.
struct Ticker {
    period: Option<Duration>,
    /// Outlives the agent's instances: a handle one instance kept.
    kept: Arc<Mutex<Option<TimerHandle>>>,
}

impl Agent for Ticker {
    type Msg = Msg;

    fn started(&mut self, ctx: &mut Context<'_, Msg>) -> AgentResult {
        if let Some(p) = self.period {
            let h = ctx.send_interval(p, Msg::Fired(0))?;
            self.kept.lock().unwrap().get_or_insert(h);
        }
        Ok(())
    }

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) -> AgentResult {
        match msg {
            Msg::Fired(tag) => ctx.send_to(Address::Orchestrator, Msg::Fired(tag)),
            Msg::Once { ms, tag, cancel } => {
                let h = ctx.send_after(Duration::from_millis(ms), Msg::Fired(tag));
                if cancel {
                    ctx.cancel_timer(h)?;
                }
            }
            Msg::Every { ms } => {
                let r = ctx.send_interval(Duration::from_millis(ms), Msg::Fired(1));
                ctx.send_to(Address::Orchestrator, Msg::Outcome(r.map(|_| ())));
            }
            Msg::Crash => panic!("asked to crash"),
            Msg::CancelKept => {
                let h = self.kept.lock().unwrap().expect("a kept handle");
                let r = ctx.cancel_timer(h);
                ctx.send_to(Address::Orchestrator, Msg::Outcome(r));
            }
            Msg::Outcome(_) => {}
        }
        Ok(())
    }
}

/// Spawns one `Ticker` into `cluster`, sharing the handle slot `kept`.
fn spawn(
    rt: &QuantumOrchestrator<Ticker>,
    cluster: qorch_protocol::ClusterId,
    period: Option<Duration>,
    kept: &Arc<Mutex<Option<TimerHandle>>>,
) -> AgentId {
    let kept = Arc::clone(kept);
    rt.manager()
        .spawn_agents(cluster.into(), 1, move |_| Ticker {
            period,
            kept: Arc::clone(&kept),
        })
        .unwrap()[0]
        .id()
}

fn runtime() -> QuantumOrchestrator<Ticker> {
    QuantumOrchestrator::<Ticker>::builder()
        .workers(1)
        .restart_budget(10)
        .build()
        .unwrap()
}

/// Counts `Fired(tag)` messages reaching the application during `d`.
fn count_fired(h: &RuntimeHandle<Ticker>, tag: u32, d: Duration) -> usize {
    let end = Instant::now() + d;
    let mut n = 0;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Some(env) = h.recv_blocking(left)
            && env.payload == Msg::Fired(tag)
        {
            n += 1;
        }
    }
    n
}

fn next_outcome(h: &RuntimeHandle<Ticker>) -> Result<(), TimerError> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(env) = h.recv_blocking(WAIT)
            && let Msg::Outcome(r) = env.payload
        {
            return r;
        }
    }
    panic!("no outcome reported");
}

#[test]
fn a_one_shot_timer_fires_once_after_its_delay_unless_cancelled() {
    let rt = runtime();
    let c = rt.manager().create_cluster("c").unwrap();
    let kept = Arc::new(Mutex::new(None));
    let a = spawn(&rt, c, None, &kept);
    let h = rt.handle();
    let t0 = Instant::now();
    h.send_to_blocking(
        a,
        Msg::Once {
            ms: 50,
            tag: 7,
            cancel: false,
        },
    )
    .unwrap();
    h.send_to_blocking(
        a,
        Msg::Once {
            ms: 50,
            tag: 8,
            cancel: true,
        },
    )
    .unwrap();
    let env = h.recv_blocking(WAIT).expect("the timer fires");
    assert_eq!(env.payload, Msg::Fired(7));
    assert!(
        t0.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        count_fired(&h, 8, Duration::from_millis(200)),
        0,
        "cancelled"
    );
    assert_eq!(
        count_fired(&h, 7, Duration::from_millis(100)),
        0,
        "fired once"
    );
    rt.shutdown();
}

#[test]
fn a_periodic_agent_keeps_its_rate_across_restarts() {
    let rt = runtime();
    let c = rt.manager().create_cluster("c").unwrap();
    let kept = Arc::new(Mutex::new(None));
    let a = spawn(&rt, c, Some(Duration::from_millis(20)), &kept);
    let h = rt.handle();
    let window = Duration::from_millis(600);
    let before = count_fired(&h, 0, window);
    h.send_to_blocking(a, Msg::Crash).unwrap();
    // The restarted instance arms its own timer in `started`; the old one's timer ended.
    let _ = count_fired(&h, 0, Duration::from_millis(100));
    let after = count_fired(&h, 0, window);
    // 30 expected in each window; a timer that survived the restart would double the rate.
    assert!(before >= 10, "before the restart: {before} in {window:?}");
    assert!(
        after * 2 < before * 3,
        "rate after the restart {after} against {before} before"
    );
    assert!(
        after * 2 > before,
        "rate after the restart {after} against {before}"
    );
    rt.shutdown();
}

#[test]
fn misuse_of_timers_gives_typed_errors() {
    let rt = runtime();
    let c = rt.manager().create_cluster("c").unwrap();
    let kept = Arc::new(Mutex::new(None));
    let a = spawn(&rt, c, Some(Duration::from_secs(3600)), &kept);
    let h = rt.handle();

    // A zero period.
    h.send_to_blocking(a, Msg::Every { ms: 0 }).unwrap();
    assert_eq!(next_outcome(&h), Err(TimerError::ZeroPeriod));

    // The handle of this instance cancels fine.
    h.send_to_blocking(a, Msg::CancelKept).unwrap();
    assert_eq!(next_outcome(&h), Ok(()));

    // After a restart, the handle kept from the earlier instance is stale.
    h.send_to_blocking(a, Msg::Crash).unwrap();
    h.send_to_blocking(a, Msg::CancelKept).unwrap();
    assert_eq!(next_outcome(&h), Err(TimerError::Stale { agent: a }));

    // Another agent's handle is not ours.
    let other = spawn(&rt, c, None, &kept);
    h.send_to_blocking(other, Msg::CancelKept).unwrap();
    assert_eq!(
        next_outcome(&h),
        Err(TimerError::NotMine {
            owner: a,
            caller: other
        })
    );
    rt.shutdown();
}
