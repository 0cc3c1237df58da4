//! Watching agents: who is told when an agent terminates, and what they are told
//! ([`Terminated`]). An agent watches with `Context::watch` and receives the notice as one of
//! its own messages; the application watches with `RuntimeHandle::watch` and awaits a
//! [`Watch`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use qorch_protocol::AgentId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Why an agent terminated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TerminationReason {
    /// It stopped itself (`Context::stop`) or was stopped (`RuntimeHandle::stop`).
    Stopped,
    /// It failed past its restart intensity; the last failure's reason.
    Failed(String),
    /// It was not running when the watch arrived (it had terminated already).
    NotRunning,
    /// The runtime shut down.
    Shutdown,
    /// It was lost with its node (fault injection), or the runtime stopped before telling.
    Lost,
}

/// The notice a watcher receives when the agent it watches terminates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Terminated {
    /// The agent that terminated.
    pub agent: AgentId,
    /// Why.
    pub reason: TerminationReason,
}

/// How a watcher's message is made from a notice.
pub(crate) type MakeNotice<M> = fn(Terminated) -> M;

/// Someone watching an agent, as the agent's node keeps them.
pub(crate) enum Watcher<M> {
    /// An agent, the instance that asked (a watch ends with its watcher's instance), and how
    /// to turn the notice into one of its messages.
    Agent {
        agent: AgentId,
        incarnation: u32,
        make: MakeNotice<M>,
    },
    /// The application.
    App(oneshot::Sender<Terminated>),
}

/// The application's watch of an agent (from `RuntimeHandle::watch`): a future that
/// completes with the agent's [`Terminated`] notice.
#[must_use = "a watch does nothing unless awaited"]
pub struct Watch {
    pub(crate) agent: AgentId,
    pub(crate) rx: oneshot::Receiver<Terminated>,
}

impl Watch {
    /// The watched agent.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// Waits, parking the thread, for up to `timeout`; `None` if the agent is still running.
    pub fn wait_blocking(&mut self, timeout: Duration) -> Option<Terminated> {
        // A timeout too large to represent waits as long as it takes.
        let deadline = std::time::Instant::now().checked_add(timeout);
        qorch_protocol::block_on_until(&mut *self, deadline)
    }

    fn lost(&self) -> Terminated {
        Terminated {
            agent: self.agent,
            reason: TerminationReason::Lost,
        }
    }
}

impl Future for Watch {
    type Output = Terminated;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Terminated> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(t)) => Poll::Ready(t),
            Poll::Ready(Err(_)) => Poll::Ready(self.lost()),
            Poll::Pending => Poll::Pending,
        }
    }
}
