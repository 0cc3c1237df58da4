//! `qorch-peers`: the request/reply ("ask") round trip of three actor frameworks, actix,
//! ractor and kameo, side by side. `qorch bench runtime` runs this binary as a child process
//! and copies its figures into its report, so that the `qorch` binary links neither ractor nor
//! kameo.
//!
//! What is measured, the same way for each framework: two actors, A and B. A asks B; B adds
//! one to its counter and replies with it (a `u64`). One request is outstanding at a time: A
//! sends, awaits the reply, then sends the next. A times each round trip with `Instant`, from
//! just before the send to the reply in hand; `--warmup` round trips first, untimed, then
//! `--samples` timed ones, sorted. The loop runs inside A: A handles one `Run` message whose
//! handler is that loop, and returns the timings.
//!
//! * actix: A and B each started on an `Arbiter` of its own, so on two different threads. A's
//!   `Run` handler returns a `ResponseFuture`: an async block that actix spawns on A's arbiter
//!   and that awaits `b.send(Ping)` in a loop (`addr.send(msg).await`).
//! * ractor: A's `Run` handler awaits `ractor::call!(b, Ping)` (`ActorRef::call`, no timeout)
//!   in a loop. kameo: A's `Run` handler awaits `b.ask(Ping)` in a loop.
//! * For ractor and kameo, twice: `<framework>_ask_*` with A and B each on a single-thread
//!   tokio runtime of its own (two threads, like actix's arbiters: the like-for-like figure),
//!   and `<framework>_shared_ask_p50_us` with both on one multi-thread runtime of 2 workers,
//!   where tokio, not the framework, places them: tokio tends to run a task on the thread that
//!   woke it, so many round trips stay on one thread.
//!
//! `<framework>_cross_thread`: the share of the timed round trips in which B handled the
//! request on another thread than the one A sent it from.
//!
//! Output: one JSON object on stdout.
//!
//! * `actix_ask_p50_us`, `actix_ask_p99_us`, `ractor_ask_p50_us`, `ractor_ask_p99_us`,
//!   `kameo_ask_p50_us`, `kameo_ask_p99_us`: the 50th and 99th percentiles (nearest rank) of
//!   the timed round trips, in microseconds.
//! * `ractor_shared_ask_p50_us`, `kameo_shared_ask_p50_us`: on one shared runtime (above).
//! * `actix_cross_thread`, `ractor_cross_thread`, `kameo_cross_thread`,
//!   `ractor_shared_cross_thread`, `kameo_shared_cross_thread`: see above.
//! * `samples`, `warmup`: the counts used; `ractor_version`, `kameo_version`: the versions
//!   this binary was built with (`RACTOR_VERSION`, `KAMEO_VERSION`, pinned in `Cargo.toml`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, ThreadId};
use std::time::Instant;

use clap::Parser;

/// The ractor version in `Cargo.toml` (pinned with `=`; a test keeps the two in step).
const RACTOR_VERSION: &str = "0.16.5";
/// The kameo version in `Cargo.toml` (pinned with `=`; a test keeps the two in step).
const KAMEO_VERSION: &str = "0.22.2";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(
    name = "qorch-peers",
    about = "The ask round trip of actix, ractor and kameo (one JSON object on stdout)"
)]
struct Args {
    /// Timed round trips per framework.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Untimed round trips per framework before the timed ones.
    #[arg(long, default_value_t = 2_000)]
    warmup: usize,
}

/// The request A sends B: the thread A sends it from (for `<framework>_cross_thread`).
#[derive(Debug, Clone, Copy)]
struct Ping(ThreadId);

/// The timed round trips in which B ran on another thread than A; reset when the warm-up ends.
/// One framework runs at a time.
static CROSS_THREAD: AtomicU64 = AtomicU64::new(0);

/// B's side of a round trip: counts a request from another thread, and the counter's next
/// value (the reply).
fn serve(counter: &mut u64, ping: Ping) -> u64 {
    if ping.0 != thread::current().id() {
        CROSS_THREAD.fetch_add(1, Ordering::Relaxed);
    }
    *counter += 1;
    *counter
}

