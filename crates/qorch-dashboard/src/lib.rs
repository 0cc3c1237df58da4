//! qorch's live dashboard: one page, served by the program itself with its script and
//! style built in (no CDN: it works offline), updated live over Server-Sent Events.
//!
//! It shows the tree (clusters, then sub-clusters, with status, agents, mailbox depth and
//! message rates, aggregated per subtree and opened one level at a time, so it stays
//! usable at a million agents), the allocation per pool over rounds (granted against
//! demanded, and unmet), the efficiency against the bound per round, the solvers'
//! energies, and a timeline of faults, restarts, node losses and re-clustering moves. It
//! is read-only.
//!
//! A run pushes what it does into a [`Feed`] (rounds, pools, events, its state); the
//! [`Dashboard`] serves the feed, and samples the tree of the runtime the feed
//! [observes](Feed::observe) while a page is open. `qorch simulate --serve ADDR` does this
//! for simulations; an application serves its own runtime with [`serve`]:
//!
//! ```
//! use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator};
//!
//! struct Quiet;
//! impl Agent for Quiet {
//!     type Msg = u64;
//!     fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) -> AgentResult {
//!         Ok(())
//!     }
//! }
//!
//! let rt = QuantumOrchestrator::<Quiet>::builder().build().unwrap();
//! let dashboard = qorch_dashboard::serve(&rt.handle(), "127.0.0.1:0").unwrap();
//! assert!(dashboard.local_addr().ip().is_loopback());
//! assert_eq!(dashboard.clients(), 0); // no page open: nothing is sampled
//! // ... the application runs; http://ADDR/ shows its tree ...
//! dashboard.feed().finish(Ok("done".into()));
//! dashboard.stop();
//! rt.shutdown();
//! ```
//!
//! # Limits
//!
//! * It listens on a loopback address unless told otherwise: another address needs
//!   [`DashboardConfig::allow_remote`] and a [token](DashboardConfig::token), which every
//!   request must then carry (`Authorization: Bearer TOKEN` or `?token=TOKEN`).
//! * At most [`DashboardConfig::max_clients`] pages are served at once
//!   ([`DEFAULT_MAX_CLIENTS`] by default, at most [`MAX_CLIENTS_LIMIT`]); another is
//!   refused with `503 Service Unavailable`.
//! * Histories are bounded ([`ROUNDS_KEPT`] rounds, [`POOL_ROUNDS_KEPT`] rounds of pools,
//!   [`EVENTS_KEPT`] events); a page gets the top level of the tree and one node's
//!   children when it opens that node, never per-agent data.
//!
//! # Threads
//!
//! The server runs on a thread of its own, on a current-thread tokio executor: it takes
//! nothing from the runtime's workers. With no page open it samples nothing.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod error;
mod feed;
mod server;
mod tree;

pub use config::{DEFAULT_MAX_CLIENTS, DashboardConfig, MAX_CLIENTS_LIMIT, TOKEN_ENV, parse_addr};
pub use error::DashboardError;
pub use feed::{
    ENERGIES_KEPT, EVENTS_KEPT, Event, Feed, POOL_ROUNDS_KEPT, PoolPoint, PoolSample,
    ProcessSample, ROUNDS_KEPT, RoundPoint, RunInfo, RunState,
};
pub use server::Dashboard;
pub use tree::TreeNode;

use qorch_runtime::{Host, RuntimeHandle};

/// Serves a dashboard of `handle`'s runtime on `addr` (`IP:PORT`, a loopback address; see
/// [`Dashboard::start`] for others), with the default limits. The returned dashboard's
/// [`feed`](Dashboard::feed) takes the application's rounds and events, if it has any.
///
/// # Errors
///
/// [`DashboardError::BadAddress`], and as [`Dashboard::start`].
pub fn serve<B: Host>(handle: &RuntimeHandle<B>, addr: &str) -> Result<Dashboard, DashboardError> {
    let config = DashboardConfig::new(parse_addr(addr)?);
    let feed = Feed::new();
    feed.observe(handle.observer());
    feed.running();
    Dashboard::start(config, feed)
}
