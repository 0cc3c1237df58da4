//! Spawning from inside a hook ([`Context::spawn`](crate::Context::spawn)): what the context
//! records, and its errors.

use std::any::Any;
use std::sync::Arc;

use qorch_protocol::{Address, AgentId, short_type_name};

use crate::letter::Factory;
use crate::{Agent, AnyAgent};

/// Why an agent could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The runtime is shutting down: it takes no new agents.
    #[error("the runtime is shutting down: no new agents")]
    ShuttingDown,
    /// This runtime hosts one behaviour, and it is not this one. A runtime of several
    /// (`QuantumOrchestrator<AnyAgent>`) hosts any.
    #[error(
        "this runtime hosts one behaviour, not {behaviour}: use QuantumOrchestrator<AnyAgent> to mix behaviours"
    )]
    NotHosted {
        /// The behaviour refused.
        behaviour: &'static str,
    },
    /// No cluster or sub-cluster at this address in this process.
    #[error("no cluster or sub-cluster {0} here to spawn into")]
    UnknownHost(Address),
    /// Agent ids are 32-bit.
    #[error("too many agents: ids are 32-bit")]
    TooManyAgents,
}

/// An agent spawned from a hook: its id, where, and its factory, typed (for a runtime of
/// its behaviour) and boxed (for a runtime of several).
pub struct SpawnSpec {
    pub(crate) id: AgentId,
    pub(crate) host: Address,
    typed: Box<dyn Any + Send>,
    boxed: Factory<AnyAgent>,
    pub(crate) behaviour: &'static str,
}

impl SpawnSpec {
    pub(crate) fn new<A: Agent>(id: AgentId, host: Address, factory: Factory<A>) -> Self {
        let f = Arc::clone(&factory);
        SpawnSpec {
            id,
            host,
            typed: Box::new(factory),
            boxed: Arc::new(move |id| AnyAgent::new(f(id))),
            behaviour: short_type_name::<A>(),
        }
    }

    /// The factory, if the behaviour is `A`.
    pub(crate) fn typed<A: Agent>(self) -> Result<Factory<A>, SpawnSpec> {
        if self.typed.is::<Factory<A>>() {
            match self.typed.downcast::<Factory<A>>() {
                Ok(f) => Ok(*f),
                Err(typed) => Err(SpawnSpec { typed, ..self }),
            }
        } else {
            Err(self)
        }
    }

    /// The factory for a runtime of several behaviours.
    pub(crate) fn boxed(self) -> Factory<AnyAgent> {
        self.boxed
    }
}
