//! What users write: the [`Agent`] trait and the [`Context`] its hooks receive.

use std::fmt;
use std::time::Duration;

use qorch_protocol::{Address, AgentId, AgentRef, Message, Priority, short_type_name};
use qorch_resources::{Grant, ResourceRequest};

use crate::RestartIntensity;
use crate::any::{AnyMessage, cast};
use crate::ask::{AskError, Completion, ReplyTo};
use crate::monitor::{MakeNotice, Terminated};
use crate::registry::RegistryError;
use crate::shared::Services;
use crate::spawn::{SpawnError, SpawnSpec};
use crate::timer::{Every, Repeat};

/// The error a hook returns to say it failed: any error (`?` works on any
/// `std::error::Error + Send + Sync`), or a message (`Err("why".into())`). A failed hook is
/// treated like a panic: the agent is restarted by its cluster (within its restart budget),
/// and the failure is logged with the whole chain of causes. A reliable message
/// (`Context::send_reliable`) that was being handled is redelivered to the fresh instance;
/// any other is counted as a dead letter (`NodeStats::dead_letters`), never dropped
/// silently.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself (so that every
/// error converts into it); [`get_ref`](Self::get_ref) and
/// [`into_inner`](Self::into_inner) give the cause.
///
/// ```
/// use qorch_runtime::AgentError;
///
/// fn parse(s: &str) -> Result<u32, AgentError> {
///     Ok(s.parse::<u32>()?)
/// }
/// let e = parse("x").unwrap_err();
/// assert!(e.get_ref().is::<std::num::ParseIntError>());
/// assert_eq!(AgentError::from("out of credit").to_string(), "out of credit");
/// ```
pub struct AgentError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl AgentError {
    /// An error with this cause.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        AgentError(cause.into())
    }

    /// The cause.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The cause, owned.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }

    /// The cause and its sources, joined by `": "` (what the runtime logs).
    pub fn chain(&self) -> String {
        let mut out = self.0.to_string();
        let mut next = self.0.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl fmt::Debug for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AgentError").field(&self.0).finish()
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str(&self.chain())
        } else {
            fmt::Display::fmt(&self.0, f)
        }
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>> From<E> for AgentError {
    fn from(e: E) -> Self {
        AgentError(e.into())
    }
}

/// What a hook returns.
pub type AgentResult = Result<(), AgentError>;

/// A behaviour: the state and reactions of one agent.
///
/// An agent is an actor in its semantics: it has its own address and state, handles one
/// message at a time, and is supervised (a panic or an `Err` from a hook restarts it from its
/// factory; a reliable message it was handling is redelivered to the new instance, any other
/// is counted as a dead letter). Everything
/// it does to the outside world goes through its [`Context`]; its effects (sends, timers) take
/// place only when the hook returns `Ok`, so a failed attempt leaves no trace.
///
/// To mix behaviours in one runtime, host [`AnyAgent`](crate::AnyAgent)s
/// (`QuantumOrchestrator<AnyAgent>`): each behaviour keeps its own message type. A runtime
/// of one behaviour (`QuantumOrchestrator<Self>`) is the fastest.
///
/// # Examples
///
/// ```
/// use qorch_runtime::{Agent, AgentRef, AgentResult, Context};
///
/// /// Counts the numbers it receives and passes each one on, plus one, to a peer.
/// struct Relay { peer: AgentRef<u64>, seen: u64 }
///
/// impl Agent for Relay {
///     type Msg = u64;
///     fn handle(&mut self, n: u64, ctx: &mut Context<'_, u64>) -> AgentResult {
///         self.seen += 1;
///         if n < 10 {
///             ctx.send(&self.peer, n + 1);
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Agent: Send + 'static {
    /// The messages this agent handles (and sends to other agents).
    type Msg: Message;

    /// Called once when the agent starts (and again after each restart).
    fn started(&mut self, ctx: &mut Context<'_, Self::Msg>) -> AgentResult {
        let _ = ctx;
        Ok(())
    }

    /// Handles one message.
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<'_, Self::Msg>) -> AgentResult;

    /// Called on every runtime tick (see `RuntimeHandle::tick`).
    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, Self::Msg>) -> AgentResult {
        let _ = (tick, ctx);
        Ok(())
    }

    /// Called when the optimizer gives the agent a new allocation (`None`: unserved).
    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, Self::Msg>,
    ) -> AgentResult {
        let _ = (grant, ctx);
        Ok(())
    }

    /// The resources the agent needs now, reported to the optimizer every round.
    fn demand(&self) -> Option<ResourceRequest> {
        None
    }

    /// This behaviour's restart intensity (asked of the instance that failed); `None`: the
    /// runtime's ([`RuntimeConfig::restart`](crate::RuntimeConfig::restart)).
    fn restart_intensity(&self) -> Option<RestartIntensity> {
        None
    }

    /// Called once when the agent stops (runtime shutdown).
    fn stopped(&mut self, ctx: &mut Context<'_, Self::Msg>) {
        let _ = ctx;
    }
}

