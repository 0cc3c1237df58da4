//! What a runtime hosts: one behaviour ([`Agent`] itself), or several ([`AnyAgent`]).
//!
//! A runtime is generic over its [`Host`] type. `QuantumOrchestrator<Counter>` hosts only
//! `Counter`s and moves their messages as they are (no boxing, no dynamic dispatch: the
//! fastest runtime). `QuantumOrchestrator<AnyAgent>` hosts agents of any behaviours side by
//! side, each with its own message type: an agent is a boxed behaviour and a message an
//! [`AnyMessage`]. The same [`Agent`] implementations run in both, unchanged, and in both
//! typed references ([`AgentRef`](qorch_protocol::AgentRef)) make a wrong message a compile
//! error.

use qorch_protocol::{Message, short_type_name};
use qorch_resources::{Grant, ResourceRequest};

use crate::agent::Context;
use crate::any::{AnyMessage, cast};
use crate::letter::Factory;
use crate::{Agent, AgentResult, RestartIntensity};

mod sealed {
    pub trait Sealed {}
}

/// What a runtime hosts: every [`Agent`] type (a runtime of that one behaviour), and
/// [`AnyAgent`] (a runtime of several). Implemented by the runtime; not for users.
pub trait Host: sealed::Sealed + Send + Sized + 'static {
    /// The messages the runtime's mailboxes carry.
    type Msg: Message;

    #[doc(hidden)]
    fn started(&mut self, ctx: &mut Context<'_, Self::Msg>) -> AgentResult;
    #[doc(hidden)]
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<'_, Self::Msg>) -> AgentResult;
    #[doc(hidden)]
    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, Self::Msg>) -> AgentResult;
    #[doc(hidden)]
    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, Self::Msg>,
    ) -> AgentResult;
    #[doc(hidden)]
    fn demand(&self) -> Option<ResourceRequest>;
    #[doc(hidden)]
    fn restart_intensity(&self) -> Option<RestartIntensity>;
    #[doc(hidden)]
    fn stopped(&mut self, ctx: &mut Context<'_, Self::Msg>);

    /// The behaviour's type name, for logs.
    #[doc(hidden)]
    fn behaviour(&self) -> &'static str;

    /// The one behaviour this runtime hosts (`None`: any).
    #[doc(hidden)]
    fn hosted() -> Option<std::any::TypeId>;

    /// Whether this agent accepts `msg` (always, in a runtime of one behaviour).
    #[doc(hidden)]
    fn accepts(&self, msg: &Self::Msg) -> bool;

    /// The name of `msg`'s type, for logs.
    #[doc(hidden)]
    fn message_type(msg: &Self::Msg) -> &'static str;

    /// A message of type `X` as one of this runtime's messages, or back if it cannot carry
    /// it (a runtime of one behaviour carries only that behaviour's messages).
    #[doc(hidden)]
    fn carry<X: Message>(msg: X) -> Result<Self::Msg, X>;

    /// One of this runtime's messages as an `X`, or back if it is not one.
    #[doc(hidden)]
    fn uncarry<X: Message>(msg: Self::Msg) -> Result<X, Self::Msg>;

    /// An already boxed message as one of this runtime's messages.
    #[doc(hidden)]
    fn carry_any(msg: AnyMessage) -> Result<Self::Msg, AnyMessage>;

    /// A factory spawned from inside a hook ([`Context::spawn`]), as one of this runtime's.
    #[doc(hidden)]
    fn adopt(spec: crate::spawn::SpawnSpec) -> Result<Factory<Self>, crate::spawn::SpawnSpec>;
}

impl<A: Agent> sealed::Sealed for A {}

impl<A: Agent> Host for A {
    type Msg = A::Msg;

    #[inline]
    fn started(&mut self, ctx: &mut Context<'_, A::Msg>) -> AgentResult {
        Agent::started(self, ctx)
    }

    #[inline]
    fn handle(&mut self, msg: A::Msg, ctx: &mut Context<'_, A::Msg>) -> AgentResult {
        Agent::handle(self, msg, ctx)
    }

