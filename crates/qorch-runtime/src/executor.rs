//! The executor: the only module that names actix.
//!
//! One actix `System` runs on its own thread; each worker is an actix `Arbiter` (a thread with
//! its own event loop). Every node (cluster or sub-cluster) and the orchestrator are actix
//! actors that read their `PriorityMailbox` as a stream (`add_stream`) and run their periodic
//! work on timers (a node's is re-armed with `run_later` as its core asks, the orchestrator's
//! is a `run_interval`). The actors hold plain-Rust cores (`NodeCore`, `OrchestratorCore`);
//! replacing actix means rewriting this file only.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use actix::{
    Actor, ActorContext, Arbiter, ArbiterHandle, AsyncContext, Context, Handler,
    Message as ActixMessage, SpawnHandle, StreamHandler, System,
};
use futures_core::Stream;
use qorch_protocol::{Envelope, PriorityMailbox};

use crate::Host;
use crate::directory::NodeKey;
use crate::letter::Letter;
use crate::node::{Control, NodeCore};
use crate::orchestrator::OrchestratorCore;
use crate::shared::{Shared, Spawner};

/// A mailbox shared between the actor's stream and its stop path (which closes and drains it).
struct MailboxStream<M>(Rc<RefCell<PriorityMailbox<M>>>);

impl<M> Stream for MailboxStream<M> {
    type Item = M;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<M>> {
        self.0.borrow_mut().poll_recv(cx)
    }
}

// Cores are boxed: actix wants actors to be `Unpin`, which a generic behaviour need not be.
struct NodeActor<B: Host> {
    core: Box<NodeCore<B>>,
    mailbox: Rc<RefCell<PriorityMailbox<Envelope<Letter<B>>>>>,
    started: Option<std::sync::mpsc::SyncSender<()>>,
    /// The pending timer and when it fires.
    timer: Option<(SpawnHandle, std::time::Instant)>,
}

impl<B: Host> Actor for NodeActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(MailboxStream(Rc::clone(&self.mailbox)));
        self.arm_timer(ctx);
        if let Some(tx) = self.started.take() {
            let _ = tx.send(());
        }
    }
}

/// Local envelopes handled per turn before the node yields to its other work.
const LOCAL_BUDGET: usize = 64;
/// Local envelopes handled between two looks at the mailbox's highest waiting class.
const PRIORITY_CHECK: usize = 16;

/// Asks a node to continue with its local queue (sent to itself when a turn's budget ran out).
struct LocalWork;

impl ActixMessage for LocalWork {
    type Result = ();
}

impl<B: Host> NodeActor<B> {
    /// Makes sure the timer fires within the core's `timer_delay`: an idle node wakes
    /// rarely, and one that just got timer work (an outbox, a reliable send, an agent timer)
    /// is re-armed at the resolution.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let now = std::time::Instant::now();
        let delay = self.core.timer_delay(now);
        let due = now + delay;
        if let Some((handle, at)) = self.timer {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.core.sample_mailbox(&act.mailbox.borrow());
            act.core.on_timer();
            act.run_local(ctx);
            act.arm_timer(ctx);
        });
        self.timer = Some((handle, due));
    }

    /// Acts on what the core asked for after a letter.
    fn control(&mut self, control: Control, ctx: &mut Context<Self>) -> bool {
        match control {
            Control::Continue => true,
            Control::Stop => {
                // Graceful: refuse new messages, deliver what was accepted in priority order
                // (the local queue first: it holds accepted messages too).
                for _ in 0..1_000_000 {
                    let Some(env) = self.core.pop_local(None) else {
                        break;
                    };
                    self.core.drain_one(env);
                }
                let left = self.mailbox.borrow_mut().drain();
                for env in left {
                    self.core.drain_one(env);
                }
                self.core.finish_stop();
                ctx.stop();
                false
            }
            Control::Kill => {
                let remaining = self.mailbox.borrow_mut().drain();
                self.core.lose(&remaining);
                ctx.stop();
                false
            }
        }
    }

    /// Handles local envelopes (between this node's own agents) for one turn, by priority,
    /// leaving the rest for a later turn or for after a higher-priority mailbox letter.
    ///
    /// The mailbox is checked for higher-priority letters every `PRIORITY_CHECK` local
    /// envelopes (a check costs loads on every lane), so a Control letter waits for at most that
    /// many local handlings.
    fn run_local(&mut self, ctx: &mut Context<Self>) {
        let mut waiting = None;
        for k in 0..LOCAL_BUDGET {
            if k % PRIORITY_CHECK == 0 {
                waiting = self.mailbox.borrow().highest_waiting();
            }
            let Some(env) = self.core.pop_local(waiting) else {
                return;
            };
            let control = self.core.handle(env);
            if !self.control(control, ctx) {
                return;
            }
        }
        if self.core.has_local() {
            ctx.notify(LocalWork);
        }
    }
}

