//! [`DashboardConfig`]: where to listen, who may read, how many at once.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::DashboardError;

/// The environment variable `qorch simulate` reads the dashboard's token from.
pub const TOKEN_ENV: &str = "QORCH_DASHBOARD_TOKEN";

/// Live clients (open pages) served at once by default; one more is refused with
/// `503 Service Unavailable`.
pub const DEFAULT_MAX_CLIENTS: usize = 8;

/// The most clients a configuration may allow.
pub const MAX_CLIENTS_LIMIT: usize = 256;

/// How a dashboard serves.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Where to listen. A loopback address (`127.0.0.1`, `::1`) by default; any other needs
    /// [`allow_remote`](Self::allow_remote) and a [`token`](Self::token). Port 0 picks a
    /// free port ([`Dashboard::local_addr`](crate::Dashboard::local_addr) says which).
    pub addr: SocketAddr,
    /// Whether a non-loopback address may be served.
    pub allow_remote: bool,
    /// A token every request must carry (`Authorization: Bearer TOKEN`, or `?token=TOKEN`
    /// in the page's address); required for a non-loopback address, optional otherwise.
    pub token: Option<String>,
    /// Live clients (event streams) at once, 1 to [`MAX_CLIENTS_LIMIT`]; more are refused.
    pub max_clients: usize,
    /// How often open pages are updated (and the tree sampled, while a page is open).
    pub refresh: Duration,
}

impl DashboardConfig {
    /// Loopback `addr`, no token, [`DEFAULT_MAX_CLIENTS`], updates every 500 ms.
    pub fn new(addr: SocketAddr) -> Self {
        DashboardConfig {
            addr,
            allow_remote: false,
            token: None,
            max_clients: DEFAULT_MAX_CLIENTS,
            refresh: Duration::from_millis(500),
        }
    }

    /// Checks the rules above.
    ///
    /// # Errors
    ///
    /// [`DashboardError::RemoteNotAllowed`], [`DashboardError::TokenMissing`] or
    /// [`DashboardError::NoClients`].
    pub fn validate(&self) -> Result<(), DashboardError> {
        if self.max_clients == 0 || self.max_clients > MAX_CLIENTS_LIMIT {
            return Err(DashboardError::NoClients);
        }
        if self.addr.ip().is_loopback() {
            return Ok(());
        }
        if !self.allow_remote {
            return Err(DashboardError::RemoteNotAllowed { addr: self.addr });
        }
        if self.token.as_deref().is_none_or(str::is_empty) {
            return Err(DashboardError::TokenMissing {
                addr: self.addr,
                env: TOKEN_ENV,
            });
        }
        Ok(())
    }
}

/// Parses `IP:PORT` (`127.0.0.1:8080`, `[::1]:8080`); host names are refused, so that what
/// is served is what was written.
///
/// # Errors
///
/// [`DashboardError::BadAddress`].
pub fn parse_addr(s: &str) -> Result<SocketAddr, DashboardError> {
    s.trim().parse().map_err(|_| DashboardError::BadAddress {
        given: s.chars().take(80).collect(),
    })
}
