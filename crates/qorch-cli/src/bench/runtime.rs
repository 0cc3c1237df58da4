//! `qorch bench runtime`: the qorch runtime against plain actix actors doing the same work in
//! the same run.
//!
//! * Spawn: `--agents` agents over `--clusters` clusters of `--subclusters` sub-clusters each;
//!   time until every agent has started (`settle`), and the growth of the process's resident
//!   memory divided by the agents, minus the behaviour's own size.
//! * Ring: agent `i` passes tokens to agent `i + 1` (a ring over all agents, so most hops stay
//!   inside a sub-cluster and some cross to the next one, up and down the tree); `--tokens`
//!   tokens of `--hops` hops each; agent messages handled per second. The actix baseline is one
//!   actix actor per agent, actors spread over the same number of arbiters in the same
//!   contiguous blocks, each holding its successor's `Addr`.
//! * Reports: report rounds (repeated for at least 0.3 s or 20 rounds); every agent's demand
//!   reaches its sub-cluster, which sends one aggregate to its cluster, which sends one to the
//!   top. Agent reports per second. The actix
//!   baseline sends one message per agent to its sub-cluster actor, which aggregates and sends
//!   one to its cluster actor, which reports to a collector.
//!
//! This module names actix only for the baseline; the runtime itself keeps actix inside its
//! executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter, Context, Handler, Message as ActixMessage, System};
use anyhow::Context as _;
use qorch_protocol::{Address, AgentId, Message, Priority};
use qorch_resources::{PoolFilter, ResourceRequest, ResourceVector};
use qorch_runtime::{
    Agent, AgentResult, Context as AgentContext, QuantumOrchestrator, RuntimeConfig,
};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Number of agents.
    #[arg(long, default_value_t = 100_000)]
    agents: usize,
    /// Clusters (0: one per 10,000 agents, at least 1, at most 100).
    #[arg(long, default_value_t = 0)]
    clusters: usize,
    /// Sub-clusters per cluster (the agents live in these).
    #[arg(long, default_value_t = 4)]
    subclusters: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Tokens circulating in the ring.
    #[arg(long, default_value_t = 1000)]
    tokens: u64,
    /// Hops per token.
    #[arg(long, default_value_t = 2000)]
    hops: u64,
    /// Round trips timed for the ask figures (after as many again for warm-up; 0: skip
    /// them).
    #[arg(long, default_value_t = 20_000)]
    ask_samples: u32,
    /// Skip the actix baseline (for very large runs).
    #[arg(long)]
    no_baseline: bool,
    #[command(flatten)]
    peers: super::peers::PeersArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
#[allow(
    clippy::struct_field_names,
    reason = "the field names are the JSON keys users rely on"
)]
struct Report {
    agents: usize,
    clusters: usize,
    subclusters: usize,
    workers: usize,
    spawn_seconds: f64,
    bytes_per_agent: f64,
    ring_msgs_per_s: f64,
    actix_ring_msgs_per_s: Option<f64>,
    ring_ratio_to_actix: Option<f64>,
    report_msgs_per_s: f64,
    actix_report_msgs_per_s: Option<f64>,
    report_ratio_to_actix: Option<f64>,
    actix_spawn_seconds: Option<f64>,
    ring_messages: u64,
    ask_p50_us: Option<f64>,
    ask_p99_us: Option<f64>,
    ask_same_cluster_p50_us: Option<f64>,
    ask_direct_p50_us: Option<f64>,
    ask_direct_p99_us: Option<f64>,
    ask_tree_p50_us: Option<f64>,
    ask_tree_p99_us: Option<f64>,
    app_ask_p50_us: Option<f64>,
    app_ask_p99_us: Option<f64>,
    actix_ask_p50_us: Option<f64>,
    actix_ask_p99_us: Option<f64>,
    mixed_bytes_per_agent: Option<f64>,
    /// The peer frameworks' ask round trip (`bench/peers.rs`): six keys, null if not measured.
    #[serde(flatten)]
    peers: super::peers::PeersReport,
}

