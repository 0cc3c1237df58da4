//! The executor: the only module that names actix.
//!
//! One actix `System` runs on its own thread; each worker is an actix `Arbiter` (a thread with
//! its own event loop). Every node (cluster or sub-cluster) and the orchestrator are actix
//! actors that read their `PriorityMailbox` as a stream (`add_stream`) and run their periodic
//! work when the alarm thread says so (a node's alarm is re-armed as its core asks, the
//! orchestrator's every `every`). The actors hold plain-Rust cores (`NodeCore`,
//! `OrchestratorCore`); replacing actix means rewriting this file only.
//!
//! **No timers on the workers.** The actors' periodic work is woken by one alarm thread
//! ([`AlarmClock`]), which sends the actor an `Alarm` message when it is due, instead of a
//! tokio timer on the actor's own worker. A worker whose event loop holds a pending timer
//! parks with a timeout after every message, and on a virtual machine arming and cancelling
//! that timeout costs on each wake-up: actix's own ask between two arbiters went from 2.12
//! to 2.42 µs (p50) with one 200 ms interval pending on each side. The workers now park
//! without a timeout, and the alarm thread's own timed waits happen at most once per due
//! alarm. So the workers' event loops are built without tokio's timer driver at all
//! ([`worker_runtime`]): a hook that wants a timer arms one on its context
//! (`send_after`, `send_interval`).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use actix::{
    Actor, ActorContext, Arbiter, ArbiterHandle, AsyncContext, Context, Handler,
    Message as ActixMessage, Recipient, StreamHandler, System,
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

/// An actor's periodic work is due: the number of the alarm it set (a later, earlier alarm
/// makes an older one stale).
struct Alarm(u64);

impl ActixMessage for Alarm {
    type Result = ();
}

/// The alarms of every actor, kept by one thread that sleeps until the earliest is due and
/// then sends the actor an [`Alarm`].
pub(crate) struct AlarmClock {
    state: Mutex<AlarmState>,
    wake: Condvar,
}

#[derive(Default)]
struct AlarmState {
    /// When each alarm is due, by its key in `to`.
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Whom each alarm wakes, and the actor's number for it.
    to: HashMap<u64, (Recipient<Alarm>, u64)>,
    next: u64,
    stop: bool,
}

impl AlarmClock {
    fn new() -> Self {
        AlarmClock {
            state: Mutex::new(AlarmState::default()),
            wake: Condvar::new(),
        }
    }

