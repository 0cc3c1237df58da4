//! A connection to the NATS server ([`Connection`]), the subscriptions made on it
//! ([`Subscription`]) and what they deliver ([`Delivery`]): qorch-net's own types over the
//! `async-nats` client, so that no other crate names it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::{FrameKey, NetError};

/// One connection to the NATS server, made by [`NatsConfig::connect`](crate::NatsConfig::connect).
/// Cheap to clone: clones share the connection.
#[derive(Clone, Debug)]
pub struct Connection {
    client: async_nats::Client,
    auth: Arc<Auth>,
}

/// The deployment key of a connection's frames, and the frames it refused.
#[derive(Debug)]
struct Auth {
    key: Option<FrameKey>,
    refused: AtomicU64,
}

impl Connection {
    pub(crate) fn new(client: async_nats::Client, key: Option<FrameKey>) -> Connection {
        Connection {
            client,
            auth: Arc::new(Auth {
                key,
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// Whether frames on this connection (control frames, and a gateway's data frames and
    /// acknowledgements) are sealed and checked under a key.
    pub fn authenticated(&self) -> bool {
        self.auth.key.is_some()
    }

    /// Frames refused so far on this connection (and its clones): a missing or invalid tag
    /// where a key is set. Control frames, and the data frames and acknowledgements of a
    /// gateway started on it.
    pub fn refused_frames(&self) -> u64 {
        self.auth.refused.load(Ordering::Relaxed)
    }

    /// A frame for `subject`, sealed under the key if there is one.
    pub(crate) fn seal(&self, subject: &str, frame: Vec<u8>) -> Vec<u8> {
        match &self.auth.key {
            Some(k) => k.seal(subject, frame),
            None => frame,
        }
    }

    /// The frame inside a message received on `subject`, or `None` (counted and logged) if
    /// its tag is missing or wrong.
    pub(crate) fn open<'a>(&self, subject: &str, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let Some(k) = &self.auth.key else {
            return Some(bytes);
        };
        if let Some(frame) = k.open(subject, bytes) {
            return Some(frame);
        }
        let n = self.auth.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                subject,
                refused = n,
                "frame without a valid MAC refused (a process without this deployment's \
                 key, or a forgery)"
            );
        }
        None
    }

    /// The client underneath, for this crate's modules.
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Publishes `payload` on `subject` (buffered: [`flush`](Self::flush) to be sure it left).
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the client cannot take it.
    pub async fn publish(
        &self,
        subject: impl Into<String>,
        payload: impl Into<Bytes>,
    ) -> Result<(), NetError> {
        self.client
            .publish(subject.into(), payload.into())
            .await
            .map_err(NetError::io("publish"))
    }

    /// Subscribes to `subject` (wildcards allowed).
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the subscription fails.
    pub async fn subscribe(&self, subject: impl Into<String>) -> Result<Subscription, NetError> {
        self.client
            .subscribe(subject.into())
            .await
            .map(|inner| Subscription { inner })
            .map_err(NetError::io("subscribe"))
    }

    /// Waits until everything published so far has reached the server.
    ///
    /// # Errors
    ///
    /// [`NetError::Io`] if the flush fails.
    pub async fn flush(&self) -> Result<(), NetError> {
        self.client.flush().await.map_err(NetError::io("flush"))
    }
}

/// Messages arriving on a subscribed subject.
#[derive(Debug)]
pub struct Subscription {
    inner: async_nats::Subscriber,
}

impl Subscription {
    /// The next message; `None` once the subscription is closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.inner.next().await.map(|m| Delivery {
            subject: m.subject.to_string(),
            payload: m.payload,
        })
    }
}

/// A message as a [`Subscription`] delivers it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// Its bytes.
    pub payload: Bytes,
}
