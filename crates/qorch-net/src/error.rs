//! The errors of the transport.

use std::time::Duration;

/// Any error, boxed: async-nats has one error type per operation.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong talking over NATS.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration cannot work (checked before connecting).
    #[error("NATS configuration: {0}")]
    Config(String),
    /// A file the configuration names (credentials, nkey) cannot be read.
    #[error("NATS configuration: {what} {path}")]
    ConfigFile {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The server refused the credentials. The process must not start without them.
    #[error(
        "NATS server at {url} refused authentication: check the credentials \
         (--nats-creds, --nats-nkey, --nats-user with QORCH_NATS_PASSWORD, or QORCH_NATS_TOKEN)"
    )]
    Auth {
        /// The server, without secrets.
        url: String,
        /// What the server said.
        #[source]
        source: NatsError,
    },
    /// The TLS handshake failed (an unknown certificate authority, a wrong name, a server
    /// without TLS).
    #[error(
        "TLS with the NATS server at {url} failed (check --nats-ca, --nats-cert and \
         --nats-key, and the server's certificate)"
    )]
    Tls {
        /// The server, without secrets.
        url: String,
        /// Why.
        #[source]
        source: NatsError,
    },
    /// The server cannot be reached.
    #[error("cannot connect to the NATS server at {url} (is nats-server running?)")]
    Connect {
        /// The server, without secrets.
        url: String,
        /// Why.
        #[source]
        source: NatsError,
    },
    /// Publishing, subscribing or flushing failed.
    #[error("NATS {op} failed")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Why.
        #[source]
        source: NatsError,
    },
    /// A frame could not be encoded.
    #[error("cannot encode a frame")]
    Encode(#[from] qorch_protocol::EncodeError),
    /// A frame arrived corrupted or from an incompatible build.
    #[error("corrupted frame on {subject}")]
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
    #[error("{subject} answered with an error")]
    Remote {
        /// Whom we asked.
        subject: String,
        /// Its error, as it sent it.
        #[source]
        source: RemoteError,
    },
}

/// An error another process answered with: its message (the whole chain of causes, as
/// that process wrote it), since the error itself cannot cross.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

/// An error of the NATS client (async-nats has one type per operation). Its text already
/// includes its causes, so it names no further source (they would be printed twice);
/// [`get_ref`](Self::get_ref) gives the client's error itself.
#[derive(Debug)]
pub struct NatsError(BoxError);

impl NatsError {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> NatsError {
        NatsError(Box::new(e))
    }

    /// The client's error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for NatsError {}

impl NetError {
    /// For `map_err`: a failed NATS operation `op`.
    pub(crate) fn io<E>(op: &'static str) -> impl FnOnce(E) -> NetError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| NetError::Io {
            op,
            source: NatsError::new(e),
        }
    }
}
