//! A connection to the NATS server ([`Connection`]), the subscriptions made on it
//! ([`Subscription`]) and what they deliver ([`Delivery`]): qorch-net's own types over the
//! `async-nats` client, so that no other crate names it.

use bytes::Bytes;
use futures_util::StreamExt;

use crate::NetError;

/// One connection to the NATS server, made by [`NatsConfig::connect`](crate::NatsConfig::connect).
/// Cheap to clone: clones share the connection.
#[derive(Clone, Debug)]
pub struct Connection {
    client: async_nats::Client,
}

impl Connection {
    pub(crate) fn new(client: async_nats::Client) -> Connection {
        Connection { client }
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
