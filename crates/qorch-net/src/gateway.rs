//! The gateway: a runtime's [`RemoteLink`] over NATS.
//!
//! **Out.** Envelopes for agents another process hosts reach the link (they climbed the tree
//! to the runtime's orchestrator first). The egress task batches them per destination leaf
//! and priority into frames (`[version][bincode 2][crc32]`, the protocol's codec), publishes
//! Control frames before High before Normal before Low on
//! `<prefix>.d.<cluster>.<leaf>.<priority>`, and keeps each frame until it is acknowledged,
//! publishing it again after `redelivery_timeout`, then after twice that, up to 8 times (for
//! `give_up_after`; then its messages are counted undeliverable: reported, never dropped
//! silently).
//!
//! **In.** One wildcard subscription per hosted cluster (`<prefix>.d.<cluster>.>`). Frames
//! waiting together are taken by priority; each frame's envelopes are injected into the
//! runtime with their sender, sequence number and priority. A frame is acknowledged (on the
//! control connection) only once the runtime is idle, that is once every message it
//! carried has been *handled*: an acknowledged message is never lost, even if this process
//! dies right after. Frames are numbered per (sender, cluster) and carry the sender's
//! "everything up to here was acknowledged" mark, so the receiver's de-duplication window is
//! small and exact: a frame NATS or the sender delivers twice is handled once (and
//! acknowledged again, in case the first acknowledgement was lost). A process that adopts a
//! cluster subscribes to its subjects and receives what was not acknowledged yet.
//!
//! **Authentication.** When the connections hold a deployment key
//! ([`NatsConfig::frame_key`](crate::NatsConfig::frame_key)), data frames and
//! acknowledgements are sealed like control frames: an HMAC-SHA256 tag over their subject and
//! bytes ([`FrameKey`](crate::FrameKey)). A receiver checks the tag before decoding; a frame
//! without a valid one is refused (never handled, never acknowledged), counted
//! ([`GatewayStats::refused_frames`], and [`Connection::refused_frames`] of the connection it
//! arrived on) and logged at `warn` (the first refusal, then each power of two).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use qorch_protocol::{Address, AgentId, ClusterId, Envelope, Priority, SubClusterId, WireCodec};
use qorch_runtime::{Host, InjectError, Remote, RemoteLink, RuntimeHandle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{Connection, NetError, Subjects};

/// Settings of a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// This process's name (one subject token): acknowledgements come back to it.
    pub process: String,
    /// Envelopes per frame at most.
    pub batch_max: usize,
    /// Time after which an unacknowledged frame is published again; the wait doubles with
    /// each publication, up to 8 times this (a receiver busy with a long tick acknowledges
    /// late, and should not be flooded with copies meanwhile).
    pub redelivery_timeout: Duration,
    /// Age at which an unacknowledged frame is given up and its messages counted
    /// undeliverable. The default, two minutes, is long enough for a failed process's
    /// clusters to be adopted elsewhere.
    pub give_up_after: Duration,
    /// How often, while frames wait for their acknowledgement, the runtime is checked for
    /// idleness.
    pub ack_poll: Duration,
}

impl GatewayConfig {
    /// Defaults for a process named `process`.
    pub fn new(process: impl Into<String>) -> GatewayConfig {
        GatewayConfig {
            process: process.into(),
            batch_max: 1024,
            redelivery_timeout: Duration::from_millis(500),
            give_up_after: Duration::from_secs(120),
            ack_poll: Duration::from_millis(1),
        }
    }
}

const NO_LEAF: u32 = u32::MAX;
const NOWHERE: u64 = u64::MAX;

