//! The programming model across behaviours: several behaviour types in one runtime, typed
//! references, ask (from agents and from the application) with its typed errors, spawns
//! from hooks, and the named registry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qorch_protocol::{AgentId, AgentRef, Message};
use qorch_runtime::{
    Agent, AgentResult, AnyAgent, AskError, Context, QuantumOrchestrator, RegistryError, ReplyTo,
    SpawnError,
};

const WAIT: Duration = Duration::from_secs(10);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// A counter: adds, answers its count, holds requests on demand, fails on demand.
#[derive(Debug)]
enum CounterMsg {
    Add(u64),
    Get(ReplyTo<u64>),
    /// Keep the request unanswered (in the agent's state).
    Hold(ReplyTo<u64>),
    /// Drop the request unanswered.
    Ignore(ReplyTo<u64>),
    Crash,
    Stop,
    /// Answer every held request.
    Release,
}

impl Message for CounterMsg {}

#[derive(Default)]
struct Counter {
    n: u64,
    held: Vec<ReplyTo<u64>>,
}

impl Agent for Counter {
    type Msg = CounterMsg;

    fn handle(&mut self, msg: CounterMsg, ctx: &mut Context<'_, CounterMsg>) -> AgentResult {
        match msg {
            CounterMsg::Add(k) => self.n += k,
            CounterMsg::Get(reply) => reply.send(self.n),
            CounterMsg::Hold(reply) => self.held.push(reply),
            CounterMsg::Ignore(reply) => drop(reply),
            CounterMsg::Crash => return Err("asked to crash".into()),
            CounterMsg::Stop => ctx.stop(),
            CounterMsg::Release => {
                for reply in self.held.drain(..) {
                    reply.send(self.n);
                }
            }
        }
        Ok(())
    }

    fn restart_intensity(&self) -> Option<qorch_runtime::RestartIntensity> {
        Some(qorch_runtime::RestartIntensity::lifetime(0))
    }
}

/// What a poller reports to the application.
#[derive(Debug, Clone, PartialEq)]
enum Report {
    Count(Result<u64, AskError>),
    Spawned(Result<AgentId, SpawnError>),
}

impl Message for Report {}

/// Polls a counter on an interval timer, asks it, and reports each answer.
#[derive(Debug, Clone)]
enum PollerMsg {
    Poll,
    /// Ask once, with this timeout, and this request.
    AskOnce(Duration, Request),
    Answer(Result<u64, AskError>),
    /// Spawn a counter from the handler, add to it at once, and ask it.
    SpawnChild,
}

impl Message for PollerMsg {}

/// Which request a poller sends.
#[derive(Debug, Clone, Copy)]
enum Request {
    Get,
    Hold,
    Ignore,
}

struct Poller {
    counter: AgentRef<CounterMsg>,
    period: Option<Duration>,
}

impl Agent for Poller {
    type Msg = PollerMsg;

