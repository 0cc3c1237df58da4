//! Ask: a request whose reply the runtime matches for the asker. The request carries a
//! [`ReplyTo`]; the asked agent answers through it, or drops it, and either way exactly one
//! outcome reaches the asker (an agent, through `Context::ask`, or the application, through
//! `RuntimeHandle::ask`): the reply or an [`AskError`].
//!
//! Replies from agents leave through their node: a `ReplyTo` sent (or dropped) on a node's
//! thread queues the outcome in a thread-local list that the node routes after the letter it
//! is handling, with the outbox's guarantees (nothing dropped when a mailbox is full).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use qorch_protocol::AgentId;
use tokio::sync::oneshot;

/// Why an ask got no reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AskError {
    /// No reply within the timeout.
    #[error("agent {agent} did not reply within {after:?}")]
    Timeout {
        /// The agent asked.
        agent: AgentId,
        /// The timeout.
        after: Duration,
    },
    /// No agent has this id (it was never spawned here).
    #[error("no agent {0} in this runtime")]
    Unknown(AgentId),
    /// The agent had stopped, or failed for good, before it got the request.
    #[error("agent {0} is not running")]
    NotRunning(AgentId),
    /// The agent failed (panicked or returned an error) while it held the request, or
    /// terminated with the request unanswered.
    #[error("agent {0} failed before replying")]
    Failed(AgentId),
    /// The agent dropped the request's `ReplyTo` without replying.
    #[error("agent {0} dropped the request without replying")]
    Dropped(AgentId),
    /// The runtime shut down before the reply.
    #[error("the runtime shut down before agent {0} replied")]
    Shutdown(AgentId),
    /// The runtime cannot carry this request: it hosts one behaviour, whose messages are of
    /// another type.
    #[error("agent {agent} cannot receive a {message}: this runtime hosts another behaviour")]
    WrongType {
        /// The agent asked.
        agent: AgentId,
        /// The request's type.
        message: &'static str,
    },
}

/// What became of a request, as the replying side knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotRunning,
    Failed,
    Dropped,
    Unknown,
    Shutdown,
}

impl Refusal {
    pub(crate) fn error(self, agent: AgentId) -> AskError {
        match self {
            Refusal::NotRunning => AskError::NotRunning(agent),
            Refusal::Failed => AskError::Failed(agent),
            Refusal::Dropped => AskError::Dropped(agent),
            Refusal::Unknown => AskError::Unknown(agent),
            Refusal::Shutdown => AskError::Shutdown(agent),
        }
    }
}

/// A boxed reply, or why there is none.
pub(crate) type Outcome = Result<Box<dyn Any + Send>, Refusal>;

/// How a pending ask turns its outcome into a message for the asker.
pub(crate) type Completion<M> = Box<dyn FnOnce(Result<Box<dyn Any + Send>, AskError>) -> M + Send>;

/// A typed completion as a boxed one.
pub(crate) fn completion<R: Send + 'static, M>(
    done: impl FnOnce(Result<R, AskError>) -> M + Send + 'static,
) -> Completion<M> {
    Box::new(move |r| {
        done(r.and_then(|b| match b.downcast::<R>() {
            Ok(r) => Ok(*r),
            // Unreachable: a ReplyTo<R> sends only Rs.
            Err(_) => Err(AskError::Dropped(AgentId(u32::MAX))),
        }))
    })
}

/// An outcome on its way to an asking agent.
pub(crate) struct ReplyOut {
    pub(crate) asker: AgentId,
    pub(crate) correlation: u64,
    pub(crate) outcome: Outcome,
}

