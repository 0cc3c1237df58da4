//! State shared by every node and handle of one runtime: configuration, directory, the
//! mailboxes of all nodes, id counters. No actix here: the executor plugs in through
//! [`Spawner`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use qorch_protocol::{Address, AgentId, Envelope, MailboxSender, PriorityMailbox, TrySendError};

use crate::Host;
use crate::config::RuntimeConfig;
use crate::directory::{Directory, NodeKey};
use crate::letter::Letter;
use crate::registry::Registry;
use crate::spawn::SpawnError;

/// The sending side of a node's (or the orchestrator's) mailbox.
pub(crate) type LetterSender<B> = MailboxSender<Envelope<Letter<B>>>;

/// Where a node sends: another node's mailbox, or the orchestrator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Dest {
    Node(NodeKey),
    Orchestrator,
}

/// Starts node actors on workers: implemented by the executor.
pub(crate) trait Spawner<B: Host>: Send + Sync {
    /// Starts the actor of node `key` on `worker`, reading `mailbox`.
    fn start_node(
        &self,
        shared: Arc<Shared<B>>,
        key: NodeKey,
        worker: usize,
        mailbox: PriorityMailbox<Envelope<Letter<B>>>,
    );

    /// A receiver that completes after `pause`, timed by the executor's own clock (so that
    /// handles can wait inside any executor, with or without timers of its own).
    fn sleep(&self, pause: Duration) -> tokio::sync::oneshot::Receiver<()>;
}

/// Message flow counters of one participant (a node, the orchestrator, or the handles),
/// written only by it and read by `quiesce`: user messages it produced (sent, redelivered,
/// fired from a timer) and consumed (delivered to an agent or the application, or counted as
/// dead or lost), and the last tick it processed.
#[derive(Default)]
pub(crate) struct Flow {
    pub(crate) produced: crossbeam_utils::CachePadded<AtomicU64>,
    pub(crate) consumed: crossbeam_utils::CachePadded<AtomicU64>,
    pub(crate) tick: AtomicU64,
}

impl Flow {
    #[inline]
    pub(crate) fn produce(&self, n: u64) {
        self.produced.fetch_add(n, Ordering::Release);
    }

    #[inline]
    pub(crate) fn consume(&self, n: u64) {
        self.consumed.fetch_add(n, Ordering::Release);
    }
}

/// What hooks may use of the runtime, whatever it hosts: the directory, agent ids, the
/// registry.
pub(crate) struct Services {
    pub(crate) directory: Arc<Directory>,
    pub(crate) next_agent: AtomicU32,
    /// Set when the runtime starts to shut down: no new agents from then on.
    pub(crate) shutting_down: AtomicBool,
    /// Set once the actor system has stopped: nothing answers from then on.
    pub(crate) stopped: AtomicBool,
    pub(crate) registry: Registry,
}

impl Services {
    /// Ids for `count` new agents, the first one returned.
    pub(crate) fn allocate_agent_ids(&self, count: u32) -> Option<u32> {
        let first = self.next_agent.fetch_add(count, Ordering::Relaxed);
        first.checked_add(count).map(|_| first)
    }
    /// Ids for `count` new agents, the first one returned.
    /// Why a request for `agent`, which no node hosts, cannot be answered: it ran once (it
    /// stopped or failed, or the runtime is shutting down), or it never existed.
    pub(crate) fn refusal(&self, agent: AgentId) -> crate::ask::Refusal {
        use crate::ask::Refusal;
        if agent.0 >= self.next_agent.load(Ordering::Relaxed) {
            Refusal::Unknown
        } else if self.shutting_down.load(Ordering::Relaxed) {
            Refusal::Shutdown
        } else {
            Refusal::NotRunning
        }
    }

    /// An id for an agent spawned from a hook into `host`.
    pub(crate) fn reserve(&self, host: Address) -> Result<AgentId, SpawnError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(SpawnError::ShuttingDown);
        }
        if self.directory.tree.load().node_of(host).is_none() {
            return Err(SpawnError::UnknownHost(host));
        }
        self.allocate_agent_ids(1)
            .map(AgentId)
            .ok_or(SpawnError::TooManyAgents)
    }
}