/// Which cluster and leaf host each agent, over all processes: how the link names the
/// subject of an envelope. Filled by the application (it knows its placement); shared by the
/// link and the gateway.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Agent id -> `cluster << 32 | leaf` (`NOWHERE`: unknown).
    agents: RwLock<Vec<u64>>,
    /// Sub-cluster -> its top-level cluster.
    subs: RwLock<HashMap<SubClusterId, ClusterId>>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Records where agents live: their cluster and leaf sub-cluster (`None`: right in the
    /// cluster). Registers the leaves too.
    ///
    /// # Panics
    ///
    /// Never (the lock is not poisoned by this code).
    pub fn place_agents(
        &self,
        placed: impl IntoIterator<Item = (AgentId, ClusterId, Option<SubClusterId>)>,
    ) {
        let mut agents = self
            .agents
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut subs = self
            .subs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (a, c, s) in placed {
            let i = a.0 as usize;
            if agents.len() <= i {
                agents.resize(i + 1, NOWHERE);
            }
            agents[i] = u64::from(c.0) << 32 | u64::from(s.map_or(NO_LEAF, |s| s.0));
            if let Some(s) = s {
                subs.insert(s, c);
            }
        }
    }

    /// Records a sub-cluster's top-level cluster.
    pub fn place_sub(&self, sub: SubClusterId, cluster: ClusterId) {
        self.subs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(sub, cluster);
    }

    /// The cluster and leaf that host `to`, if known.
    pub fn locate(&self, to: Address) -> Option<(ClusterId, Option<SubClusterId>)> {
        match to {
            Address::Agent(a) => {
                let v = *self
                    .agents
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(a.0 as usize)?;
                if v == NOWHERE {
                    return None;
                }
                let leaf = v as u32;
                Some((
                    ClusterId((v >> 32) as u32),
                    (leaf != NO_LEAF).then_some(SubClusterId(leaf)),
                ))
            }
            Address::Cluster(c) => Some((c, None)),
            Address::SubCluster(s) => self
                .subs
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&s)
                .map(|c| (*c, Some(s))),
            Address::Orchestrator => None,
        }
    }
}

/// Counters of a gateway (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStats {
    /// Envelopes handed to the link.
    pub envelopes_out: u64,
    /// Frames published (first time).
    pub frames_out: u64,
    /// Frames published again after a timeout.
    pub frames_redelivered: u64,
    /// Frames acknowledged by their receiver.
    pub frames_acked: u64,
    /// Frames sent and not acknowledged yet.
    pub frames_pending: u64,
    /// User messages given up after `max_deliveries` (undeliverable, reported).
    pub undeliverable: u64,
    /// Envelopes received and injected (duplicates excluded).
    pub envelopes_in: u64,
    /// Frames received (duplicates excluded).
    pub frames_in: u64,
    /// Frames received again and ignored (de-duplicated).
    pub duplicate_frames: u64,
    /// Frames that failed to decode (corrupted or from an incompatible build).
    pub corrupt_frames: u64,
    /// Data frames and acknowledgements refused for a missing or invalid MAC (with a
    /// deployment key only): forged, or from a process without this run's key.
    pub refused_frames: u64,
    /// Received frames waiting for the runtime to be idle before their acknowledgement.
    pub frames_awaiting_ack: u64,
    /// Received user messages for an agent this process does not host (reported).
    pub dead_letters: u64,
    /// Bytes published (data frames, redeliveries included).
    pub bytes_out: u64,
    /// Bytes received (data frames).
    pub bytes_in: u64,
}

impl GatewayStats {
    /// Nothing is waiting: every frame sent was acknowledged and every frame received has
    /// been handled and acknowledged.
    pub fn idle(&self) -> bool {
        self.frames_pending == 0 && self.frames_awaiting_ack == 0
    }
}