/// A's loop: `warmup` untimed round trips, then `samples` timed ones (nanoseconds, in order).
async fn round_trips<E: std::fmt::Display>(
    warmup: usize,
    samples: usize,
    mut ask: impl AsyncFnMut(Ping) -> Result<u64, E>,
) -> Result<Vec<u64>, String> {
    let mut times = Vec::with_capacity(samples);
    let mut last = 0;
    for i in 0..warmup + samples {
        if i == warmup {
            CROSS_THREAD.store(0, Ordering::Relaxed);
        }
        let ping = Ping(thread::current().id());
        let t = Instant::now();
        let reply = ask(ping).await.map_err(|e| e.to_string())?;
        let ns = t.elapsed().as_nanos() as u64;
        if i >= warmup {
            times.push(ns);
        }
        if reply != last + 1 {
            return Err(format!("reply {reply} after {last}: B lost count"));
        }
        last = reply;
    }
    Ok(times)
}

/// One framework's figures.
struct Figures {
    p50_us: f64,
    p99_us: f64,
    cross_thread: f64,
}

impl Figures {
    /// From the timed round trips (nanoseconds), and `CROSS_THREAD` as the run left it.
    fn of(mut times: Vec<u64>) -> Figures {
        times.sort_unstable();
        let n = times.len();
        // Nearest rank: the smallest sample with at least p of the samples at or below it.
        let rank = |p: f64| times[((p * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1e3;
        Figures {
            p50_us: rank(0.50),
            p99_us: rank(0.99),
            cross_thread: CROSS_THREAD.load(Ordering::Relaxed) as f64 / n as f64,
        }
    }
}

mod actix_peers {
    //! A and B as actix actors, each on an arbiter of its own.

    use actix::{Actor, Addr, Arbiter, Context, Handler, Message, ResponseFuture, System};

    use super::{BoxError, Ping, round_trips, serve};

    impl Message for Ping {
        type Result = u64;
    }

    struct B {
        counter: u64,
    }

    impl Actor for B {
        type Context = Context<Self>;
    }

    impl Handler<Ping> for B {
        type Result = u64;
        fn handle(&mut self, ping: Ping, _: &mut Context<Self>) -> u64 {
            serve(&mut self.counter, ping)
        }
    }

    struct Run {
        warmup: usize,
        samples: usize,
    }

    impl Message for Run {
        type Result = Result<Vec<u64>, String>;
    }

    struct A {
        b: Addr<B>,
    }

    impl Actor for A {
        type Context = Context<Self>;
    }

    impl Handler<Run> for A {
        type Result = ResponseFuture<Result<Vec<u64>, String>>;
        fn handle(&mut self, run: Run, _: &mut Context<Self>) -> Self::Result {
            let b = self.b.clone();
            Box::pin(async move {
                round_trips(run.warmup, run.samples, async |ping| b.send(ping).await).await
            })
        }
    }

    /// The timed round trips, in nanoseconds.
    pub(super) fn run(warmup: usize, samples: usize) -> Result<Vec<u64>, BoxError> {
        System::new().block_on(async move {
            let (arbiter_a, arbiter_b) = (Arbiter::new(), Arbiter::new());
            let b = B::start_in_arbiter(&arbiter_b.handle(), |_| B { counter: 0 });
            let a = A::start_in_arbiter(&arbiter_a.handle(), move |_| A { b });
            let times = a.send(Run { warmup, samples }).await;
            arbiter_a.stop();
            arbiter_b.stop();
            let _ = arbiter_a.join();
            let _ = arbiter_b.join();
            Ok(times??)
        })
    }
}

mod ractor_peers {
    //! A and B as ractor actors on a 2-worker tokio runtime.

    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::{BoxError, Ping, round_trips, serve};

    enum BMsg {
        Ping(Ping, RpcReplyPort<u64>),
    }

    struct B;

    impl Actor for B {
        type Msg = BMsg;
        type State = u64;
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<BMsg>, (): ()) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(
            &self,
            _: ActorRef<BMsg>,
            BMsg::Ping(ping, reply): BMsg,
            counter: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            reply.send(serve(counter, ping))?;
            Ok(())
        }
    }

    enum AMsg {
        Run {
            warmup: usize,
            samples: usize,
            reply: RpcReplyPort<Result<Vec<u64>, String>>,
        },
    }

    struct A;

    impl Actor for A {
        type Msg = AMsg;
        type State = ActorRef<BMsg>;
        type Arguments = ActorRef<BMsg>;

        async fn pre_start(
            &self,
            _: ActorRef<AMsg>,
            b: ActorRef<BMsg>,
        ) -> Result<ActorRef<BMsg>, ActorProcessingErr> {
            Ok(b)
        }

        async fn handle(
            &self,
            _: ActorRef<AMsg>,
            AMsg::Run {
                warmup,
                samples,
                reply,
            }: AMsg,
            b: &mut ActorRef<BMsg>,
        ) -> Result<(), ActorProcessingErr> {
            let b = b.clone();
            let times = round_trips(warmup, samples, async move |ping| {
                ractor::call!(b, BMsg::Ping, ping)
            })
            .await;
            reply.send(times)?;
            Ok(())
        }
    }

    /// The timed round trips, in nanoseconds, with A and B on two single-thread runtimes of
    /// their own (two threads, as actix's arbiters).
    pub(super) fn run_apart(warmup: usize, samples: usize) -> Result<Vec<u64>, BoxError> {
        let (b, b_thread) = super::on_own_thread(async {
            let (b, b_done) = Actor::spawn(None, B, ()).await.map_err(|e| e.to_string())?;
            Ok((b.clone(), async move {
                b.stop(None);
                let _ = b_done.await;
            }))
        })?;
        let times = super::single_thread_runtime()?.block_on(async move {
            let (a, a_done) = Actor::spawn(None, A, b).await?;
            let times = ractor::call!(a, |reply| AMsg::Run {
                warmup,
                samples,
                reply
            });
            a.stop(None);
            a_done.await?;
            Ok::<_, BoxError>(times??)
        });
        b_thread.finish();
        times
    }

    /// The timed round trips, in nanoseconds.
    pub(super) fn run(warmup: usize, samples: usize) -> Result<Vec<u64>, BoxError> {
        super::tokio_runtime()?.block_on(async move {
            let (b, b_done) = Actor::spawn(None, B, ()).await?;
            let (a, a_done) = Actor::spawn(None, A, b.clone()).await?;
            let times = ractor::call!(a, |reply| AMsg::Run {
                warmup,
                samples,
                reply
            });
            a.stop(None);
            b.stop(None);
            a_done.await?;
            b_done.await?;
            Ok(times??)
        })
    }
}

mod kameo_peers {
    //! A and B as kameo actors on a 2-worker tokio runtime.

    use kameo::actor::{Actor, ActorRef, Spawn};
    use kameo::error::Infallible;
    use kameo::message::{Context, Message};

    use super::{BoxError, Ping, round_trips, serve};

    struct B {
        counter: u64,
    }

    impl Actor for B {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(b: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(b)
        }
    }

    impl Message<Ping> for B {
        type Reply = u64;

        async fn handle(&mut self, ping: Ping, _: &mut Context<Self, u64>) -> u64 {
            serve(&mut self.counter, ping)
        }
    }

    struct Run {
        warmup: usize,
        samples: usize,
    }

    struct A {
        b: ActorRef<B>,
    }

    impl Actor for A {
        type Args = Self;
        type Error = Infallible;

        async fn on_start(a: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
            Ok(a)
        }
    }

    impl Message<Run> for A {
        type Reply = Result<Vec<u64>, String>;

        async fn handle(&mut self, run: Run, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
            let b = self.b.clone();
            round_trips(run.warmup, run.samples, async move |ping| b.ask(ping).await).await
        }
    }

    /// The timed round trips, in nanoseconds, with A and B on two single-thread runtimes of
    /// their own (two threads, as actix's arbiters).
    pub(super) fn run_apart(warmup: usize, samples: usize) -> Result<Vec<u64>, BoxError> {
        let (b, b_thread) = super::on_own_thread(async {
            let b = B::spawn(B { counter: 0 });
            Ok((b.clone(), async move {
                let _ = b.stop_gracefully().await;
                b.wait_for_shutdown().await;
            }))
        })?;
        let times = super::single_thread_runtime()?.block_on(async move {
            let a = A::spawn(A { b });
            let times = a.ask(Run { warmup, samples }).await;
            a.stop_gracefully().await?;
            a.wait_for_shutdown().await;
            Ok::<_, BoxError>(times.map_err(|e| e.to_string())?)
        });
        b_thread.finish();
        times
    }

    /// The timed round trips, in nanoseconds.
    pub(super) fn run(warmup: usize, samples: usize) -> Result<Vec<u64>, BoxError> {
        super::tokio_runtime()?.block_on(async move {
            let b = B::spawn(B { counter: 0 });
            let a = A::spawn(A { b: b.clone() });
            let times = a.ask(Run { warmup, samples }).await;
            a.stop_gracefully().await?;
            b.stop_gracefully().await?;
            a.wait_for_shutdown().await;
            b.wait_for_shutdown().await;
            Ok(times.map_err(|e| e.to_string())?)
        })
    }
}

/// A single-thread tokio runtime (the asking side of the `_apart` figures).
fn single_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A thread running a single-thread runtime of its own, kept until [`finish`](Self::finish).
struct OwnThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl OwnThread {
    /// Runs the stop future made at start, then ends the thread.
    fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts `start` on a single-thread runtime on a new thread; it returns a value for the
/// caller (an actor reference) and a future that stops what it started, run by `finish`.
fn on_own_thread<T, S>(
    start: impl std::future::Future<Output = Result<(T, S), String>> + Send + 'static,
) -> Result<(T, OwnThread), BoxError>
where
    T: Send + 'static,
    S: std::future::Future<Output = ()> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let Ok(rt) = single_thread_runtime() else {
            let _ = tx.send(Err("no runtime".to_owned()));
            return;
        };
        rt.block_on(async move {
            match start.await {
                Ok((value, stop)) => {
                    let _ = tx.send(Ok(value));
                    let _ = stop_rx.await;
                    stop.await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    });
    let value = rx.recv().map_err(|e| e.to_string())??;
    Ok((
        value,
        OwnThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    ))
}

/// The runtime ractor's and kameo's actors run on: multi-thread, 2 workers.
fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    let (warmup, samples) = (args.warmup, args.samples);
    let actix = Figures::of(actix_peers::run(warmup, samples)?);
    let ractor = Figures::of(ractor_peers::run_apart(warmup, samples)?);
    let kameo = Figures::of(kameo_peers::run_apart(warmup, samples)?);
    let ractor_shared = Figures::of(ractor_peers::run(warmup, samples)?);
    let kameo_shared = Figures::of(kameo_peers::run(warmup, samples)?);
    let report = serde_json::json!({
        "actix_ask_p50_us": actix.p50_us,
        "actix_ask_p99_us": actix.p99_us,
        "ractor_ask_p50_us": ractor.p50_us,
        "ractor_ask_p99_us": ractor.p99_us,
        "kameo_ask_p50_us": kameo.p50_us,
        "kameo_ask_p99_us": kameo.p99_us,
        "ractor_shared_ask_p50_us": ractor_shared.p50_us,
        "kameo_shared_ask_p50_us": kameo_shared.p50_us,
        "ractor_shared_cross_thread": ractor_shared.cross_thread,
        "kameo_shared_cross_thread": kameo_shared.cross_thread,
        "actix_cross_thread": actix.cross_thread,
        "ractor_cross_thread": ractor.cross_thread,
        "kameo_cross_thread": kameo.cross_thread,
        "samples": samples,
        "warmup": warmup,
        "ractor_version": RACTOR_VERSION,
        "kameo_version": KAMEO_VERSION,
    });
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_versions_are_the_pinned_ones() {
        let manifest = include_str!("../Cargo.toml");
        for (name, version) in [("ractor", RACTOR_VERSION), ("kameo", KAMEO_VERSION)] {
            let line = format!("{name} = \"={version}\"");
            assert!(
                manifest.lines().any(|l| l.trim() == line),
                "Cargo.toml does not pin `{line}`: update the const next to it"
            );
        }
    }

    #[test]
    fn every_framework_answers_in_order() {
        for run in [actix_peers::run, ractor_peers::run, kameo_peers::run] {
            let figures = Figures::of(run(10, 100).expect("the round trips run"));
            assert!(figures.p50_us > 0.0 && figures.p50_us <= figures.p99_us);
            assert!((0.0..=1.0).contains(&figures.cross_thread));
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let figures = Figures::of((1..=100).rev().map(|us| us * 1000).collect());
        assert_eq!((figures.p50_us, figures.p99_us), (50.0, 99.0));
        let one = Figures::of(vec![7000]);
        assert_eq!((one.p50_us, one.p99_us), (7.0, 7.0));
    }
}