    fn started(&mut self, ctx: &mut Context<'_, PollerMsg>) -> AgentResult {
        if let Some(p) = self.period {
            ctx.send_interval(p, PollerMsg::Poll)?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: PollerMsg, ctx: &mut Context<'_, PollerMsg>) -> AgentResult {
        match msg {
            PollerMsg::Poll => {
                ctx.send(&self.counter, CounterMsg::Add(1));
                ctx.ask(&self.counter, CounterMsg::Get, WAIT, PollerMsg::Answer);
            }
            PollerMsg::AskOnce(timeout, request) => {
                let request = match request {
                    Request::Get => CounterMsg::Get,
                    Request::Hold => CounterMsg::Hold,
                    Request::Ignore => CounterMsg::Ignore,
                };
                ctx.ask(&self.counter, request, timeout, PollerMsg::Answer);
            }
            PollerMsg::Answer(r) => ctx.send_app(Report::Count(r)),
            PollerMsg::SpawnChild => {
                let spawned = ctx.spawn(|_| Counter::default());
                ctx.send_app(Report::Spawned(spawned.clone().map(|r| r.id())));
                let child = spawned?;
                ctx.send(&child, CounterMsg::Add(41));
                ctx.send(&child, CounterMsg::Add(1));
                ctx.ask(&child, CounterMsg::Get, WAIT, PollerMsg::Answer);
            }
        }
        Ok(())
    }
}

/// A runtime of both behaviours: a counter on one cluster, a poller on another's
/// sub-cluster (so that asks cross the tree).
fn mixed(
    period: Option<Duration>,
) -> (
    QuantumOrchestrator<AnyAgent>,
    AgentRef<CounterMsg>,
    AgentRef<PollerMsg>,
) {
    let rt = QuantumOrchestrator::<AnyAgent>::builder()
        .workers(2)
        .build()
        .unwrap();
    let m = rt.manager();
    let a = m.create_cluster("a").unwrap();
    let b = m.create_cluster("b").unwrap();
    let leaf = m.create_sub_cluster(b.into(), "b/leaf").unwrap();
    let counter = m.spawn(a.into(), |_| Counter::default()).unwrap();
    let poller = m
        .spawn(leaf.into(), move |_| Poller { counter, period })
        .unwrap();
    (rt, counter, poller)
}

fn next_report(rt: &QuantumOrchestrator<AnyAgent>) -> Report {
    let env = rt
        .handle()
        .recv_blocking(WAIT)
        .expect("a report within the wait");
    env.payload.downcast::<Report>().expect("a report")
}

#[test]
fn two_behaviours_in_one_runtime_ask_each_other_on_an_interval() {
    let (rt, counter, _poller) = mixed(Some(Duration::from_millis(20)));
    let mut last = 0;
    for _ in 0..5 {
        match next_report(&rt) {
            Report::Count(Ok(n)) => {
                assert!(n > last, "counts grow: {n} after {last}");
                last = n;
            }
            other => panic!("{other:?}"),
        }
    }
    // The application asks the same counter.
    let h = rt.handle();
    let n = h.ask_blocking(&counter, CounterMsg::Get, WAIT).unwrap();
    assert!(n >= last);
    let n2 = block_on(h.ask(&counter, CounterMsg::Get, WAIT)).unwrap();
    assert!(n2 >= n);
    // A timeout too large to represent is no error: it waits as long as it takes.
    assert!(
        h.ask_blocking(&counter, CounterMsg::Get, Duration::MAX)
            .unwrap()
            >= n2
    );
    assert!(block_on(h.ask(&counter, CounterMsg::Get, Duration::MAX)).unwrap() >= n2);
    let report = rt.shutdown();
    assert_eq!(report.nodes_missing, 0);
}

#[test]
fn an_ask_ends_with_a_typed_error_when_no_reply_can_come() {
    let (rt, counter, poller) = mixed(None);
    let h = rt.handle();
    // Timeout: the counter holds the request.
    h.send_blocking(
        &poller,
        PollerMsg::AskOnce(Duration::from_millis(50), Request::Hold),
    )
    .unwrap();
    assert_eq!(
        next_report(&rt),
        Report::Count(Err(AskError::Timeout {
            agent: counter.id(),
            after: Duration::from_millis(50)
        }))
    );
    // Dropped without a reply: told at once, not at the timeout.
    let asked = Instant::now();
    h.send_blocking(&poller, PollerMsg::AskOnce(WAIT, Request::Ignore))
        .unwrap();
    assert_eq!(
        next_report(&rt),
        Report::Count(Err(AskError::Dropped(counter.id())))
    );
    assert!(asked.elapsed() < WAIT);
    h.send_blocking(&poller, PollerMsg::AskOnce(WAIT, Request::Get))
        .unwrap();
    assert_eq!(next_report(&rt), Report::Count(Ok(0)));

    // The application's asks.
    let timeout = h.ask_blocking(&counter, CounterMsg::Hold, Duration::from_millis(50));
    assert!(
        matches!(timeout, Err(AskError::Timeout { .. })),
        "{timeout:?}"
    );
    let dropped = h.ask_blocking(&counter, CounterMsg::Ignore, WAIT);
    assert_eq!(dropped, Err(AskError::Dropped(counter.id())));
    let unknown = AgentRef::<CounterMsg>::from_id(AgentId(1_000_000));
    assert_eq!(
        h.ask_blocking(&unknown, CounterMsg::Get, WAIT),
        Err(AskError::Unknown(unknown.id()))
    );

    // A target that fails while holding requests releases them at once, with the reason.
    let holding = Instant::now();
    h.send_blocking(&poller, PollerMsg::AskOnce(WAIT, Request::Hold))
        .unwrap();
    let waiter = {
        let h = h.clone();
        std::thread::spawn(move || h.ask_blocking(&counter, CounterMsg::Hold, WAIT))
    };
    std::thread::sleep(Duration::from_millis(100));
    h.send_blocking(&counter, CounterMsg::Crash).unwrap();
    assert_eq!(
        next_report(&rt),
        Report::Count(Err(AskError::Failed(counter.id())))
    );
    assert_eq!(waiter.join().unwrap(), Err(AskError::Failed(counter.id())));
    assert!(holding.elapsed() < WAIT, "released, not timed out");
    // And it is not running any more (its restart intensity is 0).
    assert_eq!(
        h.ask_blocking(&counter, CounterMsg::Get, WAIT),
        Err(AskError::NotRunning(counter.id()))
    );
    h.send_blocking(&poller, PollerMsg::AskOnce(WAIT, Request::Get))
        .unwrap();
    assert_eq!(
        next_report(&rt),
        Report::Count(Err(AskError::NotRunning(counter.id())))
    );
    rt.shutdown();
}

/// A runtime of counters alone, with one.
fn one_counter() -> (QuantumOrchestrator<Counter>, AgentRef<CounterMsg>) {
    let rt = QuantumOrchestrator::<Counter>::builder()
        .workers(1)
        .build()
        .unwrap();
    let c = rt.manager().create_cluster("c").unwrap();
    let counter = rt
        .manager()
        .spawn(c.into(), |_| Counter::default())
        .unwrap();
    (rt, counter)
}

#[test]
fn an_ask_to_a_stopped_agent_is_refused() {
    let (rt, counter) = one_counter();
    let h = rt.handle();
    let mut watch = block_on(h.watch(&counter)).unwrap();
    h.send_blocking(&counter, CounterMsg::Stop).unwrap();
    assert!(watch.wait_blocking(WAIT).is_some());
    assert_eq!(
        h.ask_blocking(&counter, CounterMsg::Get, WAIT),
        Err(AskError::NotRunning(counter.id()))
    );
    rt.shutdown();
}

#[test]
fn agents_spawn_agents_from_their_handlers() {
    let (rt, _counter, poller) = mixed(None);
    let h = rt.handle();
    h.send_blocking(&poller, PollerMsg::SpawnChild).unwrap();
    let Report::Spawned(Ok(child)) = next_report(&rt) else {
        panic!("spawned")
    };
    // Messages sent to the child in the spawning hook waited for it.
    assert_eq!(next_report(&rt), Report::Count(Ok(42)));
    // In the poller's sub-cluster.
    let m = rt.manager();
    assert_eq!(m.host_of(child), m.host_of(poller));
    rt.shutdown();
}

/// Spawns from its `stopped` hook (during shutdown) and from its handler (a behaviour the
/// runtime does not host), and records what it was told.
struct Spawner {
    seen: Arc<Mutex<Vec<SpawnError>>>,
}

impl Agent for Spawner {
    type Msg = u8;