impl<M: Message> Agent for Box<dyn Agent<Msg = M>> {
    type Msg = M;

    fn started(&mut self, ctx: &mut Context<'_, M>) -> AgentResult {
        (**self).started(ctx)
    }

    fn handle(&mut self, msg: M, ctx: &mut Context<'_, M>) -> AgentResult {
        (**self).handle(msg, ctx)
    }

    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, M>) -> AgentResult {
        (**self).on_tick(tick, ctx)
    }

    fn on_allocation(&mut self, grant: Option<&Grant>, ctx: &mut Context<'_, M>) -> AgentResult {
        (**self).on_allocation(grant, ctx)
    }

    fn demand(&self) -> Option<ResourceRequest> {
        (**self).demand()
    }

    fn restart_intensity(&self) -> Option<RestartIntensity> {
        (**self).restart_intensity()
    }

    fn stopped(&mut self, ctx: &mut Context<'_, M>) {
        (**self).stopped(ctx);
    }
}

/// One message an agent sends, as recorded by its context.
pub(crate) struct Outgoing<M> {
    pub(crate) to: Address,
    pub(crate) priority: Priority,
    pub(crate) msg: M,
    /// For reliable sends: how to copy the message for redelivery.
    pub(crate) reliable: Option<fn(&M) -> M>,
}

/// A timer a hook armed, as recorded by its context.
pub(crate) struct TimerSpec<M> {
    pub(crate) id: u64,
    pub(crate) delay: Duration,
    /// `Some` for a periodic timer: its period and how to copy its message.
    pub(crate) every: Every<M>,
    pub(crate) msg: M,
}

/// An ask a hook made: the request went out with the sends; this is what waits for the
/// reply.
pub(crate) struct AskSpec<M> {
    pub(crate) correlation: u64,
    pub(crate) target: AgentId,
    pub(crate) timeout: Duration,
    pub(crate) done: Completion<M>,
}

/// The effects of one hook call that carry the runtime's message type.
pub(crate) struct Typed<M> {
    pub(crate) sends: Vec<Outgoing<M>>,
    pub(crate) timers: Vec<TimerSpec<M>>,
    /// Agents to watch, with how to turn a notice into a message.
    pub(crate) watches: Vec<(AgentId, MakeNotice<M>)>,
    pub(crate) asks: Vec<AskSpec<M>>,
}

impl<M> Default for Typed<M> {
    fn default() -> Self {
        Typed {
            sends: Vec::new(),
            timers: Vec::new(),
            watches: Vec::new(),
            asks: Vec::new(),
        }
    }
}

/// The effects of one hook call, applied by the node only if the hook succeeds.
pub(crate) struct Effects<M> {
    pub(crate) typed: Typed<M>,
    pub(crate) common: Common,
}

/// The effects of one hook call that carry no message of the runtime's type, and the
/// node's id counters.
pub(crate) struct Common {
    /// Messages of another type than the runtime's (a runtime of one behaviour converts
    /// them back, or refuses them as dead letters).
    pub(crate) foreign: Vec<Outgoing<AnyMessage>>,
    /// Timers to cancel, by id.
    pub(crate) cancels: Vec<u64>,
    /// Agents spawned, with where.
    pub(crate) spawns: Vec<SpawnSpec>,
    /// The agent stops itself.
    pub(crate) stop: bool,
    /// The next ask's correlation number (unique in the runtime, like timer ids).
    pub(crate) next_correlation: u64,
    /// The next timer id: a node's ids start at its key times 2^40, so they are unique in
    /// the runtime (and stay so when agents move with their timers).
    pub(crate) next_timer: u64,
}