#[derive(Default)]
struct Counters {
    envelopes_out: AtomicU64,
    frames_out: AtomicU64,
    frames_redelivered: AtomicU64,
    frames_acked: AtomicU64,
    frames_pending: AtomicU64,
    undeliverable: AtomicU64,
    envelopes_in: AtomicU64,
    frames_in: AtomicU64,
    duplicate_frames: AtomicU64,
    corrupt_frames: AtomicU64,
    refused_frames: AtomicU64,
    frames_awaiting_ack: AtomicU64,
    dead_letters: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> GatewayStats {
        let g = |c: &AtomicU64| c.load(Ordering::Acquire);
        GatewayStats {
            envelopes_out: g(&self.envelopes_out),
            frames_out: g(&self.frames_out),
            frames_redelivered: g(&self.frames_redelivered),
            frames_acked: g(&self.frames_acked),
            frames_pending: g(&self.frames_pending),
            undeliverable: g(&self.undeliverable),
            envelopes_in: g(&self.envelopes_in),
            frames_in: g(&self.frames_in),
            duplicate_frames: g(&self.duplicate_frames),
            corrupt_frames: g(&self.corrupt_frames),
            refused_frames: g(&self.refused_frames),
            frames_awaiting_ack: g(&self.frames_awaiting_ack),
            dead_letters: g(&self.dead_letters),
            bytes_out: g(&self.bytes_out),
            bytes_in: g(&self.bytes_in),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct DataFrame<M> {
    origin: String,
    cluster: u32,
    batch: u64,
    /// Every frame of (origin, cluster) numbered up to here was acknowledged.
    acked_upto: u64,
    lane: u8,
    envelopes: Vec<Envelope<Remote<M>>>,
}

#[derive(Serialize, Deserialize)]
struct AckFrame {
    cluster: u32,
    batches: Vec<u64>,
}

type Routed<M> = (ClusterId, Option<SubClusterId>, Envelope<Remote<M>>);

/// Envelopes waiting to be framed, by (lane, cluster, leaf).
type Buffered<M> = BTreeMap<(usize, u32, u32), Vec<Envelope<Remote<M>>>>;

/// The [`RemoteLink`] to install in the runtime ([`qorch_runtime::RuntimeBuilder::remote`]).
pub struct NatsLink<M> {
    tx: mpsc::UnboundedSender<Routed<M>>,
    routes: Arc<RouteTable>,
    counters: Arc<Counters>,
}

impl<M: Send + 'static> RemoteLink<M> for NatsLink<M> {
    fn forward(&self, env: Envelope<Remote<M>>) -> Result<(), Envelope<Remote<M>>> {
        let Some((cluster, leaf)) = self.routes.locate(env.to) else {
            return Err(env);
        };
        Counters::add(&self.counters.envelopes_out, 1);
        self.tx
            .send((cluster, leaf, env))
            .map_err(|mpsc::error::SendError((_, _, env))| env)
    }
}

/// A gateway: create it with [`Gateway::new`] (before the runtime, which takes the link),
/// then [`start`](Gateway::start) it with the runtime's handle.
pub struct Gateway<M> {
    config: GatewayConfig,
    subjects: Subjects,
    routes: Arc<RouteTable>,
    counters: Arc<Counters>,
    rx: Option<mpsc::UnboundedReceiver<Routed<M>>>,
    hosts: Option<mpsc::UnboundedSender<ClusterId>>,
}

impl<M> Gateway<M>
where
    M: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A gateway and the link to give the runtime.
    pub fn new(
        config: GatewayConfig,
        subjects: Subjects,
        routes: Arc<RouteTable>,
    ) -> (Gateway<M>, Arc<NatsLink<M>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let link = Arc::new(NatsLink {
            tx,
            routes: Arc::clone(&routes),
            counters: Arc::clone(&counters),
        });
        (
            Gateway {
                config,
                subjects,
                routes,
                counters,
                rx: Some(rx),
                hosts: None,
            },
            link,
        )
    }

    /// The route table (shared with the link).
    pub fn routes(&self) -> &Arc<RouteTable> {
        &self.routes
    }

    /// Starts the egress and ingress tasks on the current tokio runtime: data frames on
    /// `data`, acknowledgements on `control`; receives for the clusters in `hosted`. Frames
    /// are sealed and checked under each connection's deployment key, if it has one.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if a subscription fails; [`NetError::Config`] if started twice.
    pub async fn start<B>(
        &mut self,
        data: &Connection,
        control: &Connection,
        handle: RuntimeHandle<B>,
        hosted: &[ClusterId],
    ) -> Result<(), NetError>
    where
        B: Host<Msg = M>,
    {
        let Some(rx) = self.rx.take() else {
            return Err(NetError::Config("the gateway is already started".into()));
        };
        let (data, control) = (data.clone(), control.clone());
        let acks = control
            .client()
            .subscribe(self.subjects.acks(&self.config.process))
            .await
            .map_err(NetError::io("subscribe"))?;
        let max_payload = data.client().server_info().max_payload.max(64 * 1024);
        let egress = Egress {
            config: self.config.clone(),
            subjects: self.subjects.clone(),
            data: data.clone(),
            control: control.clone(),
            counters: Arc::clone(&self.counters),
            max_payload,
            clusters: HashMap::new(),
            pending: HashMap::new(),
            metrics: crate::telemetry::GatewayMetrics::new(&self.config.process),
        };
        tokio::spawn(egress.run(rx, acks));

        let (in_tx, in_rx) = mpsc::channel::<async_nats::Message>(4096);
        let (hosts_tx, mut hosts_rx) = mpsc::unbounded_channel::<ClusterId>();
        {
            let data = data.client().clone();
            let subjects = self.subjects.clone();
            tokio::spawn(async move {
                while let Some(c) = hosts_rx.recv().await {
                    match data.subscribe(subjects.cluster_wildcard(c)).await {
                        Ok(mut sub) => {
                            let in_tx = in_tx.clone();
                            tokio::spawn(async move {
                                while let Some(m) = sub.next().await {
                                    if in_tx.send(m).await.is_err() {
                                        return;
                                    }
                                }
                            });
                        }
                        Err(e) => tracing::error!(cluster = c.0, error = %e, "cannot subscribe"),
                    }
                }
            });
        }
        for &c in hosted {
            let _ = hosts_tx.send(c);
        }
        // Make sure the subscriptions exist on the server before anyone sends.
        data.flush().await?;
        self.hosts = Some(hosts_tx);
        let ingress = Ingress {
            config: self.config.clone(),
            subjects: self.subjects.clone(),
            data: data.clone(),
            control,
            counters: Arc::clone(&self.counters),
            windows: HashMap::new(),
            awaiting: BTreeMap::new(),
        };
        tokio::spawn(ingress.run(in_rx, handle));
        // Give the subscription task a moment to reach the server.
        tokio::time::sleep(Duration::from_millis(20)).await;
        data.flush().await
    }

    /// Starts receiving for one more cluster (this process adopted it); frames its previous
    /// host did not acknowledge reach this process from the next redelivery on.
    ///
    /// # Errors
    ///
    /// [`NetError::Config`] before [`start`](Self::start).
    pub fn host(&self, cluster: ClusterId) -> Result<(), NetError> {
        self.hosts
            .as_ref()
            .and_then(|h| h.send(cluster).ok())
            .ok_or_else(|| NetError::Config("the gateway is not started".into()))
    }

    /// Its counters now.
    pub fn stats(&self) -> GatewayStats {
        self.counters.snapshot()
    }
}

struct Pending {
    subject: String,
    bytes: Bytes,
    first_sent: Instant,
    last_sent: Instant,
    deliveries: u32,
    users: u64,
}

#[derive(Default)]
struct OutCluster {
    next: u64,
    unacked: BTreeSet<u64>,
}

impl OutCluster {
    fn acked_upto(&self) -> u64 {
        self.unacked.first().map_or(self.next, |f| f - 1)
    }
}

struct Egress {
    config: GatewayConfig,
    subjects: Subjects,
    data: Connection,
    control: Connection,
    counters: Arc<Counters>,
    max_payload: usize,
    clusters: HashMap<u32, OutCluster>,
    pending: HashMap<(u32, u64), Pending>,
    metrics: crate::telemetry::GatewayMetrics,
}

impl Egress {
    async fn run<M: Serialize + Send + Sync + 'static>(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Routed<M>>,
        mut acks: async_nats::Subscriber,
    ) {
        let mut tick = tokio::time::interval(self.config.redelivery_timeout / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some(msg) = acks.next() => self.on_ack(&msg.subject, &msg.payload),
                got = rx.recv() => {
                    let Some(first) = got else {
                        self.metrics.publish(&self.counters.snapshot());
                        return;
                    };
                    let mut buf: Buffered<M> = BTreeMap::new();
                    let mut push = |(c, l, env): Routed<M>| {
                        let key = (env.priority.lane(), c.0, l.map_or(NO_LEAF, |s| s.0));
                        buf.entry(key).or_default().push(env);
                    };
                    push(first);
                    let mut n = 1;
                    while n < 64 * self.config.batch_max {
                        let Ok(r) = rx.try_recv() else { break };
                        push(r);
                        n += 1;
                    }
                    // Lanes in order: Control (lane 0) first.
                    for ((lane, c, l), envs) in buf {
                        let leaf = (l != NO_LEAF).then_some(SubClusterId(l));
                        let priority = Priority::from_lane(lane).unwrap_or(Priority::Normal);
                        let subject = self.subjects.data(ClusterId(c), leaf, priority);
                        for chunk in envs.chunks(self.config.batch_max.max(1)) {
                            self.publish_new(&subject, c, lane as u8, chunk).await;
                        }
                    }
                    let _ = self.data.client().flush().await;
                }
                _ = tick.tick() => {
                    self.redeliver().await;
                    self.metrics.publish(&self.counters.snapshot());
                }
            }
        }
    }

    /// Frames `envs` (splitting it if it is larger than the server allows) and publishes.
    async fn publish_new<M: Serialize>(
        &mut self,
        subject: &str,
        cluster: u32,
        lane: u8,
        envs: &[Envelope<Remote<M>>],
    ) {
        let out = self.clusters.entry(cluster).or_default();
        let frame = DataFrame {
            origin: self.config.process.clone(),
            cluster,
            batch: out.next + 1,
            acked_upto: out.acked_upto(),
            lane,
            envelopes: envs.iter().map(borrow_env).collect::<Vec<_>>(),
        };
        let bytes = match WireCodec::with_max_frame_bytes(usize::MAX >> 1).encode(&frame) {
            Ok(b) => b,
            Err(e) => {
                // A message type that cannot be encoded (a variant marked `skip`): reported.
                tracing::error!(error = %e, "cannot encode a frame; its messages are undeliverable");
                Counters::add(&self.counters.undeliverable, users(envs));
                return;
            }
        };
        let bytes = self.data.seal(subject, bytes);
        if bytes.len() > self.max_payload && envs.len() > 1 {
            let (a, b) = envs.split_at(envs.len() / 2);
            Box::pin(self.publish_new(subject, cluster, lane, a)).await;
            Box::pin(self.publish_new(subject, cluster, lane, b)).await;
            return;
        }
        let out = self.clusters.entry(cluster).or_default();
        out.next += 1;
        out.unacked.insert(frame.batch);
        let bytes = Bytes::from(bytes);
        Counters::add(&self.counters.frames_out, 1);
        Counters::add(&self.counters.frames_pending, 1);
        Counters::add(&self.counters.bytes_out, bytes.len() as u64);
        if let Err(e) = self
            .data
            .client()
            .publish(subject.to_owned(), bytes.clone())
            .await
        {
            tracing::warn!(error = %e, "publish failed; the frame will be redelivered");
        }
        self.pending.insert(
            (cluster, frame.batch),
            Pending {
                subject: subject.to_owned(),
                bytes,
                first_sent: Instant::now(),
                last_sent: Instant::now(),
                deliveries: 1,
                users: users(envs),
            },
        );
    }

    fn on_ack(&mut self, subject: &str, payload: &[u8]) {
        let Some(frame) = self.control.open(subject, payload) else {
            Counters::add(&self.counters.refused_frames, 1);
            return;
        };
        let Ok(ack) = WireCodec::default().decode::<AckFrame>(frame) else {
            Counters::add(&self.counters.corrupt_frames, 1);
            return;
        };
        for b in ack.batches {
            if self.pending.remove(&(ack.cluster, b)).is_some() {
                Counters::add(&self.counters.frames_acked, 1);
                self.counters.frames_pending.fetch_sub(1, Ordering::AcqRel);
                if let Some(c) = self.clusters.get_mut(&ack.cluster) {
                    c.unacked.remove(&b);
                }
            }
        }
    }

    async fn redeliver(&mut self) {
        let now = Instant::now();
        let timeout = self.config.redelivery_timeout;
        let give_up = self.config.give_up_after;
        let wait = |p: &Pending| timeout * (1_u32 << (p.deliveries - 1).min(3));
        let due: Vec<(u32, u64)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_sent) >= wait(p))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(p) = self.pending.get_mut(&key) else {
                continue;
            };
            if now.duration_since(p.first_sent) < give_up {
                p.deliveries += 1;
                p.last_sent = now;
                Counters::add(&self.counters.frames_redelivered, 1);
                Counters::add(&self.counters.bytes_out, p.bytes.len() as u64);
                let _ = self
                    .data
                    .client()
                    .publish(p.subject.clone(), p.bytes.clone())
                    .await;
                continue;
            }
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            tracing::error!(
                subject = %p.subject,
                messages = p.users,
                "frame never acknowledged; its messages are counted undeliverable"
            );
            Counters::add(&self.counters.undeliverable, p.users);
            self.counters.frames_pending.fetch_sub(1, Ordering::AcqRel);
            if let Some(c) = self.clusters.get_mut(&key.0) {
                c.unacked.remove(&key.1);
            }
        }
        let _ = self.data.client().flush().await;
    }
}