    #[inline]
    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, A::Msg>) -> AgentResult {
        Agent::on_tick(self, tick, ctx)
    }

    #[inline]
    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, A::Msg>,
    ) -> AgentResult {
        Agent::on_allocation(self, grant, ctx)
    }

    #[inline]
    fn demand(&self) -> Option<ResourceRequest> {
        Agent::demand(self)
    }

    fn restart_intensity(&self) -> Option<RestartIntensity> {
        Agent::restart_intensity(self)
    }

    fn stopped(&mut self, ctx: &mut Context<'_, A::Msg>) {
        Agent::stopped(self, ctx);
    }

    fn behaviour(&self) -> &'static str {
        short_type_name::<A>()
    }

    fn hosted() -> Option<std::any::TypeId> {
        Some(std::any::TypeId::of::<A>())
    }

    #[inline]
    fn accepts(&self, _: &A::Msg) -> bool {
        true
    }

    fn message_type(_: &A::Msg) -> &'static str {
        short_type_name::<A::Msg>()
    }

    #[inline]
    fn carry<X: Message>(msg: X) -> Result<A::Msg, X> {
        cast(msg)
    }

    #[inline]
    fn uncarry<X: Message>(msg: A::Msg) -> Result<X, A::Msg> {
        cast(msg)
    }

    fn carry_any(msg: AnyMessage) -> Result<A::Msg, AnyMessage> {
        msg.downcast()
    }

    fn adopt(spec: crate::spawn::SpawnSpec) -> Result<Factory<A>, crate::spawn::SpawnSpec> {
        spec.typed::<A>()
    }
}

/// The object-safe face of an [`Agent`] inside an [`AnyAgent`]: its hooks over boxed
/// messages.
trait DynAgent: Send + 'static {
    fn started(&mut self, ctx: &mut Context<'_, AnyMessage>) -> AgentResult;
    fn handle(&mut self, msg: AnyMessage, ctx: &mut Context<'_, AnyMessage>) -> AgentResult;
    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, AnyMessage>) -> AgentResult;
    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, AnyMessage>,
    ) -> AgentResult;
    fn demand(&self) -> Option<ResourceRequest>;
    fn restart_intensity(&self) -> Option<RestartIntensity>;
    fn stopped(&mut self, ctx: &mut Context<'_, AnyMessage>);
    fn behaviour(&self) -> &'static str;
    fn accepts(&self, msg: &AnyMessage) -> bool;
}

impl<A: Agent> DynAgent for A {
    fn started(&mut self, ctx: &mut Context<'_, AnyMessage>) -> AgentResult {
        Agent::started(self, &mut ctx.boxing())
    }

    fn handle(&mut self, msg: AnyMessage, ctx: &mut Context<'_, AnyMessage>) -> AgentResult {
        match msg.downcast::<A::Msg>() {
            Ok(msg) => Agent::handle(self, msg, &mut ctx.boxing()),
            // The node checks `accepts` first.
            Err(msg) => Err(format!(
                "{} does not accept a {}",
                short_type_name::<A>(),
                msg.type_name()
            )
            .into()),
        }
    }

    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, AnyMessage>) -> AgentResult {
        Agent::on_tick(self, tick, &mut ctx.boxing())
    }

    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, AnyMessage>,
    ) -> AgentResult {
        Agent::on_allocation(self, grant, &mut ctx.boxing())
    }

    fn demand(&self) -> Option<ResourceRequest> {
        Agent::demand(self)
    }

    fn restart_intensity(&self) -> Option<RestartIntensity> {
        Agent::restart_intensity(self)
    }

    fn stopped(&mut self, ctx: &mut Context<'_, AnyMessage>) {
        Agent::stopped(self, &mut ctx.boxing());
    }

    fn behaviour(&self) -> &'static str {
        short_type_name::<A>()
    }

    fn accepts(&self, msg: &AnyMessage) -> bool {
        msg.is::<A::Msg>()
    }
}

