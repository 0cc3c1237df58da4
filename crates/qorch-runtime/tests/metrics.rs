//! The runtime's metrics reach an installed `metrics` recorder: exact counts per node,
//! behaviour type and priority, never per agent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use qorch_protocol::{AgentRef, Message};
use qorch_runtime::{Agent, AgentResult, AnyAgent, Context, QuantumOrchestrator, ReplyTo};

const WAIT: Duration = Duration::from_secs(10);

/// Counters by name and labels (`name{k=v,...}`, labels sorted); gauges and histograms
/// are accepted and dropped.
#[derive(Default)]
struct Counters(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut map = self.0.lock().unwrap();
        Counter::from_arc(Arc::clone(map.entry(render(key)).or_default()))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Counters {
    /// The sum of the counters named `name` whose labels include every one of `with`.
    fn sum(&self, name: &str, with: &[&str]) -> u64 {
        let map = self.0.lock().unwrap();
        map.iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
            .filter(|(k, _)| with.iter().all(|w| k.contains(w)))
            .map(|(_, v)| v.load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Debug)]
enum CounterMsg {
    Add(u64),
    Get(ReplyTo<u64>),
    Crash,
}

impl Message for CounterMsg {}

#[derive(Default)]
struct Tally {
    n: u64,
}

impl Agent for Tally {
    type Msg = CounterMsg;

    fn handle(&mut self, msg: CounterMsg, _: &mut Context<'_, CounterMsg>) -> AgentResult {
        match msg {
            CounterMsg::Add(k) => self.n += k,
            CounterMsg::Get(reply) => reply.send(self.n),
            CounterMsg::Crash => return Err("asked to crash".into()),
        }
        Ok(())
    }
}

/// On each message, sends that many `Add(1)` to its tally.
struct Fanout {
    tally: AgentRef<CounterMsg>,
}

#[derive(Debug, Clone)]
struct Burst(u64);

impl Message for Burst {}

impl Agent for Fanout {
    type Msg = Burst;

    fn handle(&mut self, Burst(k): Burst, ctx: &mut Context<'_, Burst>) -> AgentResult {
        for _ in 0..k {
            ctx.send(&self.tally, CounterMsg::Add(1));
        }
        Ok(())
    }
}

#[test]
fn node_counts_reach_the_recorder_by_behaviour_and_priority() {
    let counters = Arc::new(Counters::default());
    metrics::set_global_recorder(Arc::clone(&counters)).unwrap();

    let rt = QuantumOrchestrator::<AnyAgent>::builder()
        .workers(1)
        .build()
        .unwrap();
    let m = rt.manager();
    let a = m.create_cluster("a").unwrap();
    let b = m.create_cluster("b").unwrap();
    let tally = m.spawn(a.into(), |_| Tally::default()).unwrap();
    let fanout = m.spawn(b.into(), move |_| Fanout { tally }).unwrap();
    let h = rt.handle();
    // The crash first: the restarted tally then sees every add (one lane, FIFO).
    h.send_blocking(&tally, CounterMsg::Crash).unwrap();
    for _ in 0..10 {
        h.send_blocking(&tally, CounterMsg::Add(1)).unwrap();
    }
    h.send_blocking(&fanout, Burst(5)).unwrap();
    let mut gets = 0;
    loop {
        gets += 1;
        let n = h.ask_blocking(&tally, CounterMsg::Get, WAIT).unwrap();
        if n == 15 {
            break;
        }
        assert!(gets < 1000, "the tally saw {n} of 15");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = rt.shutdown();

    let tally_name = "behaviour=Tally";
    let fanout_name = "behaviour=Fanout";
    // Handled: 10 adds, 5 from the burst, the gets; the crash failed and is not counted.
    let handled = counters.sum("qorch_messages_handled_total", &[tally_name]);
    assert_eq!(
        handled,
        15 + gets,
        "{:?}",
        counters.0.lock().unwrap().keys()
    );
    assert_eq!(
        counters.sum(
            "qorch_messages_handled_total",
            &[tally_name, "priority=normal", "node=a"]
        ),
        handled
    );
    assert_eq!(
        counters.sum("qorch_messages_sent_total", &[fanout_name, "node=b"]),
        5
    );
    assert_eq!(
        counters.sum("qorch_agent_restarts_total", &[tally_name, "node=a"]),
        1
    );
    assert_eq!(counters.sum("qorch_agent_failures_total", &[]), 0);
    // Aggregated, never per agent.
    assert!(
        counters
            .0
            .lock()
            .unwrap()
            .keys()
            .all(|k| !k.contains("agent=")),
    );
}