#[derive(Debug, Clone, Copy)]
enum RingMsg {
    Token(u64),
    Done,
}

impl Message for RingMsg {
    fn priority(&self) -> Priority {
        Priority::Normal
    }
}

/// The benchmark's agent: a ring member with a small demand.
struct RingAgent {
    next: AgentId,
}

fn demand_of(id: u32) -> ResourceRequest {
    let amount = ResourceVector::from_amounts(vec![1.0 + f64::from(id % 5), 2.0]);
    ResourceRequest {
        min: amount.clone(),
        desired: amount,
        weight: 1.0,
        pools: PoolFilter::Any,
    }
}

impl Agent for RingAgent {
    type Msg = RingMsg;

    fn handle(&mut self, msg: RingMsg, ctx: &mut AgentContext<'_, RingMsg>) -> AgentResult {
        if let RingMsg::Token(h) = msg {
            if h == 0 {
                ctx.send_to(Address::Orchestrator, RingMsg::Done);
            } else {
                ctx.send_to(self.next, RingMsg::Token(h - 1));
            }
        }
        Ok(())
    }

    fn demand(&self) -> Option<ResourceRequest> {
        // The predecessor's id: deterministic and cheap.
        Some(demand_of(self.next.0.wrapping_sub(1)))
    }
}