thread_local! {
    /// Outcomes queued on this thread, routed by the node that runs next here.
    static OUTBOX: RefCell<Vec<ReplyOut>> = const { RefCell::new(Vec::new()) };
    /// Whether this thread runs nodes (otherwise nobody would route the queue).
    static NODE_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Why requests dropped now are dropped (set around the runtime's own drops).
    static REASON: Cell<Refusal> = const { Cell::new(Refusal::Dropped) };
}

/// Marks the current thread as one that runs nodes.
pub(crate) fn enter_node_thread() {
    NODE_THREAD.with(|t| t.set(true));
}

/// Moves the queued outcomes into `into` (which must be empty), leaving its capacity to the
/// queue: a node that routes replies steadily allocates nothing.
pub(crate) fn take_replies(into: &mut Vec<ReplyOut>) {
    OUTBOX.with(|o| {
        let mut o = o.borrow_mut();
        if !o.is_empty() {
            std::mem::swap(&mut *o, into);
        }
    });
}

/// How many outcomes are queued (a mark to [`fail_since`]).
pub(crate) fn queued() -> usize {
    OUTBOX.with(|o| o.borrow().len())
}

/// A hook failed: requests it dropped since `mark` were dropped by a failure.
pub(crate) fn fail_since(mark: usize) {
    OUTBOX.with(|o| {
        for r in o.borrow_mut().iter_mut().skip(mark) {
            if matches!(r.outcome, Err(Refusal::Dropped)) {
                r.outcome = Err(Refusal::Failed);
            }
        }
    });
}

/// Runs `f` (which drops requests) with `why` as the reason of the drops.
pub(crate) fn dropping<T>(why: Refusal, f: impl FnOnce() -> T) -> T {
    let before = REASON.with(|r| r.replace(why));
    let out = f();
    REASON.with(|r| r.set(before));
    out
}

fn queue(out: ReplyOut) {
    if NODE_THREAD.with(Cell::get) {
        OUTBOX.with(|o| o.borrow_mut().push(out));
    } else {
        tracing::warn!(
            asker = out.asker.0,
            "a reply to an agent was sent or dropped outside the runtime's threads: \
             it cannot travel, and the ask will time out"
        );
    }
}

enum Port<R> {
    /// An agent waits (`Context::ask`).
    Agent { asker: AgentId, correlation: u64 },
    /// The application waits (`RuntimeHandle::ask`).
    App(oneshot::Sender<Result<R, Refusal>>),
}

/// Where the answer to a request goes: put it in the request message, and the asked agent
/// answers with [`send`](Self::send). Dropping it unanswered tells the asker
/// ([`AskError::Dropped`], or [`AskError::Failed`] if the agent failed), so an ask never
/// waits for a reply that cannot come. Answer from the agent's hooks (at once, or later
/// from its state); it cannot be copied.
///
/// # Examples
///
/// ```
/// use qorch_runtime::{Agent, AgentResult, Context, ReplyTo};
///
/// enum CounterMsg { Add(u64), Get(ReplyTo<u64>) }
/// impl qorch_protocol::Message for CounterMsg {}
///
/// struct Counter(u64);
/// impl Agent for Counter {
///     type Msg = CounterMsg;
///     fn handle(&mut self, msg: CounterMsg, _: &mut Context<'_, CounterMsg>) -> AgentResult {
///         match msg {
///             CounterMsg::Add(n) => self.0 += n,
///             CounterMsg::Get(reply) => reply.send(self.0),
///         }
///         Ok(())
///     }
/// }
/// ```
#[must_use = "an unanswered request is reported to the asker as dropped"]
pub struct ReplyTo<R: Send + 'static> {
    port: Option<Port<R>>,
    _reply: PhantomData<fn(R)>,
}

impl<R: Send + 'static> ReplyTo<R> {
    pub(crate) fn agent(asker: AgentId, correlation: u64) -> Self {
        ReplyTo {
            port: Some(Port::Agent { asker, correlation }),
            _reply: PhantomData,
        }
    }

    pub(crate) fn app(tx: oneshot::Sender<Result<R, Refusal>>) -> Self {
        ReplyTo {
            port: Some(Port::App(tx)),
            _reply: PhantomData,
        }
    }

    /// Answers the request. An asker that gave up (it timed out, stopped or restarted) is
    /// not told twice: the answer is then discarded.
    pub fn send(mut self, reply: R) {
        match self.port.take() {
            Some(Port::App(tx)) => {
                let _ = tx.send(Ok(reply));
            }
            Some(Port::Agent { asker, correlation }) => queue(ReplyOut {
                asker,
                correlation,
                outcome: Ok(Box::new(reply)),
            }),
            None => {}
        }
    }
}

impl<R: Send + 'static> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        let Some(port) = self.port.take() else { return };
        let why = if std::thread::panicking() {
            Refusal::Failed
        } else {
            REASON.with(Cell::get)
        };
        match port {
            Port::App(tx) => {
                let _ = tx.send(Err(why));
            }
            Port::Agent { asker, correlation } => queue(ReplyOut {
                asker,
                correlation,
                outcome: Err(why),
            }),
        }
    }
}

impl<R: Send + 'static> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Some(Port::Agent { asker, .. }) => write!(f, "ReplyTo({asker})"),
            Some(Port::App(_)) => f.write_str("ReplyTo(app)"),
            None => f.write_str("ReplyTo(answered)"),
        }
    }
}