impl<B: Host> Handler<LocalWork> for NodeActor<B> {
    type Result = ();

    fn handle(&mut self, _: LocalWork, ctx: &mut Context<Self>) {
        self.run_local(ctx);
        self.arm_timer(ctx);
    }
}

impl<B: Host> StreamHandler<Envelope<Letter<B>>> for NodeActor<B> {
    fn handle(&mut self, env: Envelope<Letter<B>>, ctx: &mut Self::Context) {
        self.core.note_dequeued(&env);
        let control = self.core.handle(env);
        if self.control(control, ctx) {
            self.run_local(ctx);
            self.arm_timer(ctx);
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

struct OrchestratorActor<B: Host> {
    core: Box<OrchestratorCore<B>>,
    mailbox: Rc<RefCell<PriorityMailbox<Envelope<Letter<B>>>>>,
    every: std::time::Duration,
    started: Option<std::sync::mpsc::SyncSender<()>>,
}

impl<B: Host> Actor for OrchestratorActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(MailboxStream(Rc::clone(&self.mailbox)));
        ctx.run_interval(self.every, |act, _| act.core.on_timer());
        if let Some(tx) = self.started.take() {
            let _ = tx.send(());
        }
    }
}

impl<B: Host> StreamHandler<Envelope<Letter<B>>> for OrchestratorActor<B> {
    fn handle(&mut self, env: Envelope<Letter<B>>, _ctx: &mut Self::Context) {
        self.core.handle(env);
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The running actix system and its workers.
pub(crate) struct Executor {
    system: System,
    workers: Vec<ArbiterHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Executor {
    /// Starts the system thread and `workers` arbiters.
    pub(crate) fn start(workers: usize) -> std::io::Result<Executor> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("qorch-system".into())
            .spawn(move || {
                let sys = System::new();
                sys.block_on(async move {
                    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
                    let handles: Vec<ArbiterHandle> =
                        arbiters.iter().map(Arbiter::handle).collect();
                    // The arbiters keep running after their `Arbiter` values are dropped; the
                    // system stops them.
                    drop(arbiters);
                    let _ = tx.send((System::current(), handles));
                });
                let _ = sys.run();
            })?;
        let (system, workers) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the actor system thread failed to start"))?;
        Ok(Executor {
            system,
            workers,
            thread: Some(thread),
        })
    }

    pub(crate) fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Starts the orchestrator actor on worker 0.
    pub(crate) fn start_orchestrator<B: Host>(
        &self,
        core: OrchestratorCore<B>,
        mailbox: PriorityMailbox<Envelope<Letter<B>>>,
        every: std::time::Duration,
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        OrchestratorActor::start_in_arbiter(&self.workers[0], move |_| OrchestratorActor {
            core: Box::new(core),
            mailbox: Rc::new(RefCell::new(mailbox)),
            every,
            started: Some(tx),
        });
        if rx.recv_timeout(std::time::Duration::from_secs(5)).is_err() {
            tracing::warn!("orchestrator actor not started within 5 s; continuing");
        }
    }

    /// Stops every actor and worker and waits for the system thread.
    pub(crate) fn stop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts node actors for the runtime's shared state.
pub(crate) struct ActixSpawner {
    workers: Vec<ArbiterHandle>,
    /// The system thread's arbiter: it runs no node, so timers there are on time.
    system: ArbiterHandle,
}

impl ActixSpawner {
    pub(crate) fn new(executor: &Executor) -> Self {
        ActixSpawner {
            workers: executor.workers.clone(),
            system: executor.system.arbiter().clone(),
        }
    }
}

impl<B: Host> Spawner<B> for ActixSpawner {
    fn start_node(
        &self,
        shared: Arc<Shared<B>>,
        key: NodeKey,
        worker: usize,
        mailbox: PriorityMailbox<Envelope<Letter<B>>>,
    ) {
        let address = shared.directory.tree.load().info(key).address;
        let arbiter = &self.workers[worker % self.workers.len()];
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        NodeActor::start_in_arbiter(arbiter, move |_| NodeActor {
            core: Box::new(NodeCore::new(key, address, shared)),
            mailbox: Rc::new(RefCell::new(mailbox)),
            started: Some(tx),
            timer: None,
        });
        // Return once the node runs, so that the order of events does not depend on how fast
        // its worker picks it up. (Waiting is bounded: were this called from the node's own
        // worker thread, the start could only happen after we return.)
        if rx.recv_timeout(std::time::Duration::from_secs(5)).is_err() {
            tracing::warn!(node = %address, "node actor not started within 5 s; continuing");
        }
    }

    fn sleep(&self, pause: std::time::Duration) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // If the system has stopped, the sender is dropped and the receiver completes at once.
        self.system.spawn(async move {
            actix::clock::sleep(pause).await;
            let _ = tx.send(());
        });
        rx
    }
}