    /// Sends `to` an `Alarm(number)` at `at`.
    fn set(&self, at: Instant, to: Recipient<Alarm>, number: u64) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = s.due.peek().map(|Reverse((t, _))| *t);
        let key = s.next;
        s.next += 1;
        s.due.push(Reverse((at, key)));
        s.to.insert(key, (to, number));
        drop(s);
        if earliest.is_none_or(|e| at < e) {
            self.wake.notify_one();
        }
    }

    /// The alarm thread: sends every alarm when due, until [`stop`](Self::stop).
    fn run(&self) {
        let mut due_now = Vec::new();
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.stop {
                return;
            }
            let now = Instant::now();
            while let Some(&Reverse((at, key))) = s.due.peek() {
                if at > now {
                    break;
                }
                s.due.pop();
                if let Some(to) = s.to.remove(&key) {
                    due_now.push(to);
                }
            }
            if !due_now.is_empty() {
                drop(s);
                for (to, number) in due_now.drain(..) {
                    // Past the mailbox's capacity too: a busy actor still gets its alarm. An
                    // actor that has stopped no longer needs one.
                    to.do_send(Alarm(number));
                }
                s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s = match s.due.peek() {
                Some(&Reverse((at, _))) => {
                    self.wake
                        .wait_timeout(s, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.wake.wait(s).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    /// Ends the alarm thread.
    fn stop(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.wake.notify_all();
    }
}

// Cores are boxed: actix wants actors to be `Unpin`, which a generic behaviour need not be.
struct NodeActor<B: Host> {
    core: Box<NodeCore<B>>,
    mailbox: Rc<RefCell<PriorityMailbox<Envelope<Letter<B>>>>>,
    started: Option<std::sync::mpsc::SyncSender<()>>,
    alarms: Arc<AlarmClock>,
    /// Where the alarm clock wakes this actor (set when it starts).
    me: Option<Recipient<Alarm>>,
    /// The number of the pending alarm, when it is due, and whether urgent timer work was
    /// waiting when it was set.
    timer: Option<(u64, Instant, bool)>,
    /// Alarms set so far.
    alarms_set: u64,
}

impl<B: Host> Actor for NodeActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(MailboxStream(Rc::clone(&self.mailbox)));
        self.me = Some(ctx.address().recipient());
        self.arm_timer();
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
    ///
    /// After most letters nothing asks for an earlier alarm, and that is decided without
    /// reading the clock ([`NodeCore::may_need_earlier_alarm`]).
    fn arm_timer(&mut self) {
        if let Some((_, at, urgent)) = self.timer
            && !self.core.may_need_earlier_alarm(at, urgent)
        {
            return;
        }
        let now = Instant::now();
        let due = now + self.core.timer_delay(now);
        if let Some((_, at, _)) = self.timer
            && at <= due
        {
            return;
        }
        let Some(me) = &self.me else { return };
        // An earlier alarm replaces the pending one, which goes stale.
        self.alarms_set += 1;
        self.timer = Some((self.alarms_set, due, self.core.timer_urgent()));
        self.alarms.set(due, me.clone(), self.alarms_set);
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
        if !self.core.has_local() {
            return;
        }
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

impl<B: Host> Handler<Alarm> for NodeActor<B> {
    type Result = ();

    fn handle(&mut self, alarm: Alarm, ctx: &mut Context<Self>) {
        if self.timer.is_none_or(|(n, _, _)| n != alarm.0) {
            return;
        }
        self.timer = None;
        self.core.sample_mailbox(&self.mailbox.borrow());
        self.core.on_timer();
        self.run_local(ctx);
        self.arm_timer();
    }
}

impl<B: Host> Handler<LocalWork> for NodeActor<B> {
    type Result = ();

    fn handle(&mut self, _: LocalWork, ctx: &mut Context<Self>) {
        self.run_local(ctx);
        self.arm_timer();
    }
}

impl<B: Host> StreamHandler<Envelope<Letter<B>>> for NodeActor<B> {
    fn handle(&mut self, env: Envelope<Letter<B>>, ctx: &mut Self::Context) {
        self.core.note_dequeued(&env);
        let control = self.core.handle(env);
        if self.control(control, ctx) {
            self.run_local(ctx);
            self.arm_timer();
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
    alarms: Arc<AlarmClock>,
    /// When the periodic work is next due.
    next: Instant,
}

impl<B: Host> Actor for OrchestratorActor<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(MailboxStream(Rc::clone(&self.mailbox)));
        self.next = Instant::now() + self.every;
        self.alarms.set(self.next, ctx.address().recipient(), 0);
        if let Some(tx) = self.started.take() {
            let _ = tx.send(());
        }
    }
}

impl<B: Host> Handler<Alarm> for OrchestratorActor<B> {
    type Result = ();

    /// The periodic work, every `every` (a late alarm does not bunch the next ones).
    fn handle(&mut self, _: Alarm, ctx: &mut Context<Self>) {
        self.core.on_timer();
        let now = Instant::now();
        self.next = (self.next + self.every).max(now);
        self.alarms.set(self.next, ctx.address().recipient(), 0);
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

/// A worker's event loop: tokio's current-thread runtime without its timer driver. Nothing
/// on a worker uses tokio's timers (the [`AlarmClock`] wakes the actors, agents' timers are
/// the nodes' own), and without the driver a worker reads no clock when it parks or wakes:
/// the ask round trip across two workers fell from 2.73 to 2.65 µs (p50, both workers on one
/// vCPU). The IO driver stays, for tasks an application spawns from a hook.
fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
}

/// The running actix system and its workers.
pub(crate) struct Executor {
    system: System,
    workers: Vec<ArbiterHandle>,
    thread: Option<std::thread::JoinHandle<()>>,
    alarms: Arc<AlarmClock>,
    alarm_thread: Option<std::thread::JoinHandle<()>>,
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
                    let arbiters: Vec<Arbiter> = (0..workers)
                        .map(|_| {
                            Arbiter::try_with_tokio_rt(worker_runtime)
                                .unwrap_or_else(|_| Arbiter::new())
                        })
                        .collect();
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
        let alarms = Arc::new(AlarmClock::new());
        let clock = Arc::clone(&alarms);
        let alarm_thread = match std::thread::Builder::new()
            .name("qorch-alarms".into())
            .spawn(move || clock.run())
        {
            Ok(t) => t,
            Err(e) => {
                system.stop();
                let _ = thread.join();
                return Err(e);
            }
        };
        Ok(Executor {
            system,
            workers,
            thread: Some(thread),
            alarms,
            alarm_thread: Some(alarm_thread),
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
        let alarms = Arc::clone(&self.alarms);
        OrchestratorActor::start_in_arbiter(&self.workers[0], move |_| OrchestratorActor {
            core: Box::new(core),
            mailbox: Rc::new(RefCell::new(mailbox)),
            every,
            started: Some(tx),
            alarms,
            next: Instant::now(),
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
        self.alarms.stop();
        if let Some(t) = self.alarm_thread.take() {
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
    alarms: Arc<AlarmClock>,
}

impl ActixSpawner {
    pub(crate) fn new(executor: &Executor) -> Self {
        ActixSpawner {
            workers: executor.workers.clone(),
            system: executor.system.arbiter().clone(),
            alarms: Arc::clone(&executor.alarms),
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
        let alarms = Arc::clone(&self.alarms);
        NodeActor::start_in_arbiter(arbiter, move |_| NodeActor {
            core: Box::new(NodeCore::new(key, address, shared)),
            mailbox: Rc::new(RefCell::new(mailbox)),
            started: Some(tx),
            alarms,
            me: None,
            timer: None,
            alarms_set: 0,
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