/// An agent of any behaviour: what a runtime of several behaviours hosts
/// (`QuantumOrchestrator<AnyAgent>`). Spawn your own [`Agent`] types into it as they are
/// ([`ClusterManager::spawn`](crate::ClusterManager::spawn),
/// [`Context::spawn`]); each keeps its own message type, and the references they get are
/// typed by it.
///
/// Costs next to a runtime of one behaviour: one allocation per agent (its boxed state) and
/// one per message (its boxed value), and one dynamic call per hook.
///
/// # Examples
///
/// ```
/// use qorch_runtime::{Agent, AgentResult, AnyAgent, Context, QuantumOrchestrator};
///
/// struct Ping;
/// impl Agent for Ping {
///     type Msg = u32;
///     fn handle(&mut self, _: u32, _: &mut Context<'_, u32>) -> AgentResult { Ok(()) }
/// }
/// struct Log;
/// impl Agent for Log {
///     type Msg = String;
///     fn handle(&mut self, _: String, _: &mut Context<'_, String>) -> AgentResult { Ok(()) }
/// }
///
/// let rt = QuantumOrchestrator::<AnyAgent>::builder().workers(1).build().unwrap();
/// let c = rt.manager().create_cluster("c").unwrap();
/// let ping = rt.manager().spawn(c.into(), |_| Ping).unwrap();
/// let log = rt.manager().spawn(c.into(), |_| Log).unwrap();
/// rt.handle().send_blocking(&ping, 1).unwrap();
/// rt.handle().send_blocking(&log, "hello".to_owned()).unwrap();
/// // rt.handle().send_blocking(&log, 1); // does not compile: `log` accepts Strings
/// assert_eq!(rt.shutdown().stats.handled, 2);
/// ```
pub struct AnyAgent(Box<dyn DynAgent>);

impl AnyAgent {
    /// Boxes a behaviour.
    pub fn new<A: Agent>(agent: A) -> AnyAgent {
        AnyAgent(Box::new(agent))
    }
}

impl std::fmt::Debug for AnyAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyAgent<{}>", self.0.behaviour())
    }
}

impl sealed::Sealed for AnyAgent {}

impl Host for AnyAgent {
    type Msg = AnyMessage;

    fn started(&mut self, ctx: &mut Context<'_, AnyMessage>) -> AgentResult {
        self.0.started(ctx)
    }

    fn handle(&mut self, msg: AnyMessage, ctx: &mut Context<'_, AnyMessage>) -> AgentResult {
        self.0.handle(msg, ctx)
    }

    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, AnyMessage>) -> AgentResult {
        self.0.on_tick(tick, ctx)
    }

    fn on_allocation(
        &mut self,
        grant: Option<&Grant>,
        ctx: &mut Context<'_, AnyMessage>,
    ) -> AgentResult {
        self.0.on_allocation(grant, ctx)
    }

    fn demand(&self) -> Option<ResourceRequest> {
        self.0.demand()
    }

    fn restart_intensity(&self) -> Option<RestartIntensity> {
        self.0.restart_intensity()
    }

    fn stopped(&mut self, ctx: &mut Context<'_, AnyMessage>) {
        self.0.stopped(ctx);
    }

    fn behaviour(&self) -> &'static str {
        self.0.behaviour()
    }

    fn hosted() -> Option<std::any::TypeId> {
        None
    }

    fn accepts(&self, msg: &AnyMessage) -> bool {
        self.0.accepts(msg)
    }

    fn message_type(msg: &AnyMessage) -> &'static str {
        msg.type_name()
    }

    fn carry<X: Message>(msg: X) -> Result<AnyMessage, X> {
        Ok(AnyMessage::new(msg))
    }

    fn uncarry<X: Message>(msg: AnyMessage) -> Result<X, AnyMessage> {
        msg.downcast()
    }

    fn carry_any(msg: AnyMessage) -> Result<AnyMessage, AnyMessage> {
        Ok(msg)
    }

    fn adopt(spec: crate::spawn::SpawnSpec) -> Result<Factory<AnyAgent>, crate::spawn::SpawnSpec> {
        Ok(spec.boxed())
    }
}

/// Runtimes that can host behaviour `A`: a runtime of `A` itself, and one of several
/// behaviours ([`AnyAgent`]). Spawning an `A` elsewhere does not compile.
pub trait Hosts<A: Agent>: Host {
    /// `A`'s factory as one of this runtime's.
    #[doc(hidden)]
    fn factory(f: Factory<A>) -> Factory<Self>;
}

impl<A: Agent> Hosts<A> for A {
    fn factory(f: Factory<A>) -> Factory<A> {
        f
    }
}

impl<A: Agent> Hosts<A> for AnyAgent {
    fn factory(f: Factory<A>) -> Factory<AnyAgent> {
        std::sync::Arc::new(move |id| AnyAgent::new(f(id)))
    }
}
