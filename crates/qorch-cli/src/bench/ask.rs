//! The ask round trip and the density of a runtime of several behaviours, for
//! `qorch bench runtime`.
//!
//! * `ask_p50_us`, `ask_p99_us`: an agent asks an agent of another behaviour on another
//!   cluster's sub-cluster (`QuantumOrchestrator<AnyAgent>`, two workers, the default
//!   routing: `Routing::Direct`) and gets the reply as one of its messages; one ask at a
//!   time, each timed from the asking hook to the hook that receives the answer.
//! * `ask_direct_p50_us`, `ask_direct_p99_us`: the same figures (the name of the direct
//!   routing's figure from when the tree was the default; kept for scripts).
//! * `ask_tree_p50_us`, `ask_tree_p99_us`: the first figure with `Routing::Tree` (the request
//!   climbs to the orchestrator and down the other cluster).
//! * `ask_same_cluster_p50_us`: the same, with the asked agent in a sibling sub-cluster of the
//!   asker (the same cluster, so the same worker thread: no thread crossing).
//! * `app_ask_p50_us`, `app_ask_p99_us`: the application asks the same agent
//!   (`RuntimeHandle::ask_blocking`), one at a time.
//! * `actix_ask_p50_us`: actix's own round trip, `Addr::send().await` from an actor on one
//!   arbiter to an actor on another, one at a time (in the same run).
//! * `mixed_bytes_per_agent`: live heap bytes per agent (counted by the allocator, behaviour
//!   state included) after spawning agents of two behaviour types, half each, into one
//!   runtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, Arbiter, AsyncContext, Context, Handler, System, WrapFuture,
};
use anyhow::Context as _;
use qorch_protocol::{Address, AgentRef, Message};
use qorch_runtime::{
    Agent, AgentResult, AnyAgent, AskError, Context as AgentContext, QuantumOrchestrator, ReplyTo,
    Routing, RuntimeConfig,
};

use crate::alloc_count::Counting;

/// The figures of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AskFigures {
    pub(crate) ask_p50_us: f64,
    pub(crate) ask_p99_us: f64,
    pub(crate) ask_same_cluster_p50_us: f64,
    pub(crate) ask_tree_p50_us: f64,
    pub(crate) ask_tree_p99_us: f64,
    pub(crate) app_ask_p50_us: f64,
    pub(crate) app_ask_p99_us: f64,
    pub(crate) actix_ask_p50_us: Option<f64>,
    pub(crate) actix_ask_p99_us: Option<f64>,
    pub(crate) mixed_bytes_per_agent: f64,
}

/// Answers with its counter.
enum AnswerMsg {
    Get(ReplyTo<u64>),
}

impl Message for AnswerMsg {}

struct Answerer(u64);

impl Agent for Answerer {
    type Msg = AnswerMsg;

    fn handle(&mut self, msg: AnswerMsg, _: &mut AgentContext<'_, AnswerMsg>) -> AgentResult {
        let AnswerMsg::Get(reply) = msg;
        self.0 += 1;
        reply.send(self.0);
        Ok(())
    }
}

/// Asks `left` times, one at a time, timing each round trip.
enum AskerMsg {
    Go(u32),
    Got(Result<u64, AskError>),
}

impl Message for AskerMsg {}

struct Asker {
    target: AgentRef<AnswerMsg>,
    left: u32,
    started: Instant,
    samples: Arc<Mutex<Vec<f64>>>,
}

impl Asker {
    fn ask(&mut self, ctx: &mut AgentContext<'_, AskerMsg>) {
        self.started = Instant::now();
        ctx.ask(
            &self.target,
            AnswerMsg::Get,
            Duration::from_secs(10),
            AskerMsg::Got,
        );
    }
}

impl Agent for Asker {
    type Msg = AskerMsg;

    fn handle(&mut self, msg: AskerMsg, ctx: &mut AgentContext<'_, AskerMsg>) -> AgentResult {
        match msg {
            AskerMsg::Go(n) => {
                self.left = n;
                self.ask(ctx);
            }
            AskerMsg::Got(r) => {
                r?;
                let us = self.started.elapsed().as_secs_f64() * 1e6;
                self.samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(us);
                self.left -= 1;
                if self.left > 0 {
                    self.ask(ctx);
                } else {
                    ctx.send_to(Address::Orchestrator, AskerMsg::Go(0));
                }
            }
        }
        Ok(())
    }
}