impl<M> Effects<M> {
    /// The effects buffer of node `node`.
    pub(crate) fn for_node(node: u32) -> Self {
        Effects {
            typed: Typed::default(),
            common: Common {
                foreign: Vec::new(),
                cancels: Vec::new(),
                spawns: Vec::new(),
                stop: false,
                next_correlation: u64::from(node) << 40,
                next_timer: u64::from(node) << 40,
            },
        }
    }

    /// Cancels timer `id`: one armed in this very hook is simply not armed.
    fn cancel_timer(&mut self, id: u64) {
        let before = self.typed.timers.len();
        self.typed.timers.retain(|t| t.id != id);
        if self.typed.timers.len() == before {
            self.common.cancels.push(id);
        }
    }

    /// Forgets what a failed hook asked for.
    pub(crate) fn discard(&mut self) {
        self.typed.sends.clear();
        self.typed.timers.clear();
        self.typed.watches.clear();
        self.typed.asks.clear();
        let c = &mut self.common;
        c.foreign.clear();
        c.cancels.clear();
        c.spawns.clear();
        c.stop = false;
    }
}

/// Where a context writes effects: the node's own buffer (the agent's message type is the
/// runtime's), or, in a runtime of several behaviours, a buffer of boxed messages.
pub(crate) enum Sink<'a, M> {
    Typed(&'a mut Effects<M>),
    Boxed(&'a mut Effects<AnyMessage>),
}

/// A timer armed by [`Context::send_after`] or [`Context::send_interval`]: cancel it with
/// [`Context::cancel_timer`]. It belongs to the instance of the agent that armed it: a
/// restart ends it, and a handle kept across a restart is refused
/// ([`TimerError::Stale`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    agent: AgentId,
    incarnation: u32,
    id: u64,
}

impl TimerHandle {
    /// The agent whose timer this is.
    pub fn agent(&self) -> AgentId {
        self.agent
    }
}

/// Why a timer could not be armed or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// A periodic timer needs a positive period.
    #[error("a periodic timer's period must be positive")]
    ZeroPeriod,
    /// The handle is another agent's.
    #[error("the timer belongs to agent {owner}, not to agent {caller}")]
    NotMine {
        /// Whose timer it is.
        owner: AgentId,
        /// Who tried to cancel it.
        caller: AgentId,
    },
    /// The handle was armed by an earlier instance of this agent, before a restart; that
    /// instance's timers ended with it.
    #[error(
        "the timer was armed by agent {agent} before it restarted: it ended with that instance"
    )]
    Stale {
        /// The agent.
        agent: AgentId,
    },
}

/// What a hook can see and do: its identity, the message's sender, its allocation; sends,
/// asks, timers, watches, spawns and stops, and the registry.
///
/// Effects (sends, asks, timers, watches, spawns, a stop) take place only when the hook
/// returns `Ok`: a failed attempt leaves no trace. Replies ([`ReplyTo::send`]) are the
/// exception: they leave when sent.
pub struct Context<'a, M> {
    pub(crate) id: AgentId,
    pub(crate) parent: Address,
    pub(crate) sender: Option<Address>,
    pub(crate) grant: Option<&'a Grant>,
    pub(crate) tick: u64,
    pub(crate) random: &'a mut u64,
    /// How many times the agent has been restarted: its timers belong to this instance.
    pub(crate) incarnation: u32,
    pub(crate) sink: Sink<'a, M>,
    pub(crate) services: &'a Services,
    /// The one behaviour the runtime hosts (`None`: any).
    pub(crate) hosts: Option<std::any::TypeId>,
}

impl Context<'_, AnyMessage> {
    /// The context of a boxed behaviour whose messages are `N`s, writing into this one's
    /// buffer.
    pub(crate) fn boxing<N>(&mut self) -> Context<'_, N> {
        let sink = match &mut self.sink {
            Sink::Typed(fx) | Sink::Boxed(fx) => Sink::Boxed(fx),
        };
        Context {
            id: self.id,
            parent: self.parent,
            sender: self.sender,
            grant: self.grant,
            tick: self.tick,
            random: &mut *self.random,
            incarnation: self.incarnation,
            sink,
            services: self.services,
            hosts: self.hosts,
        }
    }
}

