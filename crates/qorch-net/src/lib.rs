//! qorch beyond one process: runtimes in several processes or hosts joined over
//! [NATS](https://nats.io) (`nats-server`, the `async-nats` client), never a home-made
//! network layer.
//!
//! * [`NatsConfig`]: the server, credentials (creds file, nkey, user/password, token) and
//!   TLS; a process that cannot authenticate does not start ([`NetError::Auth`]), and no
//!   secret reaches a log line.
//! * [`Gateway`]: a runtime's [`qorch_runtime::RemoteLink`]. Envelopes for agents other
//!   processes host travel as bincode frames on subjects that mirror the hierarchy
//!   ([`Subjects`]), by priority, acknowledged once handled, redelivered until then, and
//!   de-duplicated: at-least-once on the wire, exactly once in the agents.
//! * [`beacon`] and [`Membership`]: heartbeats, and the detection of a silent process.
//! * [`local_server`]: a `nats-server` child on a free loopback port (tests, laptops).
//! * [`rpc`]: typed control calls of any size (cut in parts under NATS's message limit).
//! * [`Announcer`] and [`Gathering`]: the join protocol (processes waiting for work announce
//!   themselves; a coordinator gathers them).
//! * [`Connection`]: a connection to the server, made by [`NatsConfig::connect`].
//! * [`FrameKey`]: the deployment key; with one, every frame (calls, answers,
//!   announcements, heartbeats, data frames, acknowledgements) carries an HMAC-SHA256 tag,
//!   and frames without a valid tag are refused and counted ([`Connection::refused_frames`],
//!   [`GatewayStats::refused_frames`]).
//!
//! Data and control use separate connections, so control never waits behind data.
//!
//! ```
//! use qorch_net::{NatsConfig, Subjects};
//! use qorch_protocol::{ClusterId, Priority, SubClusterId};
//!
//! let config = NatsConfig::new("nats://127.0.0.1:4222");
//! config.validate().unwrap();
//! let s = Subjects::new(&config.prefix);
//! assert_eq!(s.data(ClusterId(2), Some(SubClusterId(7)), Priority::High), "qorch.d.c2.s7.high");
//! ```

#![deny(missing_docs)]

mod auth;
mod config;
mod connection;
mod error;
mod gateway;
mod heartbeat;
mod join;
pub mod local_server;
mod registry;
pub mod rpc;
mod subject;
mod telemetry;
mod trace;

pub use auth::{FrameKey, MIN_KEY_BYTES, TAG_BYTES};
pub use config::{NatsConfig, redact_url};
pub use connection::{Connection, Delivery, Subscription};
pub use error::{NatsError, NetError, RemoteError};
pub use gateway::{Gateway, GatewayConfig, GatewayStats, NatsLink, RouteTable};
pub use heartbeat::{Membership, beacon};
pub use join::{ANNOUNCE_EVERY, Announcer, Gathering};
pub use registry::NatsRegistry;
pub use subject::{LANES, MAX_PROCESS_NAME, Subjects, valid_process_name};
pub use trace::{TraceBridge, TraceContext, set_trace_bridge};