/// Envelopes are serialized by reference (a `&M` encodes as an `M`).
fn borrow_env<M>(e: &Envelope<Remote<M>>) -> Envelope<Remote<&M>> {
    Envelope {
        from: e.from,
        to: e.to,
        priority: e.priority,
        seq: e.seq,
        correlation: e.correlation,
        deadline: e.deadline,
        ack_required: e.ack_required,
        payload: match &e.payload {
            Remote::User(m) => Remote::User(m),
            Remote::Ack(id) => Remote::Ack(*id),
        },
    }
}

fn users<M>(envs: &[Envelope<Remote<M>>]) -> u64 {
    envs.iter()
        .filter(|e| matches!(e.payload, Remote::User(_)))
        .count() as u64
}

/// Frames that wait together, Control first and FIFO within a lane.
fn by_priority<M>(mut frames: Vec<DataFrame<M>>) -> Vec<DataFrame<M>> {
    frames.sort_by_key(|f| f.lane);
    frames
}

/// The receiver's window of one (origin, cluster).
#[derive(Default)]
struct Window {
    floor: u64,
    above: BTreeSet<u64>,
}

impl Window {
    /// Records frame `b`; false if it was seen before.
    fn admit(&mut self, b: u64, acked_upto: u64) -> bool {
        if acked_upto > self.floor {
            self.floor = acked_upto;
            self.above = self.above.split_off(&(self.floor + 1));
        }
        if b <= self.floor || !self.above.insert(b) {
            return false;
        }
        while self.above.first() == Some(&(self.floor + 1)) {
            self.above.pop_first();
            self.floor += 1;
        }
        true
    }
}

