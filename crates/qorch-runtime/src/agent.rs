//! What users write: the [`Agent`] trait and the [`Context`] its hooks receive.

use std::fmt;
use std::time::Duration;

use qorch_protocol::{Address, AgentId, CorrelationId, Message, Priority};
use qorch_resources::{Grant, ResourceRequest};

use crate::RestartIntensity;
use crate::monitor::{MakeNotice, Terminated};
use crate::timer::Every;

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
/// To mix behaviours in one runtime, use an enum of them (or `Box<dyn Agent<Msg = M>>`, which
/// implements `Agent` too).
///
/// # Examples
///
/// ```
/// use qorch_runtime::{Agent, AgentResult, Context};
///
/// /// Counts the numbers it receives and passes each one on, plus one, to a peer.
/// struct Relay { peer: qorch_protocol::AgentId, seen: u64 }
///
/// impl Agent for Relay {
///     type Msg = u64;
///     fn handle(&mut self, n: u64, ctx: &mut Context<'_, u64>) -> AgentResult {
///         self.seen += 1;
///         if n < 10 {
///             ctx.send(self.peer, n + 1);
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
    pub(crate) correlation: Option<CorrelationId>,
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

/// The effects of one hook call, applied by the cluster only if the hook succeeds.
pub(crate) struct Effects<M> {
    pub(crate) sends: Vec<Outgoing<M>>,
    pub(crate) timers: Vec<TimerSpec<M>>,
    /// Timers to cancel, by id.
    pub(crate) cancels: Vec<u64>,
    /// Agents to watch, with how to turn a notice into a message.
    pub(crate) watches: Vec<(AgentId, MakeNotice<M>)>,
    /// The agent stops itself.
    pub(crate) stop: bool,
    pub(crate) next_correlation: u64,
    /// The next timer id: a node's ids start at its key times 2^40, so they are unique in
    /// the runtime (and stay so when agents move with their timers).
    pub(crate) next_timer: u64,
}

impl<M> Effects<M> {
    /// The effects buffer of node `node`.
    pub(crate) fn for_node(node: u32) -> Self {
        Effects {
            sends: Vec::new(),
            timers: Vec::new(),
            cancels: Vec::new(),
            watches: Vec::new(),
            stop: false,
            next_correlation: 0,
            next_timer: u64::from(node) << 40,
        }
    }

    /// Forgets what a failed hook asked for.
    pub(crate) fn discard(&mut self) {
        self.sends.clear();
        self.timers.clear();
        self.cancels.clear();
        self.watches.clear();
        self.stop = false;
    }
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

/// What a hook can see and do: its identity, the message's sender, its allocation, and sends,
/// replies and timers.
pub struct Context<'a, M> {
    pub(crate) id: AgentId,
    pub(crate) parent: Address,
    pub(crate) sender: Option<Address>,
    pub(crate) correlation: Option<CorrelationId>,
    pub(crate) grant: Option<&'a Grant>,
    pub(crate) tick: u64,
    pub(crate) random: &'a mut u64,
    /// How many times the agent has been restarted: its timers belong to this instance.
    pub(crate) incarnation: u32,
    pub(crate) effects: &'a mut Effects<M>,
}

