//! The simulated agents as runtime behaviours: thin wrappers that call the workload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use qorch_protocol::{AgentId, Message, Priority};
use qorch_resources::ResourceRequest;
use qorch_runtime::{Agent, AgentResult, Context};

use crate::workload::{AgentWorkload, Task};

/// A message between simulated agents (serializable for distributed runs, except the
/// fault-injection fuse, which never leaves its process).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum SimMsg {
    /// Work for the receiver.
    Work {
        /// Its class.
        priority: Priority,
        /// Work units.
        units: u32,
    },
    /// Fault injection: the receiver panics while handling it, once (the fuse burns on the
    /// first attempt). Its cluster restarts the agent; the message went down with the
    /// handler and is counted as a dead letter (only reliable messages are redelivered).
    #[serde(skip)]
    Panic(Arc<AtomicBool>),
}

impl Message for SimMsg {
    fn priority(&self) -> Priority {
        match self {
            SimMsg::Work { priority, .. } => *priority,
            SimMsg::Panic(_) => Priority::Normal,
        }
    }
}

/// A simulated agent: the runtime behaviour that runs one agent of a workload (the built-in
/// model, or any [`AgentWorkload`]). It keeps the agent's profile, the tick it has reached
/// and a buffer for its sends; its tick sends the workload's tasks as [`SimMsg::Work`], and
/// it reports the workload's demand to the optimizer.
pub struct SimAgent<W: AgentWorkload> {
    workload: Arc<W>,
    id: AgentId,
    profile: W::Profile,
    tick: u64,
    out: Vec<Task>,
}

impl<W: AgentWorkload> SimAgent<W> {
    pub(crate) fn new(workload: Arc<W>, id: AgentId) -> SimAgent<W> {
        let profile = workload.profile(id);
        SimAgent {
            workload,
            id,
            profile,
            tick: 0,
            out: Vec::new(),
        }
    }

    #[cfg(feature = "distributed")]
    /// An agent restarted at tick `tick` (its profile is a function of its id, so this is
    /// the state it had).
    pub(crate) fn resumed(workload: Arc<W>, id: AgentId, tick: u64) -> SimAgent<W> {
        let mut a = SimAgent::new(workload, id);
        a.tick = tick;
        a
    }
}

impl<W: AgentWorkload> Agent for SimAgent<W> {
    type Msg = SimMsg;

    fn handle(&mut self, msg: SimMsg, _ctx: &mut Context<'_, SimMsg>) -> AgentResult {
        match msg {
            SimMsg::Work { priority, units } => {
                let task = Task {
                    to: self.id,
                    priority,
                    units,
                };
                self.workload.handle(&self.profile, &task);
                Ok(())
            }
            SimMsg::Panic(fuse) => {
                assert!(
                    !fuse.swap(false, Ordering::AcqRel),
                    "injected fault: agent {} panics",
                    self.id.0
                );
                Ok(())
            }
        }
    }

    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, SimMsg>) -> AgentResult {
        self.tick = tick;
        self.out.clear();
        self.workload.tick(&self.profile, tick, &mut self.out);
        for t in &self.out {
            ctx.send_to_with(
                t.priority,
                t.to,
                SimMsg::Work {
                    priority: t.priority,
                    units: t.units,
                },
            );
        }
        Ok(())
    }

    fn demand(&self) -> Option<ResourceRequest> {
        Some(self.workload.demand(&self.profile, self.tick))
    }
}
