//! [`RuntimeConfig`]: the settings of a runtime, and their validation.

use std::time::Duration;

use qorch_protocol::{MailboxConfig, MailboxConfigError};

/// Settings of a runtime (see `QuantumOrchestrator::builder`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Worker threads (one actix arbiter each); clusters are spread over them round-robin.
    pub workers: usize,
    /// Seed of every random choice in the runtime (agents' own streams included).
    pub seed: u64,
    /// Lanes of every node's mailbox.
    pub mailbox: MailboxConfig,
    /// Lanes of the application inbox (messages agents send to the orchestrator or a cluster).
    pub inbox: MailboxConfig,
    /// Restarts allowed per agent within a period before it is failed for good (a
    /// behaviour may set its own, [`Agent::restart_intensity`](crate::Agent::restart_intensity)).
    pub restart: RestartIntensity,
    /// How often nodes send heartbeats (and check their children's).
    pub heartbeat_interval: Duration,
    /// Silence after which a node is marked failed by its parent. Keep it well above the
    /// longest time a worker may be busy with other nodes (seconds, under heavy load): a busy
    /// node is slow, not dead. Any letter from a child counts as a sign of life.
    pub heartbeat_timeout: Duration,
    /// Time after which an unacknowledged reliable message is redelivered.
    pub redelivery_timeout: Duration,
    /// Deliveries of a reliable message before giving up (and counting it undeliverable).
    pub max_deliveries: u32,
    /// Period of nodes' timer work (agent timers, redeliveries, backpressure retries).
    pub timer_resolution: Duration,
    /// Record the trace of handled messages (for tests of determinism).
    pub trace: bool,
    /// Observe who talks to whom: one agent-to-agent message in this many is counted (by
    /// sequence number, so deterministically) and reported with each round (0: off).
    pub affinity_sample: u32,
    /// How messages between agents travel between the nodes of this process.
    pub routing: Routing,
    /// One message delivered to an agent in this many (per node) runs inside a `handle`
    /// span (`tracing`, TRACE level) naming the agent and its node (0: none, 1: every
    /// message). Spans cost even when no subscriber records them, hence the sampling.
    pub message_span_sample: u32,
}

/// How messages between agents travel between the nodes of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Routing {
    /// Along the tree: up to the common ancestor and down, one hop per node, every node on
    /// the way seeing (and counting) the message: from one cluster to another, through the
    /// orchestrator's thread.
    Tree,
    /// The default: straight to the destination agent's node, one hop (a second one when the
    /// agent moves meanwhile), from worker to worker. Messages between two agents still
    /// arrive in the order they were sent (they always take the same way); messages for
    /// clusters, the application, other processes and the runtime's own letters still follow
    /// the tree, which stays the model for addresses, status and supervision. Lower latency
    /// across clusters (an ask crosses no intermediate node, and no message between clusters
    /// waits for the orchestrator's thread); intermediate nodes no longer count the traffic
    /// (`NodeStats::forwarded` counts only the hops a message takes).
    #[default]
    Direct,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            seed: 0,
            mailbox: MailboxConfig::uniform(1024),
            inbox: MailboxConfig::uniform(65_536),
            restart: RestartIntensity::default(),
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(3),
            redelivery_timeout: Duration::from_millis(200),
            max_deliveries: 10,
            timer_resolution: Duration::from_millis(10),
            trace: false,
            affinity_sample: 16,
            routing: Routing::Direct,
            message_span_sample: 64,
        }
    }
}

/// How many times an agent may be restarted within a period before it is failed for good:
/// OTP's restart intensity and period, one-for-one (only the failing agent restarts). Past
/// it, the failure escalates to the agent's sub-cluster: the agent is failed, the sub-cluster
/// reports itself degraded up the tree, and the failure is logged at ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestartIntensity {
    /// Restarts allowed within the period.
    pub max_restarts: u32,
    /// The period the restarts are counted over; `None`: the agent's whole life, which does
    /// not depend on timing (simulations use it, so that a seed gives one report).
    pub within: Option<Duration>,
}

impl RestartIntensity {
    /// At most `max_restarts` restarts within any `within`.
    pub const fn new(max_restarts: u32, within: Duration) -> Self {
        RestartIntensity {
            max_restarts,
            within: Some(within),
        }
    }

    /// At most `max_restarts` restarts over the agent's whole life.
    pub const fn lifetime(max_restarts: u32) -> Self {
        RestartIntensity {
            max_restarts,
            within: None,
        }
    }
}

impl Default for RestartIntensity {
    /// 3 restarts within 5 seconds.
    fn default() -> Self {
        RestartIntensity::new(3, Duration::from_secs(5))
    }
}

/// What is wrong with a [`RuntimeConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No worker thread.
    #[error("workers must be at least 1")]
    NoWorkers,
    /// The lanes of the nodes' mailboxes (`"mailbox"`) or of the application inbox
    /// (`"inbox"`) are invalid.
    #[error("{which}: invalid lanes")]
    Mailbox {
        /// Which mailbox.
        which: &'static str,
        /// What is wrong with it.
        #[source]
        source: MailboxConfigError,
    },
    /// A period or timeout is zero.
    #[error("{0} must be positive")]
    ZeroDuration(&'static str),
    /// The heartbeat timeout does not exceed the interval: every node would be failed.
    #[error("heartbeat timeout ({timeout:?}) must exceed the heartbeat interval ({interval:?})")]
    HeartbeatTimeout {
        /// The timeout.
        timeout: Duration,
        /// The interval.
        interval: Duration,
    },
    /// `max_deliveries` is zero: reliable messages would never be sent.
    #[error("max_deliveries must be at least 1")]
    NoDeliveries,
}

impl RuntimeConfig {
    /// Checks the configuration as [`RuntimeBuilder::build`](crate::RuntimeBuilder::build) does, before anything starts.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::NoWorkers);
        }
        self.mailbox
            .validate()
            .map_err(|source| ConfigError::Mailbox {
                which: "mailbox",
                source,
            })?;
        self.inbox
            .validate()
            .map_err(|source| ConfigError::Mailbox {
                which: "inbox",
                source,
            })?;
        if self.restart.within.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroDuration("restart period"));
        }
        for (name, d) in [
            ("heartbeat interval", self.heartbeat_interval),
            ("redelivery timeout", self.redelivery_timeout),
            ("timer resolution", self.timer_resolution),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(ConfigError::HeartbeatTimeout {
                timeout: self.heartbeat_timeout,
                interval: self.heartbeat_interval,
            });
        }
        if self.max_deliveries == 0 {
            return Err(ConfigError::NoDeliveries);
        }
        Ok(())
    }
}