impl<M: Message> Context<'_, M> {
    /// This agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// This agent's address.
    pub fn address(&self) -> Address {
        Address::Agent(self.id)
    }

    /// The cluster or sub-cluster hosting this agent.
    pub fn parent(&self) -> Address {
        self.parent
    }

    /// The sender of the message being handled (`None` in `started`, `on_tick`, ... and for
    /// messages sent from outside the runtime).
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    /// The correlation id of the message being handled, if it is a request or a reply.
    pub fn correlation(&self) -> Option<CorrelationId> {
        self.correlation
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
        // SplitMix64.
        *self.random = self.random.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Sends `msg` to any address with the message's own priority. Messages to another
    /// cluster's agents travel up to the common ancestor and down; messages to a cluster or
    /// the orchestrator reach the application through `RuntimeHandle::recv`.
    pub fn send(&mut self, to: impl Into<Address>, msg: M) {
        let priority = msg.priority();
        self.send_with(priority, to, msg);
    }

    /// Sends with an explicit priority.
    pub fn send_with(&mut self, priority: Priority, to: impl Into<Address>, msg: M) {
        self.effects.sends.push(Outgoing {
            to: to.into(),
            priority,
            msg,
            correlation: None,
            reliable: None,
        });
    }

    /// Sends to this agent's parent (its cluster or sub-cluster).
    pub fn send_to_parent(&mut self, msg: M) {
        let parent = self.parent;
        self.send(parent, msg);
    }

    /// Sends a request; the reply will arrive as a message whose
    /// [`correlation`](Self::correlation) is the returned id.
    pub fn request(&mut self, to: impl Into<Address>, msg: M) -> CorrelationId {
        self.effects.next_correlation += 1;
        let id = CorrelationId(
            (u64::from(self.id.0) << 32) | (self.effects.next_correlation & 0xFFFF_FFFF),
        );
        let priority = msg.priority();
        self.effects.sends.push(Outgoing {
            to: to.into(),
            priority,
            msg,
            correlation: Some(id),
            reliable: None,
        });
        id
    }

    /// Replies to the sender of the current message, with its correlation id. Returns `false`
    /// (and sends nothing) if the current message has no sender.
    pub fn reply(&mut self, msg: M) -> bool {
        let Some(to) = self.sender else { return false };
        let priority = msg.priority();
        let correlation = self.correlation;
        self.effects.sends.push(Outgoing {
            to,
            priority,
            msg,
            correlation,
            reliable: None,
        });
        true
    }

    fn arm(&mut self, delay: Duration, every: Every<M>, msg: M) -> TimerHandle {
        self.effects.next_timer += 1;
        let id = self.effects.next_timer;
        self.effects.timers.push(TimerSpec {
            id,
            delay,
            every,
            msg,
        });
        TimerHandle {
            agent: self.id,
            incarnation: self.incarnation,
            id,
        }
    }

    /// Delivers `msg` to this agent itself after `delay` (with the message's own priority),
    /// unless the timer is cancelled or this instance of the agent ends first (a restart, a
    /// stop). Timers fire at or after their due time, within the runtime's
    /// [`timer_resolution`](crate::RuntimeConfig::timer_resolution) (10 ms by default) on an
    /// idle worker. A delay too large to represent never fires.
    pub fn send_after(&mut self, delay: Duration, msg: M) -> TimerHandle {
        self.arm(delay, None, msg)
    }

    /// Stops this agent once the hook returns `Ok`: its `stopped` hook runs, its timers end,
    /// its watchers are told ([`TerminationReason::Stopped`](crate::TerminationReason)), and
    /// messages sent to it afterwards are dead letters (counted, never silently dropped).
    pub fn stop(&mut self) {
        self.effects.stop = true;
    }

    /// Watches `agent`: when it terminates (stops, or fails past its restart intensity), this
    /// agent receives a [`Terminated`] notice as one of its own messages, at High priority.
    /// An agent that had terminated already is reported at once
    /// ([`TerminationReason::NotRunning`](crate::TerminationReason)). The watch belongs to
    /// this instance: a restart of the watcher ends it.
    pub fn watch(&mut self, agent: AgentId)
    where
        M: From<Terminated>,
    {
        self.effects.watches.push((agent, M::from));
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
        // A timer armed in this very hook is simply not armed.
        let before = self.effects.timers.len();
        self.effects.timers.retain(|t| t.id != timer.id);
        if self.effects.timers.len() == before {
            self.effects.cancels.push(timer.id);
        }
        Ok(())
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
        Ok(self.arm(period, Some((period, <M as Clone>::clone)), msg))
    }

    /// Sends with acknowledged delivery: the receiving cluster acknowledges the message once
    /// the agent has handled it; until then it is redelivered after the runtime's redelivery
    /// timeout (and de-duplicated by the receiver, so it is handled exactly once).
    pub fn send_reliable(&mut self, to: impl Into<Address>, msg: M) {
        let priority = msg.priority();
        self.effects.sends.push(Outgoing {
            to: to.into(),
            priority,
            msg,
            correlation: None,
            reliable: Some(<M as Clone>::clone),
        });
    }
}
