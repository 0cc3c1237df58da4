//! Quickstart: two behaviours in one runtime, typed references, an ask, an interval timer
//! and a watch (`rebalance.rs` adds the optimizer). Run with
//! `cargo run --release -p qorch --example quickstart`.

use std::time::Duration;

use qorch::{Agent, AgentRef, AgentResult, AnyAgent, AskError, Context, Message};
use qorch::{QuantumOrchestrator, ReplyTo};

const TIMEOUT: Duration = Duration::from_secs(1);

/// Counts, and answers `Get` with its count.
enum CounterMsg {
    Add(u64),
    Get(ReplyTo<u64>),
}
impl Message for CounterMsg {}

struct Counter(u64);
impl Agent for Counter {
    type Msg = CounterMsg;
    fn handle(&mut self, msg: CounterMsg, _: &mut Context<'_, CounterMsg>) -> AgentResult {
        match msg {
            CounterMsg::Add(n) => self.0 += n,
            CounterMsg::Get(reply) => reply.send(self.0),
        }
        Ok(())
    }
}

/// Every 20 ms adds to a counter and asks for its count; stops after five answers.
#[derive(Clone)]
enum PollerMsg {
    Tick,
    Count(Result<u64, AskError>),
}
impl Message for PollerMsg {}

struct Poller {
    counter: AgentRef<CounterMsg>,
    answers: u32,
}
impl Agent for Poller {
    type Msg = PollerMsg;
    fn started(&mut self, ctx: &mut Context<'_, PollerMsg>) -> AgentResult {
        ctx.send_interval(Duration::from_millis(20), PollerMsg::Tick)?;
        Ok(())
    }
    fn handle(&mut self, msg: PollerMsg, ctx: &mut Context<'_, PollerMsg>) -> AgentResult {
        match msg {
            PollerMsg::Tick => {
                ctx.send(&self.counter, CounterMsg::Add(1));
                ctx.ask(&self.counter, CounterMsg::Get, TIMEOUT, PollerMsg::Count);
            }
            PollerMsg::Count(n) => {
                println!("{} counted {}", ctx.myself(), n?);
                self.answers += 1;
                if self.answers == 5 {
                    ctx.stop();
                }
            }
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = QuantumOrchestrator::<AnyAgent>::builder()
        .workers(2)
        .build()?;
    let m = rt.manager();
    let (a, b) = (m.create_cluster("a")?, m.create_cluster("b")?);
    let counter = m.spawn(a.into(), |_| Counter(0))?;
    let leaf = m.create_sub_cluster(b.into(), "b/pollers")?;
    let poller = m.spawn(leaf.into(), move |_| Poller {
        counter,
        answers: 0,
    })?;
    // The application watches the poller until it stops, then asks the counter itself.
    let h = rt.handle();
    let ended = h
        .watch_blocking(&poller)?
        .wait_blocking(Duration::from_secs(5));
    println!("poller ended: {ended:?}");
    let n = h.ask_blocking(&counter, CounterMsg::Get, TIMEOUT)?;
    println!("the app asked: {n}");
    rt.shutdown();
    Ok(())
}