pub(crate) struct Shared<B: Host> {
    pub(crate) config: RuntimeConfig,
    pub(crate) directory: Arc<Directory>,
    pub(crate) services: Services,
    senders: ArcSwap<Vec<MailboxSender<Envelope<Letter<B>>>>>,
    /// Each node's flow counters, by node key.
    pub(crate) flows: ArcSwap<Vec<Arc<Flow>>>,
    /// The orchestrator's flow counters.
    pub(crate) orchestrator_flow: Arc<Flow>,
    /// Messages sent in from outside (handles).
    pub(crate) external_flow: Arc<Flow>,
    pub(crate) orchestrator: MailboxSender<Envelope<Letter<B>>>,
    pub(crate) next_cluster: AtomicU32,
    pub(crate) next_sub: AtomicU32,
    /// Counts no live node holds: the final counts of killed nodes (they file no shutdown
    /// report), so that totals still include what they did before they died, and the
    /// orchestrator's dead letters.
    pub(crate) detached_stats: std::sync::Mutex<crate::letter::NodeStats>,
    /// Messages for the application waiting in the orchestrator for room in its inbox.
    pub(crate) app_backlog: AtomicU64,
    /// Where envelopes for addresses hosted by no node of this runtime go (other processes).
    pub(crate) remote: Option<Arc<dyn crate::RemoteLink<B::Msg>>>,
    /// The registry shared with other processes, if any.
    pub(crate) registry: Option<Arc<dyn crate::registry::SharedRegistry>>,
}

impl<B: Host> Shared<B> {
    pub(crate) fn new(
        config: RuntimeConfig,
        orchestrator: MailboxSender<Envelope<Letter<B>>>,
        remote: Option<Arc<dyn crate::RemoteLink<B::Msg>>>,
        registry: Option<Arc<dyn crate::registry::SharedRegistry>>,
    ) -> Self {
        let directory = Arc::new(Directory::new());
        Shared {
            config,
            services: Services {
                directory: Arc::clone(&directory),
                next_agent: AtomicU32::new(0),
                shutting_down: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                registry: Registry::default(),
            },
            directory,
            senders: ArcSwap::from_pointee(Vec::new()),
            flows: ArcSwap::from_pointee(Vec::new()),
            orchestrator_flow: Arc::default(),
            external_flow: Arc::default(),
            orchestrator,
            next_cluster: AtomicU32::new(0),
            next_sub: AtomicU32::new(0),
            detached_stats: std::sync::Mutex::default(),
            app_backlog: AtomicU64::new(0),
            remote,
            registry,
        }
    }

    pub(crate) fn sender(&self, key: NodeKey) -> Option<MailboxSender<Envelope<Letter<B>>>> {
        self.senders.load().get(key.0 as usize).cloned()
    }

    /// Registers the mailbox and flow counters of a new node (its key is the next index).
    pub(crate) fn add_sender(&self, sender: MailboxSender<Envelope<Letter<B>>>) {
        let mut v = Vec::clone(&self.senders.load());
        v.push(sender);
        self.senders.store(Arc::new(v));
        let mut f = Vec::clone(&self.flows.load());
        f.push(Arc::default());
        self.flows.store(Arc::new(f));
    }

    /// The flow counters of node `key`.
    pub(crate) fn flow(&self, key: NodeKey) -> Arc<Flow> {
        Arc::clone(&self.flows.load()[key.0 as usize])
    }

    pub(crate) fn try_send(
        &self,
        dest: Dest,
        env: Envelope<Letter<B>>,
    ) -> Result<(), TrySendError<Envelope<Letter<B>>>> {
        match dest {
            Dest::Orchestrator => self.orchestrator.try_send(env),
            Dest::Node(k) => match self.senders.load().get(k.0 as usize) {
                Some(s) => s.try_send(env),
                None => Err(TrySendError::Closed(env)),
            },
        }
    }

    /// User messages produced and not yet consumed, over every participant (consumed read
    /// before produced, so a message in flight is never missed).
    pub(crate) fn in_flight(&self) -> u64 {
        let flows = self.flows.load();
        let all = || {
            flows
                .iter()
                .chain([&self.orchestrator_flow, &self.external_flow])
        };
        let consumed: u64 = all().map(|f| f.consumed.load(Ordering::Acquire)).sum();
        let produced: u64 = all().map(|f| f.produced.load(Ordering::Acquire)).sum();
        produced.saturating_sub(consumed)
    }

    /// Adds dead letters to the counts no live node holds.
    pub(crate) fn count_dead_letters(&self, user: u64, protocol: u64) {
        let mut d = self
            .detached_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        d.dead_letters += user;
        d.dead_protocol_letters += protocol;
    }
}