/// The `q`-quantile of sorted samples.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Measures everything this module reports.
pub(crate) fn measure(
    samples: u32,
    warmup: u32,
    density_agents: usize,
    baseline: bool,
) -> anyhow::Result<AskFigures> {
    let (agent, sibling, app) = qorch_asks(samples, warmup, Routing::default())?;
    let (tree, _, _) = qorch_asks(samples, warmup, Routing::Tree)?;
    let actix = if baseline {
        Some(sorted(actix_asks(samples, warmup)?))
    } else {
        None
    };
    let mixed_bytes_per_agent = mixed_density(density_agents)?;
    Ok(AskFigures {
        ask_p50_us: quantile(&agent, 0.5),
        ask_p99_us: quantile(&agent, 0.99),
        ask_same_cluster_p50_us: quantile(&sibling, 0.5),
        ask_tree_p50_us: quantile(&tree, 0.5),
        ask_tree_p99_us: quantile(&tree, 0.99),
        app_ask_p50_us: quantile(&app, 0.5),
        app_ask_p99_us: quantile(&app, 0.99),
        actix_ask_p50_us: actix.as_deref().map(|a| quantile(a, 0.5)),
        actix_ask_p99_us: actix.as_deref().map(|a| quantile(a, 0.99)),
        mixed_bytes_per_agent,
    })
}