    fn handle(&mut self, _: u8, ctx: &mut Context<'_, u8>) -> AgentResult {
        if let Err(e) = ctx.spawn(|_| Counter::default()) {
            self.seen.lock().unwrap().push(e);
        }
        Ok(())
    }

    fn stopped(&mut self, ctx: &mut Context<'_, u8>) {
        let seen = Arc::clone(&self.seen);
        if let Err(e) = ctx.spawn(move |_| Spawner {
            seen: Arc::clone(&seen),
        }) {
            self.seen.lock().unwrap().push(e);
        }
    }
}

#[test]
fn spawns_a_runtime_cannot_take_are_typed_errors() {
    let rt = QuantumOrchestrator::<Spawner>::builder()
        .workers(1)
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = rt.manager().create_cluster("c").unwrap();
    let keep = Arc::clone(&seen);
    let s = rt
        .manager()
        .spawn(c.into(), move |_| Spawner {
            seen: Arc::clone(&keep),
        })
        .unwrap();
    rt.handle().send_blocking(&s, 0).unwrap();
    rt.shutdown();
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            SpawnError::NotHosted {
                behaviour: "Counter"
            },
            SpawnError::ShuttingDown
        ]
    );
}

#[test]
fn the_registry_is_typed_and_names_are_unique() {
    let (rt, counter, poller) = mixed(None);
    let h = rt.handle();
    block_on(h.register("counter", &counter)).unwrap();
    let found: AgentRef<CounterMsg> = block_on(h.lookup("counter")).unwrap();
    assert_eq!(found, counter);
    assert_eq!(h.ask_blocking(&found, CounterMsg::Get, WAIT), Ok(0));
    match block_on(h.lookup::<PollerMsg>("counter")) {
        Err(RegistryError::WrongType {
            expected, actual, ..
        }) => {
            assert_eq!(expected, "PollerMsg");
            assert_eq!(actual, "CounterMsg");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        block_on(h.register("counter", &poller)),
        Err(RegistryError::Taken {
            name: "counter".into(),
            holder: counter.id()
        })
    );
    assert!(matches!(
        block_on(h.lookup::<CounterMsg>("nobody")),
        Err(RegistryError::NotFound(_))
    ));
    // A name is freed when its agent terminates.
    let mut watch = block_on(h.watch(&counter)).unwrap();
    h.send_blocking(&counter, CounterMsg::Stop).unwrap();
    assert!(watch.wait_blocking(WAIT).is_some());
    block_on(h.register("counter", &poller)).unwrap();
    rt.shutdown();
}

#[test]
fn a_runtime_of_one_behaviour_refuses_other_message_types() {
    let (rt, counter) = one_counter();
    // A reference of another type to the same agent (as a deserialized one could be).
    let wrong = AgentRef::<PollerMsg>::from_id(counter.id());
    assert!(matches!(
        rt.handle().send_blocking(&wrong, PollerMsg::Poll),
        Err(qorch_runtime::RuntimeSendError::Refused(PollerMsg::Poll))
    ));
    assert!(matches!(
        rt.handle()
            .ask_blocking(&wrong, |_: ReplyTo<u64>| PollerMsg::Poll, WAIT),
        Err(AskError::WrongType { .. })
    ));
    rt.shutdown();
}

#[test]
fn a_pending_ask_moves_with_its_asker() {
    let (rt, counter, poller) = mixed(None);
    let h = rt.handle();
    h.send_blocking(&poller, PollerMsg::AskOnce(WAIT, Request::Hold))
        .unwrap();
    // Until the counter holds the request (the ask crosses several nodes).
    for _ in 0..3 {
        block_on(h.settle()).unwrap();
    }
    let m = rt.manager();
    let elsewhere = m.create_cluster("elsewhere").unwrap();
    m.move_agents(&[poller.id()], elsewhere.into()).unwrap();
    block_on(h.settle()).unwrap();
    assert_eq!(m.host_of(poller), Some(elsewhere.into()));
    h.send_blocking(&counter, CounterMsg::Add(7)).unwrap();
    h.send_blocking(&counter, CounterMsg::Release).unwrap();
    assert_eq!(next_report(&rt), Report::Count(Ok(7)));
    rt.shutdown();
}
