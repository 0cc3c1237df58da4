//! The simulated agents as runtime behaviours: thin wrappers that call the model.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use qorch_protocol::{AgentId, Message, Priority};
use qorch_resources::ResourceRequest;
use qorch_runtime::{Agent, AgentResult, Context};

use crate::model::{AgentModel, ModelSpec, Task};

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

/// A simulated agent: its model, the tick it has reached, and a buffer for its sends.
pub struct SimAgent {
    spec: Arc<ModelSpec>,
    model: AgentModel,
    tick: u64,
    out: Vec<Task>,
}

impl SimAgent {
    pub(crate) fn new(spec: Arc<ModelSpec>, id: AgentId) -> SimAgent {
        let model = spec.build(id.0);
        SimAgent {
            spec,
            model,
            tick: 0,
            out: Vec::new(),
        }
    }

    #[cfg(feature = "distributed")]
    /// An agent restarted at tick `tick` (its model is a function of its id, so this is the
    /// state it had).
    pub(crate) fn resumed(spec: Arc<ModelSpec>, id: AgentId, tick: u64) -> SimAgent {
        let mut a = SimAgent::new(spec, id);
        a.tick = tick;
        a
    }
}

impl Agent for SimAgent {
    type Msg = SimMsg;

    fn handle(&mut self, msg: SimMsg, _ctx: &mut Context<'_, SimMsg>) -> AgentResult {
        match msg {
            SimMsg::Work { priority, units } => {
                ModelSpec::handle(&Task {
                    to: self.model.id,
                    priority,
                    units,
                });
                Ok(())
            }
            SimMsg::Panic(fuse) => {
                assert!(
                    !fuse.swap(false, Ordering::AcqRel),
                    "injected fault: agent {} panics",
                    self.model.id
                );
                Ok(())
            }
        }
    }

    fn on_tick(&mut self, tick: u64, ctx: &mut Context<'_, SimMsg>) -> AgentResult {
        self.tick = tick;
        self.spec.tick(&self.model, tick, &mut self.out);
        for t in &self.out {
            ctx.send_to_with(
                t.priority,
                AgentId(t.to),
                SimMsg::Work {
                    priority: t.priority,
                    units: t.units,
                },
            );
        }
        Ok(())
    }

    fn demand(&self) -> Option<ResourceRequest> {
        Some(self.spec.request(&self.model, self.tick))
    }
}