/// Agent-to-agent asks (to another cluster, then to a sibling sub-cluster) and application
/// asks in a runtime of two behaviours.
fn qorch_asks(
    samples: u32,
    warmup: u32,
    routing: Routing,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let rt = QuantumOrchestrator::<AnyAgent>::builder()
        .config(RuntimeConfig {
            workers: 2,
            routing,
            ..RuntimeConfig::default()
        })
        .build()?;
    let m = rt.manager();
    let a = m.create_cluster("a")?;
    let b = m.create_cluster("b")?;
    let sa = m.create_sub_cluster(a.into(), "a/s")?;
    let sb = m.create_sub_cluster(b.into(), "b/s")?;
    let sibling = m.create_sub_cluster(a.into(), "a/t")?;
    let target = m.spawn(sb.into(), |_| Answerer(0))?;
    let near = m.spawn(sibling.into(), |_| Answerer(0))?;
    let times = Arc::new(Mutex::new(Vec::with_capacity(samples as usize)));
    let asker_of = |target: AgentRef<AnswerMsg>| {
        let keep = Arc::clone(&times);
        m.spawn(sa.into(), move |_| Asker {
            target,
            left: 0,
            started: Instant::now(),
            samples: Arc::clone(&keep),
        })
    };
    let (far_asker, near_asker) = (asker_of(target)?, asker_of(near)?);
    let h = rt.handle();
    let run = |asker: AgentRef<AskerMsg>, n: u32| -> anyhow::Result<()> {
        h.send_blocking(&asker, AskerMsg::Go(n))
            .map_err(|_| anyhow::anyhow!("runtime stopped"))?;
        let done = h
            .recv_blocking(Duration::from_secs(120))
            .context("the asks did not finish in 2 minutes")?;
        anyhow::ensure!(
            done.payload.is::<AskerMsg>(),
            "unexpected {:?}",
            done.payload
        );
        Ok(())
    };
    let take = || {
        std::mem::take(
            &mut *times
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    };
    let measure = |asker| -> anyhow::Result<Vec<f64>> {
        run(asker, warmup.max(1))?;
        take();
        run(asker, samples)?;
        Ok(take())
    };
    let agent = measure(far_asker)?;
    let sibling = measure(near_asker)?;
    let mut app = Vec::with_capacity(samples as usize);
    for i in 0..warmup + samples {
        let t = Instant::now();
        h.ask_blocking(&target, AnswerMsg::Get, Duration::from_secs(10))?;
        if i >= warmup {
            app.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(h);
    drop(m);
    rt.shutdown();
    Ok((sorted(agent), sorted(sibling), sorted(app)))
}

/// A second behaviour for the density figure, with other state.
struct Idle {
    _seen: u64,
}

impl Agent for Idle {
    type Msg = u8;

    fn handle(&mut self, _: u8, _: &mut AgentContext<'_, u8>) -> AgentResult {
        Ok(())
    }
}

/// Live heap bytes per agent with two behaviours mixed.
fn mixed_density(n: usize) -> anyhow::Result<f64> {
    let n = n.max(2);
    let counting = Counting::start();
    let rt = QuantumOrchestrator::<AnyAgent>::builder()
        .config(RuntimeConfig {
            workers: 2,
            ..RuntimeConfig::default()
        })
        .build()?;
    let before = counting.live_bytes();
    let m = rt.manager();
    let clusters = (n / 10_000).clamp(1, 100);
    let hosts = clusters * 4;
    for c in 0..clusters {
        let cid = m.create_cluster(&format!("c{c}"))?;
        for s in 0..4 {
            let sub = m.create_sub_cluster(cid.into(), &format!("c{c}/s{s}"))?;
            let host = c * 4 + s;
            let count = n * (host + 1) / hosts - n * host / hosts;
            m.spawn_agents(sub.into(), count / 2, |_| Answerer(0))?;
            m.spawn_agents(sub.into(), count - count / 2, |_| Idle { _seen: 0 })?;
        }
    }
    let h = rt.handle();
    qorch_protocol::block_on_until(h.settle(), None)
        .context("runtime stopped while spawning")??;
    let bytes = (counting.live_bytes() - before) as f64 / n as f64;
    drop(h);
    drop(m);
    rt.shutdown();
    Ok(bytes)
}

/// actix: an actor on one arbiter asks an actor on another with `send().await`.
struct ActixAnswerer(u64);

impl Actor for ActixAnswerer {
    type Context = Context<Self>;
}

#[derive(actix::Message)]
#[rtype(result = "u64")]
struct Get;

impl Handler<Get> for ActixAnswerer {
    type Result = u64;

    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> u64 {
        self.0 += 1;
        self.0
    }
}

struct ActixAsker {
    target: Addr<ActixAnswerer>,
    left: u32,
    started: Instant,
    samples: Vec<f64>,
    done: Option<std::sync::mpsc::Sender<Vec<f64>>>,
}

impl Actor for ActixAsker {
    type Context = Context<Self>;
}

#[derive(actix::Message)]
#[rtype(result = "()")]
struct Next;

impl Handler<Next> for ActixAsker {
    type Result = ();

    fn handle(&mut self, _: Next, ctx: &mut Context<Self>) {
        if self.left == 0 {
            if let Some(tx) = self.done.take() {
                let _ = tx.send(std::mem::take(&mut self.samples));
            }
            return;
        }
        self.left -= 1;
        self.started = Instant::now();
        let fut = self.target.send(Get).into_actor(self).map(|r, act, ctx| {
            if r.is_ok() {
                act.samples.push(act.started.elapsed().as_secs_f64() * 1e6);
            }
            ctx.notify(Next);
        });
        ctx.wait(fut);
    }
}

fn actix_asks(samples: u32, warmup: u32) -> anyhow::Result<Vec<f64>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let sys = System::new();
        sys.block_on(async move {
            let arbiters = [Arbiter::new(), Arbiter::new()];
            let _ = tx.send((
                System::current(),
                arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>(),
            ));
        });
        let _ = sys.run();
    });
    let (system, arbiters) = rx.recv().context("actix system did not start")?;
    let target = ActixAnswerer::start_in_arbiter(&arbiters[1], |_| ActixAnswerer(0));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let asker = ActixAsker::start_in_arbiter(&arbiters[0], move |_| ActixAsker {
        target,
        left: warmup + samples,
        started: Instant::now(),
        samples: Vec::new(),
        done: Some(done_tx),
    });
    asker.do_send(Next);
    let all = done_rx.recv_timeout(Duration::from_secs(120));
    system.stop();
    let _ = thread.join();
    let mut all = all.context("the actix asks did not finish in 2 minutes")?;
    Ok(all.split_off((warmup as usize).min(all.len())))
}
