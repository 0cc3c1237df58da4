//! [`DashboardError`]: why a dashboard did not start.

use std::net::SocketAddr;

/// Why a dashboard could not start. Every one of these is found before a run begins.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The address is not `IP:PORT` (for example `127.0.0.1:8080` or `[::1]:8080`).
    #[error("the dashboard address {given:?} is not IP:PORT (for example 127.0.0.1:8080)")]
    BadAddress {
        /// What was given (at most 80 characters of it).
        given: String,
    },
    /// Another program (or another dashboard) listens on that port.
    #[error("the dashboard address {addr} is already in use")]
    PortInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A non-loopback address without the explicit permission.
    #[error(
        "the dashboard address {addr} is not a loopback address: serving it needs an explicit \
         permission (qorch simulate --serve-remote) and a token"
    )]
    RemoteNotAllowed {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A non-loopback address without a token.
    #[error(
        "the dashboard address {addr} is not a loopback address: serving it needs a token \
         (set {env})"
    )]
    TokenMissing {
        /// The address asked for.
        addr: SocketAddr,
        /// The environment variable the command line reads the token from.
        env: &'static str,
    },
    /// A client limit of zero, or above `MAX_CLIENTS_LIMIT`.
    #[error("the dashboard's client limit must be between 1 and 256")]
    NoClients,
    /// Binding failed for another reason (no such interface, no permission, ...).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The server's thread or executor could not start.
    #[error("cannot start the dashboard's server")]
    Start(#[source] std::io::Error),
}