struct Ingress {
    config: GatewayConfig,
    subjects: Subjects,
    data: Connection,
    control: Connection,
    counters: Arc<Counters>,
    windows: HashMap<(String, u32), Window>,
    /// Frames injected and not acknowledged yet, per (origin, cluster).
    awaiting: BTreeMap<(String, u32), Vec<u64>>,
}

impl Ingress {
    async fn run<B: Host>(
        mut self,
        mut rx: mpsc::Receiver<async_nats::Message>,
        handle: RuntimeHandle<B>,
    ) where
        B::Msg: DeserializeOwned,
    {
        let mut poll = tokio::time::interval(self.config.ack_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let Some(first) = got else { return };
                    let mut msgs = vec![first];
                    while msgs.len() < 1024 {
                        let Ok(m) = rx.try_recv() else { break };
                        msgs.push(m);
                    }
                    let mut frames = Vec::with_capacity(msgs.len());
                    for m in msgs {
                        Counters::add(&self.counters.bytes_in, m.payload.len() as u64);
                        // The tag first: nothing of a forged frame is decoded, handled or
                        // acknowledged.
                        let Some(frame) = self.data.open(&m.subject, &m.payload) else {
                            Counters::add(&self.counters.refused_frames, 1);
                            continue;
                        };
                        match WireCodec::with_max_frame_bytes(usize::MAX >> 1).decode::<DataFrame<B::Msg>>(frame) {
                            Ok(f) => frames.push(f),
                            Err(e) => {
                                // Not acknowledged: the sender publishes it again, and gives
                                // up (counting its messages) if it never arrives intact.
                                tracing::warn!(subject = %m.subject, error = %e, "corrupted frame dropped, not acknowledged");
                                Counters::add(&self.counters.corrupt_frames, 1);
                            }
                        }
                    }
                    for f in by_priority(frames) {
                        self.on_frame(f, &handle).await;
                    }
                }
                _ = poll.tick(), if !self.awaiting.is_empty() => {
                    if handle.in_flight() == 0 {
                        self.ack_all().await;
                    }
                }
            }
        }
    }

    async fn on_frame<B: Host>(&mut self, f: DataFrame<B::Msg>, handle: &RuntimeHandle<B>) {
        // The origin names the subject acknowledgements go to and keys a de-duplication
        // window: a name that is not a process name is a forged frame, not a new sender.
        if !crate::valid_process_name(&f.origin) {
            tracing::warn!("data frame from an invalid origin dropped");
            Counters::add(&self.counters.corrupt_frames, 1);
            return;
        }
        let key = (f.origin.clone(), f.cluster);
        let fresh = self
            .windows
            .entry(key.clone())
            .or_default()
            .admit(f.batch, f.acked_upto);
        if !fresh {
            Counters::add(&self.counters.duplicate_frames, 1);
            let waiting = self
                .awaiting
                .get(&key)
                .is_some_and(|v| v.contains(&f.batch));
            if !waiting {
                // Handled already: the acknowledgement may have been lost; send it again.
                self.send_ack(&f.origin, f.cluster, vec![f.batch]).await;
            }
            return;
        }
        Counters::add(&self.counters.frames_in, 1);
        for env in f.envelopes {
            let user = matches!(env.payload, Remote::User(_));
            match handle.inject(env).await {
                Ok(()) => Counters::add(&self.counters.envelopes_in, 1),
                Err(InjectError::Unknown(env)) => {
                    tracing::debug!(to = %env.to, "dead letter: not hosted here");
                    if user {
                        Counters::add(&self.counters.dead_letters, 1);
                    }
                }
                Err(InjectError::Stopped(_)) => return,
            }
        }
        self.awaiting.entry(key).or_default().push(f.batch);
        Counters::add(&self.counters.frames_awaiting_ack, 1);
    }

    async fn ack_all(&mut self) {
        let all = std::mem::take(&mut self.awaiting);
        for ((origin, cluster), batches) in all {
            let n = batches.len() as u64;
            self.send_ack(&origin, cluster, batches).await;
            self.counters
                .frames_awaiting_ack
                .fetch_sub(n, Ordering::AcqRel);
        }
        let _ = self.control.client().flush().await;
    }

    async fn send_ack(&self, origin: &str, cluster: u32, batches: Vec<u64>) {
        let ack = AckFrame { cluster, batches };
        match WireCodec::default().encode(&ack) {
            Ok(bytes) => {
                let subject = self.subjects.acks(origin);
                let sealed = self.control.seal(&subject, bytes);
                if let Err(e) = self.control.client().publish(subject, sealed.into()).await {
                    tracing::warn!(error = %e, "acknowledgement not sent; the frame will come again");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode an acknowledgement"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_each_frame_once() {
        let mut w = Window::default();
        assert!(w.admit(1, 0));
        assert!(w.admit(3, 0));
        assert!(!w.admit(1, 0));
        assert!(!w.admit(3, 0));
        assert!(w.admit(2, 0));
        assert_eq!((w.floor, w.above.len()), (3, 0));
        // A sender's mark moves the floor (frames up to it were handled elsewhere).
        let mut w = Window::default();
        assert!(!w.admit(50, 56), "below the acknowledged mark: a duplicate");
        assert!(w.admit(58, 56));
        assert!(w.admit(57, 56));
        assert_eq!(w.floor, 58);
    }

    #[test]
    fn frames_waiting_together_go_by_priority_then_arrival() {
        let f = |lane: u8, batch: u64| DataFrame::<u32> {
            origin: "o".into(),
            cluster: 0,
            batch,
            acked_upto: 0,
            lane,
            envelopes: Vec::new(),
        };
        let order: Vec<(u8, u64)> = by_priority(vec![f(3, 1), f(1, 2), f(3, 3), f(0, 4), f(1, 5)])
            .iter()
            .map(|f| (f.lane, f.batch))
            .collect();
        assert_eq!(order, vec![(0, 4), (1, 2), (1, 5), (3, 1), (3, 3)]);
    }

    #[test]
    fn routes_name_cluster_and_leaf() {
        let r = RouteTable::new();
        r.place_agents([
            (AgentId(5), ClusterId(2), Some(SubClusterId(9))),
            (AgentId(1), ClusterId(0), None),
        ]);
        assert_eq!(
            r.locate(AgentId(5).into()),
            Some((ClusterId(2), Some(SubClusterId(9))))
        );
        assert_eq!(r.locate(AgentId(1).into()), Some((ClusterId(0), None)));
        assert_eq!(r.locate(AgentId(3).into()), None);
        assert_eq!(r.locate(AgentId(99).into()), None);
        assert_eq!(
            r.locate(SubClusterId(9).into()),
            Some((ClusterId(2), Some(SubClusterId(9))))
        );
        assert_eq!(r.locate(Address::Orchestrator), None);
    }
}
