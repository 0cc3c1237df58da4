//! The errors of the transport.

use std::time::Duration;

/// What went wrong talking over NATS.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration cannot work (checked before connecting).
    #[error("NATS configuration: {0}")]
    Config(String),
    /// The server refused the credentials. The process must not start without them.
    #[error(
        "NATS server at {url} refused authentication ({reason}): check the credentials \
         (--nats-creds, --nats-nkey, --nats-user with QORCH_NATS_PASSWORD, or QORCH_NATS_TOKEN)"
    )]
    Auth {
        /// The server, without secrets.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// The TLS handshake failed (an unknown certificate authority, a wrong name, a server
    /// without TLS).
    #[error(
        "TLS with the NATS server at {url} failed: {reason} (check --nats-ca, --nats-cert and \
         --nats-key, and the server's certificate)"
    )]
    Tls {
        /// The server, without secrets.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server cannot be reached.
    #[error("cannot connect to the NATS server at {url}: {reason} (is nats-server running?)")]
    Connect {
        /// The server, without secrets.
        url: String,
        /// Why.
        reason: String,
    },
    /// Publishing, subscribing or flushing failed.
    #[error("NATS {op} failed: {reason}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// A frame could not be encoded.
    #[error("cannot encode a frame: {0}")]
    Encode(#[from] qorch_protocol::EncodeError),
    /// A frame arrived corrupted or from an incompatible build.
    #[error("corrupted frame on {subject}: {source}")]
    Decode {
        /// Where it came from.
        subject: String,
        /// What was wrong.
        source: qorch_protocol::DecodeError,
    },
    /// No answer to a control call.
    #[error("no answer from {subject} within {timeout:?}")]
    Timeout {
        /// Whom we asked.
        subject: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The peer answered with an error.
    #[error("{subject} answered: {message}")]
    Remote {
        /// Whom we asked.
        subject: String,
        /// Its error.
        message: String,
    },
}

impl NetError {
    /// For `map_err`: a failed NATS operation `op`.
    pub(crate) fn io<E: std::fmt::Display>(op: &'static str) -> impl FnOnce(E) -> NetError {
        move |e| NetError::Io {
            op,
            reason: e.to_string(),
        }
    }
}