/// Runs a future on a throwaway current-thread runtime.
fn block_on<F: std::future::Future>(f: F) -> std::io::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`).
fn rss_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

#[allow(clippy::too_many_lines, reason = "the benchmark's phases in sequence")]
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.agents >= 2, "--agents must be at least 2");
    anyhow::ensure!(args.subclusters >= 1, "--subclusters must be at least 1");
    anyhow::ensure!(
        args.tokens >= 1 && args.hops >= 1,
        "--tokens and --hops must be at least 1"
    );
    let n = args.agents;
    let clusters = if args.clusters == 0 {
        (n / 10_000).clamp(1, 100)
    } else {
        args.clusters
    };
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        args.workers
    };
    let tokens = args.tokens.min(n as u64);

    // ---- qorch ----
    let rss0 = rss_bytes();
    let config = RuntimeConfig {
        workers,
        ..RuntimeConfig::default()
    };
    let rt = QuantumOrchestrator::<RingAgent>::builder()
        .config(config)
        .build()?;
    let m = rt.manager();
    let hosts = clusters * args.subclusters;
    let t0 = Instant::now();
    let mut spawned = 0_usize;
    for c in 0..clusters {
        let cid = m.create_cluster(&format!("c{c}"))?;
        for s in 0..args.subclusters {
            let sub = m.create_sub_cluster(cid.into(), &format!("c{c}/s{s}"))?;
            let host = c * args.subclusters + s;
            let count = n * (host + 1) / hosts - n * host / hosts;
            let ring = n as u32;
            m.spawn_agents(sub.into(), count, move |id| RingAgent {
                next: AgentId((id.0 + 1) % ring),
            })?;
            spawned += count;
        }
    }
    let h = rt.handle();
    block_on(h.settle())?.context("runtime stopped while spawning")?;
    let spawn_seconds = t0.elapsed().as_secs_f64();
    let rss1 = rss_bytes();
    let bytes_per_agent = match (rss0, rss1) {
        (Some(a), Some(b)) => (b - a) / spawned as f64 - std::mem::size_of::<RingAgent>() as f64,
        _ => f64::NAN,
    };

    // Ring.
    let t = Instant::now();
    for k in 0..tokens {
        let start = AgentId((k * n as u64 / tokens) as u32);
        h.send_to_blocking(start, RingMsg::Token(args.hops))
            .map_err(|_| anyhow::anyhow!("runtime stopped"))?;
    }
    for _ in 0..tokens {
        h.recv_blocking(Duration::from_secs(600))
            .context("ring did not finish in 10 minutes")?;
    }
    let ring_messages = tokens * (args.hops + 1);
    let ring_msgs_per_s = ring_messages as f64 / t.elapsed().as_secs_f64();

    // Reports.
    if std::env::var_os("QORCH_DEBUG_STATUS").is_some() {
        let st = block_on(h.status())??;
        let failed = st
            .components()
            .filter(|c| c.status == qorch_runtime::ComponentStatus::Failed)
            .count();
        let max_silent = st.components().map(|c| c.silent_ms).max();
        eprintln!("before round: {failed} failed components, max silent {max_silent:?} ms");
    }
    // Repeated rounds (at least 0.3 s or 20 rounds), so that small runs measure throughput and
    // not one round trip.
    let t = Instant::now();
    let mut reported = 0_usize;
    let mut rounds = 0_u64;
    let round = loop {
        rounds += 1;
        let round = block_on(h.round(rounds))?.context("runtime stopped during the round")?;
        reported += round.agents.len();
        if rounds >= 20 || t.elapsed() >= Duration::from_millis(300) {
            break round;
        }
    };
    let report_msgs_per_s = reported as f64 / t.elapsed().as_secs_f64();
    if std::env::var_os("QORCH_DEBUG_STATUS").is_some() {
        eprintln!("round took {:?}", t.elapsed());
        let st = block_on(h.status())??;
        for c in st
            .components()
            .filter(|c| c.status != qorch_runtime::ComponentStatus::Healthy)
        {
            eprintln!(
                "after round: {} {:?} silent {} ms",
                c.address, c.status, c.silent_ms
            );
        }
    }
    anyhow::ensure!(
        round.agents.len() == spawned,
        "round reported {} of {spawned} agents",
        round.agents.len()
    );
    drop(h);
    drop(m);
    rt.shutdown();

    // ---- actix baseline ----
    let baseline = if args.no_baseline {
        None
    } else {
        Some(actix_baseline(
            n,
            clusters,
            args.subclusters,
            workers,
            tokens,
            args.hops,
        )?)
    };
    let asks = if args.ask_samples == 0 {
        None
    } else {
        Some(super::ask::measure(
            args.ask_samples,
            args.ask_samples.min(5_000),
            n,
            !args.no_baseline,
        )?)
    };
    let report = Report {
        ask_p50_us: asks.map(|a| a.ask_p50_us),
        ask_p99_us: asks.map(|a| a.ask_p99_us),
        ask_same_cluster_p50_us: asks.map(|a| a.ask_same_cluster_p50_us),
        ask_direct_p50_us: asks.map(|a| a.ask_p50_us),
        ask_direct_p99_us: asks.map(|a| a.ask_p99_us),
        ask_tree_p50_us: asks.map(|a| a.ask_tree_p50_us),
        ask_tree_p99_us: asks.map(|a| a.ask_tree_p99_us),
        app_ask_p50_us: asks.map(|a| a.app_ask_p50_us),
        app_ask_p99_us: asks.map(|a| a.app_ask_p99_us),
        actix_ask_p50_us: asks.and_then(|a| a.actix_ask_p50_us),
        actix_ask_p99_us: asks.and_then(|a| a.actix_ask_p99_us),
        mixed_bytes_per_agent: asks.map(|a| a.mixed_bytes_per_agent),
        agents: spawned,
        clusters,
        subclusters: hosts,
        workers,
        spawn_seconds,
        bytes_per_agent,
        ring_msgs_per_s,
        actix_ring_msgs_per_s: baseline.map(|b| b.ring),
        ring_ratio_to_actix: baseline.map(|b| ring_msgs_per_s / b.ring),
        report_msgs_per_s,
        actix_report_msgs_per_s: baseline.map(|b| b.report),
        report_ratio_to_actix: baseline.map(|b| report_msgs_per_s / b.report),
        actix_spawn_seconds: baseline.map(|b| b.spawn),
        ring_messages,
        peers: super::peers::measure(&args.peers),
    };
    if args.json {
        crate::print_line(&serde_json::to_string(&report)?)
    } else {
        let opt =
            |x: Option<f64>, scale: f64| x.map_or("-".to_owned(), |v| format!("{:.2}", v / scale));
        for line in [
            format!(
                "agents {} in {} clusters / {} sub-clusters on {} workers",
                report.agents, clusters, hosts, workers
            ),
            format!(
                "spawn: {:.3} s (actix actors: {} s), {:.0} bytes per agent",
                spawn_seconds,
                opt(report.actix_spawn_seconds, 1.0),
                bytes_per_agent
            ),
            format!(
                "ring: {:.2} M msg/s (actix {} M msg/s)",
                ring_msgs_per_s / 1e6,
                opt(report.actix_ring_msgs_per_s, 1e6)
            ),
            format!(
                "reports: {:.2} M agents/s (actix {} M msg/s)",
                report_msgs_per_s / 1e6,
                opt(report.actix_report_msgs_per_s, 1e6)
            ),
            format!(
                "ask: agent p50 {} us, p99 {} us (along the tree p50 {} us; same cluster p50 {} us); app p50 {} us; actix p50 {} us",
                opt(report.ask_p50_us, 1.0),
                opt(report.ask_p99_us, 1.0),
                opt(report.ask_tree_p50_us, 1.0),
                opt(report.ask_same_cluster_p50_us, 1.0),
                opt(report.app_ask_p50_us, 1.0),
                opt(report.actix_ask_p50_us, 1.0)
            ),
            format!(
                "two behaviours mixed: {} heap bytes per agent",
                opt(report.mixed_bytes_per_agent, 1.0)
            ),
            report.peers.table_line(),
        ] {
            crate::print_line(&line)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    spawn: f64,
    ring: f64,
    report: f64,
}

#[derive(ActixMessage)]
#[rtype(result = "()")]
struct Token(u64);

#[derive(ActixMessage)]
#[rtype(result = "()")]
struct SetNext(Addr<RingActor>);

#[derive(ActixMessage)]
#[rtype(result = "()")]
struct Collect;

#[derive(ActixMessage)]
#[rtype(result = "()")]
struct AgentReportMsg(ResourceRequest);

#[derive(ActixMessage)]
#[rtype(result = "()")]
struct SubReport(Vec<ResourceRequest>);

struct RingActor {
    id: u32,
    next: Option<Addr<RingActor>>,
    sub: Addr<SubActor>,
    done: Arc<AtomicU64>,
}

impl Actor for RingActor {
    type Context = Context<Self>;
}

impl Handler<SetNext> for RingActor {
    type Result = ();
    fn handle(&mut self, msg: SetNext, _: &mut Context<Self>) {
        self.next = Some(msg.0);
    }
}

impl Handler<Token> for RingActor {
    type Result = ();
    fn handle(&mut self, msg: Token, _: &mut Context<Self>) {
        if msg.0 == 0 {
            self.done.fetch_add(1, Ordering::Release);
        } else if let Some(next) = &self.next {
            next.do_send(Token(msg.0 - 1));
        }
    }
}

impl Handler<Collect> for RingActor {
    type Result = ();
    fn handle(&mut self, _: Collect, _: &mut Context<Self>) {
        self.sub.do_send(AgentReportMsg(demand_of(self.id)));
    }
}

struct SubActor {
    expected: usize,
    got: Vec<ResourceRequest>,
    cluster: Addr<ClusterActor>,
}

impl Actor for SubActor {
    type Context = Context<Self>;
}

#[derive(ActixMessage)]
#[rtype(result = "()")]
struct Expect(usize);

impl Handler<Expect> for SubActor {
    type Result = ();
    fn handle(&mut self, msg: Expect, _: &mut Context<Self>) {
        self.expected = msg.0;
    }
}

impl Handler<AgentReportMsg> for SubActor {
    type Result = ();
    fn handle(&mut self, msg: AgentReportMsg, _: &mut Context<Self>) {
        self.got.push(msg.0);
        if self.got.len() == self.expected {
            self.cluster
                .do_send(SubReport(std::mem::take(&mut self.got)));
        }
    }
}

struct ClusterActor {
    subs: usize,
    subs_left: usize,
    agents: usize,
    done: Arc<AtomicU64>,
}

impl Actor for ClusterActor {
    type Context = Context<Self>;
}

impl Handler<SubReport> for ClusterActor {
    type Result = ();
    fn handle(&mut self, msg: SubReport, _: &mut Context<Self>) {
        self.agents += msg.0.len();
        self.subs_left -= 1;
        if self.subs_left == 0 {
            self.done.fetch_add(self.agents as u64, Ordering::Release);
            // Ready for the next round.
            self.subs_left = self.subs;
            self.agents = 0;
        }
    }
}

fn wait_for(counter: &AtomicU64, target: u64, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while counter.load(Ordering::Acquire) < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "actix baseline: {what} did not finish in 10 minutes"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// The same work with one actix actor per agent.
fn actix_baseline(
    n: usize,
    clusters: usize,
    subclusters: usize,
    workers: usize,
    tokens: u64,
    hops: u64,
) -> anyhow::Result<Baseline> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let sys = System::new();
        sys.block_on(async move {
            let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
            let _ = tx.send((
                System::current(),
                arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>(),
            ));
        });
        let _ = sys.run();
    });
    let (system, arbiters) = rx.recv().context("actix baseline system did not start")?;
    let ring_done = Arc::new(AtomicU64::new(0));
    let report_done = Arc::new(AtomicU64::new(0));
    let hosts = clusters * subclusters;

    let t0 = Instant::now();
    let mut actors: Vec<Addr<RingActor>> = Vec::with_capacity(n);
    let mut subs = Vec::with_capacity(hosts);
    for c in 0..clusters {
        // A cluster's actors on one arbiter, as in the qorch runtime.
        let arb = &arbiters[c % arbiters.len()];
        let done = Arc::clone(&report_done);
        let cluster = ClusterActor::start_in_arbiter(arb, move |_| ClusterActor {
            subs: subclusters,
            subs_left: subclusters,
            agents: 0,
            done,
        });
        for s in 0..subclusters {
            let host = c * subclusters + s;
            let count = n * (host + 1) / hosts - n * host / hosts;
            let cl = cluster.clone();
            let sub = SubActor::start_in_arbiter(arb, move |_| SubActor {
                expected: count,
                got: Vec::new(),
                cluster: cl,
            });
            for _ in 0..count {
                let (sub, done, id) = (sub.clone(), Arc::clone(&ring_done), actors.len() as u32);
                actors.push(RingActor::start_in_arbiter(arb, move |_| RingActor {
                    id,
                    next: None,
                    sub,
                    done,
                }));
            }
            subs.push(sub);
        }
    }
    for i in 0..n {
        actors[i].do_send(SetNext(actors[(i + 1) % n].clone()));
    }
    // Actor mailboxes are FIFO: a 0-hop token sent now is handled after `SetNext`, so when
    // every actor has handled one, all are started and linked.
    for a in &actors {
        a.do_send(Token(0));
    }
    wait_for(&ring_done, n as u64, "spawning")?;
    let spawn = t0.elapsed().as_secs_f64();

    ring_done.store(0, Ordering::Release);
    let t = Instant::now();
    for k in 0..tokens {
        actors[(k * n as u64 / tokens) as usize].do_send(Token(hops));
    }
    wait_for(&ring_done, tokens, "ring")?;
    let ring = (tokens * (hops + 1)) as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut rounds = 0_u64;
    loop {
        rounds += 1;
        for a in &actors {
            a.do_send(Collect);
        }
        wait_for(&report_done, rounds * n as u64, "reports")?;
        if rounds >= 20 || t.elapsed() >= Duration::from_millis(300) {
            break;
        }
    }
    let report = (rounds * n as u64) as f64 / t.elapsed().as_secs_f64();

    drop(actors);
    drop(subs);
    system.stop();
    let _ = thread.join();
    Ok(Baseline {
        spawn,
        ring,
        report,
    })
}