impl<M: Message> Context<'_, M> {
    /// The effects that do not depend on the message type, wherever the sink is.
    fn common(&mut self) -> &mut Common {
        match &mut self.sink {
            Sink::Typed(fx) => &mut fx.common,
            Sink::Boxed(fx) => &mut fx.common,
        }
    }

    /// This agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// A reference to this agent, to give to others.
    pub fn myself(&self) -> AgentRef<M> {
        AgentRef::from_id(self.id)
    }

    /// This agent's address.
    pub fn address(&self) -> Address {
        Address::Agent(self.id)
    }

    /// The cluster or sub-cluster hosting this agent.
    pub fn parent(&self) -> Address {
        self.parent
    }

    /// The sender of the message being handled: an agent, or `None` in `started`,
    /// `on_tick`, ... and for messages from the application or a timer.
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    /// This agent's current allocation.
    pub fn allocation(&self) -> Option<&Grant> {
        self.grant
    }

    /// The current runtime tick.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// A pseudo-random number from this agent's own stream (seeded from the runtime's seed and
    /// the agent's id, so runs with the same seed see the same numbers).
    pub fn random_u64(&mut self) -> u64 {
        *self.random = self.random.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(*self.random)
    }

    /// Records a send of `msg` (an `X`) to `to`. `boxed` makes the boxed form where it is
    /// needed (a runtime of several behaviours, or a message of another type than the
    /// runtime's); `copy` is given for reliable sends.
    #[inline]
    fn emit<X: Message>(
        &mut self,
        to: Address,
        priority: Priority,
        msg: X,
        boxed: fn(X) -> AnyMessage,
        copy: Option<fn(&X) -> X>,
    ) {
        match &mut self.sink {
            Sink::Typed(fx) => match cast::<X, M>(msg) {
                Ok(msg) => fx.typed.sends.push(Outgoing {
                    to,
                    priority,
                    msg,
                    reliable: copy.and_then(|c| cast::<fn(&X) -> X, fn(&M) -> M>(c).ok()),
                }),
                Err(msg) => fx.common.foreign.push(Outgoing {
                    to,
                    priority,
                    msg: boxed(msg),
                    reliable: copy.map(|_| AnyMessage::copy as fn(&AnyMessage) -> AnyMessage),
                }),
            },
            Sink::Boxed(fx) => fx.typed.sends.push(Outgoing {
                to,
                priority,
                msg: boxed(msg),
                reliable: copy.map(|_| AnyMessage::copy as fn(&AnyMessage) -> AnyMessage),
            }),
        }
    }

    /// Sends `msg` to agent `to`, with the message's own priority. Messages to another
    /// cluster's agents travel up to the common ancestor and down.
    pub fn send<X: Message>(&mut self, to: &AgentRef<X>, msg: X) {
        let priority = msg.priority();
        self.emit(to.address(), priority, msg, AnyMessage::new, None);
    }

    /// [`send`](Self::send) with an explicit priority.
    pub fn send_with<X: Message>(&mut self, priority: Priority, to: &AgentRef<X>, msg: X) {
        self.emit(to.address(), priority, msg, AnyMessage::new, None);
    }

    /// Sends one of this agent's own messages to a bare address: an agent known only by its
    /// id (in a runtime of one behaviour, every agent accepts it; in one of several, an agent
    /// of another behaviour refuses it as a dead letter, logged), or a cluster or the
    /// orchestrator (the message then reaches the application through
    /// `RuntimeHandle::recv`). Prefer [`send`](Self::send) and typed references.
    pub fn send_to(&mut self, to: impl Into<Address>, msg: M) {
        let priority = msg.priority();
        self.emit(to.into(), priority, msg, AnyMessage::new, None);
    }

    /// [`send_to`](Self::send_to) with an explicit priority.
    pub fn send_to_with(&mut self, priority: Priority, to: impl Into<Address>, msg: M) {
        self.emit(to.into(), priority, msg, AnyMessage::new, None);
    }

    /// Sends `msg` to the application (`RuntimeHandle::recv`). A runtime of several
    /// behaviours carries any type (the application gets an
    /// [`AnyMessage`] to downcast); a runtime of one behaviour only that behaviour's
    /// message type (any other is a dead letter, logged).
    pub fn send_app<X: Message>(&mut self, msg: X) {
        let priority = msg.priority();
        self.emit(Address::Orchestrator, priority, msg, AnyMessage::new, None);
    }

    /// Sends to this agent's parent (its cluster or sub-cluster): the application receives
    /// it.
    pub fn send_to_parent(&mut self, msg: M) {
        let parent = self.parent;
        self.send_to(parent, msg);
    }

    /// Asks agent `to` a question and is told the answer later, as one of its own messages.
    ///
    /// `request` builds the request from a [`ReplyTo`] (put it in the message; the other
    /// agent answers with [`ReplyTo::send`]); `done` turns the outcome into a message for
    /// this agent, delivered at High priority. Exactly one outcome arrives: the reply, or an
    /// [`AskError`] if no reply came within `timeout` (within the runtime's timer
    /// resolution), the target is unknown or not running, or it dropped the request without
    /// replying (it failed, stopped or chose not to answer). The runtime keeps the pending
    /// ask, not you; like timers, it belongs to this instance of the agent.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use qorch_protocol::AgentRef;
    /// use qorch_runtime::{Agent, AgentResult, AskError, Context, ReplyTo};
    ///
    /// enum CounterMsg { Get(ReplyTo<u64>) }
    /// impl qorch_protocol::Message for CounterMsg {}
    ///
    /// enum PollerMsg { Poll, Count(Result<u64, AskError>) }
    /// impl qorch_protocol::Message for PollerMsg {}
    ///
    /// struct Poller { counter: AgentRef<CounterMsg>, last: u64 }
    /// impl Agent for Poller {
    ///     type Msg = PollerMsg;
    ///     fn handle(&mut self, msg: PollerMsg, ctx: &mut Context<'_, PollerMsg>) -> AgentResult {
    ///         match msg {
    ///             PollerMsg::Poll => ctx.ask(
    ///                 &self.counter,
    ///                 CounterMsg::Get,
    ///                 Duration::from_millis(100),
    ///                 PollerMsg::Count,
    ///             ),
    ///             PollerMsg::Count(Ok(n)) => self.last = n,
    ///             PollerMsg::Count(Err(e)) => return Err(e.into()),
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn ask<X: Message, R: Send + 'static>(
        &mut self,
        to: &AgentRef<X>,
        request: impl FnOnce(ReplyTo<R>) -> X,
        timeout: Duration,
        done: impl FnOnce(Result<R, AskError>) -> M + Send + 'static,
    ) {
        let common = self.common();
        common.next_correlation += 1;
        let correlation = common.next_correlation;
        let msg = request(ReplyTo::agent(self.id, correlation));
        let priority = msg.priority();
        self.emit(to.address(), priority, msg, AnyMessage::new, None);
        let target = to.id();
        match &mut self.sink {
            Sink::Typed(fx) => fx.typed.asks.push(AskSpec {
                correlation,
                target,
                timeout,
                done: crate::ask::completion(done),
            }),
            Sink::Boxed(fx) => fx.typed.asks.push(AskSpec {
                correlation,
                target,
                timeout,
                done: crate::ask::completion(move |r| AnyMessage::new(done(r))),
            }),
        }
    }

    fn arm(
        &mut self,
        delay: Duration,
        msg: M,
        every: Every<M>,
        boxed: fn(M) -> AnyMessage,
    ) -> TimerHandle {
        let (agent, incarnation) = (self.id, self.incarnation);
        let common = self.common();
        common.next_timer += 1;
        let id = common.next_timer;
        match &mut self.sink {
            Sink::Typed(fx) => fx.typed.timers.push(TimerSpec {
                id,
                delay,
                every,
                msg,
            }),
            Sink::Boxed(fx) => fx.typed.timers.push(TimerSpec {
                id,
                delay,
                every: every.map(|(period, repeat)| {
                    let repeat = match repeat {
                        Repeat::Copy(_) => {
                            Repeat::Copy(AnyMessage::copy as fn(&AnyMessage) -> AnyMessage)
                        }
                        Repeat::Make(mut make) => Repeat::Make(Box::new(move || boxed(make()))),
                    };
                    (period, repeat)
                }),
                msg: boxed(msg),
            }),
        }
        TimerHandle {
            agent,
            incarnation,
            id,
        }
    }

    /// Delivers `msg` to this agent itself after `delay` (with the message's own priority),
    /// unless the timer is cancelled or this instance of the agent ends first (a restart, a
    /// stop). Timers fire at or after their due time, within the runtime's
    /// [`timer_resolution`](crate::RuntimeConfig::timer_resolution) (10 ms by default) on an
    /// idle worker. A delay too large to represent never fires.
    pub fn send_after(&mut self, delay: Duration, msg: M) -> TimerHandle {
        self.arm(delay, msg, None, AnyMessage::new)
    }

    /// Stops this agent once the hook returns `Ok`: its `stopped` hook runs, its timers end,
    /// its watchers are told ([`TerminationReason::Stopped`](crate::TerminationReason)), and
    /// messages sent to it afterwards are dead letters (counted, never silently dropped).
    pub fn stop(&mut self) {
        self.common().stop = true;
    }

    /// Watches agent `r`: when it terminates (stops, or fails past its restart intensity),
    /// this agent receives a [`Terminated`] notice as one of its own messages, at High
    /// priority. An agent that had terminated already is reported at once
    /// ([`TerminationReason::NotRunning`](crate::TerminationReason)). The watch belongs to
    /// this instance: a restart of the watcher ends it.
    pub fn watch<X>(&mut self, r: &AgentRef<X>)
    where
        M: From<Terminated>,
    {
        match &mut self.sink {
            Sink::Typed(fx) => fx.typed.watches.push((r.id(), M::from)),
            Sink::Boxed(fx) => fx
                .typed
                .watches
                .push((r.id(), |t| AnyMessage::new(M::from(t)))),
        }
    }

    /// Cancels a timer of this instance. Cancelling one that has fired already (a one-shot
    /// timer) or was cancelled is a no-op. Like every effect, it takes place when the hook
    /// returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`TimerError::NotMine`] for another agent's timer, [`TimerError::Stale`] for a timer of
    /// an earlier instance of this agent (its timers ended with the restart).
    pub fn cancel_timer(&mut self, timer: TimerHandle) -> Result<(), TimerError> {
        if timer.agent != self.id {
            return Err(TimerError::NotMine {
                owner: timer.agent,
                caller: self.id,
            });
        }
        if timer.incarnation != self.incarnation {
            return Err(TimerError::Stale { agent: self.id });
        }
        match &mut self.sink {
            Sink::Typed(fx) => fx.cancel_timer(timer.id),
            Sink::Boxed(fx) => fx.cancel_timer(timer.id),
        }
        Ok(())
    }

    /// Spawns an agent of behaviour `A` in this agent's cluster or sub-cluster, once the
    /// hook returns `Ok`; `factory` builds it (and rebuilds it on restart). The reference is
    /// valid at once: messages sent to it wait for it, never lost.
    ///
    /// # Errors
    ///
    /// [`SpawnError::ShuttingDown`] while the runtime shuts down,
    /// [`SpawnError::NotHosted`] if this runtime hosts another behaviour (a runtime of
    /// several behaviours, `QuantumOrchestrator<AnyAgent>`, hosts any),
    /// [`SpawnError::TooManyAgents`] past 2^32 agents.
    pub fn spawn<A: Agent>(
        &mut self,
        factory: impl Fn(AgentId) -> A + Send + Sync + 'static,
    ) -> Result<AgentRef<A::Msg>, SpawnError> {
        let parent = self.parent;
        self.spawn_in(parent, factory)
    }

    /// [`spawn`](Self::spawn) into another cluster or sub-cluster of this process.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn), and [`SpawnError::UnknownHost`] if `host` is not a
    /// cluster or sub-cluster here.
    pub fn spawn_in<A: Agent>(
        &mut self,
        host: Address,
        factory: impl Fn(AgentId) -> A + Send + Sync + 'static,
    ) -> Result<AgentRef<A::Msg>, SpawnError> {
        if let Some(hosted) = self.hosts
            && hosted != std::any::TypeId::of::<A>()
        {
            return Err(SpawnError::NotHosted {
                behaviour: short_type_name::<A>(),
            });
        }
        let id = self.services.reserve(host)?;
        let spec = SpawnSpec::new(id, host, std::sync::Arc::new(factory));
        self.common().spawns.push(spec);
        Ok(AgentRef::from_id(id))
    }

    /// Registers agent `r` under `name` in this runtime's registry (the application's
    /// [`RuntimeHandle::register`](crate::RuntimeHandle::register) reaches other processes
    /// too). The name is freed when the agent terminates.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Taken`] if another agent holds the name.
    pub fn register<X: Message>(
        &mut self,
        name: &str,
        r: &AgentRef<X>,
    ) -> Result<(), RegistryError> {
        self.services.registry.register::<X>(name, r.id())
    }

    /// The agent registered under `name`, typed by the messages it accepts.
    ///
    /// # Errors
    ///
    /// [`RegistryError::NotFound`], or [`RegistryError::WrongType`] if it accepts another
    /// type than `X`.
    pub fn lookup<X: Message>(&self, name: &str) -> Result<AgentRef<X>, RegistryError> {
        self.services.registry.lookup::<X>(name)
    }
}

