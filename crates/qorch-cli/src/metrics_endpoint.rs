//! `--metrics ADDR`: a Prometheus endpoint (`GET /metrics` on ADDR) for `qorch simulate` and
//! `qorch node`, through `metrics-exporter-prometheus`. The libraries publish to the
//! `metrics` facade (`docs/metrics.md`); this module installs the recorder that serves them.
//!
//! The address is checked before the run: one that does not parse is refused by the
//! argument parser, and one that cannot be bound (in use, not local, no permission) is a
//! [`MetricsError`], both exiting with status 2 like other usage errors.

use std::net::{SocketAddr, TcpListener};

use clap::Args as ClapArgs;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Buckets (seconds) of the `_seconds` histograms: from 1 us (a message's handling) to
/// 60 s (a large round).
const SECONDS_BUCKETS: &[f64] = &[
    1e-6, 4e-6, 16e-6, 64e-6, 256e-6, 1e-3, 4e-3, 16e-3, 64e-3, 0.25, 1.0, 4.0, 16.0, 60.0,
];

/// The metrics endpoint's option.
#[derive(ClapArgs, Debug, Clone, Default)]
pub(crate) struct MetricsArgs {
    /// Serve Prometheus metrics on this address (IP:PORT, for instance 127.0.0.1:9464) at
    /// /metrics while the command runs.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
}

/// Why the endpoint cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetricsError {
    /// Another process listens there.
    #[error("--metrics {0}: the address is already in use")]
    InUse(SocketAddr),
    /// The address cannot be bound for another reason.
    #[error("--metrics {addr}: cannot listen there")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exporter failed to start (after the address was found free).
    #[error("--metrics {addr}: the Prometheus exporter did not start: {reason}")]
    Exporter {
        /// The address.
        addr: SocketAddr,
        /// The exporter's reason.
        reason: String,
    },
}

impl MetricsArgs {
    /// Starts the endpoint if `--metrics` was given: the recorder is installed for the
    /// whole process and the endpoint serves until it exits.
    pub(crate) fn serve(&self) -> Result<(), MetricsError> {
        match self.metrics {
            Some(addr) => serve(addr),
            None => Ok(()),
        }
    }
}

/// Installs the Prometheus recorder and serves it on `addr`.
pub(crate) fn serve(addr: SocketAddr) -> Result<(), MetricsError> {
    // The exporter reports a failed bind as text only: bind once here to tell an address in
    // use from the other failures, then let it go for the exporter.
    match TcpListener::bind(addr) {
        Ok(l) => drop(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(MetricsError::InUse(addr));
        }
        Err(source) => return Err(MetricsError::Listen { addr, source }),
    }
    builder()
        .with_http_listener(addr)
        .install()
        .map_err(|e| MetricsError::Exporter {
            addr,
            reason: e.to_string(),
        })
}

/// The exporter's settings: real histograms (buckets) for the `_seconds` series.
pub(crate) fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .expect("the buckets are not empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_in_use_is_refused_before_the_run() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(matches!(serve(addr), Err(MetricsError::InUse(a)) if a == addr));
    }
}