impl<M: Message> Context<'_, M> {
    /// [`send_interval`](Self::send_interval) for message types that are not `Clone` (one
    /// with a [`ReplyTo`] among its variants, say): `make` makes each firing's message.
    ///
    /// # Errors
    ///
    /// [`TimerError::ZeroPeriod`] for a zero period.
    pub fn send_interval_with(
        &mut self,
        period: Duration,
        mut make: impl FnMut() -> M + Send + 'static,
    ) -> Result<TimerHandle, TimerError> {
        if period.is_zero() {
            return Err(TimerError::ZeroPeriod);
        }
        let first = make();
        Ok(self.arm(
            period,
            first,
            Some((period, Repeat::Make(Box::new(make)))),
            AnyMessage::new,
        ))
    }
}

impl<M: Message + Clone> Context<'_, M> {
    /// Delivers a copy of `msg` to this agent itself every `period`, the first after one
    /// period, until the timer is cancelled or this instance of the agent ends (a restart
    /// clears it: an agent that arms its timers in `started` keeps its rate across
    /// restarts). Resolution as for [`send_after`](Self::send_after); a late firing does not
    /// make the next ones come in a burst.
    ///
    /// # Errors
    ///
    /// [`TimerError::ZeroPeriod`] for a zero period.
    pub fn send_interval(&mut self, period: Duration, msg: M) -> Result<TimerHandle, TimerError> {
        if period.is_zero() {
            return Err(TimerError::ZeroPeriod);
        }
        Ok(self.arm(
            period,
            msg,
            Some((period, Repeat::Copy(<M as Clone>::clone))),
            AnyMessage::cloneable,
        ))
    }
}

impl<M: Message> Context<'_, M> {
    /// Sends with acknowledged delivery: the receiving node acknowledges the message once
    /// the agent has handled it; until then it is redelivered after the runtime's redelivery
    /// timeout (and de-duplicated by the receiver, so it is handled exactly once).
    pub fn send_reliable<X: Message + Clone>(&mut self, to: &AgentRef<X>, msg: X) {
        let priority = msg.priority();
        self.emit(
            to.address(),
            priority,
            msg,
            AnyMessage::cloneable,
            Some(<X as Clone>::clone),
        );
    }
}

impl<M: Message + Clone> Context<'_, M> {
    /// [`send_reliable`](Self::send_reliable) of one of this agent's own messages to a
    /// bare address (see [`send_to`](Self::send_to)).
    pub fn send_reliable_to(&mut self, to: impl Into<Address>, msg: M) {
        let priority = msg.priority();
        self.emit(
            to.into(),
            priority,
            msg,
            AnyMessage::cloneable,
            Some(<M as Clone>::clone),
        );
    }
}

/// The output function of `SplitMix64`.
fn mix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
